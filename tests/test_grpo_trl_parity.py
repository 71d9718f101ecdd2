"""Our GRPO objective against TRL 1.16's own `GRPOTrainer._compute_loss`, value and gradient, for every loss type
and option we implement, with gradient accumulation 2 and steps_per_generation 2; then with 2 real (gloo) processes.

Both sides get the same per-token log-probs and entropies (leaf tensors) and the same accelerator stand-in, so the
comparison covers the formulas, the accumulation / process scaling and the cross-process statistics. Our side is
`ObjectiveMixin._policy_loss` (what `VideoGRPOTrainer.compute_loss` returns), divided by the accumulation steps as
the Trainer divides it.
"""

import os
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from videosafety_r1.grpo.objective import ObjectiveMixin

ACCUMULATION = SPG = 2
CASES = {
    "grpo": {},
    "bnpo": {},
    "dapo": {},
    "dr_grpo": {},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
    "delta": {"loss_type": "dapo", "delta": 1.5, "epsilon_high": 0.28},
    "bias_kl": {"loss_type": "grpo", "use_bias_correction_kl": True},
    "entropy_quantile": {"loss_type": "dapo", "top_entropy_quantile": 0.5},
    "off_policy": {"loss_type": "grpo", "off_policy_mask_threshold": 0.05},
    "entropy_bonus": {"loss_type": "bnpo", "entropy_coef": 0.1, "top_entropy_quantile": 0.7},
    # the controller: raised to entropy_coef_max below the target, lowered to entropy_coef_min above it
    "adaptive_up": {"loss_type": "grpo", "use_adaptive_entropy": True, "entropy_coef": 0.2, "entropy_target": 9.0},
    "adaptive_down": {"loss_type": "dapo", "use_adaptive_entropy": True, "entropy_coef": 0.2, "entropy_target": 0.0},
}


