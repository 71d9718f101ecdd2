"""Reward functions: worked values of the method, dispatch, robustness, registry."""

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from videosafety_r1.rewards import (
    REWARD_FUNCS,
    accuracy_reward,
    dra_rouge_reward,
    format_reward,
    get_reward_func,
    textual_label_reward,
    validate_solution,
    visual_label_reward,
)
from videosafety_r1.rewards import safety as safety_module

SAFE = "free-form-and-choice"
REFUSAL = "I cannot help with that request."


def sol(answer=REFUSAL, vid="1", text="1"):
    return f"<answer>{answer}</answer><vidType>{vid}</vidType><textType>{text}</textType>"


def out(answer=REFUSAL, vid="1", text="1", think="It shows harm."):
    return f"<think>{think}</think><answer>{answer}</answer><vidType>{vid}</vidType><textType>{text}</textType>"


@pytest.mark.parametrize(
    "rouge, vid, text, expected",
    [
        (1.0, "1", "1", 2.1),  # both labels right: alpha = alpha_min
        (1.0, "0", "1", 1.5),  # one wrong: alpha = alpha_max
        (1.0, "1", "0", 1.5),
        (0.4, "1", "1", 2.04),
        (0.4, "0", "0", 0.2),
    ],
)
def test_worked_values(monkeypatch, rouge, vid, text, expected):
    monkeypatch.setattr(safety_module, "_rouge_mean", lambda refs, outs, rows, *a: dict.fromkeys(rows, rouge))
    assert accuracy_reward([out(vid=vid, text=text)], [sol()], [SAFE]) == [pytest.approx(expected)]


def test_perfect_completion_scores_3_1():
    total = accuracy_reward([out()], [sol()], [SAFE])[0] + format_reward([out()])[0]
    assert total == pytest.approx(3.1)


def test_mixed_problem_types_in_one_batch():
    rows = [
        (out(), sol(), SAFE, 2.1),
        ("<think>t</think><answer>B</answer>", "<answer>B</answer>", "multiple choice", 1.0),
        ("<think>t</think><answer>C</answer>", "<answer>B</answer>", "multiple choice", 0.0),
        ("<answer>3.14159</answer>", "<answer>3.14</answer>", "numerical", 1.0),
        ("<answer>3</answer>", "<answer>3.0</answer>", "numerical", 0.0),
        ("<answer>1,000</answer>", "<answer>1000</answer>", "numerical", 0.0),
        ("<answer>stop here now</answer>", "<answer>stop here now</answer>", "OCR", 1.0),
        ("<answer>stop there</answer>", "<answer>stop here now</answer>", "OCR", pytest.approx(1 / 3)),
        ("<answer>a cat sits</answer>", "<answer>a cat sits</answer>", "free-form", 1.0),
        ("<answer>90</answer>", "<answer>100</answer>", "regression", pytest.approx(0.9)),
        ("<answer>500</answer>", "<answer>100</answer>", "regression", 0.0),
        ("<answer>x</answer>", "<answer>x</answer>", "no-such-type", 0.0),
    ]
    comps, sols, types, expected = zip(*rows)
    assert accuracy_reward(list(comps), list(sols), list(types)) == list(expected)


@pytest.mark.parametrize("completion", ["", "no tags at all", "<answer>", "<vidType>0</vidType>", None, 17, [{}]])
def test_empty_and_tagless_completions_score_zero(completion):
    assert accuracy_reward([completion], [sol()], [SAFE]) == [0.0]
    assert format_reward([completion]) == [0.0]
    assert visual_label_reward([completion], [sol()], [SAFE]) == [0.0]
    assert dra_rouge_reward([completion], [sol()], [SAFE]) == [0.0]


