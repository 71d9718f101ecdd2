"""Validation: one case table with every error kind (file, line, field in the message), and on_bad_row."""

import json

import av
import pytest

from videosafety_r1.data import DataValidationError, SFTRecord, load_dataset_checked, validate_file
from videosafety_r1.data.synthetic import write_synthetic_video

COT = "<think>t</think><answer>a</answer><vidType>{v}</vidType><textType>{t}</textType>"


def sft(user="What is this?", answer="A clip.", labels=(0, 0), **extra):
    row = {
        "video": ["good.mp4"],
        "conversations": [{"from": "human", "value": f"<video>\n{user}"}, {"from": "gpt", "value": answer}],
        "safety_labels": list(labels),
    }
    row.update(extra)
    return json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False)


def grpo(problem_type="free-form-and-choice", solution=None, **extra):
    solution = solution if solution is not None else "<answer>a</answer><vidType>1</vidType><textType>1</textType>"
    row = {
        "problem_id": 1,
        "data_type": "video",
        "path": "good.mp4",
        "problem": "Why?",
        "problem_type": problem_type,
        "solution": solution,
    }
    row.update(extra)
    return json.dumps({k: v for k, v in row.items() if v is not None})


def canonical_eval(split="HH", labels=None, query="q"):
    labels = labels or {"visual": 1, "textual": 1}
    return json.dumps(
        {"id": "e", "split": split, "query": query, "labels": labels, "media": {"type": "video", "path": "good.mp4"}}
    )