class LocalAccelerator:
    """One process; or, under torch.distributed, the collectives TRL's loss uses."""

    def __init__(self):
        self.num_processes = dist.get_world_size() if dist.is_initialized() else 1
        self.sync_gradients = True

    def gather(self, t):
        if self.num_processes == 1:
            return t
        t = t.reshape(-1) if t.dim() == 0 else t
        parts = [torch.empty_like(t) for _ in range(self.num_processes)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    gather_for_metrics = gather

    def reduce(self, t, reduction="sum"):
        if self.num_processes > 1:
            t = t.clone()
            dist.all_reduce(t)
        return t

    def pad_across_processes(self, t, dim=0, pad_index=0):
        if self.num_processes == 1:
            return t
        size = torch.tensor([t.shape[0]])
        dist.all_reduce(size, op=dist.ReduceOp.MAX)
        return torch.cat([t, t.new_full((int(size) - t.shape[0],), pad_index)])


def _args(case):
    kw = {"loss_type": case}
    kw.update(CASES[case])
    base = dict(
        epsilon=0.2,
        epsilon_high=None,
        beta=0.04,
        delta=None,
        importance_sampling_level="token",
        use_bias_correction_kl=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        entropy_coef=0.0,
        use_adaptive_entropy=False,
        entropy_coef_min=0.18,
        entropy_coef_max=0.22,
        entropy_coef_delta=0.05,
        entropy_target=0.2,
        max_completion_length=8,
        steps_per_generation=SPG,
    )
    base.update(kw)
    return SimpleNamespace(**base)


class Ours(ObjectiveMixin):
    def __init__(self, args, accelerator):
        self.args, self.accelerator = args, accelerator
        self._metrics = defaultdict(list)
        self.current_gradient_accumulation_steps = ACCUMULATION
        self._init_entropy_control()


def _trl(args, accelerator, logps, entropies):
    from trl import GRPOTrainer

    fake = SimpleNamespace(
        aux_loss_enabled=False,
        top_entropy_quantile=args.top_entropy_quantile,
        off_policy_mask_threshold=args.off_policy_mask_threshold,
        importance_sampling_level=args.importance_sampling_level,
        beta=args.beta,
        args=args,
        loss_type=args.loss_type,
        epsilon_low=args.epsilon,
        epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        use_vllm=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=ACCUMULATION,
        max_completion_length=args.max_completion_length,
        entropy_coef=args.entropy_coef,
        use_adaptive_entropy=args.use_adaptive_entropy,
        _entropy_bonus_enabled=args.entropy_coef != 0.0 or args.use_adaptive_entropy,
        _last_world_entropy=float("inf"),
        _entropy_window_stats=None,
        _metrics={"train": defaultdict(list)},
        accelerator=accelerator,
        get_off_policy_mask=GRPOTrainer.get_off_policy_mask,
    )
    fake.get_high_entropy_mask = lambda e, m, t: GRPOTrainer.get_high_entropy_mask(fake, e, m, t)
    fake._get_per_token_logps_and_entropies = lambda *a, **k: (fake._logps, fake._entropies, None)
    return fake


def _micro_batches(seed, rows=4, width=5):
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(SPG):
        logps = -torch.rand(rows, width, generator=g) * 2
        mask = (torch.rand(rows, width, generator=g) > 0.25).long()
        mask[0, 2:] = 0
        batches.append(
            {
                "logps": logps,
                "entropies": torch.rand(rows, width, generator=g) * 3,
                "completion_mask": mask,
                "advantages": torch.randn(rows, generator=g),
                "old_logps": logps + (torch.rand(rows, width, generator=g) - 0.5) * 0.4,
                "ref_logps": logps + (torch.rand(rows, width, generator=g) - 0.5) * 0.3,
            }
        )
    return batches


def _run_both(case, seed, accelerator):
    """Accumulated gradients (and summed losses) of both sides over one generation batch of SPG micro-batches."""
    from trl import GRPOTrainer

    args = _args(case)
    batches = _micro_batches(seed)
    local_items = sum(b["completion_mask"].sum() for b in batches).reshape(1)
    num_items = accelerator.gather(local_items).sum()  # as both trainers: the whole generation batch, all processes
    ours, theirs = Ours(args, accelerator), _trl(args, accelerator, None, None)
    results = []
    for side in ("ours", "trl"):
        grads, total = [], 0.0
        for b in batches:
            logps = b["logps"].clone().requires_grad_()
            ent = b["entropies"].clone().requires_grad_()
            if side == "ours":
                inputs = {k: b[k] for k in ("completion_mask", "advantages", "old_logps", "ref_logps")}
                loss = ours._policy_loss(logps, ent, {**inputs, "num_items_in_batch": num_items}) / ACCUMULATION
            else:
                theirs._logps, theirs._entropies = logps, ent
                rows, width = logps.shape
                inputs = {
                    "prompt_ids": torch.zeros(rows, 1, dtype=torch.long),
                    "prompt_mask": torch.ones(rows, 1, dtype=torch.long),
                    "completion_ids": torch.zeros(rows, width, dtype=torch.long),
                    "completion_mask": b["completion_mask"],
                    "advantages": b["advantages"],
                    "old_per_token_logps": b["old_logps"],
                    "ref_per_token_logps": b["ref_logps"],
                    "num_items_in_batch": num_items,
                }
                loss = GRPOTrainer._compute_loss(theirs, None, inputs)
            loss.backward()
            total += loss.item()
            ent_grad = ent.grad if ent.grad is not None else torch.zeros_like(ent)
            grads.append(torch.cat([logps.grad.reshape(-1), ent_grad.reshape(-1)]))
        results.append((total, torch.cat(grads)))
    return results, ours, theirs


@pytest.mark.parametrize("case", list(CASES))
def test_objective_matches_trl_with_accumulation(case):
    (ours, trl), our_obj, trl_obj = _run_both(case, seed=3, accelerator=LocalAccelerator())
    assert ours[1].abs().sum() > 0  # the case has a gradient to compare
    torch.testing.assert_close(ours[0], trl[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours[1], trl[1], atol=1e-6, rtol=1e-5)
    if CASES[case].get("use_adaptive_entropy"):  # the controller moved the same way, to the bound
        assert our_obj.entropy_coef == pytest.approx(trl_obj.entropy_coef)
        assert our_obj.entropy_coef == pytest.approx(0.22 if case == "adaptive_up" else 0.18)


def test_accumulation_scaling_is_not_a_no_op():
    """dapo's normaliser depends on the generation batch: a wrong num_items_in_batch changes the gradient."""
    args = _args("dapo")
    b = _micro_batches(0)[0]
    logps = b["logps"].clone().requires_grad_()
    inputs = {k: b[k] for k in ("completion_mask", "advantages", "old_logps", "ref_logps")}
    ours = Ours(args, LocalAccelerator())
    a = ours._policy_loss(logps, b["entropies"], {**inputs, "num_items_in_batch": torch.tensor(30.0)})
    c = ours._policy_loss(logps, b["entropies"], {**inputs, "num_items_in_batch": torch.tensor(60.0)})
    torch.testing.assert_close(a, 2 * c)


# ---------------------------------------------------------------------------------------------------------------------
# 2 processes (gloo, CPU): the same comparison where the normalisers and quantiles span both processes
# ---------------------------------------------------------------------------------------------------------------------
def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        report = {}
        for case in CASES:
            (ours, trl), _, _ = _run_both(case, seed=10 + rank, accelerator=LocalAccelerator())
            grads = torch.stack([ours[1], trl[1]])
            dist.all_reduce(grads)  # DDP's gradient sum (the mean divides both sides alike)
            report[case] = (grads[0] - grads[1]).abs().max().item(), grads[0].abs().sum().item()
        report["advantages"] = _advantage_check(rank, world)
        torch.save(report, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _advantage_check(rank, world):
    """scale_rewards='batch' and normalize_then_sum over both processes' groups equal TRL's formulas on the
    gathered batch (TRL gathers every reward first, then slices its process's part)."""
    from trl.trainer.utils import nanstd

    G = 4
    g = torch.Generator().manual_seed(100)
    everyone = torch.randint(0, 4, (world * 2 * G, 2), generator=g).float()  # [world*B*G, F]
    everyone[3, 1] = torch.nan  # a sparse reward
    local = everyone.view(world, -1, 2)[rank]
    weights = torch.tensor([1.0, 0.5])
    errors = []
    for aggregation, scale in (("sum_then_normalize", "batch"), ("normalize_then_sum", "group")):
        stub = SimpleNamespace(
            num_generations=G,
            reward_weights=weights,
            accelerator=LocalAccelerator(),
            args=SimpleNamespace(multi_objective_aggregation=aggregation, scale_rewards=scale),
        )
        _, ours = ObjectiveMixin._advantages(stub, local)
        if aggregation == "sum_then_normalize":
            rewards = (everyone * weights).nansum(1)
            mean = rewards.view(-1, G).mean(1).repeat_interleave(G)
            expected = (rewards - mean) / (nanstd(rewards) + 1e-4)
        else:
            grouped = everyone.view(-1, G, 2)
            k = (grouped - torch.nanmean(grouped, 1, keepdim=True)) / (nanstd(grouped, dim=1, keepdim=True) + 1e-4)
            rewards = (k.view(-1, 2) * weights).nansum(1)
            expected = (rewards - torch.nanmean(rewards)) / (nanstd(rewards) + 1e-4)
        expected = expected.view(world, -1)[rank]
        errors.append((ours - expected).abs().max().item())
    return max(errors)


@pytest.mark.slow
def test_objective_matches_trl_on_two_processes(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        report = torch.load(tmp_path / f"rank{rank}.pt")
        assert report.pop("advantages") < 1e-5
        for case, (diff, size) in report.items():
            assert size > 0 and diff < 1e-5, (rank, case, diff)
