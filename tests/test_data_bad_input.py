"""Hostile data: every bad input is a located problem (file:line:field), never a traceback and never a silent change.

Issue #12 items 1, 5 and 9, and the CoT rule of issue #11: each case gives the exact field and kind it must report.
"""

import itertools
import json
import re
from pathlib import Path

import pytest

from videosafety_r1.cli import main
from videosafety_r1.data import DataValidationError, load_dataset_checked, validate_file
from videosafety_r1.data.importers import FORMATS, detect_format, parse_row

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"
LABELS = {"visual": 0, "textual": 1}
TURNS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def canon_sft(**changes):
    row = {"id": "s", "media": None, "conversation": TURNS, "safety_labels": LABELS}
    row.update(changes)
    return {k: v for k, v in row.items() if v != "<drop>"}


def canon_eval(**changes):
    row = {"id": "e", "split": "SH", "query": "q", "media": None, "labels": {"visual": 0, "textual": 1}}
    row.update(changes)
    return {k: v for k, v in row.items() if v != "<drop>"}


def vlguard(**changes):
    row = {"id": "v", "image": "a.png", "safe": True, "instr-resp": [{"safe_instruction": "q", "response": "a"}]}
    row.update(changes)
    return row


def check(tmp_path, rows, name="data.jsonl", **kwargs):
    path = tmp_path / name
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path, validate_file(path, tmp_path, check_videos=False, **kwargs)[1]


def located(report):
    return {(p.line, p.field, p.kind) for p in report.problems}


# (rows of one file, (line, field, kind) that must be reported); every other row of the file is clean
WRONG_TYPES = [
    ([canon_sft(media={"type": "video", "path": 123})], (1, "media.path", "invalid_field")),
    ([canon_sft(media="clip.mp4")], (1, "media", "invalid_field")),
    ([canon_sft(media={"type": "movie", "path": "a.mp4"})], (1, "media.type", "invalid_field")),
    ([canon_sft(conversation=5)], (1, "conversation", "invalid_conversation")),
    ([canon_sft(conversation=[5])], (1, "conversation[0]", "invalid_conversation")),
    ([canon_sft(category=["a", "b"])], (1, "category", "invalid_field")),
    ([canon_sft(language=1)], (1, "language", "invalid_field")),
    ([canon_sft(problem_type=3)], (1, "problem_type", "invalid_field")),
    ([canon_sft(problem_type="essay")], (1, "problem_type", "unknown_problem_type")),
    ([canon_sft(conversation=[{"role": "human", "content": "q"}])], (1, "conversation[0]", "invalid_conversation")),
    ([canon_sft(label_convention=1)], (1, "label_convention", "invalid_field")),
    ([canon_sft(label_convention="safe=0")], (1, "label_convention", "invalid_field")),
    ([canon_eval(), canon_eval(id="e2", category=["a", "b"])], (2, "category", "invalid_field")),
    ([canon_eval(query=7)], (1, "query", "invalid_field")),
    (
        [
            {
                "id": "g",
                "media": None,
                "problem": "p",
                "problem_type": "OCR",
                "solution": "<answer>a</answer>",
                "safety_labels": 0,
            }
        ],
        (1, "safety_labels", "invalid_labels"),
    ),  # fmt: skip
    (
        [vlguard(), vlguard(id="v2", **{"instr-resp": [{"instruction": 1, "response": "a"}]})],
        (2, "instr-resp[0].instruction", "invalid_field"),
    ),
    ([vlguard(**{"instr-resp": [7]})], (1, "instr-resp[0]", "invalid_conversation")),
    ([vlguard(**{"instr-resp": "q"})], (1, "instr-resp", "invalid_field")),
    ([vlguard(image=["a.png"])], (1, "image", "invalid_field")),
    ([vlguard(harmful_category=2)], (1, "harmful_category", "invalid_field")),
    (
        [{"problem_id": 1, "path": 5, "problem": "p", "problem_type": "free-form", "solution": "<answer>a</answer>"}],
        (1, "path", "invalid_field"),
    ),
    (
        [
            {
                "problem_id": 1,
                "path": None,
                "problem": "p",
                "problem_type": "OCR",
                "solution": "<answer>a</answer>",
                "options": "A",
            }
        ],
        (1, "options", "invalid_field"),
    ),
    ([{"video_path": 3, "query": "q"}], (1, "video_path", "invalid_field")),
    (
        [{"conversations": [{"from": "human", "value": 1}], "safety_labels": [0, 0]}],
        (1, "conversations[0]", "invalid_conversation"),
    ),
]


