"""VideoGRPOTrainer honours the TRL config fields it promises: sampling settings reach `generate`,
mask_truncated_completions, scale_rewards, sync_ref_model."""

import pytest
import torch

from videosafety_r1.alarm import add_alarm_tokens
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.testing import tiny_grpo_config, tiny_video_llm


def token_sum(completion_ids, **kwargs):
    return [float(sum(ids) % 11) for ids in completion_ids]


def _trainer(grpo_data, tmp_path, **overrides):
    root, records = grpo_data
    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    model = add_alarm_tokens(model, processor)
    config = tiny_grpo_config(tmp_path / "out", root, bf16=False, **overrides)
    return VideoGRPOTrainer(model, config, train_dataset=records, processing_class=processor, reward_funcs=[token_sum])


def test_sampling_settings_reach_generate(grpo_data, tmp_path):
    trainer = _trainer(grpo_data, tmp_path, temperature=0.6, top_p=0.8, top_k=7, max_completion_length=5, max_steps=1)
    seen = {}
    generate = trainer.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return generate(**kwargs)

    trainer.model.generate = spy
    trainer.train()
    assert (seen["temperature"], seen["top_p"], seen["top_k"], seen["max_new_tokens"]) == (0.6, 0.8, 7, 5)
    assert seen["do_sample"] is True
    assert trainer._buffer[0]["completion_ids"].shape[1] <= 5


@pytest.mark.parametrize("masked", [True, False])
def test_mask_truncated_completions(grpo_data, tmp_path, masked):
    """With 3 new tokens no completion reaches EOS: masked, they contribute nothing to the loss."""
    trainer = _trainer(grpo_data, tmp_path, max_completion_length=3, max_steps=1, mask_truncated_completions=masked)
    trainer.train()
    batch = trainer._buffer[0]
    assert trainer.state.log_history[0]["completions/clipped_ratio"] == 1.0
    assert (batch["completion_mask"].sum() == 0) == masked


@pytest.mark.parametrize("scale", ["group", "none"])
def test_scale_rewards(grpo_data, tmp_path, scale):
    trainer = _trainer(grpo_data, tmp_path, num_generations=4, per_device_train_batch_size=8, scale_rewards=scale)
    _, records = grpo_data
    torch.manual_seed(0)
    batch = trainer._generate_and_score(records[:2])[0]
    rewards = torch.tensor(token_sum(batch["completion_ids"].masked_fill(batch["completion_mask"] == 0, 0).tolist()))
    centred = (rewards.view(2, 4) - rewards.view(2, 4).mean(1, keepdim=True)).view(-1)
    expected = centred if scale == "none" else centred / (rewards.view(2, 4).std(1).repeat_interleave(4) + 1e-4)
    torch.testing.assert_close(batch["advantages"], expected)


def test_sync_ref_model_copies_the_policy(grpo_data, tmp_path):
    """ref_model_mixup_alpha 1 and sync every step: after training the reference equals the policy."""
    trainer = _trainer(
        grpo_data, tmp_path, beta=0.04, sync_ref_model=True, ref_model_sync_steps=1, ref_model_mixup_alpha=1.0
    )
    trainer.train()
    policy = dict(trainer.model.named_parameters())
    changed = 0
    for name, param in trainer.ref_model.named_parameters():
        torch.testing.assert_close(param, policy[name], msg=name)
        changed += "language_model" in name
    assert changed
    unsynced = _trainer(grpo_data, tmp_path, beta=0.04)
    unsynced.train()
    policy = dict(unsynced.model.named_parameters())
    assert any(not torch.equal(p, policy[n]) for n, p in unsynced.ref_model.named_parameters())


def test_grpo_continues_a_lora_checkpoint_training_only_the_adapters(grpo_data, tmp_path):
    """An AT-SFT LoRA checkpoint (PEFT adapter in `model.base`) goes on training its adapters under GRPO: only
    LoRA weights change, the save is an adapter again, and load_pretrained restores exactly the trained weights."""
    from peft import LoraConfig, get_peft_model

    from videosafety_r1.alarm import load_pretrained

    root, records = grpo_data
    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    model = add_alarm_tokens(model, processor)
    model.base.save_pretrained(tmp_path / "base")  # the adapter's base, as an AT-SFT LoRA run records it
    processor.save_pretrained(tmp_path / "base")
    model.base = get_peft_model(model.base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    model.base.peft_config["default"].base_model_name_or_path = str(tmp_path / "base")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = tiny_grpo_config(tmp_path / "out", root, bf16=False, beta=0.04)
    trainer = VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=[token_sum]
    )
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all("lora_" in n for n in changed), changed
    trainer.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "adapter_model.safetensors").is_file()
    reloaded, _ = load_pretrained(tmp_path / "final")
    trained = dict(trainer.model.named_parameters())
    for name, param in reloaded.named_parameters():
        torch.testing.assert_close(param, trained[name], rtol=0, atol=0, msg=name)
