"""AT-SFT: loss formula, what trains in each stage, the recipe end to end for 2 steps, config files."""

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from videosafety_r1.sft import ATSFTConfig, ATSFTTrainer, alarm_losses

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "at_sft.py"


def _recipe_main():
    import runpy

    return runpy.run_path(str(RECIPE), run_name="test")["main"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from videosafety_r1.data import make_synthetic_dataset
    from videosafety_r1.testing import save_tiny_video_llm

    root = tmp_path_factory.mktemp("sft")
    make_synthetic_dataset(root / "data", n=8, seed=0)
    save_tiny_video_llm(root / "base", "qwen2_5_vl", seed=0)
    return root


def _args(workspace, stage, out, model=None, **extra):
    args = [
        "--config", str(ROOT / "recipes/configs/demo" / f"{stage}.yaml"),
        "--model_name_or_path", str(model or workspace / "base"),
        "--train_file", str(workspace / "data" / ("cot.jsonl" if stage == "cot" else "sft.jsonl")),
        "--data_root", str(workspace / "data"),
        "--output_dir", str(out),
        "--max_steps", "2",
        "--per_device_train_batch_size", "4",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    if stage == "atc":
        args += ["--eval_file", str(workspace / "data" / "sft.jsonl"), "--eval_data_root", str(workspace / "data")]
    for k, v in extra.items():
        args += [f"--{k}", str(v)]
    return args


@pytest.mark.parametrize(
    "logits, labels, expected_acc",
    [([2.0, -1.0], [1, 0], 1.0), ([2.0, -1.0], [0, 1], 0.0), ([0.5, 0.5, -0.5, -0.5], [1, 0, 0, 1], 0.5)],
)
def test_alarm_losses(logits, labels, expected_acc):
    lg, lb = torch.tensor(logits), torch.tensor(labels)
    bce, acc = alarm_losses(lg, lb)
    manual = -(lb * torch.log(torch.sigmoid(lg)) + (1 - lb) * torch.log(1 - torch.sigmoid(lg))).mean()
    torch.testing.assert_close(bce, manual)
    assert acc.item() == pytest.approx(expected_acc)


def test_loss_is_ce_plus_lambda_bce_not_divided_by_tokens(workspace, tmp_path):
    from videosafety_r1.data import load_dataset_checked
    from videosafety_r1.data.collate import MediaLoader, SFTCollator
    from videosafety_r1.sft import build_sft_model

    args = ATSFTConfig(
        output_dir=str(tmp_path), model_name_or_path=str(workspace / "base"), stage="atc", use_cpu=True,
        report_to=[], bf16=False, gradient_checkpointing=False, lambda_visual=0.1, lambda_textual=0.3,
    )  # fmt: skip
    model, processor = build_sft_model(args)
    records, _ = load_dataset_checked(workspace / "data" / "sft.jsonl", workspace / "data", kind="sft")
    batch = SFTCollator(processor, MediaLoader(workspace / "data", 4.0, 8))(records[:4])
    trainer = ATSFTTrainer(model=model, args=args, train_dataset=records, processing_class=processor)
    loss = trainer.compute_loss(model, dict(batch))
    out = model(**batch)
    v, _ = alarm_losses(out.visual_alarm_logits, batch["visual_alarm_labels"])
    t, _ = alarm_losses(out.textual_alarm_logits, batch["textual_alarm_labels"])
    torch.testing.assert_close(loss, out.loss + 0.1 * v + 0.3 * t)
    assert (batch["labels"] != -100).sum() > 10  # many target tokens, yet BCE is not divided by their count


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def alarm_start(workspace):
    """An alarm checkpoint with non-zero vectors and fixed heads: every stage starts from the same weights."""
    from videosafety_r1.alarm import AlarmConfig, add_alarm_tokens, load_pretrained

    base, processor = load_pretrained(workspace / "base")
    model = add_alarm_tokens(base, processor, AlarmConfig(init="normal"))
    model.save_pretrained(workspace / "alarm_start", processor=processor)
    return workspace / "alarm_start"


@pytest.mark.parametrize("stage", ["alarm_init", "atc", "cot"])
def test_stage_trains_exactly_what_it_should(workspace, alarm_start, tmp_path, stage):
    from videosafety_r1.alarm import is_vision_parameter, load_pretrained

    result = _recipe_main()(_args(workspace, stage, tmp_path / "run", model=alarm_start))
    before, _ = load_pretrained(alarm_start)
    after, _ = load_pretrained(result["final"])
    b, a = _snapshot(before), _snapshot(after)
    changed = {n for n in a if not torch.equal(a[n], b[n])}
    vision = {n for n in a if is_vision_parameter(n)}
    assert vision and not (changed & vision), "vision tower / projector must stay frozen"
    assert any("layers" in n for n in changed), "LLM weights must train"
    assert ("alarm_embedding.weight" in changed) == (stage != "cot")
    assert ("visual_head.weight" in changed) == (stage == "atc")
    assert ("textual_head.weight" in changed) == (stage == "atc")
    assert (Path(result["final"]).parent / "export" / "alarm" / "heads.safetensors").exists()
    assert after.video_sampling == {"video_fps": 4.0, "video_max_frames": 8}  # the demo config's, recorded
    if stage == "atc":
        assert "eval_acc/visual_head" in result["after"] and "eval_loss/lm" in result["before"]


@pytest.mark.parametrize("mode", ["joint", "detached"])
def test_cot_head_loss_trains_the_heads_and_reaches_the_llm_only_when_joint(workspace, alarm_start, tmp_path, mode):
    """cot_head_loss: the heads train in CoT; `joint` lets the BCE reach the LLM, `detached` stops it there."""
    from videosafety_r1.data import load_dataset_checked
    from videosafety_r1.data.collate import MediaLoader, SFTCollator
    from videosafety_r1.sft import build_sft_model

    args = ATSFTConfig(
        output_dir=str(tmp_path), model_name_or_path=str(alarm_start), stage="cot", cot_head_loss=mode,
        use_cpu=True, report_to=[], bf16=False, gradient_checkpointing=False, lambda_textual=0.3,
    )  # fmt: skip
    model, processor = build_sft_model(args)
    assert model.textual_head.weight.requires_grad and not model.alarm_embedding.weight.requires_grad
    records, _ = load_dataset_checked(workspace / "data" / "cot.jsonl", workspace / "data", kind="sft")
    batch = SFTCollator(processor, MediaLoader(workspace / "data", 4.0, 8))(records[:4])
    trainer = ATSFTTrainer(model=model, args=args, train_dataset=records, processing_class=processor)
    grads = {}
    for part in ("full", "lm"):
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch)) if part == "full" else model(**batch).loss
        loss.backward()
        grads[part] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    llm = [n for n in grads["lm"] if "layers" in n]
    assert llm and grads["full"]["textual_head.weight"].abs().sum() > 0
    same = all(torch.allclose(grads["full"][n], grads["lm"][n], atol=1e-7) for n in llm)
    assert same == (mode == "detached")  # detached: the LLM sees the LM loss alone


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stage": "atc", "cot_head_loss": "joint"}, "acts in stage cot only"),
        ({"stage": "cot", "cot_head_loss": "frozen"}, "cot_head_loss must be one of"),
        ({"stage": "cot", "lambda_textual": 0.5}, "lambda_textual: 0.5 would be ignored"),
        ({"stage": "alarm_init", "lambda_visual": 0.3}, "lambda_visual: 0.3 would be ignored"),
        ({"stage": "cot", "cot_head_loss": "joint", "lambda_visual": 0, "lambda_textual": 0}, "would train nothing"),
        ({"stage": "alarm_init", "head_learning_rate": 0.01}, "head_learning_rate: 0.01 would be ignored"),
        ({"stage": "cot", "alarm_learning_rate": 0.01}, "alarm_learning_rate: 0.01 would be ignored"),
    ],
)
def test_head_loss_settings_that_would_not_act_are_refused(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        ATSFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **fields)


