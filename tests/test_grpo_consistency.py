"""The trainer scores exactly what the sampler sampled, and one update moves the policy towards advantaged
completions. Either failing makes GRPO optimise noise while every other test still passes."""

import pytest
import torch

from videosafety_r1.alarm import add_alarm_tokens
from videosafety_r1.grpo.rollout import assemble, collate_prompt, completion_mask_after_eos
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.testing import tiny_grpo_config, tiny_video_llm


def varied_reward(completion_ids, **kwargs):
    return [float(sum(ids) % 7) for ids in completion_ids]


def _trainer(grpo_data, tmp_path, family, **overrides):
    root, records = grpo_data
    model, processor = tiny_video_llm(family, seed=0)
    model = add_alarm_tokens(model, processor)
    args = dict(
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=12,
        max_steps=1,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        bf16=False,
        temperature=0.7,
        top_p=1.0,
        beta=0.0,
    )
    args.update(overrides)
    return VideoGRPOTrainer(
        model,
        tiny_grpo_config(tmp_path / "out", root, **args),
        train_dataset=records,
        processing_class=processor,
        reward_funcs=[varied_reward],
    )


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "video_llama_3"])
def test_training_logps_equal_sampling_logps(grpo_data, tmp_path, family):
    """Per-token log-probs of the loss pass equal those of the distribution `generate` sampled from (same
    temperature), token for token: positions, M-RoPE indices, alarm vectors and visual features all line up."""
    trainer = _trainer(grpo_data, tmp_path, family)
    _, records = grpo_data
    items = [collate_prompt(trainer.prompt_collator, r) for r in records[:2]]
    order = [0, 0, 1, 1]
    prompts = assemble(items, order, pad_token_id=trainer.pad_token_id)
    model = trainer.model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            **prompts,
            do_sample=True,
            temperature=0.7,
            top_k=0,
            max_new_tokens=12,
            pad_token_id=trainer.pad_token_id,
            eos_token_id=trainer.eos_token_ids,
            output_logits=True,
            return_dict_in_generate=True,
        )
    completion = out.sequences[:, prompts["input_ids"].shape[1] :]  # [N, C]
    raw = torch.stack(out.logits, 1).float() / 0.7  # [N, C, V], before any logits processor
    sampled = torch.log_softmax(raw, -1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)  # [N, C]
    mask = completion_mask_after_eos(completion, trainer.eos_token_ids)
    batch = assemble(items, order, pad_token_id=trainer.pad_token_id, completion_ids=completion, completion_mask=mask)
    batch.update(completion_ids=completion, completion_mask=mask)
    with torch.no_grad():
        scored, _ = trainer._logps(model, batch)  # [N, C]
    assert mask.sum() >= 8
    torch.testing.assert_close(scored[mask], sampled[mask], atol=1e-4, rtol=0)


def test_one_update_moves_towards_advantaged_completions(grpo_data, tmp_path):
    """After one optimiser step on a rollout, the change of each completion's mean log-prob correlates with its
    advantage (positive ones up, negative ones down)."""
    trainer = _trainer(grpo_data, tmp_path, "qwen2_5_vl", per_device_train_batch_size=16, num_generations=8)
    trainer.create_optimizer_and_scheduler(num_training_steps=1)
    _, records = grpo_data
    torch.manual_seed(0)
    batch = trainer._generate_and_score(records[:2])[0]
    advantages, mask = batch["advantages"], batch["completion_mask"].float()  # [N], [N, C]
    assert advantages.abs().sum() > 0

    def mean_logp():
        with torch.no_grad():
            logps, _ = trainer._logps(trainer.model, batch)
        return (logps * mask).sum(1) / mask.sum(1)

    before = mean_logp()
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch).backward()
    trainer.optimizer.step()
    delta = mean_logp() - before  # [N]
    corr = torch.corrcoef(torch.stack([advantages, delta]))[0, 1].item()
    assert corr > 0.5, corr
    assert (advantages * delta).sum() > 0
