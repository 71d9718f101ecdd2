"""Importers: published SFT / GRPO, VLGuard, Video-SafetyBench, canonical round trip, legacy-label converter."""

import pytest

from videosafety_r1.data import (
    CANONICAL_CONVENTION,
    EvalRecord,
    GRPORecord,
    LabelConventionError,
    Media,
    SafetyLabels,
    SFTRecord,
    convert_legacy_labels,
    detect_format,
    mark_legacy,
    parse_row,
    strip_legacy_markers,
)

PUBLISHED_SFT = {
    "video": ["clips/a.mp4"],
    "conversations": [
        {"from": "human", "value": "<video>$v\nHow do I build this?$t"},
        {"from": "gpt", "value": "I can't help with that."},
    ],
    "safety_labels": [1, 1],
}
PUBLISHED_GRPO = {
    "problem_id": 7,
    "data_type": "video",
    "path": "clips/b.mp4",
    "problem": "Is this safe?",
    "problem_type": "free-form-and-choice",
    "solution": "<answer>No.</answer><vidType>1</vidType><textType>0</textType>",
}


def parse(row, fmt=None):
    issues = []
    records = parse_row(row, fmt or detect_format(row), "f-1", issues)
    return records, issues


@pytest.mark.parametrize(
    ("row", "fmt"),
    [
        (PUBLISHED_SFT, "published-sft"),
        (PUBLISHED_GRPO, "published-grpo"),
        ({"image": "x.png", "safe": True, "instr-resp": []}, "vlguard"),
        ({"video_path": "v.mp4", "query": "q", "category": "c"}, "video-safetybench"),
        ({"conversation": [], "media": None}, "canonical-sft"),
        ({"problem": "p", "media": None}, "canonical-grpo"),
        ({"query": "q", "split": "HH", "labels": [1, 1]}, "canonical-eval"),
        ({"foo": 1}, None),
    ],
)
def test_detect_format(row, fmt):
    assert detect_format(row) == fmt


def test_published_sft_strips_placeholders_and_legacy_markers():
    (record,), issues = parse(PUBLISHED_SFT)
    assert issues == []
    assert isinstance(record, SFTRecord)
    assert record.media == Media("video", "clips/a.mp4")
    assert record.query == "How do I build this?"
    assert record.conversation[1].role == "assistant"
    assert record.safety_labels == SafetyLabels(1, 1)
    assert record.label_convention == CANONICAL_CONVENTION  # published data is already 0 = safe: nothing converted


@pytest.mark.parametrize("labels", [[0, 1], {"visual": 0, "textual": 1}])
def test_published_sft_label_forms(labels):
    (record,), issues = parse({**PUBLISHED_SFT, "safety_labels": labels, "image": "a.png", "video": None})
    assert not issues and record.safety_labels == SafetyLabels(0, 1) and record.media == Media("image", "a.png")


def test_strip_legacy_markers_keeps_dollar_words():
    assert strip_legacy_markers("<video>\nPrice in $value?$v$t") == "Price in $value?"


def test_published_grpo():
    (record,), issues = parse(PUBLISHED_GRPO)
    assert not issues and isinstance(record, GRPORecord)
    assert record.id == "7" and record.media == Media("video", "clips/b.mp4")
    assert record.problem_type == "free-form-and-choice" and record.options is None


def test_vlguard_expands_pairs():
    row = {
        "id": "g1",
        "image": "bad/1.png",
        "safe": True,
        "harmful_category": "privacy",
        "instr-resp": [
            {"safe_instruction": "What is this?", "response": "A cat."},
            {"unsafe_instruction": "Find this person's address.", "response": "I can't."},
        ],
    }
    records, issues = parse(row)
    assert not issues
    assert [r.safety_labels for r in records] == [SafetyLabels(0, 0), SafetyLabels(0, 1)]
    unsafe, _ = parse({**row, "safe": False, "instr-resp": [{"instruction": "Describe.", "response": "No."}]})
    assert unsafe[0].safety_labels == SafetyLabels(1, 0) and unsafe[0].media.type == "image"


def test_video_safetybench():
    (record,), issues = parse({"video_path": "v/1.mp4", "question": "How to do X?", "category": "crime"})
    assert not issues and isinstance(record, EvalRecord)
    assert record.split == "HH" and record.labels == SafetyLabels(1, 1) and record.category == "crime"
    (benign,), _ = parse({"video_path": "v/1.mp4", "query": "What?", "query_type": "benign"})
    assert benign.split == "SafeQ" and benign.labels.textual == 0


def test_canonical_round_trip():
    (record,), _ = parse(PUBLISHED_SFT)
    (again,), issues = parse(record.to_dict())
    assert not issues and again == record


def test_legacy_converter_flips_once():
    (record,), _ = parse(
        {
            **PUBLISHED_SFT,
            "conversations": [
                {"from": "human", "value": "q"},
                {
                    "from": "gpt",
                    "value": "<think>t</think><answer>a</answer><vidType>1</vidType><textType>0</textType>",
                },
            ],
            "safety_labels": [1, 0],
        }
    )
    with pytest.raises(LabelConventionError):
        convert_legacy_labels(record)  # already canonical: converting would invert it
    converted = convert_legacy_labels(mark_legacy(record))
    assert converted.safety_labels == SafetyLabels(0, 1)
    assert converted.conversation[1].content.endswith("<vidType>0</vidType><textType>1</textType>")
    with pytest.raises(LabelConventionError):
        convert_legacy_labels(converted)
    (grpo,), _ = parse(PUBLISHED_GRPO)
    assert convert_legacy_labels(mark_legacy(grpo)).solution.endswith("<vidType>0</vidType><textType>1</textType>")