@pytest.mark.parametrize(
    ("rows", "expected"), WRONG_TYPES, ids=[f"{e[1]}-{i}" for i, (_, e) in enumerate(WRONG_TYPES)]
)
def test_wrong_json_types_are_located(tmp_path, rows, expected):
    path, report = check(tmp_path, rows)
    assert expected in located(report), report.summary()
    problem = next(p for p in report.problems if (p.line, p.field, p.kind) == expected)
    assert str(problem).startswith(f"{path}:{expected[0]}: {expected[1]}: ")


# Every field of every format, replaced by every JSON type: a problem or a clean row, never a traceback or a
# catch-all "unreadable_row".
TEMPLATES = {
    "canonical-sft": canon_sft(category="c", sub_category="s", language="en", split="train", problem_type="OCR"),
    "canonical-grpo": {
        "id": "g",
        "media": None,
        "problem": "p",
        "problem_type": "free-form-and-choice",
        "solution": "<answer>a</answer><vidType>0</vidType><textType>1</textType>",
        "options": ["A"],
        "safety_labels": LABELS,
        "category": "c",
        "language": "en",
    },
    "canonical-eval": canon_eval(category="c", language="en"),
    "published-sft": {
        "id": "p",
        "video": ["a.mp4"],
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        "safety_labels": [0, 1],
        "category": "c",
    },
    "published-grpo": {
        "problem_id": 1,
        "data_type": "video",
        "path": "a.mp4",
        "problem": "p",
        "problem_type": "multiple choice",
        "solution": "<answer>A</answer>",
        "options": ["A. x", "B. y"],
    },
    "vlguard": vlguard(harmful_category="c", harmful_subcategory="s"),
    "video-safetybench": {"id": "b", "video_path": "a.mp4", "query": "q", "category": "c", "query_type": "harmful"},
}
VALUES = [None, True, 0, 2.5, "x", "", [], [1], {}, {"a": 1}, "\ud800"]


@pytest.mark.parametrize("fmt", sorted(TEMPLATES))
def test_no_field_value_raises(tmp_path, fmt):
    template = TEMPLATES[fmt]
    for name in ("a.mp4", "a.png"):
        (tmp_path / name).touch()
    rows = [template]
    for key, value in itertools.product(template, VALUES):
        rows.append({**template, key: value})
        if isinstance(template[key], (dict, list)) and template[key]:
            inner = template[key]
            first = next(iter(inner)) if isinstance(inner, dict) else 0
            nested = dict(inner) if isinstance(inner, dict) else list(inner)
            nested[first] = value
            rows.append({**template, key: nested})
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _, report = validate_file(path, tmp_path, fmt=fmt, check_videos=False)
    assert not [p for p in report.problems if p.line == 1], report.summary()  # the template itself is clean
    assert not [p for p in report.problems if p.kind == "unreadable_row"], report.summary()
    assert str(report.summary())  # every message is printable


