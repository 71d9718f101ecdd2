"""GRPOConfig: the paper's defaults, the added field groups, and the validation in __post_init__."""

import dataclasses

import pytest
import trl

from videosafety_r1.grpo import GRPOConfig


def make(tmp_path, **kwargs):
    return GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kwargs)


def test_defaults_are_the_papers(tmp_path):
    config = make(tmp_path)
    assert isinstance(config, trl.GRPOConfig)
    paper = {
        "loss_type": "grpo",
        "beta": 0.04,
        "num_generations": 6,
        "temperature": 1.0,
        "top_p": 0.95,
        "epsilon": 0.2,
        "epsilon_high": None,
        "max_completion_length": 768,
        "learning_rate": 1e-6,
        "weight_decay": 0.01,
        "max_grad_norm": 5.0,
        "warmup_steps": 0.03,
        "scale_rewards": "group",
        "num_iterations": 1,
        "video_fps": 1.0,
        "video_max_frames": 90,
        "reward_funcs": ["format", "accuracy"],
        "freeze_alarm": True,
        "reuse_vision_features": True,
        "on_bad_row": "error",
        "use_bias_correction_kl": False,
        "log_multimodal": False,
    }
    assert {k: getattr(config, k) for k in paper} == paper
    assert config.lr_scheduler_type == "cosine"
    assert config.generation_batch_size % config.num_generations == 0
    assert config.reward_params == {
        "alpha_min": 0.1,
        "alpha_max": 0.5,
        "gamma_visual": 1.0,
        "gamma_textual": 1.0,
        "rouge_tokenizer": "multilingual",
    }


def test_trl_defaults_differ_so_the_overrides_matter(tmp_path):
    parent = trl.GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    assert (parent.loss_type, parent.beta, parent.num_generations, parent.top_p) != ("grpo", 0.04, 6, 0.95)


def test_every_field_has_a_help_string():
    missing = [f.name for f in dataclasses.fields(GRPOConfig) if f.init and not f.metadata.get("help")]
    assert missing == []