def test_lora_stage_trains_adapters_only(workspace, tmp_path):
    result = _recipe_main()(_args(workspace, "atc", tmp_path / "lora", use_lora="true", export_plain="true"))
    final = Path(result["final"])
    assert (final / "adapter_config.json").exists() and (final / "alarm.safetensors").exists()
    assert not (final.parent / "export" / "adapter_config.json").exists()


def _lora_args(workspace, tmp_path, pattern):
    return ATSFTConfig(
        output_dir=str(tmp_path), model_name_or_path=str(workspace / "base"), stage="atc", use_cpu=True,
        report_to=[], bf16=False, use_lora=True, lora_target_modules=pattern,
    )  # fmt: skip


def test_lora_with_frozen_vision_puts_no_adapter_on_the_tower(workspace, tmp_path, caplog):
    """freeze_vision: true with a pattern that also matches vision-tower modules (qkv, proj): those modules get no
    adapter (logged), the LLM's matches do, and nothing in the tower or projector trains."""
    import logging

    from videosafety_r1.alarm import is_vision_parameter
    from videosafety_r1.sft import build_sft_model

    with caplog.at_level(logging.WARNING, logger="videosafety_r1.sft"):
        model, _ = build_sft_model(_lora_args(workspace, tmp_path, r".*\.(qkv|proj|q_proj)"))
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and not any(is_vision_parameter(n) for n in lora)
    assert any("language_model" in n and "q_proj" in n for n in lora) and all(p.requires_grad for p in lora.values())
    assert not any(p.requires_grad for n, p in model.named_parameters() if is_vision_parameter(n))
    assert "no LoRA adapters on the" in caplog.text and "model.visual.blocks.0.attn.qkv" in caplog.text