def test_unicode_errors_are_located(tmp_path):
    path = tmp_path / "u.jsonl"
    good = json.dumps(canon_sft(id="a")).encode()
    bad_bytes = json.dumps(canon_sft(id="b", category="XX")).encode().replace(b"XX", b"\xff\xfe")
    surrogate = json.dumps(canon_sft(id="c", conversation=[{"role": "user", "content": "\ud800 q"}, TURNS[1]]))
    path.write_bytes(b"\n".join([good, bad_bytes, surrogate.encode()]) + b"\n")
    _, report = validate_file(path, tmp_path, check_videos=False)
    assert located(report) == {(2, "<line>", "invalid_utf8"), (3, "conversation[0].content", "invalid_unicode")}
    assert report.records == 1
    assert "\\ud800" in report.summary()


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_is_an_error(tmp_path, text):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    _, report = validate_file(path, tmp_path)
    assert located(report) == {(0, "<file>", "empty_file")}
    for policy in ("error", "skip"):
        with pytest.raises(DataValidationError, match="empty_file"):
            load_dataset_checked(path, tmp_path, on_bad_row=policy)


def test_skip_with_every_row_bad_says_why_it_stops(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("{not json\n[1]\n")
    with pytest.raises(DataValidationError, match=r"^on_bad_row=skip would leave none of the 2 rows: 2 data problems"):
        load_dataset_checked(path, tmp_path, on_bad_row="skip")
    with pytest.raises(DataValidationError, match=r"^2 data problems"):  # under "error" the problems are the reason
        load_dataset_checked(path, tmp_path, on_bad_row="error")


def test_ids_must_be_present_and_unique(tmp_path):
    rows = [
        canon_sft(id="a"),
        canon_sft(id="a"),
        canon_sft(id=None),
        canon_sft(id=""),
        canon_sft(id=7),
        canon_sft(id="7"),
    ]
    _, report = check(tmp_path, rows)
    assert located(report) == {
        (2, "id", "duplicate_id"),
        (3, "id", "invalid_field"),
        (4, "id", "invalid_field"),
        (6, "id", "duplicate_id"),
    }
    assert "already used on line 1" in next(str(p) for p in report.problems if p.line == 2)
    records, skipped = load_dataset_checked(tmp_path / "data.jsonl", tmp_path, on_bad_row="skip", check_videos=False)
    assert [r.id for r in records] == ["a", "7"] and skipped.skipped == 4


def test_missing_media_key_is_a_missing_field(tmp_path):
    rows = [canon_sft(id="a", media="<drop>"), canon_sft(id="b", media=None)]
    _, report = check(tmp_path, rows)
    assert located(report) == {(1, "media", "missing_field")}
    _, report = check(tmp_path, [canon_eval(media="<drop>"), canon_eval(id="e2")], name="e.jsonl")
    assert located(report) == {(1, "media", "missing_field")}
    # published GRPO rows name their media in `path`: absent is missing, null is text-only
    row = {"problem_id": 1, "problem": "p", "problem_type": "OCR", "solution": "<answer>a</answer>"}
    _, report = check(tmp_path, [row, {**row, "problem_id": 2, "path": None}], name="g.jsonl")
    assert located(report) == {(1, "path", "missing_field")}


def test_json_array_file_is_accepted_with_line_numbers(tmp_path):
    path = tmp_path / "train.json"
    (tmp_path / "a.png").touch()
    rows = [vlguard(id="v1"), vlguard(id="v2", safe="yes"), vlguard(id="v3")]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    records, report = validate_file(path, tmp_path, check_videos=False)
    starts = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line == "  {"]
    assert report.rows == 3 and report.formats[str(path)] == "vlguard"
    assert located(report) == {(starts[1], "safe", "missing_labels")}
    assert [r.id for _, r in records] == ["v1-0", "v3-0"] and [line for line, _ in records] == [starts[0], starts[2]]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(rows, indent=2)[:-20], encoding="utf-8")
    _, report = validate_file(broken, tmp_path, check_videos=False)
    # the rows before the break are checked; the break is reported once, not once per line
    assert [p.kind for p in report.problems] == ["missing_labels", "malformed_json"]
    assert "JSON array" in report.problems[1].message