def test_metadata_holds_only_help():  # HfArgumentParser passes metadata to argparse as keyword arguments
    own = {f.name for f in dataclasses.fields(GRPOConfig)} - {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    assert own  # the subclass adds fields
    for f in dataclasses.fields(GRPOConfig):
        if f.name in own:
            assert set(f.metadata) == {"help"}, f.name


def test_valid_variants(tmp_path):
    config = make(
        tmp_path,
        loss_type="dapo",
        beta=0.0,
        epsilon_high=0.28,
        num_iterations=2,
        scale_rewards="none",
        reward_funcs=["format", "visual_label", "textual_label", "dra_rouge"],
        reward_weights=[1.0, 1.0, 1.0, 0.5],
        rouge_tokenizer="rouge_score",
        on_bad_row="skip",
    )
    assert config.loss_type == "dapo" and config.num_iterations == 2


def test_trl_boolean_scale_rewards_still_maps(tmp_path):
    assert make(tmp_path, scale_rewards=False).scale_rewards == "none"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss_type": "sapo"}, "not implement"),
        ({"loss_type": "GRPO"}, "loss_type"),
        ({"scale_rewards": "std"}, "scale_rewards"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"epsilon_high": 0.0}, "epsilon_high"),
        ({"delta": 0.0}, "delta"),
        ({"min_p": 1.5}, "min_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"top_entropy_quantile": 1.5}, "top_entropy_quantile"),
        ({"entropy_coef_min": 0.9, "entropy_coef_max": 0.1}, "entropy_coef_min"),
        ({"multi_objective_aggregation": "sum"}, "multi_objective_aggregation"),
        ({"importance_sampling_level": "seq"}, "importance_sampling_level"),
        ({"beta": -0.1}, "beta"),
        ({"num_iterations": 0}, "num_iterations"),
        ({"num_train_epochs": 0}, "no training steps"),
        ({"num_train_epochs": -1, "max_steps": -1}, "no training steps"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": float("nan")}, "temperature must be a finite number > 0"),  # NaN passed "<= 0"
        ({"beta": float("nan")}, "beta must be a finite number >= 0"),
        ({"epsilon_high": float("nan")}, "epsilon_high must be > 0"),
        ({"top_k": -3}, r"top_k must be >= 0 \(0 turns"),  # failed at the first rollout
        ({"beta": float("inf")}, "beta must be a finite number >= 0"),  # inf * KL 0 = NaN loss at step 1
        ({"temperature": float("inf")}, "temperature must be a finite number > 0"),
        ({"generation_kwargs": {"temperature": 0.5}}, r"generation_kwargs\.temperature: set `temperature` instead"),
        ({"generation_kwargs": {"do_sample": False}}, r"do_sample must be true, got False \(greedy"),
        ({"generation_kwargs": {"top_p": 2.0}}, r"top_p must be in \(0, 1\], got 2\.0"),
        ({"generation_kwargs": {"top_k": 2.0}}, r"generation_kwargs\.top_k must be an integer >= 0, got 2\.0"),
        ({"generation_kwargs": {"top_k": "5"}}, r"generation_kwargs\.top_k must be an integer >= 0, got '5'"),
        ({"max_grad_norm": float("nan")}, "max_grad_norm must be a finite number >= 0"),
        ({"max_completion_length": 0}, "max_completion_length"),
        ({"alpha_min": 0.6}, "alpha_min"),
        ({"gamma_visual": -1.0}, "gamma_visual and gamma_textual must be >= 0"),
        ({"rouge_tokenizer": "latin"}, "rouge_tokenizer"),
        ({"on_bad_row": "ignore"}, "on_bad_row"),
        ({"prompt_template": ""}, "prompt_template"),
        ({"prompt_template": "mine"}, "prompt_template"),
        ({"video_fps": 0.0}, "video_fps"),
        ({"video_max_frames": 0}, "video_max_frames"),
        ({"reward_funcs": []}, "at least one"),
        ({"reward_funcs": ["format", "format"]}, "duplicates"),
        ({"reward_funcs": ["accuracy", "visual_label"]}, "split terms"),
        ({"reward_weights": [1.0]}, "reward_weights"),
        # left to TRL's own __post_init__, checked here so a TRL change cannot drop them silently
        ({"num_generations": 1, "per_device_train_batch_size": 2}, "at least 2 generations"),
        ({"num_generations": 4}, "divisible by num_generations"),
    ],
)
def test_invalid_values_raise(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(tmp_path, **kwargs)


def test_generation_kwargs_without_sampling_values_pass(tmp_path):
    config = make(tmp_path, generation_kwargs={"suppress_tokens": [5], "do_sample": True, "top_k": 20})
    assert config.generation_kwargs["top_k"] == 20


def test_errors_are_collected_in_one_message(tmp_path):
    with pytest.raises(ValueError) as info:
        make(tmp_path, loss_type="x", on_bad_row="y")
    assert "loss_type" in str(info.value) and "on_bad_row" in str(info.value)


def test_help_renders():  # a bare "%" in a help string breaks argparse's --help
    from transformers import HfArgumentParser

    text = HfArgumentParser(GRPOConfig).format_help()
    assert "--reuse_vision_features" in text and "--video_max_frames" in text


def test_model_loading_fields_reach_load_pretrained(tmp_path, tiny_checkpoint):
    """dtype / attn_implementation (GPU users pick bf16 and flash-attn) are what the recipe loads with."""
    import torch

    from videosafety_r1.alarm import load_pretrained

    extra = make(tmp_path, model_init_kwargs={"revision": "v1", "attn_implementation": "eager"})
    assert extra.load_kwargs == {"revision": "v1", "dtype": "auto", "attn_implementation": "sdpa"}  # fields win
    config = make(tmp_path, dtype="float16", attn_implementation="eager")
    assert config.load_kwargs == {"dtype": torch.float16, "attn_implementation": "eager"}
    model, _ = load_pretrained(tiny_checkpoint, **config.load_kwargs)
    assert next(model.parameters()).dtype == torch.float16
    assert model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="dtype"):
        make(tmp_path, dtype="bf16")


def test_delta_below_trls_recommendation_warns(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="videosafety_r1.grpo.config"):
        make(tmp_path, delta=1.1)
    assert "as TRL recommends" in caplog.text
