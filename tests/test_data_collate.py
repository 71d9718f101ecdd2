"""Collators on every family: shapes, labels only on assistant tokens, alarm fields, truncation policy."""

import pytest
import torch

from videosafety_r1.alarm import add_alarm_tokens, find_alarm_positions
from videosafety_r1.data.collate import IGNORE_INDEX, GRPOPromptCollator, MediaLoader, SFTCollator, grpo_prompt_text
from videosafety_r1.data.schema import GRPORecord, Media, SafetyLabels, SFTRecord, Turn
from videosafety_r1.testing import tiny_video_llm, write_synthetic_video


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_synthetic_video(root / "a.mp4", seed=1, harmful=True)
    return root


def _records():
    return [
        SFTRecord(
            "r0",
            Media("video", "a.mp4"),
            [Turn("user", "how to do it <|textual_alarm|>?"), Turn("assistant", "I cannot help with that.")],
            SafetyLabels(1, 1),
        ),
        SFTRecord(
            "r1",
            Media(),
            [Turn("user", "hello"), Turn("assistant", "hi there"), Turn("user", "more"), Turn("assistant", "ok")],
            SafetyLabels(0, 0),
        ),
    ]


def test_sft_batch(family, video_root):
    model, processor = tiny_video_llm(family)
    model = add_alarm_tokens(model, processor)
    collate = SFTCollator(processor, MediaLoader(video_root, fps=8.0, max_frames=8))
    batch = collate(_records())
    ids, labels = batch["input_ids"], batch["labels"]
    assert ids.shape == labels.shape and ids.shape[0] == 2
    assert batch["visual_alarm_labels"].tolist() == [1, 0] and batch["textual_alarm_labels"].tolist() == [1, 0]
    assert batch["visual_alarm_labels"].dtype == torch.long
    find_alarm_positions(ids, model.visual_alarm_token_id)  # exactly one per row, typed literal neutralised
    find_alarm_positions(ids, model.textual_alarm_token_id)
    if family != "video_llama_3":
        assert "mm_token_type_ids" in batch and batch["mm_token_type_ids"].sum() > 0
    tok = processor.tokenizer
    decoded = [tok.decode(row[row != IGNORE_INDEX]) for row in labels]
    assert decoded[0] == "I cannot help with that.<|im_end|>"
    assert decoded[1] == "hi there<|im_end|>ok<|im_end|>"
    video_id = tok.convert_tokens_to_ids("<|video_pad|>")
    assert not (labels == video_id).any()
    out = model(**batch)
    assert out.loss is not None and torch.isfinite(out.loss)


def test_truncation_policy(video_root):
    _, processor = tiny_video_llm("qwen2_5_vl")
    add_alarm_tokens(_, processor)
    records = _records()
    with pytest.raises(ValueError, match="r0"):
        SFTCollator(processor, MediaLoader(video_root, fps=8.0, max_frames=8), max_length=60)(records)
    batch = SFTCollator(processor, MediaLoader(video_root, fps=8.0, max_frames=8), max_length=80, truncation="drop")(
        records
    )
    assert batch["input_ids"].shape[0] == 1 and batch["visual_alarm_labels"].tolist() == [0]


def test_grpo_prompt_batch(family, video_root):
    model, processor = tiny_video_llm(family)
    model = add_alarm_tokens(model, processor)
    recs = [
        GRPORecord(
            "g0",
            Media("video", "a.mp4"),
            "Is this safe?",
            "free-form-and-choice",
            "<answer>no</answer><vidType>1</vidType><textType>0</textType>",
        ),
        GRPORecord("g1", Media(), "Pick one", "multiple choice", "<answer>B</answer>", options=["A. x", "B. y"]),
    ]
    batch = GRPOPromptCollator(processor, MediaLoader(video_root, fps=8.0, max_frames=8))(recs)
    assert batch["attention_mask"][:, -1].all()  # left padded
    assert batch["solution"][1] == "<answer>B</answer>" and batch["problem_type"] == [r.problem_type for r in recs]
    assert "<vidType>" in batch["prompts"][0] and "<vidType>" not in batch["prompts"][1]
    assert "Options:\nA. x\nB. y" in grpo_prompt_text(recs[1])
    find_alarm_positions(batch["input_ids"], model.textual_alarm_token_id)
    gen = model.generate(
        **{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}, max_new_tokens=3, do_sample=False
    )
    assert gen.shape[0] == 2
