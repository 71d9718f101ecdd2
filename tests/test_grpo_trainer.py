"""VideoGRPOTrainer on every tiny family: training changes the right parameters, video reaches every pass, the
vision tower runs once per prompt, logits only at completion positions, mixed-modality batches, save and
load_pretrained, gradient checkpointing; on Qwen2.5-VL also num_iterations, custom rewards, resume."""

import dataclasses
import json
import os
from fractions import Fraction

import numpy as np
import pytest
import torch

from videosafety_r1.alarm import AlarmVideoLLM, add_alarm_tokens, load_pretrained
from videosafety_r1.alarm.model import is_vision_parameter
from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
from videosafety_r1.data.collate import GRPOPromptCollator, MediaLoader
from videosafety_r1.data.schema import Media
from videosafety_r1.grpo import grpo_loss
from videosafety_r1.grpo.rollout import assemble, collate_prompt
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.grpo.vision_cache import find_vision_module
from videosafety_r1.testing import FAMILIES, tiny_grpo_config, tiny_video_llm


def length_reward(completions, **kwargs):
    """Varies across a group, so advantages are non-zero and the policy moves."""
    return [float(len(c)) / 10 for c in completions]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo_data")
    paths = make_synthetic_dataset(root, 8, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], root)
    return root, records


def _trainer(
    data, tmp_path, reward_funcs=(length_reward,), seed=0, model=None, processor=None, family="qwen2_5_vl", **overrides
):
    root, records = data
    if model is None:
        model, processor = tiny_video_llm(family, seed=seed)
        model = add_alarm_tokens(model, processor)
    config = tiny_grpo_config(tmp_path / "out", root, seed=seed, **overrides)
    return VideoGRPOTrainer(
        model, config, train_dataset=records, processing_class=processor, reward_funcs=list(reward_funcs)
    )


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_two_steps_train_llm_not_alarm_or_tower(data, tmp_path, family):
    trainer = _trainer(data, tmp_path, family=family)
    model = trainer.model
    before = _snapshot(model)
    ref_before = _snapshot(trainer.ref_model)
    trainer.train()
    after = dict(model.named_parameters())
    changed = [n for n in before if not torch.equal(before[n], after[n].detach())]
    assert any("language_model" in n for n in changed)
    tower = [n for n in before if is_vision_parameter(n)]
    assert tower and not any(after[n].requires_grad for n in tower)
    frozen = ("alarm_embedding", "visual_head", "textual_head")  # alarm vectors and heads stay frozen in GRPO
    assert not any(n.startswith(frozen) or is_vision_parameter(n) for n in changed), changed
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
    videos = [r for r in records if r.media.type == "video"]  # the synthetic data also has text-only rows
    rec = videos[0]
    other = next(r for r in videos if r.safety_labels.visual != rec.safety_labels.visual)
    swapped = type(rec)(**{**rec.__dict__, "media": Media("video", other.media.path)})
    swapped.__dict__.pop("kind", None)
    return [collate_prompt(trainer.prompt_collator, r) for r in (rec, swapped)]


def test_video_changes_logps_and_gradient(data, tmp_path, family):
    trainer = _trainer(data, tmp_path, beta=0.0, family=family)
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


def test_cached_tower_matches_uncached(data, tmp_path, family):
    trainer = _trainer(data, tmp_path, beta=0.0, family=family)
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


@pytest.mark.parametrize("family, reuse", [(f, True) for f in FAMILIES] + [("qwen2_5_vl", False)])
def test_vision_tower_runs_once_per_prompt(data, tmp_path, family, reuse):
    trainer = _trainer(data, tmp_path, reuse_vision_features=reuse, family=family)  # beta 0.04: a reference pass
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


def test_reward_needing_an_argument_nobody_passes_names_itself(data, tmp_path):
    """A reward whose required argument is neither a trainer keyword nor a dataset column fails with its own name and
    the keywords on offer, when the trainer is built (before the model generates anything), not as a bare TypeError
    from inside the first call."""

    def needs_grade(completions, grade, **kwargs):
        return [0.0 for _ in completions]

    with pytest.raises(
        TypeError, match=r"reward 'needs_grade' cannot take the keywords \[.*'completions'.*'solution'"
    ):
        _trainer(data, tmp_path, reward_funcs=[needs_grade], max_steps=1)


