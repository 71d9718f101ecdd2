"""VideoGRPOTrainer on a tiny Qwen2.5-VL: training changes the right parameters, video reaches every pass, the
vision tower runs once per prompt, logits only at completion positions, num_iterations, custom rewards, resume."""

import json
import os

import pytest
import torch

from videosafety_r1.alarm import add_alarm_tokens
from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
from videosafety_r1.data.schema import Media
from videosafety_r1.grpo import GRPOConfig, grpo_loss
from videosafety_r1.grpo_trainer import VideoGRPOTrainer
from videosafety_r1.rollout import assemble, collate_prompt
from videosafety_r1.testing import tiny_video_llm
from videosafety_r1.vision_cache import find_vision_module


def length_reward(completions, **kwargs):
    """Varies across a group, so advantages are non-zero and the policy moves."""
    return [float(len(c)) / 10 for c in completions]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo_data")
    paths = make_synthetic_dataset(root, 8, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], root)
    return root, records


def _trainer(data, tmp_path, reward_funcs=(length_reward,), seed=0, model=None, processor=None, **overrides):
    root, records = data
    if model is None:
        model, processor = tiny_video_llm("qwen2_5_vl", seed=seed)
        model = add_alarm_tokens(model, processor)
    args = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        max_steps=2,
        learning_rate=1e-2,
        warmup_steps=0,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        data_root=str(root),
        video_fps=8.0,
        video_max_frames=4,
        use_cpu=True,
        seed=seed,
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    args.update(overrides)
    config = GRPOConfig(**args)
    return VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=list(reward_funcs)
    )


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_two_steps_train_llm_not_alarm_or_tower(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    model = trainer.model
    before = _snapshot(model)
    ref_before = _snapshot(trainer.ref_model)
    trainer.train()
    after = dict(model.named_parameters())
    changed = [n for n in before if not torch.equal(before[n], after[n].detach())]
    assert any("language_model" in n for n in changed)
    assert not any(n.startswith("alarm_embedding") or "visual" in n.split(".") for n in changed), changed
    assert not model.alarm_embedding.weight.requires_grad
    assert all(torch.equal(ref_before[n], p) for n, p in trainer.ref_model.named_parameters())
    logs = trainer.state.log_history[0]
    for key in (
        "reward",
        "reward_std",
        "rewards/length_reward/mean",
        "rewards/length_reward/std",
        "kl",
        "entropy",
        "clip_ratio/region_mean",
        "completions/mean_length",
        "completions/clipped_ratio",
        "advantages/std",
    ):
        assert key in logs, key
    assert [s for s, _ in trainer.reward_history] == [0, 1]
    rows = [json.loads(line) for line in open(os.path.join(trainer.args.output_dir, "completions.jsonl"))]
    assert len(rows) == 2 * 4 and {"prompt", "completion", "reward", "rewards/length_reward", "advantage"} <= set(
        rows[0]
    )


def _video_pair(trainer, data):
    """Two prompt items that differ only in the video (one harmful red clip, one safe clip)."""
    _, records = data
    rec = records[0]
    other = next(r for r in records if r.safety_labels.visual != rec.safety_labels.visual)
    swapped = type(rec)(**{**rec.__dict__, "media": Media("video", other.media.path)})
    swapped.__dict__.pop("kind", None)
    return [collate_prompt(trainer.prompt_collator, r) for r in (rec, swapped)]


def test_video_changes_logps_and_gradient(data, tmp_path):
    trainer = _trainer(data, tmp_path, beta=0.0)
    model = trainer.model
    items = _video_pair(trainer, data)
    assert not torch.equal(items[0].tensors["pixel_values_videos"], items[1].tensors["pixel_values_videos"])
    completion = torch.randint(10, 200, (2, 5))
    lm_rows = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, a, o: lm_rows.append(a[0].shape[1]))
    results = []
    for i in (0, 1):
        batch = assemble(items, [i, i], trainer.pad_token_id, completion_ids=completion, cache=None)
        batch["completion_ids"] = completion
        model.zero_grad()
        logps, _ = trainer._logps(model, batch)
        loss = grpo_loss(logps, None, None, torch.tensor([1.0, -1.0]), torch.ones_like(completion).bool(), beta=0.0)
        loss.backward()
        grad = model.get_base_model().lm_head.weight.grad.clone()
        results.append((logps.detach(), grad))
    hook.remove()
    assert lm_rows == [completion.shape[1] + 1] * 2  # logits only at completion positions (+1 dropped)
    assert not torch.allclose(results[0][0], results[1][0])
    assert not torch.allclose(results[0][1], results[1][1])