# (file, row text, expected field, expected kind); the first row of each file is clean and sets its format.
CASES = [
    ("sft", sft(), None, None),
    ("sft", '{"video": ["good.mp4"], "conversations": [', "<json>", "malformed_json"),
    ("sft", "[1, 2]", "<json>", "not_an_object"),
    ("sft", sft().replace("{", '{"safety_labels": [1, 1], ', 1), "safety_labels", "duplicate_key"),  # last won
    ("sft", sft(safety_labels=None).replace(', "safety_labels": [0, 0]', ""), "safety_labels", "missing_labels"),
    ("sft", sft(labels=(0, 2)), "safety_labels.textual", "invalid_labels"),
    ("sft", sft(answer=COT.format(v=0, t=1), labels=(1, 1)), "conversation[1].content", "contradictory_labels"),
    ("sft", sft(labels=(1, 0), video=[]), "video", "invalid_field"),
    (
        "sft",
        sft(video=None).replace('"video": ["good.mp4"], ', "").replace("[0, 0]", "[1, 0]"),
        "safety_labels.visual",
        "contradictory_labels",
    ),
    ("sft", sft(video=["missing.mp4"]), "media.path", "media_missing"),
    ("sft", sft(video=["corrupt.mp4"]), "media.path", "video_undecodable"),
    ("sft", sft(video=["empty.mp4"]), "media.path", "video_empty"),
    ("sft", sft(video=["../outside.mp4"]), "media.path", "path_escape"),
    ("sft", sft(video=None, image="bad.png"), "media.path", "image_undecodable"),
    ("sft", sft(answer="<think>x</think><answer>y</answer>"), "conversation[1].content", "cot_tags_missing"),
    ("sft", sft(user="hi <|visual_alarm|>"), "conversation[0].content", "alarm_literal"),
    ("sft", sft(answer="<answer><|textual_alarm|></answer>"), "conversation[1].content", "alarm_literal"),
    (
        "sft",
        json.dumps(
            {"video": ["good.mp4"], "conversations": [{"from": "human", "value": "q"}], "safety_labels": [0, 0]}
        ),
        "conversation",
        "invalid_conversation",
    ),
    (
        "sft",
        json.dumps(
            {
                "video": ["good.mp4"],
                "conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}],
                "safety_labels": [0, 0],
            }
        ),
        "conversation",
        "invalid_conversation",
    ),
    ("sft", sft(answer="  "), "conversation[1].content", "empty_reply"),
    ("grpo", grpo(), None, None),
    ("grpo", grpo(problem_type="essay"), "problem_type", "unknown_problem_type"),
    ("grpo", grpo(solution="<answer>a</answer><vidType>1</vidType>"), "solution", "cot_tags_missing"),
    ("grpo", grpo(problem=None).replace('"problem": "Why?", ', ""), "problem", "missing_field"),
    ("grpo", grpo().replace('"problem": "Why?"', '"problem": "  "'), "problem", "empty_text"),
    ("grpo", grpo(problem_type="numerical", solution="<answer>abc</answer>"), "solution", "invalid_solution"),
    (
        "canon",
        json.dumps(
            {
                "id": "c",
                "media": None,
                "conversation": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "safety_labels": {"visual": 0, "textual": 0},
            }
        ),
        None,
        None,
    ),
    (
        "canon",
        json.dumps(
            {
                "id": "c",
                "media": None,
                "conversation": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "safety_labels": {"visual": 0, "textual": 0},
                "label_convention": "safe=1",
            }
        ),
        "label_convention",
        "label_convention",
    ),
    (
        "canon",
        json.dumps({"id": "c", "media": None, "conversation": [], "safety_labels": {"visual": 0, "textual": 0}}),
        "conversation",
        "invalid_conversation",
    ),
    (
        "cgrpo",
        json.dumps(
            {
                "id": "g",
                "media": None,
                "problem": "p",
                "problem_type": "free-form-and-choice",
                "solution": "<answer>a</answer><vidType>0</vidType><textType>1</textType>",
            }
        ),
        None,
        None,
    ),
    (
        "cgrpo",
        json.dumps(
            {
                "id": "g",
                "media": None,
                "problem": "p",
                "problem_type": "free-form-and-choice",
                "solution": "<answer>a</answer><vidType>0</vidType><textType>1</textType>",
                "safety_labels": {"visual": 0, "textual": 0},
            }
        ),
        "solution",
        "contradictory_labels",
    ),
    ("eval", canonical_eval(), None, None),
    ("eval", canonical_eval(split="XX"), "split", "invalid_split"),
    ("eval", canonical_eval(query=""), "query", "empty_text"),
    ("eval", canonical_eval(split="SH"), "labels", "contradictory_labels"),
    ("unknown", json.dumps({"foo": 1}), "<row>", "unknown_format"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "root"
    root.mkdir()
    write_synthetic_video(root / "good.mp4")
    write_synthetic_video(root.parent / "outside.mp4")
    (root / "corrupt.mp4").write_bytes(b"\x00" * 64 + b"not a video" * 20)
    with av.open(str(root / "empty.mp4"), "w") as container:  # a container with no video frames
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 64
        container.start_encoding()
    (root / "bad.png").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def reports(root):
    out = {}
    for name in dict.fromkeys(c[0] for c in CASES):
        path = root / f"{name}.jsonl"
        path.write_text("".join(text + "\n" for file, text, *_ in CASES if file == name), encoding="utf-8")
        out[name] = (path, validate_file(path, root)[1])
    return out


@pytest.mark.parametrize(("file", "text", "field", "kind"), CASES, ids=[c[3] or f"clean-{c[0]}" for c in CASES])
def test_every_error_kind_is_located(reports, file, text, field, kind):
    path, report = reports[file]
    line = [c[1] for c in CASES if c[0] == file].index(text) + 1
    found = [p for p in report.problems if p.line == line]
    if kind is None:
        assert found == []
        return
    assert (field, kind) in {(p.field, p.kind) for p in found}, [str(p) for p in found]
    problem = next(p for p in found if p.kind == kind and p.field == field)
    assert str(problem).startswith(f"{path}:{line}: {field}: ")


def test_all_problems_reported_at_once(reports):
    _, report = reports["sft"]
    bad_lines = {p.line for p in report.problems}
    assert bad_lines == set(range(2, sum(c[0] == "sft" for c in CASES) + 1))
    assert report.rows == sum(c[0] == "sft" for c in CASES) and report.records == 1


def test_on_bad_row_error_and_skip(reports, root):
    path, report = reports["sft"]
    with pytest.raises(DataValidationError) as err:
        load_dataset_checked(path, root, on_bad_row="error")
    assert len(err.value.report.problems) == len(report.problems) and f"{path}:2:" in str(err.value)
    records, skipped = load_dataset_checked(path, root, on_bad_row="skip")
    assert len(records) == 1 and isinstance(records[0], SFTRecord)
    assert skipped.skipped == report.rows - 1 and skipped.skipped_lines[0] == (str(path), 2)
    with pytest.raises(ValueError, match="on_bad_row"):
        load_dataset_checked(path, root, on_bad_row="replace")


def test_kind_cot_requires_cot_targets(reports, root):
    path, _ = reports["canon"]
    _, report = validate_file(path, root, kind="cot")
    assert any(p.line == 1 and p.kind == "cot_tags_missing" for p in report.problems)
    _, report = validate_file(path, root, kind="grpo")
    assert any(p.line == 1 and p.kind == "wrong_kind" for p in report.problems)


def test_a_field_already_reported_causes_no_follow_on_contradiction(tmp_path):
    """A bad label or media field is parsed to a stand-in value; comparing that with the split or the labels would
    report a contradiction the file does not have."""
    rows = [
        {"id": "a", "split": "SH", "query": "q", "media": None, "labels": {"visual": 0, "textual": "x"}},
        {"id": "b", "split": "SafeQ", "query": "q", "media": {"type": "vid", "path": "x.mp4"}, "labels": {}},
        {"id": "c", "split": "SH", "query": "q", "media": None, "labels": {"visual": 0, "textual": 0}},
    ]
    rows[1]["labels"] = {"visual": 1, "textual": 0}
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps({**r, "reference": "r"}) + "\n" for r in rows))
    _, report = validate_file(path, tmp_path, kind="eval")
    kinds = {(p.line, p.kind) for p in report.problems}
    assert kinds == {(1, "invalid_labels"), (2, "invalid_field"), (3, "contradictory_labels")}, kinds


def test_a_misspelt_key_is_reported_and_other_extra_keys_pass(tmp_path):
    row = {"id": "a", "split": "SafeQ", "query": "q", "media": None, "labels": {"visual": 0, "textual": 0}}
    rows = [
        {**row, "catgory": "fraud"},  # its value would be lost: category reads as unset
        {**row, "id": "b", "source": "my-crawl", "reference": "r", "reference_keyword": "green"},  # metadata
        # metadata close to a key the row has, or a key of another canonical format: not typos
        {**row, "id": "c", "uid": "7", "category_id": 3, "query_id": "q7", "sub_category": "x", "language_code": "en"},
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, report = validate_file(path, tmp_path, kind="eval")
    assert [str(p) for p in report.problems] == [
        f"{path}:1: catgory: unknown key 'catgory': did you mean 'category'? (its value would be ignored) "
        "[misspelt_field]"
    ]