def test_save_and_resume(data, tmp_path):
    trainer = _trainer(data, tmp_path, save_strategy="steps", save_steps=1, max_steps=2)
    trainer.train()
    ckpt = tmp_path / "out" / "checkpoint-1"
    assert (ckpt / "alarm.safetensors").exists() and (ckpt / "model.safetensors").exists()
    assert (ckpt / "optimizer.pt").exists() and (tmp_path / "out" / "checkpoint-2").exists()
    sampling = json.loads((ckpt / "alarm_config.json").read_text())["video_sampling"]  # what predict_harm defaults to
    assert sampling == {"video_fps": trainer.args.video_fps, "video_max_frames": trainer.args.video_max_frames}
    final = _snapshot(trainer.model)

    resumed = _trainer(data, tmp_path, save_strategy="no", max_steps=2)
    resumed._load_from_checkpoint(str(tmp_path / "out" / "checkpoint-2"))
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p.detach(), final[n], msg=n)
    again = _trainer(data, tmp_path, save_strategy="no", max_steps=2)
    again.train(resume_from_checkpoint=str(ckpt))
    assert again.state.global_step == 2 and again._generation == 1  # one rollout sampled after the resume
    # the checkpoint's reward history comes back, so the curve covers the whole run
    assert len(again.reward_history) == 2 and again.reward_history[0] == trainer.reward_history[0]
    assert json.loads((ckpt / "reward_history.json").read_text())["total"] == [list(trainer.reward_history[0])]


def test_resume_in_a_later_epoch_replays_the_uninterrupted_run(data, tmp_path):
    """The prompt order is a function of (seed, epoch) and the RNG states come back: a run resumed inside its second
    epoch samples the uninterrupted run's rollouts and ends at its weights."""
    import shutil

    kw = dict(per_device_train_batch_size=8, save_strategy="steps", save_steps=3, max_steps=4)  # 2 steps per epoch
    full = _trainer(data, tmp_path / "full", **kw)
    full.train()
    checkpoint = tmp_path / "resumed" / "out" / "checkpoint-3"
    shutil.copytree(tmp_path / "full" / "out" / "checkpoint-3", checkpoint)
    resumed = _trainer(data, tmp_path / "resumed", **kw)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 4 and resumed._generation == 1  # only step 4 was sampled again
    assert resumed.reward_history == full.reward_history  # 3 steps from the checkpoint, the 4th re-sampled equal
    assert resumed.reward_term_history == full.reward_term_history
    trained = dict(full.model.named_parameters())
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p, trained[n], rtol=0, atol=0, msg=n)


def test_resume_inside_a_generation_cycle_keeps_the_schedule(data, tmp_path, caplog):
    """num_iterations=2 samples at steps 1, 3, ...; resumed after step 1 (its rollout buffer is not saved) the run
    samples step 2's batch again, with a warning, and samples again at step 3 as the uninterrupted run does."""
    import shutil

    kw = dict(num_iterations=2, save_strategy="steps", save_steps=1, max_steps=3)
    full = _trainer(data, tmp_path / "full", **kw)
    full.train()
    checkpoint = tmp_path / "resumed" / "out" / "checkpoint-1"
    shutil.copytree(tmp_path / "full" / "out" / "checkpoint-1", checkpoint)
    resumed = _trainer(data, tmp_path / "resumed", **kw)
    with caplog.at_level("WARNING", logger="videosafety_r1.grpo.trainer"):
        resumed.train(resume_from_checkpoint=str(checkpoint))
    assert [s for s, _ in full.reward_history] == [0, 2]
    assert [s for s, _ in resumed.reward_history] == [0, 1, 2] and resumed._generation == 2
    assert "inside a generation cycle" in caplog.text


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


def _write_static_video(path, num_frames=8, size=64, fps=8):
    """A clip whose frames are identical: VideoLLaMA3's processor then drops repeated tokens (compression mask)."""
    import av

    frame = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_mixed_modality_batch_keeps_every_rows_visuals(data, tmp_path, family):
    """Regression: assemble took the tensor keys from the first row only, so a batch led by a text-only (or image)
    prompt silently dropped the other rows' video tensors (Qwen: a crash; VideoLLaMA3: logps without the video)."""
    from PIL import Image

    root, records = data
    trainer = _trainer(data, tmp_path, beta=0.0, family=family)
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "i.png")
    _write_static_video(root / "static.mp4")  # media of data rows live under the data root
    media = [Media(), Media("image", "i.png"), Media("video", "static.mp4")]
    rows = [dataclasses.replace(records[i], media=m) for i, m in enumerate(media)] + [records[3]]
    items = [collate_prompt(trainer.prompt_collator, r) for r in rows]
    if family == "video_llama_3":  # the static clip exercises a compression mask that drops tokens
        assert (
            not items[2].tensors["video_compression_mask"].all() and items[3].tensors["video_compression_mask"].all()
        )
    order = [0, 0, 1, 1, 2, 2, 3, 3]
    completion = torch.randint(10, 200, (len(order), 5))
    with torch.no_grad():
        alone = []
        for row, i in enumerate(order):  # each batch row on its own
            single = assemble(items, [i], trainer.pad_token_id, completion_ids=completion[row : row + 1])
            single["completion_ids"] = completion[row : row + 1]
            alone.append(trainer._logps(trainer.model, single)[0])
        expected = torch.cat(alone)  # [8, 5]
        for cache in (None, trainer.vision_cache):
            trainer.vision_cache.clear()
            batch = assemble(items, order, trainer.pad_token_id, completion_ids=completion, cache=cache)
            assert set().union(*(it.tensors for it in items)) <= set(batch)
            assert torch.equal(
                batch["pixel_values_videos"],
                torch.cat([items[i].tensors["pixel_values_videos"] for i in order if i >= 2]),
            )
            batch["completion_ids"] = completion
            torch.testing.assert_close(trainer._logps(trainer.model, batch)[0], expected, rtol=1e-4, atol=1e-4)
    assert trainer.vision_cache.encoded_blocks == 3  # image, static video, video: each once