def test_one_line_json_array_is_an_array_and_an_empty_one_is_empty(tmp_path):
    (tmp_path / "a.png").touch()
    path = tmp_path / "one.json"
    path.write_text(json.dumps([vlguard(id="v1"), vlguard(id="v2")]), encoding="utf-8")  # json.dump's one line
    records, report = validate_file(path, tmp_path, check_videos=False)
    assert not report.problems and [r.id for _, r in records] == ["v1-0", "v2-0"]
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    _, report = validate_file(tmp_path / "empty.json", tmp_path, check_videos=False)
    assert [p.kind for p in report.problems] == ["empty_file"]


@pytest.mark.parametrize(
    ("cut", "says"),
    [
        (lambda t: t[: t.rindex("]")], "no closing ]"),  # cut after the last element
        (lambda t: t[: t.rindex("}") + 1] + ",\n", "no closing ]"),  # cut after a comma
        (lambda t: t[: t.rindex("}") + 1] + ",]", "where an element should be"),  # trailing comma
        (lambda t: t + "]", "text after the closing ]"),
        (lambda t: t + " trailing", "text after the closing ]"),
        (lambda t: t.replace("},", "} ", 1), "expected ',' or ']'"),
    ],
)
def test_a_json_array_file_cut_short_or_run_on_is_refused(tmp_path, cut, says):
    """Every element may parse and the file still not be the whole array: the rows before the break are checked,
    the break itself is one malformed_json problem, and loading refuses the file."""
    (tmp_path / "a.png").touch()
    path = tmp_path / "cut.json"
    path.write_text(cut(json.dumps([vlguard(id="v1"), vlguard(id="v2")], indent=1)), encoding="utf-8")
    _, report = validate_file(path, tmp_path, check_videos=False)
    assert [p.kind for p in report.problems] == ["malformed_json"], report.problems
    assert says in report.problems[0].message
    with pytest.raises(DataValidationError, match="cannot be read to its end"):  # skip drops rows, not a file's end
        load_dataset_checked(path, tmp_path, on_bad_row="skip", check_videos=False)


@pytest.mark.parametrize(
    "text",
    [
        '[\n{"id": "v1", "meta": {"k": 1, "k": 2}, ',  # a key twice, then the file ends inside that element
        '[\n{"x": {"a": 1, "a": 2}, "b": }\n]',  # a key twice in an element that is broken as well
        '[{"a": 1, "a": 2}' + "[" * 100_000,  # a key twice, then nesting too deep for the parser
    ],
)
def test_a_broken_array_element_with_a_repeated_key_is_a_problem_not_a_traceback(tmp_path, text):
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    _, report = validate_file(path, tmp_path, check_videos=False)
    assert "malformed_json" in [p.kind for p in report.problems]


def test_a_key_twice_in_a_json_array_element_is_refused(tmp_path):
    (tmp_path / "a.png").touch()
    text = json.dumps([vlguard(id="v1"), vlguard(id="v2"), vlguard(id="v4")], indent=1)
    path = tmp_path / "dup.json"
    path.write_text(text.replace('"id": "v2"', '"id": "v2", "id": "v3"'), encoding="utf-8")
    records, report = validate_file(path, tmp_path, check_videos=False)
    assert [r.id for _, r in records] == ["v1-0", "v4-0"]  # the rows after it are still read
    assert [(p.field, p.kind) for p in report.problems] == [("id", "duplicate_key")]
    assert report.problems[0].line == text.splitlines().index(" {", 2) + 1  # where the element starts
    assert "appears twice" in report.problems[0].message


def test_jsonl_whose_first_row_is_an_array_stays_jsonl(tmp_path):
    _, report = check(tmp_path, ["[1, 2]", canon_sft(), "[" * 100_000 + "]" * 100_000])
    assert located(report) == {(1, "<json>", "not_an_object"), (3, "<json>", "malformed_json")}


