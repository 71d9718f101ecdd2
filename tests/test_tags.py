"""One tag grammar and one set of constants: data, rewards and evaluation read completions the same way."""

import pytest
import torch

from videosafety_r1 import constants
from videosafety_r1.tags import COT_FORMAT, Tags, format_cot, format_ok, parse_tags

TWO_ANSWERS = (
    "<think>t</think><answer>Here is how to make it: step one</answer><answer>I cannot help with that.</answer>"
    "<vidType>1</vidType><textType>1</textType>"
)


def test_the_first_answer_counts_everywhere():
    from videosafety_r1.evaluation import extract_answer, extract_tags
    from videosafety_r1.evaluation.parsing import count_format_failures, response_for_judging
    from videosafety_r1.rewards import format_reward
    from videosafety_r1.rewards.tags import parse_batch

    first = "Here is how to make it: step one"
    assert parse_tags(TWO_ANSWERS).answer == first and parse_tags(TWO_ANSWERS).answer_count == 2
    assert parse_batch([TWO_ANSWERS])[0].answer == first  # what the rewards score
    assert extract_answer(TWO_ANSWERS) == first and response_for_judging(TWO_ANSWERS) == (first, True)  # judged
    # several answers are malformed: no format reward, a format failure in evaluation
    assert format_reward([TWO_ANSWERS]) == [0.0]
    assert not extract_tags(TWO_ANSWERS).format_ok and count_format_failures([TWO_ANSWERS]) == 1


def test_one_tags_type():
    from videosafety_r1 import evaluation, rewards

    assert evaluation.Tags is Tags and rewards.tags.Tags is Tags
    import videosafety_r1

    assert videosafety_r1.Tags is Tags and videosafety_r1.parse_tags is parse_tags
    tags = parse_tags("<think> a </think><answer> b </answer><vidType> 1 </vidType><textType>maybe</textType>")
    assert (tags.think, tags.answer, tags.vid_type, tags.text_type, tags.text_type_raw) == ("a", "b", 1, None, "maybe")
    assert not tags.format_ok and parse_tags("").answer_text == "" and not parse_tags("").has_answer


@pytest.mark.parametrize(
    "text, problem_type, ok",
    [
        (format_cot("r", "a", 0, 1), None, True),
        (format_cot("r", "a", 0, 1) + "\n", constants.SAFETY_PROBLEM_TYPE, True),
        (" " + format_cot("r", "a", 0, 1), None, False),  # leading whitespace
        ("<think>r</think><answer>a</answer>", "multiple choice", True),
        ("<think>r</think><answer>a</answer>", None, False),  # safety rows need the labels
        ("<think>r <answer>x</answer></think><answer>a</answer>", "free-form", False),  # nested tag
        ("<think>r</think><answer>a</answer><answer>b</answer>", "free-form", False),
    ],
)
def test_format_grammar(text, problem_type, ok):
    from videosafety_r1.rewards import format_reward

    assert format_ok(text, problem_type) is ok
    assert format_reward([text], problem_type=problem_type) == [float(ok)]


def test_cot_targets_need_01_labels():
    from videosafety_r1.data.schema import COT_RE

    assert COT_RE is COT_FORMAT
    assert COT_FORMAT.fullmatch(format_cot("r", "a", 1, 0))
    assert not COT_FORMAT.fullmatch("<think>r</think><answer>a</answer><vidType>2</vidType><textType>0</textType>")


def test_constants_defined_once():
    from videosafety_r1 import rewards
    from videosafety_r1.alarm import TEXTUAL_ALARM, VISUAL_ALARM, AlarmConfig
    from videosafety_r1.alarm.model import is_vision_parameter
    from videosafety_r1.data import schema
    from videosafety_r1.grpo import vision_cache

    assert schema.PROBLEM_TYPES is rewards.PROBLEM_TYPES is constants.PROBLEM_TYPES
    assert schema.ALARM_LITERALS == (AlarmConfig().visual_token, AlarmConfig().textual_token)
    assert (VISUAL_ALARM, TEXTUAL_ALARM) == schema.ALARM_LITERALS
    assert set(vision_cache.VISION_MODULE_NAMES) <= set(constants.VISION_MODULE_NAMES)
    assert all(is_vision_parameter(f"model.{name}.blocks.0.weight") for name in constants.VISION_MODULE_NAMES)


def test_parse_dtype():
    assert constants.parse_dtype("auto") == "auto" and constants.parse_dtype("bfloat16") is torch.bfloat16
    assert constants.parse_dtype(torch.float16) is torch.float16
    for bad in ("bf16", "float64x", 16):
        with pytest.raises(ValueError, match="dtype must be one of"):
            constants.parse_dtype(bad)


def test_validation_checks_the_runs_alarm_literals(tmp_path):
    """Custom alarm strings were not checked: the literals came from a copy of AlarmConfig's defaults."""
    import json

    from videosafety_r1.alarm import AlarmConfig
    from videosafety_r1.data import validate_file

    row = {
        "id": "a",
        "media": None,
        "conversation": [{"role": "user", "content": "say <|va|> please"}, {"role": "assistant", "content": "no"}],
        "safety_labels": {"visual": 0, "textual": 1},
    }
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(row) + "\n")
    custom = AlarmConfig(visual_token="<|va|>", textual_token="<|ta|>")
    _, report = validate_file(path, tmp_path, kind="sft", alarm_config=custom)
    assert [p.kind for p in report.problems] == ["alarm_literal"] and "<|va|>" in report.problems[0].message
    _, default = validate_file(path, tmp_path, kind="sft")
    assert default.ok