def test_cached_tower_matches_uncached(data, tmp_path):
    trainer = _trainer(data, tmp_path, beta=0.0)
    items = _video_pair(trainer, data)
    completion = torch.randint(10, 200, (4, 5))
    order = [0, 0, 1, 1]
    with torch.no_grad():
        plain = assemble(items, order, trainer.pad_token_id, completion_ids=completion)
        plain["completion_ids"] = completion
        trainer.vision_cache.clear()
        expected, _ = trainer._logps(trainer.model, plain)
        cached = assemble(items, order, trainer.pad_token_id, completion_ids=completion, cache=trainer.vision_cache)
        cached["completion_ids"] = completion
        got, _ = trainer._logps(trainer.model, cached)
    assert trainer.vision_cache.encoded_blocks == 2  # two prompts, four rows
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("reuse", [True, False])
def test_vision_tower_runs_once_per_prompt(data, tmp_path, reuse):
    trainer = _trainer(data, tmp_path, reuse_vision_features=reuse)  # beta 0.04: a reference pass too
    tower = find_vision_module(trainer.model)[2]
    videos = []
    hook = tower.register_forward_hook(lambda m, a, kw, o: videos.append(kw["grid_thw"].shape[0]), with_kwargs=True)
    trainer.train()
    hook.remove()
    prompts_per_step, G = 2, 2
    if reuse:
        assert videos == [prompts_per_step] * 2  # one call per step, each prompt's video once: not x G, not + ref
    else:  # rollout, policy and reference passes each encode every repeated video
        assert videos == [prompts_per_step * G] * 6


def test_num_iterations_reuses_rollout_and_clips(data, tmp_path):
    trainer = _trainer(data, tmp_path, num_iterations=2, epsilon=0.01, learning_rate=5e-2, beta=0.0)
    trainer.train()
    assert trainer._generation == 1  # two optimizer passes on one rollout
    assert trainer._buffer[0]["old_logps"] is not None
    first, second = trainer.state.log_history[:2]
    assert first["clip_ratio/region_mean"] == 0.0  # on-policy: the ratio is 1
    assert second["clip_ratio/region_mean"] > 0.0


def test_custom_trl_style_reward(data, tmp_path):
    seen = {}

    def my_reward(prompts, completions, completion_ids, solution, problem_type, **kwargs):
        seen.update(n=len(prompts), ids=completion_ids, kwargs=set(kwargs))
        assert len(completions) == len(solution) == len(problem_type)
        return [None if i % 4 == 0 else float(len(ids)) for i, ids in enumerate(completion_ids)]

    trainer = _trainer(data, tmp_path, reward_funcs=[my_reward, "format"], max_steps=1, reward_weights=[1.0, 2.0])
    trainer.train()
    assert seen["n"] == 4 and all(isinstance(i, list) for i in seen["ids"])
    assert {"trainer_state", "log_metric"} <= seen["kwargs"]
    logs = trainer.state.log_history[0]
    assert "rewards/my_reward/mean" in logs and "rewards/format_reward/mean" not in logs
    assert "rewards/format/mean" in logs


def test_save_and_resume(data, tmp_path):
    trainer = _trainer(data, tmp_path, save_strategy="steps", save_steps=1, max_steps=2)
    trainer.train()
    ckpt = tmp_path / "out" / "checkpoint-1"
    assert (ckpt / "alarm.safetensors").exists() and (ckpt / "model.safetensors").exists()
    assert (ckpt / "optimizer.pt").exists() and (tmp_path / "out" / "checkpoint-2").exists()
    final = _snapshot(trainer.model)

    resumed = _trainer(data, tmp_path, save_strategy="no", max_steps=2)
    resumed._load_from_checkpoint(str(tmp_path / "out" / "checkpoint-2"))
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p.detach(), final[n], msg=n)
    again = _trainer(data, tmp_path, save_strategy="no", max_steps=2)
    again.train(resume_from_checkpoint=str(ckpt))
    assert again.state.global_step == 2 and len(again.reward_history) == 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grpo_raises_mean_reward(data, tmp_path, seed):
    """A token-level reward the tiny policy can learn: share of completion tokens drawn from a small target set."""
    model, processor = tiny_video_llm("qwen2_5_vl", seed=seed)
    model = add_alarm_tokens(model, processor)
    target = set(range(100, 140))

    def target_share(completion_ids, **kwargs):
        return [sum(t in target for t in ids) / max(len(ids), 1) for ids in completion_ids]

    trainer = _trainer(
        data,
        tmp_path,
        reward_funcs=[target_share],
        model=model,
        processor=processor,
        seed=seed,
        max_steps=60,
        lr_scheduler_type="constant",
        per_device_train_batch_size=8,
        num_generations=4,
        learning_rate=3e-3,
        beta=0.0,
        max_completion_length=8,
    )
    trainer.train()
    rewards = [r for _, r in trainer.reward_history]
    start, end = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert end > start + 0.1, (start, end, rewards)


def test_sampled_placeholder_token_is_cut_not_fed_back(data, tmp_path):
    """A generator that cannot suppress visual placeholders (vLLM) must not break the later passes."""
    trainer = _trainer(data, tmp_path, max_steps=1)
    video_id = trainer.model.config.video_token_id
    assert video_id in trainer.generator.suppress_token_ids

    def generator(model, inputs):
        ids = torch.randint(10, 200, (inputs["input_ids"].shape[0], 6))
        ids[:, 3] = video_id
        return ids

    trainer.generator = generator
    trainer.train()
    batch = trainer._buffer[0]
    assert batch["completion_mask"].sum(1).tolist() == [3] * 4