@pytest.mark.parametrize(
    ("row", "field", "hint"),
    [
        ({"conversations": [{"role": "user", "content": "q"}], "safety_labels": [0, 0]}, "conversations[0]", '"from"'),
        (canon_sft(conversation=[{"from": "human", "value": "q"}]), "conversation[0]", '"role"'),
        (vlguard(**{"instr-resp": [{"question": "q", "answer": "a"}]}), "instr-resp[0]", '"response"'),
        ({"prompt": "q"}, "<row>", "conversations"),
    ],
)
def test_wrong_keys_name_the_keys_expected(tmp_path, row, field, hint):
    _, report = check(tmp_path, [row])
    problem = next(p for p in report.problems if p.field == field)
    assert hint in problem.message, problem.message


def test_legacy_labels_convert_only_legacy_or_undeclared_rows(tmp_path, capsys):
    cot = "<think>t</think><answer>a</answer><vidType>0</vidType><textType>1</textType>"  # legacy tags
    turns = [TURNS[0], {"role": "assistant", "content": cot}]
    legacy = {"visual": 0, "textual": 1}  # 1 = safe: a harmful video, a safe query
    (tmp_path / "a.mp4").touch()
    video = {"type": "video", "path": "a.mp4"}
    rows = [
        canon_sft(id="undeclared", media=video, conversation=turns, safety_labels=legacy),
        canon_sft(id="legacy", media=video, conversation=turns, safety_labels=legacy, label_convention="safe=1"),
        canon_sft(id="canonical", media=video, safety_labels=legacy, label_convention="harmful=1"),
    ]
    path, report = check(tmp_path, rows, legacy_labels=True)
    assert located(report) == {(3, "label_convention", "label_convention")}
    assert "harmful=1" in report.problems[0].message
    records, _ = validate_file(path, tmp_path, check_videos=False, legacy_labels=True)
    for _, record in records:
        assert (record.safety_labels.visual, record.safety_labels.textual) == (1, 0)
        assert record.conversation[1].content.endswith("<vidType>1</vidType><textType>0</textType>")
    assert main(["validate-data", str(path), "--no-video-check", "--legacy-labels"]) == 1
    assert f"{path}:3: label_convention:" in capsys.readouterr().out


def test_legacy_labels_refuse_make_synthetic_rows(tmp_path, capsys):
    main(["make-synthetic", str(tmp_path), "--n", "2"])
    capsys.readouterr()
    assert main(["validate-data", str(tmp_path / "sft.jsonl"), "--legacy-labels", "--no-video-check"]) == 1
    out = capsys.readouterr().out
    assert out.count("[label_convention]") == 2 and "FAILED: 2 problems" in out


@pytest.mark.parametrize(
    ("problem_type", "target", "ok"),
    [
        ("multiple choice", "<think>t</think><answer>A</answer>", True),
        ("OCR", "<think>t</think><answer>A</answer>", True),
        ("OCR", "<think>t</think><answer>A</answer><vidType>0</vidType><textType>1</textType>", False),
        ("OCR", "<answer>A</answer>", False),
        ("free-form-and-choice", "<think>t</think><answer>A</answer>", False),
        (None, "<think>t</think><answer>A</answer>", False),
        ("free-form-and-choice", "<think>t</think><answer>A</answer><vidType>0</vidType><textType>1</textType>", True),
        (None, "<think>t</think><answer>A</answer><vidType>0</vidType><textType>1</textType>", True),
    ],
)
def test_cot_rows_follow_the_format_rewards_per_row_rule(tmp_path, problem_type, target, ok):
    row = canon_sft(conversation=[TURNS[0], {"role": "assistant", "content": target}], problem_type=problem_type)
    row = {k: v for k, v in row.items() if v is not None or k == "media"}
    path, report = check(tmp_path, [row], kind="cot")
    assert report.ok == ok, report.summary()
    if not ok:
        assert {p.kind for p in report.problems} == {"cot_tags_missing"}
    if problem_type is not None:
        (record,) = [r for _, r in validate_file(path, tmp_path, check_videos=False)[0]] or [None]
        assert record is None or record.to_dict()["problem_type"] == problem_type