def test_lora_pattern_matching_only_the_frozen_tower_is_refused(workspace, tmp_path):
    from videosafety_r1.sft import build_sft_model

    with pytest.raises(ValueError, match=r"lora_target_modules '.*qkv' matches only vision.*freeze_vision: true"):
        build_sft_model(_lora_args(workspace, tmp_path, r".*\.qkv"))


def test_freeze_vision_freezes_vision_adapters_already_there(workspace):
    """A LoRA base carrying adapters inside the tower (a checkpoint made before exclusions): freeze_vision keeps
    them frozen, the LLM's adapters train."""
    from peft import LoraConfig, get_peft_model

    from videosafety_r1.alarm import AlarmConfig, add_alarm_tokens, is_vision_parameter, load_pretrained

    base, processor = load_pretrained(workspace / "base")
    base = get_peft_model(base, LoraConfig(r=2, target_modules=r".*\.(qkv|q_proj)"))
    model = add_alarm_tokens(base, processor, AlarmConfig(freeze_vision=True))
    lora = {n: p.requires_grad for n, p in model.named_parameters() if "lora_" in n}
    vision = {n: grad for n, grad in lora.items() if is_vision_parameter(n)}
    assert vision and not any(vision.values()) and all(g for n, g in lora.items() if n not in vision)


def test_bad_data_fails_before_training(workspace, tmp_path, refused):
    bad = tmp_path / "bad.jsonl"
    good = (workspace / "data" / "sft.jsonl").read_text().splitlines()
    bad.write_text("\n".join([good[0], "{not json", good[1].replace('"visual": ', '"visual": 7, "x": ')]) + "\n")
    err = refused(_recipe_main(), _args(workspace, "atc", tmp_path / "out", train_file=bad))
    assert f"{bad}:2" in err and f"{bad}:3" in err  # every problem, in one report
    assert not (tmp_path / "out").exists()  # validated before the output folder is touched


def test_every_shipped_recipe_config_parses():
    from videosafety_r1.config import load_config
    from videosafety_r1.grpo import GRPOConfig

    classes = {"grpo": GRPOConfig}
    try:
        from videosafety_r1.evaluation.run import EvalConfig

        classes["evaluate"] = EvalConfig
    except ImportError:  # the evaluation runner may not be there yet
        pass
    files = sorted((ROOT / "recipes" / "configs").rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert text.startswith("#") and "Launch" in text, f"{path} must start with a comment naming its launch"
        kind = "grpo" if "grpo" in path.stem else "evaluate" if "eval" in path.stem else "sft"
        if kind not in classes and kind != "sft":
            continue
        cls = classes.get(kind, ATSFTConfig)
        names = {f.name for f in dataclasses.fields(cls)}
        overrides = ["--output_dir", "/tmp/unused"] + (["--use_cpu", "true"] if "use_cpu" in names else [])
        cfg = load_config(cls, path, overrides)
        assert cfg is not None


def test_recipe_docstring_states_launch_command():
    text = RECIPE.read_text()
    assert re.search(r"accelerate launch recipes/at_sft\.py --config recipes/configs/\S+\.yaml", text)