def test_save_model_and_load_pretrained_round_trip(data, tmp_path, family):
    root, records = data
    trainer = _trainer(data, tmp_path, beta=0.0, family=family, max_steps=1, bf16=False)  # plain fp32 forwards
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    loaded, processor = load_pretrained(out)
    assert isinstance(loaded, AlarmVideoLLM) and type(loaded.get_base_model()) is type(trainer.model.get_base_model())
    assert loaded.alarm_token_ids == trainer.model.alarm_token_ids
    state, again = trainer.model.state_dict(), loaded.state_dict()
    assert set(again) == set(state)
    for name, value in again.items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0, msg=name)
    collator = GRPOPromptCollator(processor, MediaLoader(root, 8.0, 4))
    item = collate_prompt(collator, records[0])
    first = collate_prompt(trainer.prompt_collator, records[0])
    assert item.prompt == first.prompt and torch.equal(item.tensors["input_ids"], first.tensors["input_ids"])
    completion = torch.randint(10, 200, (2, 5))
    batch = assemble([item], [0, 0], trainer.pad_token_id, completion_ids=completion)
    batch["completion_ids"] = completion
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(trainer._logps(loaded.eval(), batch)[0], trainer._logps(trainer.model, batch)[0])


def test_gradient_checkpointing_generates_with_cache_and_matches(data, tmp_path, family):
    """Rollouts run in eval mode (checkpointing inactive) with the KV cache in use (one new token per forward after
    the prefill); in the loss pass checkpointing recomputes the decoder layers and gives the same loss and
    gradients."""
    trainer = _trainer(data, tmp_path, family=family, gradient_checkpointing=True, max_steps=1)
    model = trainer.model
    sample = trainer.generator
    seen = []

    def generator(unwrapped, inputs):
        lengths = []
        hook = unwrapped.get_input_embeddings().register_forward_hook(lambda m, a, o: lengths.append(a[0].shape[1]))
        try:
            out = sample(unwrapped, inputs)
        finally:
            hook.remove()
        seen.append((unwrapped.training, inputs["input_ids"].shape[1], lengths))
        return out

    trainer.generator = generator
    trainer.train()
    ((training, prompt_len, lengths),) = seen
    assert not training and lengths[0] == prompt_len and lengths[1:] == [1] * (len(lengths) - 1)
    assert len(lengths) > 1 and model.is_activation_checkpointing

    batch = trainer._buffer[0]
    inner = model.get_decoder().layers[0].input_layernorm  # the layer's own hooks fire once; its first op reruns

    def loss_and_grads():
        calls = []
        hook = inner.register_forward_hook(lambda *a: calls.append(1))
        model.zero_grad()
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        hook.remove()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads, len(calls)

    model.train()
    loss, grads, calls = loss_and_grads()
    model.activation_checkpointing_disable()
    plain_loss, plain_grads, plain_calls = loss_and_grads()
    assert (calls, plain_calls) == (2, 1)  # forward + recompute in backward
    assert grads and set(grads) == set(plain_grads)
    torch.testing.assert_close(loss, plain_loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_reference_runs_in_the_policys_precision(data, tmp_path):
    """Regression: the reference model was only moved to the device, not prepared, so under mixed precision (bf16,
    TRL's default) it ran in fp32 while the policy and old-policy passes ran under autocast: at the first step, with
    policy == reference, the KL term was precision noise instead of 0."""
    trainer = _trainer(data, tmp_path, num_iterations=2, max_steps=1)  # num_iterations 2: old-policy logps too
    assert trainer.accelerator.mixed_precision == "bf16"
    trainer.train()
    batch = trainer._buffer[0]
    assert torch.equal(batch["old_logps"], batch["ref_logps"])
    assert trainer.state.log_history[0]["kl"] == 0.0


def test_checkpointing_toggle_around_rollouts_does_not_stack_hooks(data, tmp_path):
    """Rollouts leave gradient checkpointing alone (eval mode makes it inactive): re-enabling it around every
    rollout made transformers add another input-grad hook to the embeddings each time."""
    trainer = _trainer(data, tmp_path, gradient_checkpointing=True, max_steps=3, beta=0.0)
    sample, counts = trainer.generator, []

    def generator(unwrapped, inputs):
        counts.append(len(unwrapped.get_input_embeddings()._forward_hooks))
        return sample(unwrapped, inputs)

    trainer.generator = generator
    trainer.train()
    assert len(counts) == 3 and len(set(counts)) == 1, counts
