"""The plain export, served unchanged by `vllm.LLM(EXPORT)`: loads, places the alarm ids, never samples them."""

import pytest

pytestmark = pytest.mark.vllm


def test_vllm_serves_the_export_and_never_samples_alarm_or_placeholder_ids(tmp_path, make_blocked_logits_large):
    import torch
    from vllm import LLM, SamplingParams

    from videosafety_r1.alarm import add_alarm_tokens, export_plain_checkpoint, load_pretrained
    from videosafety_r1.testing import random_frames, tiny_video_llm

    model, processor = tiny_video_llm("qwen2_5_vl", 0, head_dim=64)
    model = add_alarm_tokens(model, processor)
    blocked = make_blocked_logits_large(model)
    export = export_plain_checkpoint(model, processor, tmp_path / "export")
    assert [p.name for p in export.glob("*.safetensors")] == ["model.safetensors"]

    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what happens here"}]}],
        add_generation_prompt=True,
    )
    # the alarm logits are large on purpose: unblocked sampling picks blocked ids nearly always
    plain, plain_proc = load_pretrained(export)
    enc = plain_proc.tokenizer(
        plain_proc.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": "what happens here"}]}], add_generation_prompt=True
        ),
        return_tensors="pt",
    )
    out = plain.get_base_model()(**enc).logits[0, -1]  # [V]
    assert out.argmax().item() in blocked and torch.softmax(out, -1)[blocked].sum() > 0.5

    llm = LLM(str(export), dtype="float32", max_model_len=512, seed=0, limit_mm_per_prompt={"video": 1})
    frames = random_frames(4, seed=1)
    meta = {
        "fps": 8.0,
        "frames_indices": [0, 1, 2, 3],
        "total_num_frames": 4,
        "duration": 0.5,
        "do_sample_frames": False,
    }
    exported_text = plain_proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "what happens here"}]}],
        add_generation_prompt=True,
    )  # the exported template inserts the alarm tokens itself
    params = SamplingParams(n=16, max_tokens=32, temperature=1.5, seed=0, ignore_eos=True)
    outputs = llm.generate({"prompt": exported_text, "multi_modal_data": {"video": (frames, meta)}}, params)
    prompt_ids = outputs[0].prompt_token_ids
    assert all(prompt_ids.count(i) == 1 for i in model.alarm_token_ids)
    sampled = [t for c in outputs[0].outputs for t in c.token_ids]
    assert len(sampled) == 16 * 32
    assert not set(sampled) & set(blocked), "vLLM sampled an alarm or placeholder id"
    del llm, text
