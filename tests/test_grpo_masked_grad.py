"""#12 item 14: masked tokens affect neither grpo_loss nor its gradient, whatever they hold, in fp32, bf16 and fp16."""

import pytest
import torch

from videosafety_r1.grpo import grpo_loss


def _case(dtype, garbage):
    g = torch.Generator().manual_seed(0)
    logps = (-torch.rand(4, 6, generator=g) * 2).to(dtype)
    old = logps + (torch.rand(4, 6, generator=g) * 0.2).to(dtype)
    ref = logps + (torch.rand(4, 6, generator=g) * 0.2).to(dtype)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 3:] = False
    mask[3, 1:] = False
    if garbage:  # masked positions: ref - logps >= 100 (exp overflows fp16 at ~11, fp32 at ~89), old far away
        logps = torch.where(mask, logps, torch.full_like(logps, -120.0))
        ref = torch.where(mask, ref, torch.zeros_like(ref))
        old = torch.where(mask, old, torch.full_like(old, 50.0))
    adv = torch.tensor([1.0, -0.5, 0.3, 2.0], dtype=dtype)
    return logps, old, ref, adv, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("bias_kl", [False, True])
def test_masked_garbage_changes_neither_loss_nor_gradient(dtype, loss_type, level, bias_kl):
    results = []
    for garbage in (False, True):
        logps, old, ref, adv, mask = _case(dtype, garbage)
        logps.requires_grad_()
        loss = grpo_loss(
            logps,
            old,
            ref,
            adv,
            mask,
            beta=0.04,
            loss_type=loss_type,
            importance_sampling_level=level,
            use_bias_correction_kl=bias_kl,
            num_items_in_batch=40 if loss_type == "dapo" else None,
        )
        (grad,) = torch.autograd.grad(loss, logps)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), (garbage, grad)
        assert (grad[~mask] == 0).all()
        results.append((loss.detach(), grad))
    (clean_loss, clean_grad), (dirty_loss, dirty_grad) = results
    assert clean_grad[mask].abs().sum() > 0
    torch.testing.assert_close(dirty_loss, clean_loss)
    torch.testing.assert_close(dirty_grad[mask], clean_grad[mask])
