"""The shared refusal matcher and the refusal_consistency reward (TRL signature, registry, paper configs)."""

from pathlib import Path

import pytest
import yaml

from videosafety_r1.data.synthetic_text import HELPFUL, REFUSALS
from videosafety_r1.rewards import REWARD_FUNCS, get_reward_func, refusal_consistency_reward

ROOT = Path(__file__).resolve().parents[1]


def sol(answer: str, v: int = 0, t: int = 0) -> str:
    return f"<answer>{answer}</answer><vidType>{v}</vidType><textType>{t}</textType>"


def test_one_matcher_for_rewards_and_evaluation():
    import videosafety_r1.evaluation as evaluation
    import videosafety_r1.evaluation.keywords as keywords
    import videosafety_r1.refusal as refusal

    assert evaluation.is_refusal is refusal.is_refusal is keywords.is_refusal
    assert set(refusal.KEYWORD_LISTS) == {"default", "multilingual", "vlguard", "gcg", "jbb"}


def test_scores_one_exactly_when_refusal_matches_reference():
    refuse, help_ = REFUSALS["fr"], HELPFUL["colour"]["zh"].format(v="绿")
    completions = [
        f"<think>x</think>{sol(refuse, 1, 1)}",  # refuses, reference refuses -> 1
        f"<think>x</think>{sol('Lo siento, no puedo.')}",  # a different refusal wording still counts -> 1
        f"<think>x</think>{sol(help_)}",  # complies where the reference refuses -> 0
        f"<think>x</think>{sol(refuse)}",  # refuses a safe request -> 0
        f"<think>x</think>{sol('garbled but not a refusal')}",  # complies where the reference complies -> 1
        "no answer tag at all",  # -> 0
    ]
    refs = [sol(REFUSALS["en"], 1, 1), sol(REFUSALS["es"]), sol(REFUSALS["zh"]), sol(help_), sol(help_), sol(help_)]
    assert refusal_consistency_reward(completions, refs, "free-form-and-choice") == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]


def test_trl_signature_other_problem_types_and_logging():
    logged = {}
    out = refusal_consistency_reward(
        prompts=["p", "p"],
        completions=[[{"role": "assistant", "content": sol("I'm sorry, I can't.")}], sol("4")],
        completion_ids=[[1], [2]],
        solution=[sol("I cannot help with that."), "<answer>4</answer>"],
        problem_type=["free-form-and-choice", "numerical"],
        trainer_state=None,
        log_metric=lambda name, value: logged.setdefault(name, value),
    )
    assert out == [1.0, None]
    assert logged == {"safety/refusal_consistency": 1.0}


def test_registered_and_bindable():
    assert REWARD_FUNCS["refusal_consistency"] is refusal_consistency_reward
    bound = get_reward_func("refusal_consistency", refusal_keywords="default")
    assert bound.__name__ == "refusal_consistency_reward"
    assert bound([sol("Lo siento, no puedo.")], [sol("I'm sorry")]) == [0.0]  # English-only list misses Spanish


@pytest.mark.parametrize(
    "path", sorted((ROOT / "recipes" / "configs").glob("*/grpo.yaml")), ids=lambda p: p.parent.name
)
def test_off_in_paper_configs_on_in_demo(path):
    funcs = yaml.safe_load(path.read_text())["reward_funcs"]
    assert ("refusal_consistency" in funcs) == (path.parent.name == "demo")


def test_tag_consistency_scores_the_answer_against_its_own_labels():
    from videosafety_r1.rewards import tag_consistency_reward

    refuse, help_ = REFUSALS["zh"], HELPFUL["text"]["zh"].format(t="银行")
    completions = [
        f"<think>Request: harmful.</think>{sol(refuse, 0, 1)}",  # harmful request label, refuses -> 1
        f"<think>Request: safe.</think>{sol(refuse, 0, 0)}",  # both labels safe, yet refuses -> 0
        f"<think>x</think>{sol(help_, 0, 0)}",  # safe labels, helps -> 1
        f"<think>x</think>{sol(help_, 1, 0)}",  # harmful clip label, helps -> 0
        f"<think>x</think>{sol('Lo siento, no puedo.', 1, 0)}",  # harmful clip label, refuses in Spanish -> 1
        f"<think>x</think><answer>{refuse}</answer><vidType>0</vidType>",  # no textType -> 0
        f"<think>x</think><answer>{refuse}</answer><vidType>2</vidType><textType>1</textType>",  # unreadable -> 0
        "no answer tag at all",  # -> 0
    ]
    assert tag_consistency_reward(completions) == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    # no reference is read: the same completion scores the same whatever the solution column says
    assert tag_consistency_reward(completions[:1], solution=[sol(help_)]) == [1.0]


def test_tag_consistency_trl_call_registry_and_paper_configs():
    from videosafety_r1.rewards import tag_consistency_reward

    logged = {}
    out = tag_consistency_reward(
        prompts=["p", "p", "p"],
        completions=[[{"role": "assistant", "content": sol("I'm sorry, I can't.", 1, 1)}], sol("4"), sol("ok")],
        completion_ids=[[1], [2], [3]],
        solution=[sol("I cannot help."), "<answer>4</answer>", sol("fine")],
        problem_type=["free-form-and-choice", "numerical", "free-form-and-choice"],
        trainer_state=None,
        log_metric=lambda name, value: logged.setdefault(name, value),
    )
    assert out == [1.0, None, 1.0]
    assert logged == {"safety/tag_consistency": 1.0}
    assert REWARD_FUNCS["tag_consistency"] is tag_consistency_reward
    bound = get_reward_func("tag_consistency", refusal_keywords="default")
    assert bound([sol("Lo siento, no puedo.", 1, 0)]) == [0.0]  # the English-only list misses the Spanish refusal
    for path in (ROOT / "recipes" / "configs").rglob("*.yaml"):
        funcs = yaml.safe_load(path.read_text()).get("reward_funcs") or []
        if path.parent.name != "demo":
            assert "tag_consistency" not in funcs, f"{path}: the paper's configs keep the paper's rewards"


def test_an_empty_answer_earns_neither_consistency_point():
    """An empty <answer> is not a refusal, so without this rule it would count as answering a safe request (and as
    following safe labels) and earn the full point: a cheap way to skip the answer."""
    from videosafety_r1.rewards import tag_consistency_reward

    help_ = HELPFUL["text"]["en"].format(t="boxing")
    empty = [f"<think>x</think>{sol(blank)}" for blank in ("", "   ", "\n")]
    assert refusal_consistency_reward(empty, [sol(help_)] * 3) == [0.0, 0.0, 0.0]
    assert tag_consistency_reward(empty) == [0.0, 0.0, 0.0]
    assert refusal_consistency_reward([sol(help_)], [sol(help_)]) == [1.0]  # a real answer still scores


def test_an_answer_with_nothing_to_read_scores_zero_and_a_reference_without_answer_does_not_raise():
    from videosafety_r1.rewards import tag_consistency_reward

    help_ = HELPFUL["text"]["en"].format(t="boxing")
    blank = [f"<think>x</think>{sol(a)}" for a in ("\u200b", "\ufeff", ".", "<think></think>", "…")]
    assert refusal_consistency_reward(blank, [sol(help_)] * len(blank)) == [0.0] * len(blank)
    assert tag_consistency_reward(blank) == [0.0] * len(blank)
    assert tag_consistency_reward([sol("绿色。")]) == [1.0]  # a one-word answer in any script still counts
    # a reference without an <answer> span has no decision to match: 0, as the other safety terms give
    assert refusal_consistency_reward([sol("Sure")], ["Here is how."], "free-form-and-choice") == [0.0]
