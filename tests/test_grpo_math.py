"""Hand-computed cases for the pure GRPO math, plus cross-checks against TRL 1.16's own implementation."""

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from videosafety_r1.grpo import entropy_from_logits, group_advantages, grpo_loss, selective_log_softmax

EPS = 1e-4
LN2 = math.log(2.0)


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(torch.as_tensor(actual).double(), torch.as_tensor(expected).double(), atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------
# group_advantages
# ---------------------------------------------------------------------------------------------------------------------
REWARDS = [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]  # group 1: mean 2, Bessel std 1; group 2: constant
BATCH_STD = math.sqrt((4 + 1 + 0 + 1 + 1 + 1) / 5)  # mean 3, Bessel over 6 values


@pytest.mark.parametrize(
    "scale, expected",
    [
        ("group", [-1 / (1 + EPS), 0.0, 1 / (1 + EPS), 0.0, 0.0, 0.0]),
        ("batch", [-1 / (BATCH_STD + EPS), 0.0, 1 / (BATCH_STD + EPS), 0.0, 0.0, 0.0]),
        ("none", [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
    ],
)
def test_group_advantages_hand_values(scale, expected):
    close(group_advantages(torch.tensor(REWARDS), num_generations=3, scale=scale), expected)


def test_group_advantages_uses_bessel_correction():
    # [0, 1]: Bessel std sqrt(0.5), the population std would be 0.5 and give +-1
    adv = group_advantages(torch.tensor([0.0, 1.0]), num_generations=2)
    close(adv, [-0.5 / (math.sqrt(0.5) + EPS), 0.5 / (math.sqrt(0.5) + EPS)])


def test_group_advantages_groups_are_consecutive_rows():
    adv = group_advantages(torch.tensor([0.0, 0.0, 10.0, 10.0, 1.0, 3.0]), num_generations=2)
    close(adv, [0.0, 0.0, 0.0, 0.0, -1 / (math.sqrt(2) + EPS), 1 / (math.sqrt(2) + EPS)])


def test_group_advantages_match_trl_formula():
    g = torch.Generator().manual_seed(0)
    rewards = torch.rand(24, generator=g) * 3
    grouped = rewards.view(-1, 6)
    mean = grouped.mean(1).repeat_interleave(6)
    std = grouped.std(1).repeat_interleave(6)  # as TRL: torch.std, Bessel
    close(group_advantages(rewards, 6), (rewards - mean) / (std + EPS))
    close(group_advantages(rewards, 6, "batch"), (rewards - mean) / (rewards.std() + EPS))


def test_group_advantages_nan_rows_get_zero_and_leave_the_baseline():
    adv = group_advantages(torch.tensor([1.0, float("nan"), 3.0]), num_generations=3)
    close(adv, [-1 / (math.sqrt(2) + EPS), 0.0, 1 / (math.sqrt(2) + EPS)])


def test_group_advantages_single_generation_is_zero():
    close(group_advantages(torch.tensor([1.0, 5.0]), num_generations=1), [0.0, 0.0])


def test_group_advantages_accepts_integer_rewards():
    adv = group_advantages(torch.tensor([0, 1, 1, 0]), 2, "none")
    assert adv.dtype == torch.float32
    close(adv, [-0.5, 0.5, 0.5, -0.5])


@pytest.mark.parametrize(
    "rewards, g, scale, match",
    [
        ([1.0, 2.0, 3.0], 2, "group", "divisible"),
        ([1.0, 2.0], 2, "True", "scale"),
        ([1.0, 2.0], 2, True, "scale"),
        ([1.0, 2.0], 0, "group", "num_generations"),
        ([[1.0, 2.0]], 2, "group", "1-D"),
    ],
)
def test_group_advantages_errors(rewards, g, scale, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(torch.tensor(rewards), g, scale)


# ---------------------------------------------------------------------------------------------------------------------
# grpo_loss: 2 rows x 3 tokens, A = [1, -2], row 2 has its last token masked
# ---------------------------------------------------------------------------------------------------------------------
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
ADV = torch.tensor([1.0, -2.0])
LOGPS = torch.full((2, 3), math.log(0.5))
KL1 = 2 - LN2 - 1  # k3 with x = ln 2: exp(x) - x - 1


def ref_with_one_kl_token():
    ref = LOGPS.clone()
    ref[0, 0] += LN2  # x = ref - logp = ln 2 on one token, 0 elsewhere
    return ref


@pytest.mark.parametrize(
    "loss_type, kwargs, expected",
    [
        ("grpo", {}, ((-1 * 3) / 3 + (2 * 2) / 2) / 2),  # token mean per row, then mean: (-1 + 2) / 2
        ("dapo", {}, (-1 * 3 + 2 * 2) / 5),  # 5 unmasked tokens
        ("dr_grpo", {}, (-1 * 3 + 2 * 2) / (2 * 3)),  # rows x T
        ("dr_grpo", {"max_completion_length": 10}, (-1 * 3 + 2 * 2) / (2 * 10)),
    ],
)
def test_on_policy_loss_is_minus_advantage(loss_type, kwargs, expected):
    loss = grpo_loss(LOGPS, None, None, ADV, MASK, beta=0.0, loss_type=loss_type, **kwargs)
    close(loss, expected)


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("grpo", ((-3 + 0.04 * KL1) / 3 + 4 / 2) / 2),
        ("dapo", (-3 + 0.04 * KL1 + 4) / 5),
        ("dr_grpo", (-3 + 0.04 * KL1 + 4) / 6),
    ],
)
def test_on_policy_loss_adds_beta_k3_kl(loss_type, expected):
    loss, stats = grpo_loss(LOGPS, None, ref_with_one_kl_token(), ADV, MASK, loss_type=loss_type, return_stats=True)
    close(loss, expected)
    close(stats["kl"], KL1 / 5)
    close(stats["clip_ratio"], 0.0)


def test_k3_kl_uses_ref_minus_policy():
    ref = LOGPS - LN2  # x = -ln 2: exp(x) - x - 1 = 0.5 + ln 2 - 1
    _, stats = grpo_loss(LOGPS, None, ref, ADV, torch.ones(2, 3), return_stats=True)
    close(stats["kl"], 0.5 + LN2 - 1)


def test_masked_tokens_never_leak_even_if_garbage():
    logps, ref, old = LOGPS.clone(), LOGPS.clone(), LOGPS.clone()
    logps[1, 2], ref[1, 2], old[1, 2] = float("nan"), float("inf"), -float("inf")
    for loss_type in ("grpo", "dapo", "dr_grpo"):
        clean = grpo_loss(LOGPS, LOGPS, LOGPS, ADV, MASK, loss_type=loss_type)
        close(grpo_loss(logps, old, ref, ADV, MASK, loss_type=loss_type), clean)


# 4 rows x 1 token: ratios [1.5, 0.5, 0.5, 1.5], A = [1, -1, 1, -1], epsilon 0.2
RATIOS = torch.tensor([[1.5], [0.5], [0.5], [1.5]])
CLIP_ADV = torch.tensor([1.0, -1.0, 1.0, -1.0])


def clip_case(**kwargs):
    logps = torch.zeros(4, 1, requires_grad=True)
    old = -torch.log(RATIOS)  # rho = exp(logps - old) = RATIOS
    loss, stats = grpo_loss(logps, old, None, CLIP_ADV, torch.ones(4, 1), beta=0.0, return_stats=True, **kwargs)
    loss.backward()
    return loss, stats, logps.grad.squeeze(1)


def test_clipping_symmetric():
    # per token: min(1.5, 1.2) -> 1.2 (high-clipped), min(-0.5, -0.8) -> -0.8 (low-clipped), 0.5, min(-1.5, -1.2)
    loss, stats, grad = clip_case()
    close(loss, (-1.2 + 0.8 - 0.5 + 1.5) / 4)
    close(grad, [0.0, 0.0, -0.5 / 4, 1.5 / 4])  # clipped tokens carry no gradient; else -rho*A/N
    close(stats["clip_ratio/high_mean"], 0.25)
    close(stats["clip_ratio/low_mean"], 0.25)
    close(stats["clip_ratio"], 0.5)
    assert math.isnan(stats["kl"].item())  # no reference


def test_clipping_epsilon_high_asymmetric():
    loss, stats, grad = clip_case(epsilon_high=0.6)  # 1.5 < 1.6: row 1 no longer clipped
    close(loss, (-1.5 + 0.8 - 0.5 + 1.5) / 4)
    close(grad, [-1.5 / 4, 0.0, -0.5 / 4, 1.5 / 4])
    close(stats["clip_ratio/high_mean"], 0.0)
    close(stats["clip_ratio/low_mean"], 0.25)


def test_clipping_epsilon_low_only_moves_the_lower_bound():
    loss, _, grad = clip_case(epsilon=0.6, epsilon_high=0.2)  # lower bound 0.4 < 0.5: row 2 unclipped
    close(loss, (-1.2 + 0.5 - 0.5 + 1.5) / 4)
    close(grad, [0.0, 0.5 / 4, -0.5 / 4, 1.5 / 4])


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_on_policy_gradient_is_minus_advantage_over_length(beta):
    g = torch.Generator().manual_seed(1)
    logps = (-torch.rand(2, 3, generator=g) * 3).requires_grad_()
    ref = -torch.rand(2, 3, generator=g) * 3
    grpo_loss(logps, None, ref if beta else None, ADV, MASK, beta=beta).backward()
    lengths = MASK.sum(1, keepdim=True).float()
    x = ref - logps.detach()
    expected = (-ADV.unsqueeze(1) + beta * (1 - torch.exp(x))) / lengths / 2 * MASK  # d k3 / d logp = 1 - exp(x)
    close(logps.grad, expected)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_zero_mask_row_gives_no_nan(loss_type):
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    logps = LOGPS.clone().requires_grad_()
    loss, stats = grpo_loss(logps, None, ref_with_one_kl_token(), ADV, mask, loss_type=loss_type, return_stats=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logps.grad).all()
    assert all(torch.isfinite(v) for v in stats.values())
    assert (logps.grad[1] == 0).all()
    empty, _ = grpo_loss(LOGPS, None, LOGPS, ADV, torch.zeros(2, 3), loss_type=loss_type, return_stats=True)
    close(empty, 0.0)


def test_stats_are_detached_and_loss_has_grad():
    logps = LOGPS.clone().requires_grad_()
    loss, stats = grpo_loss(logps, None, ref_with_one_kl_token(), ADV, MASK, return_stats=True)
    assert loss.requires_grad and loss.dim() == 0
    assert set(stats) >= {"kl", "clip_ratio", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"}
    assert not any(v.requires_grad for v in stats.values())


def test_bool_and_float_masks_agree():
    a = grpo_loss(LOGPS, None, None, ADV, MASK.bool(), beta=0.0)
    b = grpo_loss(LOGPS, None, None, ADV, MASK.float(), beta=0.0)
    close(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ref_logps": None, "beta": 0.04}, "ref_logps"),
        ({"loss_type": "sapo"}, "loss_type"),
        ({"importance_sampling_level": "seq"}, "importance_sampling_level"),
        ({"delta": 0.0}, "delta"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon_high": -0.1}, "epsilon_high"),
        ({"beta": -1.0}, "beta"),
        ({"advantages": torch.ones(2, 1)}, "advantages"),
        ({"mask": torch.ones(2, 2)}, "mask"),
        ({"old_logps": torch.zeros(3, 3)}, "old_logps"),
        ({"loss_type": "dr_grpo", "max_completion_length": 0}, "max_completion_length"),
    ],
)
def test_grpo_loss_errors(kwargs, match):
    args = {"logps": LOGPS, "old_logps": None, "ref_logps": LOGPS, "advantages": ADV, "mask": MASK, **kwargs}
    with pytest.raises(ValueError, match=match):
        grpo_loss(**args)


# ---------------------------------------------------------------------------------------------------------------------
# Cross-check against TRL's GRPOTrainer._compute_loss, called with a stand-in trainer (no model, no accelerator)
# ---------------------------------------------------------------------------------------------------------------------
def trl_loss(logps, old_logps, ref_logps, advantages, mask, epsilon, epsilon_high, beta, loss_type, max_len):
    from trl import GRPOTrainer

    accelerator = SimpleNamespace(
        num_processes=1, reduce=lambda t, reduction="sum": t, gather=lambda t: t, gather_for_metrics=lambda t: t
    )
    fake = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        loss_type=loss_type,
        epsilon_low=epsilon,
        epsilon_high=epsilon_high,
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=max_len,
        _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list)},
        accelerator=accelerator,
    )
    rows, width = logps.shape
    inputs = {
        "prompt_ids": torch.zeros(rows, 1, dtype=torch.long),
        "prompt_mask": torch.ones(rows, 1, dtype=torch.long),
        "completion_ids": torch.zeros(rows, width, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": advantages,
        "old_per_token_logps": old_logps,
        "ref_per_token_logps": ref_logps,
        "num_items_in_batch": mask.sum().float(),
    }
    loss = GRPOTrainer._compute_loss(fake, None, inputs)
    return loss, {k: v[-1] for k, v in fake._metrics["train"].items()}


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("on_policy", [True, False])
def test_matches_trl_compute_loss(loss_type, on_policy):
    g = torch.Generator().manual_seed(2)
    rows, width = 6, 5
    logps = (-torch.rand(rows, width, generator=g) * 2).requires_grad_()
    old = None if on_policy else logps.detach() + (torch.rand(rows, width, generator=g) - 0.5)
    ref = logps.detach() + (torch.rand(rows, width, generator=g) - 0.5) * 0.3
    adv = torch.randn(rows, generator=g)
    mask = torch.ones(rows, width, dtype=torch.long)
    mask[0, 3:] = 0
    mask[4, 1:] = 0
    kw = {"epsilon": 0.2, "epsilon_high": 0.28, "beta": 0.04, "loss_type": loss_type}
    ours, stats = grpo_loss(logps, old, ref, adv, mask, max_completion_length=8, return_stats=True, **kw)
    (grad_ours,) = torch.autograd.grad(ours, logps)
    theirs, metrics = trl_loss(logps, old, ref, adv, mask, max_len=8, **kw)
    (grad_theirs,) = torch.autograd.grad(theirs, logps)
    close(ours, theirs.detach())
    close(grad_ours, grad_theirs)
    close(stats["kl"], metrics["kl"])
    for name in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
        close(stats[name], metrics[name])


# ---------------------------------------------------------------------------------------------------------------------
# selective_log_softmax / entropy_from_logits
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_selective_log_softmax_matches_naive(dtype, temperature):
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(3, 4, 11, generator=g) * 4).to(dtype)
    ids = torch.randint(0, 11, (3, 4), generator=g)
    naive = torch.log_softmax(logits.float() / temperature, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    out = selective_log_softmax(logits, ids, temperature=temperature)
    assert out.shape == (3, 4) and out.dtype == dtype
    close(out.float(), naive, atol=5e-2 if dtype == torch.bfloat16 else 1e-5)


def test_selective_log_softmax_matches_trl_and_has_gradient():
    from trl.trainer.utils import selective_log_softmax as trl_selective_log_softmax

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 13, generator=g, requires_grad=True)
    ids = torch.randint(0, 13, (2, 5), generator=g)
    ours = selective_log_softmax(logits, ids)
    close(ours.detach(), trl_selective_log_softmax(logits.detach(), ids))
    ours.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_selective_log_softmax_1d_and_errors():
    close(selective_log_softmax(torch.zeros(4), torch.tensor(2)), -math.log(4))
    with pytest.raises(ValueError, match="temperature"):
        selective_log_softmax(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), temperature=0)
    with pytest.raises(ValueError, match="shape"):
        selective_log_softmax(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("chunk_size", [1, 3, 128])
def test_entropy_from_logits(chunk_size):
    from trl.trainer.utils import entropy_from_logits as trl_entropy

    uniform = torch.zeros(2, 3, 8)
    close(entropy_from_logits(uniform, chunk_size), torch.full((2, 3), math.log(8)))
    peaked = torch.tensor([[0.0, -1e4, -1e4]])
    close(entropy_from_logits(peaked, chunk_size), [0.0])
    logits = torch.randn(4, 5, 17, generator=torch.Generator().manual_seed(5))
    close(entropy_from_logits(logits, chunk_size), trl_entropy(logits), atol=1e-5)
    assert entropy_from_logits(logits.bfloat16(), chunk_size).dtype == torch.bfloat16