def _doc_examples():
    """The literal JSON example rows of docs/data.md, by the format the heading above them names."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- example: ([\w-]+) -->\s*```json\n(.*?)```", text, re.DOTALL)
    return [(fmt, json.loads(body)) for fmt, body in blocks]


def test_docs_show_one_valid_example_per_importer():
    examples = _doc_examples()
    assert {fmt for fmt, _ in examples} >= {"canonical-sft", "published-sft", "published-grpo", "vlguard"}
    for fmt, row in examples:
        assert fmt in FORMATS and detect_format(row) == fmt
        issues = []
        assert parse_row(row, fmt, "doc-1", issues) and issues == [], (fmt, issues)


def test_harmful_visual_label_without_media_is_named_as_the_row_names_it(tmp_path):
    _, report = check(tmp_path, [canon_eval(split="HH", labels={"visual": 1, "textual": 1})], name="e.jsonl")
    assert located(report) == {(1, "labels.visual", "contradictory_labels")}  # eval rows call it "labels"
    _, report = check(tmp_path, [canon_sft(safety_labels={"visual": 1, "textual": 0})])
    assert located(report) == {(1, "safety_labels.visual", "contradictory_labels")}


def test_a_field_the_parser_reported_is_not_checked_again(tmp_path):
    _, report = check(tmp_path, [canon_eval(split=5)], name="e.jsonl")
    assert located(report) == {(1, "split", "invalid_field")}  # no follow-on "'' is not one of [...]"
    _, report = check(tmp_path, [canon_eval(split="XX")], name="e.jsonl")
    assert located(report) == {(1, "split", "invalid_split")}


def test_a_misspelt_format_key_on_the_first_row_is_named(tmp_path):
    """A typo in the key that names the format ("conversaton") read as "no known format" without a hint."""
    row = canon_sft()
    row["conversaton"] = row.pop("conversation")
    _, report = check(tmp_path, [row])
    (problem,) = report.problems
    assert problem.kind == "unknown_format" and "did you mean 'conversation' for 'conversaton'?" in problem.message
    _, report = check(tmp_path, [{"foo": 1}], name="other.jsonl")
    assert "did you mean" not in report.problems[0].message


def test_rows_of_another_format_than_the_first_row_say_which_line_set_it(tmp_path):
    """A first row with the published key ("conversations") made every canonical row after it fail with turn-format
    errors that did not point back to line 1."""
    first = canon_sft()
    first["conversations"] = first.pop("conversation")
    _, report = check(tmp_path, [first, canon_sft(), canon_sft(id="s2")])
    mixed = [p for p in report.problems if p.kind == "mixed_formats"]
    assert [p.line for p in mixed] == [2, 3]
    assert "reads as canonical-sft, but line 1 set the file's format to published-sft" in mixed[0].message


@pytest.mark.parametrize("name", ["big.jsonl", "big.json"])
def test_an_integer_python_refuses_to_read_is_a_located_problem(tmp_path, name):
    """json parses a 5000-digit integer, but Python refuses to convert it (ValueError): a problem of its row, never a
    traceback, under either policy."""
    row = json.dumps(canon_sft()).replace("{", '{"big": ' + "1" + "0" * 5000 + ", ", 1)
    path = tmp_path / name
    path.write_text(row + "\n" if name.endswith("l") else f"[{row}]", encoding="utf-8")
    _, report = validate_file(path, tmp_path, check_videos=False)
    assert [p.kind for p in report.problems] == ["malformed_json"] and report.problems[0].line == 1
    assert "4300" in report.problems[0].message
    for policy in ("error", "skip"):
        with pytest.raises(DataValidationError):
            load_dataset_checked(path, tmp_path, on_bad_row=policy, check_videos=False)
