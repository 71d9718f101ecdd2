"""Every own field of `trl.GRPOConfig` (TRL 1.16) either acts as TRL documents it or is rejected at config time.

The walk sets each field to a non-default value: a rejected field's error must name it; an implemented field must
be accepted and kept, and names the behaviour test that shows its effect (the walk checks that test exists).
docs/grpo.md's table must list the same split. Also: the renamed spellings, per-reward arguments and reward paths.
"""

import dataclasses
import importlib
import json
import logging
import re
import sys
import warnings
from pathlib import Path

import pytest
import transformers
import trl

from videosafety_r1.grpo import GRPOConfig
from videosafety_r1.grpo.trl_fields import IMPLEMENTED, REJECTED

ROOT = Path(__file__).resolve().parents[1]
TRL_OWN = [
    f.name
    for f in dataclasses.fields(trl.GRPOConfig)
    if f.name not in {g.name for g in dataclasses.fields(transformers.TrainingArguments)}
]
VLLM = [n for n in TRL_OWN if n == "use_vllm" or n.startswith("vllm_")]

# field -> (non-default value, the test that shows its effect)
EFFECTS = {
    "model_init_kwargs": ({"revision": "main"}, "test_grpo_config::test_model_loading_fields_reach_load_pretrained"),
    "disable_dropout": (True, "test_grpo_features::test_disable_dropout"),
    "num_generations": (3, "test_grpo_options::test_scale_rewards"),
    "max_completion_length": (16, "test_grpo_options::test_sampling_settings_reach_generate"),
    "ds3_gather_for_generation": (False, "test_grpo_features::test_ds3_gather_for_generation_reaches_the_rollout"),
    "shuffle_dataset": (False, "test_grpo_features::test_shuffle_dataset"),
    "generation_batch_size": (12, "test_grpo_features::test_generation_batch_size_and_steps_per_generation"),
    "steps_per_generation": (2, "test_grpo_features::test_generation_batch_size_and_steps_per_generation"),
    "temperature": (0.7, "test_grpo_options::test_sampling_settings_reach_generate"),
    "top_p": (0.9, "test_grpo_options::test_sampling_settings_reach_generate"),
    "top_k": (5, "test_grpo_options::test_sampling_settings_reach_generate"),
    "min_p": (0.1, "test_grpo_features::test_min_p_repetition_penalty_and_generation_kwargs_reach_generate"),
    "generation_kwargs": (
        {"no_repeat_ngram_size": 2},
        "test_grpo_features::test_min_p_repetition_penalty_and_generation_kwargs_reach_generate",
    ),
    "repetition_penalty": (
        1.1,
        "test_grpo_features::test_min_p_repetition_penalty_and_generation_kwargs_reach_generate",
    ),
    "beta": (0.1, "test_grpo_math::test_on_policy_loss_adds_beta_k3_kl"),
    "num_iterations": (2, "test_grpo_trainer::test_num_iterations_reuses_rollout_and_clips"),
    "epsilon": (0.3, "test_grpo_math::test_clipping_symmetric"),
    "delta": (2.0, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "epsilon_high": (0.28, "test_grpo_math::test_clipping_epsilon_high_asymmetric"),
    "importance_sampling_level": ("sequence", "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "reward_weights": ([1.0, 0.5], "test_grpo_features::test_advantages_match_trl_formulas"),
    "multi_objective_aggregation": ("normalize_then_sum", "test_grpo_features::test_advantages_match_trl_formulas"),
    "scale_rewards": ("batch", "test_grpo_features::test_advantages_match_trl_formulas"),
    "loss_type": ("dapo", "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "mask_truncated_completions": (True, "test_grpo_options::test_mask_truncated_completions"),
    "sync_ref_model": (True, "test_grpo_options::test_sync_ref_model_copies_the_policy"),
    "ref_model_mixup_alpha": (0.9, "test_grpo_options::test_sync_ref_model_copies_the_policy"),
    "ref_model_sync_steps": (10, "test_grpo_options::test_sync_ref_model_copies_the_policy"),
    "top_entropy_quantile": (0.2, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "entropy_coef": (0.01, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "use_adaptive_entropy": (True, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "entropy_coef_min": (0.001, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "entropy_coef_max": (0.5, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "entropy_coef_delta": (0.01, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "entropy_target": (0.3, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "off_policy_mask_threshold": (0.1, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "use_bias_correction_kl": (True, "test_grpo_trl_parity::test_objective_matches_trl_with_accumulation"),
    "log_completions": (True, "test_grpo_features::test_log_completions_prints_a_tidy_sample_table"),
    "num_completions_to_print": (2, "test_grpo_features::test_log_completions_prints_a_tidy_sample_table"),
    "log_unique_prompts": (True, "test_grpo_features::test_log_unique_prompts_dedupes_the_wandb_table"),
}

REJECTED_VALUES = {
    "trust_remote_code": True,
    "router_aux_loss_coef": 0.01,
    "cast_lm_head_to_fp32": True,
    "num_generations_eval": 2,
    "pad_to_multiple_of": 8,
    "chat_template_kwargs": {"enable_thinking": False},
    "cache_implementation": "static",
    "sapo_temperature_neg": 2.0,
    "sapo_temperature_pos": 2.0,
    "vespo_k_pos": 1.5,
    "vespo_lambda_pos": 1.5,
    "vespo_k_neg": 1.5,
    "vespo_lambda_neg": 1.5,
    "max_tool_calling_iterations": 3,
    "log_multimodal": True,
    "log_completions_hub_repo": "me/completions",
    "use_transformers_continuous_batching": True,
    "transformers_continuous_batching_config": {"max_memory_percent": 0.4},
    "use_transformers_paged": True,
    "use_vllm": True,
    "vllm_mode": "server",
    "vllm_model_impl": "transformers",
    "vllm_enable_sleep_mode": True,
    "vllm_structured_outputs_regex": "a+",
    "vllm_server_base_url": "http://localhost:8000",
    "vllm_server_host": "127.0.0.1",
    "vllm_server_port": 8001,
    "vllm_server_timeout": 10.0,
    "vllm_group_port": 51217,
    "vllm_gpu_memory_utilization": 0.5,
    "vllm_max_model_length": 1024,
    "vllm_tensor_parallel_size": 2,
    "vllm_importance_sampling_correction": False,
    "vllm_importance_sampling_mode": "token_mask",
    "vllm_importance_sampling_clip_max": 2.0,
    "vllm_importance_sampling_clip_min": 0.5,
    "vllm_importance_sampling_cap": 2.0,
}


def make(tmp_path, **kwargs):
    return GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kwargs)


def test_the_split_covers_every_trl_field_once():
    assert set(TRL_OWN) == set(IMPLEMENTED) | set(REJECTED) | set(VLLM)
    assert not set(IMPLEMENTED) & (set(REJECTED) | set(VLLM)) and not set(REJECTED) & set(VLLM)
    assert set(EFFECTS) == set(IMPLEMENTED)
    assert set(REJECTED_VALUES) == set(REJECTED) | set(VLLM)


@pytest.mark.parametrize("name", TRL_OWN)
def test_every_trl_field_acts_or_is_rejected(tmp_path, name):
    default = getattr(make(tmp_path), name)
    if name in EFFECTS:
        value, test = EFFECTS[name]
        assert value != default
        extra = {"reward_funcs": ["format", "accuracy"]} if name == "reward_weights" else {}
        if name == "generation_batch_size":
            extra["steps_per_generation"] = None
        config = make(tmp_path, **{name: value}, **extra)
        assert getattr(config, name) == value
        module, function = test.split("::")
        assert callable(getattr(importlib.import_module(module), function)), test
    else:
        value = REJECTED_VALUES[name]
        assert value != default
        extra = {"log_completions": True} if name == "log_completions_hub_repo" else {}
        with pytest.raises(ValueError, match=re.escape(name)):
            make(tmp_path, **{name: value}, **extra)


def test_docs_table_lists_the_same_split():
    text = (ROOT / "docs" / "grpo.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| (implemented|rejected|vLLM)", text, flags=re.M))
    assert {n for n, kind in rows.items() if kind == "implemented"} == set(IMPLEMENTED)
    assert {n for n, kind in rows.items() if kind == "rejected"} == set(REJECTED)
    assert {n for n, kind in rows.items() if kind == "vLLM"} == set(VLLM)  # tests/test_vllm_config.py


def test_vllm_check_is_one_function_naming_each_field(tmp_path):
    from videosafety_r1.grpo.config import _check_vllm_fields

    config = make(tmp_path)
    assert _check_vllm_fields(config) == []
    config.use_vllm, config.vllm_server_port = True, 9000  # a server field in colocate mode does nothing
    errors = _check_vllm_fields(config)
    assert any(e.startswith("vllm_server_port") for e in errors)


@pytest.mark.parametrize("loss_type", ["cispo", "sapo", "luspo", "vespo"])
def test_other_trl_loss_types_are_rejected_clearly(tmp_path, loss_type):
    with pytest.raises(ValueError, match=f"'{loss_type}' is a TRL loss that VideoGRPOTrainer does not implement"):
        make(tmp_path, loss_type=loss_type)


# ---------------------------------------------------------------------------------------------------------------------
# one spelling: dtype, video_fps / video_max_frames, on_bad_row error | skip (old spellings refused, naming the new)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, new", [("model_dtype", "dtype"), ("fps", "video_fps"), ("max_frames", "video_max_frames")]
)
def test_old_keys_are_refused_naming_the_new_one(tmp_path, key, new):
    from videosafety_r1.config import load_config

    path = tmp_path / "g.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\n{key}: 1\n")
    with pytest.raises(ValueError, match=rf"g\.yaml, line 3: key '{key}' was renamed to '{new}'"):
        load_config(GRPOConfig, path, [])


def test_old_on_bad_row_value_is_refused(tmp_path):
    with pytest.raises(ValueError, match="on_bad_row"):
        make(tmp_path, on_bad_row="raise")


def test_train_file_and_data_root_take_one_or_several(tmp_path):
    one = make(tmp_path, train_file="a.jsonl", data_root="r")
    assert (one.train_file, one.data_root) == (["a.jsonl"], ["r"])
    two = make(tmp_path, train_file=["a.jsonl", "b.jsonl"], data_root=["r", "s"])
    assert (two.train_file, two.data_root) == (["a.jsonl", "b.jsonl"], ["r", "s"])


@pytest.mark.parametrize("path", sorted(ROOT.glob("recipes/configs/*/grpo.yaml")), ids=lambda p: p.parent.name)
def test_shipped_grpo_configs_use_the_new_spellings(path, caplog):
    text = path.read_text(encoding="utf-8")
    assert "model_dtype" not in text and "on_bad_row: raise" not in text
    from videosafety_r1.config import load_config

    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(GRPOConfig, path, ["--use_cpu", "true", "--bf16", "false", "--report_to", "none"])
    assert "deprecated" not in caplog.text
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]
    assert config.dtype in ("auto", "bfloat16", "float32")


# ---------------------------------------------------------------------------------------------------------------------
# rewards from outside the library, and their arguments from the config
# ---------------------------------------------------------------------------------------------------------------------
USER_MODULE = '''import functools


def length_bonus(completions, scale=1.0, cap=100, **kwargs):
    """A user's reward: characters times scale, capped."""
    return [min(len(c), cap) * scale for c in completions]


def strict(completions, solution):
    return [1.0 if c == s else 0.0 for c, s in zip(completions, solution)]


def positional(completions, /, **kwargs):
    return [0.0 for _ in completions]


def needs_scale(completions, scale, **kwargs):
    """A required parameter that reward_kwargs binds."""
    return [scale for _ in completions]


def _keyword_adapter(func):
    @functools.wraps(func)
    def inner(completions, **kwargs):
        return func(completions, kwargs["solution"])

    return inner


adapted = _keyword_adapter(strict)  # the wrapper (with **kwargs) is what the trainer calls


class Scorer:
    def __init__(self, **kwargs):
        pass
'''


@pytest.fixture
def user_rewards(tmp_path, monkeypatch):
    package = tmp_path / "my_lab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rewards.py").write_text(USER_MODULE)
    (package / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_lab.rewards"
    for name in ("my_lab.rewards", "my_lab.broken", "my_lab"):
        sys.modules.pop(name, None)


def test_reward_path_and_kwargs_from_config(tmp_path, user_rewards):
    from videosafety_r1.grpo.data import resolve_reward_funcs, reward_name

    name = f"{user_rewards}:length_bonus"
    config = make(tmp_path, reward_funcs=["format", name], reward_kwargs={name: {"scale": 0.5, "cap": 4}})
    funcs = resolve_reward_funcs(config.reward_funcs, config.reward_params, config.reward_kwargs)
    assert funcs[1](completions=["abcdefgh", "ab"]) == [2.0, 1.0]  # cap 4, scale 0.5
    assert reward_name(name) == "length_bonus" and funcs[1].__name__ == "length_bonus"
    as_json = make(tmp_path, reward_funcs=[name], reward_kwargs=json.dumps({name: {"scale": 2.0}}))
    assert as_json.reward_kwargs_for(name) == {"scale": 2.0}


@pytest.mark.parametrize(
    "funcs, kwargs, match",
    [
        (["my_lab.rewards:nope"], None, "has no function 'nope'"),
        (["my_lab.missing:f"], None, "cannot import module 'my_lab.missing'"),
        (["my_lab.broken:f"], None, "cannot import module 'my_lab.broken' \\(RuntimeError: boom at import\\)"),
        ([":f"], None, "cannot import module ''"),
        (["format", "my_lab.rewards:format"], None, r"log two rewards as \['format'\]"),
        (["no_such_reward"], None, "unknown reward 'no_such_reward'"),
        # the trainer passes prompts=, completions=, completion_ids=, trainer_state= and the dataset columns
        (["my_lab.rewards:strict"], None, r"\(completions, solution\) without \*\*kwargs"),
        (["my_lab.rewards:positional"], None, "has a positional-only parameter without a default"),
        (["format"], {"format": {"completions": []}}, r"binds \['completions'\], which the trainer passes itself"),
        (["format"], {"accuracy": {"alpha_min": 0.2}}, "not in reward_funcs"),
        (["accuracy"], {"accuracy": {"alpha_min": 0.2}}, "set them as top-level config fields"),
        (["format"], {"format": 3}, "reward_kwargs must map reward names"),
        # a key no parameter takes would vanish into **kwargs: a typo, or a setting the reward never reads
        (["my_lab.rewards:length_bonus"], {"my_lab.rewards:length_bonus": {"scal": 2}}, r"binds 'scal'.*'scale'\?"),
        (["format"], {"format": {"strict": True}}, r"binds 'strict', which the reward has no parameter for"),
        (["my_lab.rewards:Scorer"], None, "is a class; name a function"),
        (["builtins:len"], None, r"has no signature to check|without \*\*kwargs"),
    ],
)
def test_bad_rewards_fail_at_config_load(tmp_path, user_rewards, funcs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(tmp_path, reward_funcs=funcs, reward_kwargs=kwargs)


def test_rewards_are_judged_by_the_callable_the_trainer_calls(tmp_path, user_rewards):
    """A required parameter bound by reward_kwargs, and a functools.wraps adapter whose wrapper takes **kwargs, are
    both valid: the config accepts them and the trainer's pre-call check binds the real call's keywords."""
    from videosafety_r1.grpo.data import resolve_reward_funcs
    from videosafety_r1.rewards import get_reward_func, reward_call_problem

    scale, adapted = f"{user_rewards}:needs_scale", f"{user_rewards}:adapted"
    config = make(tmp_path, reward_funcs=[scale, adapted], reward_kwargs={scale: {"scale": 2.0}})
    funcs = resolve_reward_funcs(config.reward_funcs, config.reward_params, config.reward_kwargs)
    call = {"prompts": ["p"], "completions": ["a"], "completion_ids": [[1]], "solution": ["a"], "trainer_state": None}
    assert [reward_call_problem(f, call) for f in funcs] == [None, None]  # VideoGRPOTrainer's check before a call
    assert funcs[0](**call) == [2.0] and funcs[1](**call) == [1.0]
    assert "missing a required argument: 'scale'" in reward_call_problem(get_reward_func(scale), call)  # unbound
    shadowed = get_reward_func(scale, scale=1.0, solution=["b"])  # a column named like a bound value would win
    assert "reward_kwargs ['solution'] would be replaced" in reward_call_problem(shadowed, call)


def test_reward_kwargs_from_yaml(tmp_path, user_rewards):
    from videosafety_r1.config import load_config

    path = tmp_path / "grpo.yaml"
    path.write_text(
        f"output_dir: {tmp_path}\nuse_cpu: true\nreport_to: []\nreward_funcs: [format, 'my_lab.rewards:length_bonus']\n"
        "reward_kwargs:\n  'my_lab.rewards:length_bonus': {scale: 0.5, cap: 3}\n"
    )
    config = load_config(GRPOConfig, path)
    assert config.reward_kwargs_for("my_lab.rewards:length_bonus") == {"scale": 0.5, "cap": 3}


def test_grpo_recipe_refuses_an_unknown_reward_before_model_or_data(tmp_path, capsys):
    """recipes/grpo.py: an unknown reward name is a usage error (exit 2) at config parse, before the (here missing)
    model and data are touched and before the output folder exists."""
    import runpy

    main = runpy.run_path(str(ROOT / "recipes" / "grpo.py"), run_name="grpo_test")["main"]
    argv = ["--config", str(ROOT / "recipes" / "configs" / "demo" / "grpo.yaml"), "--reward_funcs", "format", "nope"]
    argv += ["--model_name_or_path", str(tmp_path / "no-model"), "--train_file", str(tmp_path / "no.jsonl")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "unknown reward 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_reward_in_yaml_fails_before_any_model_loads(tmp_path, user_rewards):
    from videosafety_r1.config import load_config

    path = tmp_path / "grpo.yaml"
    path.write_text(
        f"output_dir: {tmp_path}\nuse_cpu: true\nreport_to: []\nreward_funcs: [format, my_lab.rewards:typo]\n"
    )
    with pytest.raises(ValueError, match="has no function 'typo'"):
        load_config(GRPOConfig, path)