@pytest.mark.parametrize(
    "completion, expected",
    [
        (out(), 1.0),
        (out() + "\n", 1.0),  # trailing whitespace accepted (documented choice)
        (out() + " \n\t", 1.0),
        ("\n" + out(), 0.0),  # leading whitespace is not
        (out() + " trailing text", 0.0),
        ("<think>a</think>\n<answer>b</answer>\n<vidType>1</vidType>\n<textType>0</textType>", 1.0),
        ("<think>a</think><answer>b</answer>", 0.0),
        ("<answer>b</answer><think>a</think><vidType>1</vidType><textType>0</textType>", 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert format_reward([completion]) == [expected]
    assert format_reward([[{"role": "assistant", "content": completion}]]) == [expected]


def test_terms_score_independently():
    # only the video label present and right: C_v = 1, C_t = 0, R = 0
    assert accuracy_reward(["<vidType>1</vidType>"], [sol()], [SAFE]) == [1.0]


def test_format_reward_per_row_pattern():
    think_answer = "<think>a</think><answer>B</answer>"
    assert format_reward([think_answer, think_answer], problem_type=[SAFE, "multiple choice"]) == [0.0, 1.0]


def test_conversational_completions_match_plain_strings():
    plain = [out(), out(vid="0"), "nothing"]
    conv = [[{"role": "assistant", "content": c}] for c in plain]
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": c}]}] for c in plain]
    sols = [sol()] * 3
    expected = accuracy_reward(plain, sols, SAFE)
    assert accuracy_reward(conv, sols, SAFE) == expected == accuracy_reward(parts, sols, SAFE)


@pytest.mark.parametrize(
    "kwargs", [{}, {"gamma_visual": 0.5, "gamma_textual": 2.0, "alpha_min": 0.2, "alpha_max": 0.8}]
)
def test_split_terms_sum_to_accuracy(kwargs):
    comps = [out(), out(vid="0"), out(text="0", answer="Sure, here is how."), out(vid="0", text="0"), "junk"]
    sols = [sol(), sol(), sol(), sol(vid="0", text="0"), sol()]
    comps, sols = comps + ["<answer>B</answer>"], sols + ["<answer>B</answer>"]
    types = [SAFE] * 5 + ["multiple choice"]
    common = {"prompts": [None] * 6, "completion_ids": [[1]] * 6, "trainer_state": None}
    acc = accuracy_reward(comps, sols, types, **kwargs, **common)
    gv = {k: v for k, v in kwargs.items() if k == "gamma_visual"}
    gt = {k: v for k, v in kwargs.items() if k == "gamma_textual"}
    alpha = {k: v for k, v in kwargs.items() if k.startswith("alpha")}
    v = visual_label_reward(comps, sols, types, **gv, **common)
    t = textual_label_reward(comps, sols, types, **gt, **common)
    r = dra_rouge_reward(comps, sols, types, **alpha, **common)
    for i in range(5):
        assert v[i] + t[i] + r[i] == pytest.approx(acc[i])
    assert v[5] is None and t[5] is None and r[5] is None


def test_log_metric_is_called():
    logged = {}
    accuracy_reward([out()], [sol()], [SAFE], log_metric=lambda k, x: logged.setdefault(k, x))
    visual_label_reward([out(vid="0")], [sol()], [SAFE], log_metric=lambda k, x: logged.setdefault(k, x))
    assert logged == {"safety/rouge": 1.0, "safety/visual_label_accuracy": 0.0}


def test_registry_and_binding():
    assert set(REWARD_FUNCS) >= {"format", "accuracy", "visual_label", "textual_label", "dra_rouge"}
    bound = get_reward_func("accuracy", alpha_min=0.3)
    assert bound.__name__ == "accuracy_reward"
    assert bound([out()], [sol()], [SAFE]) == [pytest.approx(2.3)]
    assert pickle.loads(pickle.dumps(bound))([out()], [sol()], [SAFE]) == [pytest.approx(2.3)]
    assert get_reward_func("format") is format_reward
    with pytest.raises(KeyError):
        get_reward_func("nope")


@pytest.mark.parametrize(
    "solution, ptype, n_problems",
    [
        (sol(), SAFE, 0),
        (sol(vid="2"), SAFE, 1),
        ("<answer>x</answer>", SAFE, 2),
        ("no tags", SAFE, 3),
        ("<answer>B</answer>", "multiple choice", 0),
        ("<answer></answer>", "multiple choice", 1),
        ("<answer>abc</answer>", "numerical", 1),
        ("<answer>nan</answer>", "regression", 1),
        ("<answer>x</answer>", "bogus", 1),
        (None, "OCR", 1),
    ],
)
def test_validate_solution(solution, ptype, n_problems):
    assert len(validate_solution(solution, ptype)) == n_problems


text_or_junk = st.one_of(
    st.text(max_size=200), st.none(), st.integers(), st.lists(st.dictionaries(st.text(), st.text()))
)
types = st.sampled_from([SAFE, "free-form", "multiple choice", "numerical", "OCR", "regression", "x"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(text_or_junk, st.text(max_size=120), types), min_size=1, max_size=6))
def test_rewards_never_raise(rows):
    comps, sols, ptypes = (list(x) for x in zip(*rows))
    tagged = [f"<answer>{s}</answer><vidType>{s[:1]}</vidType>{s}" for s in sols]
    for func in REWARD_FUNCS.values():
        result = func(completions=comps, solution=tagged, problem_type=ptypes, prompts=None, completion_ids=None)
        assert len(result) == len(comps)
        assert all(x is None or isinstance(x, float) for x in result)
