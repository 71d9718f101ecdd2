"""ATSFTConfig against trl.SFTConfig: every own TRL field acts or is rejected; one spelling; typed YAML; --help."""

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import transformers
import trl

from videosafety_r1.config import check_model_path, load_config, parse_recipe_args
from videosafety_r1.sft import SFT_FIELD_SUPPORT, ATSFTConfig

ROOT = Path(__file__).resolve().parents[1]
_TA = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
SFT_OWN = [f.name for f in dataclasses.fields(trl.SFTConfig) if f.name not in _TA]

# one non-default value per own field of trl.SFTConfig (TRL 1.16)
NON_DEFAULT = {
    "model_init_kwargs": {"revision": "main", "low_cpu_mem_usage": True},
    "trust_remote_code": True,
    "router_aux_loss_coef": 0.01,
    "chat_template_path": "template.jinja",
    "dataset_text_field": "content",
    "dataset_kwargs": {"skip_prepare_dataset": True},
    "dataset_num_proc": 4,
    "eos_token": "<|im_end|>",
    "max_length": 24,
    "truncation_mode": "keep_end",
    "shuffle_dataset": True,
    "packing": True,
    "packing_strategy": "wrapped",
    "padding_free": True,
    "pad_to_multiple_of": 8,
    "eval_packing": True,
    "completion_only_loss": True,
    "assistant_only_loss": False,  # ATSFTConfig's default is True
    "loss_type": "dft",
    "activation_offloading": True,
    "pad_token": "<pad>",
}


def _config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], bf16=False)
    return ATSFTConfig(**{**base, **kw})


def test_the_table_covers_every_own_field_of_trl_sft_config():
    assert set(SFT_OWN) == set(SFT_FIELD_SUPPORT) == set(NON_DEFAULT), "TRL changed SFTConfig: update the table"
    for name in SFT_OWN:
        assert SFT_FIELD_SUPPORT[name].startswith(("implemented", "rejected")), name


@pytest.fixture(scope="module")
def alarm_model():
    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.testing import tiny_video_llm

    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    return add_alarm_tokens(model, processor), processor


@pytest.fixture(scope="module")
def sft_rows(tmp_path_factory):
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset

    root = tmp_path_factory.mktemp("sft_rows")
    make_synthetic_dataset(root, n=8, seed=0)
    records, _ = load_dataset_checked(root / "sft.jsonl", root, kind="sft")
    return root, records


def _effect_model_init_kwargs(tmp_path, value, monkeypatch, **_):
    import videosafety_r1.alarm as alarm
    from videosafety_r1.sft import build_sft_model

    seen = {}

    def fake_load(path, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(alarm, "load_pretrained", fake_load)
    with pytest.raises(RuntimeError, match="stop here"):
        build_sft_model(_config(tmp_path, model_name_or_path="m", model_init_kwargs=value))
    assert seen["revision"] == "main" and seen["low_cpu_mem_usage"] is True and seen["dtype"] == "auto"


def _effect_max_length(tmp_path, value, alarm_model, sft_rows, **_):
    from videosafety_r1.sft import build_sft_collator

    root, records = sft_rows
    model, processor = alarm_model
    args = _config(tmp_path, max_length=value, train_file=["x.jsonl"], data_root=[str(root)], video_fps=4.0)
    with pytest.raises(ValueError, match=f"exceed max_length={value}"):
        build_sft_collator(args, processor, model)(records[:2])
    batch = build_sft_collator(_config(tmp_path, train_file=["x"], data_root=[str(root)]), processor, model)
    assert batch(records[:2])["input_ids"].shape[1] > value  # the default 1024 lets the same rows through


def _effect_shuffle_dataset(tmp_path, value, alarm_model, **_):
    from videosafety_r1.sft import ATSFTTrainer

    model, processor = alarm_model
    rows = list(range(32))
    plain = ATSFTTrainer(model=model, args=_config(tmp_path), train_dataset=rows, processing_class=processor)
    shuffled = ATSFTTrainer(
        model=model,
        args=_config(tmp_path, shuffle_dataset=value, seed=3),
        train_dataset=rows,
        processing_class=processor,
    )
    assert plain.train_dataset == rows
    assert sorted(shuffled.train_dataset) == rows and shuffled.train_dataset != rows


EFFECTS = {
    "model_init_kwargs": _effect_model_init_kwargs,
    "max_length": _effect_max_length,
    "shuffle_dataset": _effect_shuffle_dataset,
}


@pytest.mark.parametrize("name", SFT_OWN)
def test_every_trl_sft_field_acts_or_is_rejected(name, tmp_path, monkeypatch, request):
    value = NON_DEFAULT[name]
    if name not in EFFECTS:  # the non-default value is rejected, naming the field and why / what instead
        assert "rejected: " in SFT_FIELD_SUPPORT[name], name
        with pytest.raises(ValueError, match=rf"{name}=.*: .*rejected: \w+"):
            _config(tmp_path, **{name: value})
        return
    fixtures = {"alarm_model": None, "sft_rows": None}
    for fixture in fixtures:
        fixtures[fixture] = request.getfixturevalue(fixture)
    EFFECTS[name](tmp_path, value, monkeypatch=monkeypatch, **fixtures)


def test_remove_unused_columns_true_is_rejected_not_flipped(tmp_path):
    with pytest.raises(ValueError, match="remove_unused_columns"):
        _config(tmp_path, remove_unused_columns=True)
    assert _config(tmp_path).remove_unused_columns is False


def test_trainer_fields_the_at_sft_loss_would_ignore_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="label_smoothing_factor=0.1: rejected"):
        _config(tmp_path, label_smoothing_factor=0.1)


def test_gradient_accumulation_divides_the_mean_losses(tmp_path):
    """The AT-SFT loss is a mean per micro-batch, so the Trainer must divide it by the accumulation steps."""
    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.sft import ATSFTTrainer
    from videosafety_r1.testing import tiny_video_llm

    model, processor = tiny_video_llm("qwen2_5_vl", seed=0)
    model = add_alarm_tokens(model, processor)
    args = _config(tmp_path, gradient_accumulation_steps=2)
    trainer = ATSFTTrainer(model=model, args=args, train_dataset=[0, 1], processing_class=processor)
    assert trainer.model_accepts_loss_kwargs is False


def test_model_init_kwargs_cannot_shadow_own_fields(tmp_path):
    with pytest.raises(ValueError, match="set the dtype field"):
        _config(tmp_path, model_init_kwargs={"torch_dtype": "float16"})


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"video_fps": -1.0}, "video_fps must be a finite number > 0"),
        ({"video_fps": float("inf")}, "video_fps must be a finite number > 0"),
        ({"video_max_frames": 0}, "video_max_frames"),
        ({"dtype": "fp16"}, "dtype must be one of"),
        ({"on_existing_output": "keep"}, "on_existing_output"),
        ({"train_file": ["a", "b", "c"], "data_root": ["r1", "r2"]}, "2 folders for 3"),
    ],
)
def test_own_fields_validated(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **kw)


def test_train_file_and_data_root_take_lists_or_one_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\ntrain_file: a.jsonl\ndata_root: data\n")
    one = load_config(ATSFTConfig, path, [])
    assert one.train_file == ["a.jsonl"] and one.data_root == ["data"]
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\ntrain_file: [a.jsonl, b.jsonl]\ndata_root: [ra, rb]\n")
    two = load_config(ATSFTConfig, path, [])
    assert two.train_file == ["a.jsonl", "b.jsonl"] and two.data_root == ["ra", "rb"]
    assert _config(tmp_path, train_file="x.jsonl", data_root="r").train_file == ["x.jsonl"]


def test_several_train_files_each_with_its_own_root(tmp_path):
    """Two data sets in different folders, both with relative media paths: each resolves against its own root."""
    from videosafety_r1.data import make_synthetic_dataset
    from videosafety_r1.sft import load_sft_datasets

    make_synthetic_dataset(tmp_path / "a", n=4, seed=0)
    make_synthetic_dataset(tmp_path / "b", n=4, seed=1)
    files = [str(tmp_path / "a" / "sft.jsonl"), str(tmp_path / "b" / "sft.jsonl")]
    train, _ = load_sft_datasets(_config(tmp_path, train_file=files, data_root=[str(tmp_path / n) for n in "ab"]))
    n_a = len((tmp_path / "a" / "sft.jsonl").read_text().splitlines())
    roots = [Path(r.media.root).name if r.media.path else None for r in train]
    assert len(train) == n_a + len((tmp_path / "b" / "sft.jsonl").read_text().splitlines())
    assert set(roots[:n_a]) - {None} == {"a"} and set(roots[n_a:]) - {None} == {"b"}
    assert all((Path(r.media.root) / r.media.path).exists() for r in train if r.media.path)


@pytest.mark.parametrize(
    "key, new", [("model_dtype", "dtype"), ("fps", "video_fps"), ("max_frames", "video_max_frames")]
)
def test_old_keys_are_rejected_naming_the_new_one(tmp_path, key, new):
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\n{key}: 1\n")
    with pytest.raises(ValueError, match=rf"c\.yaml, line \d+: key '{key}' was renamed to '{new}'"):
        load_config(ATSFTConfig, path, [])
    with pytest.raises(ValueError, match=f"renamed to '{new}'"):
        load_config(ATSFTConfig, None, [f"--{key}", "1"])


def test_shipped_sft_and_eval_configs_use_no_deprecated_key():
    from videosafety_r1.evaluation import EvalConfig

    files = [p for p in sorted((ROOT / "recipes" / "configs").rglob("*.yaml")) if p.stem != "grpo"]
    assert len(files) >= 10
    for path in files:
        cls = EvalConfig if path.stem == "evaluate" else ATSFTConfig
        extra = [] if cls is EvalConfig else ["--use_cpu", "true", "--bf16", "false"]
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", DeprecationWarning)
            load_config(cls, path, ["--output_dir", "/tmp/unused", *extra])


@pytest.mark.parametrize(
    "text, match",
    [
        ("max_steps: true\n", r"c\.yaml, line 3: 'max_steps' expects int, got bool True"),
        ("learning_rate: [1, 2]\n", r"c\.yaml, line 3: 'learning_rate' expects float, got list"),
        ("stage: 3\n", r"c\.yaml, line 3: 'stage' expects str, got int 3"),
        ("video_fps: {a: 1}\n", r"'video_fps' expects float"),
        ("train_file: [a.jsonl, [b.jsonl]]\n", r"'train_file' expects"),
    ],
)
def test_wrong_yaml_types_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\n{text}")
    with pytest.raises(ValueError, match=match):
        load_config(ATSFTConfig, path, [])


def test_wrong_types_in_grpo_config(tmp_path):
    from videosafety_r1.grpo import GRPOConfig

    path = tmp_path / "g.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\nnum_generations: [4, 8]\n")
    with pytest.raises(ValueError, match=r"g\.yaml, line \d+: 'num_generations' expects .*int.*, got list"):
        load_config(GRPOConfig, path, [])
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\nmax_steps: true\n")
    with pytest.raises(ValueError, match=r"g\.yaml, line \d+: 'max_steps' expects int"):
        load_config(GRPOConfig, path, [])


def test_recipe_loader_requires_model_and_train_file(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\ntrain_file: a.jsonl\n")
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(ATSFTConfig, ["--config", str(path)], "x", required=("model_name_or_path", "train_file"))
    assert exit_info.value.code == 2 and "c.yaml: 'model_name_or_path' must be set" in capsys.readouterr().err
    config, _ = parse_recipe_args(
        ATSFTConfig, ["--config", str(path), "--model_name_or_path", "m"], "x", ("train_file",)
    )
    assert config.model_name_or_path == "m"
    assert _config(tmp_path).model_name_or_path is None  # the dataclass stays usable without them


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config", "nope.yaml"], "config not found: nope.yaml"),
        (["--no_such_field", "1"], "unknown key 'no_such_field'"),
        (["--config", "EMPTY"], "the config is empty (no field set)"),
    ],
)
def test_recipe_loader_reports_bad_input_in_one_line(tmp_path, capsys, argv, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\n")
    (tmp_path / "empty.yaml").write_text("# only a comment\n\n")  # not HF's "bf16 not supported" on the defaults
    argv = [str(tmp_path / "empty.yaml") if a == "EMPTY" else a for a in argv]
    argv = argv if argv[0] == "--config" else ["--config", str(path), *argv]
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(ATSFTConfig, argv, "x")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "name", ["/no/such/folder", "./missing_model", "../missing_model", "~/missing_model", "a/b/c"]
)
def test_missing_model_folder(name):
    with pytest.raises(ValueError, match=r"folder not found: " + name.replace(".", r"\.")):
        check_model_path(name)


def test_hub_id_not_cached_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="not in the local cache"):
        check_model_path("some-org/some-model")
    (tmp_path / "config.json").write_text("{}")
    check_model_path(str(tmp_path))  # an existing checkpoint folder is fine


def test_recipe_checks_model_before_loading_data(tmp_path, refused):
    import runpy

    main = runpy.run_path(str(ROOT / "recipes" / "at_sft.py"), run_name="t")["main"]
    args = ["--config", str(ROOT / "recipes/configs/demo/atc.yaml"), "--output_dir", str(tmp_path / "o")]
    err = refused(main, [*args, "--model_name_or_path", "./nowhere", "--train_file", str(tmp_path / "missing.jsonl")])
    assert "at_sft.py: error: model_name_or_path: folder not found: ./nowhere" in err


@pytest.mark.parametrize("recipe", ["at_sft", "grpo", "evaluate"])
def test_recipe_help_lists_config_fields(recipe):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / f"{recipe}.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ["--config", "--model_name_or_path", "--video_fps", "--on_existing_output"]:
        assert flag in proc.stdout, (recipe, flag)
    if recipe != "evaluate":
        assert "--learning_rate" in proc.stdout and "--max_steps" in proc.stdout


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_vision_decides_whether_the_tower_trains(tmp_path, alarm_model, freeze):
    from videosafety_r1.alarm.model import is_vision_parameter

    model, _ = alarm_model
    for stage in ("atc", "cot"):
        model.apply_trainability(_config(tmp_path, stage=stage, freeze_vision=freeze).alarm_config(model.alarm_config))
        vision = [p.requires_grad for n, p in model.base.named_parameters() if is_vision_parameter(n)]
        assert vision and all(flag is (not freeze) for flag in vision)
    model.apply_trainability(_config(tmp_path, stage="atc").alarm_config(model.alarm_config))


def test_freeze_vision_is_saved_and_kept_by_the_next_stage(tmp_path, alarm_model):
    """The choice travels in alarm_config.json: a checkpoint trained with freeze_vision: false loads (as GRPO loads
    it) with a trainable tower, the default one with a frozen tower (docs/grpo.md, "Vision tower once")."""
    from videosafety_r1.alarm import load_pretrained, save_pretrained
    from videosafety_r1.alarm.model import is_vision_parameter

    model, processor = alarm_model
    try:
        for freeze in (False, True):
            model.apply_trainability(_config(tmp_path, freeze_vision=freeze).alarm_config(model.alarm_config))
            save_pretrained(model, tmp_path / f"ckpt{freeze}", processor)
            loaded, _ = load_pretrained(tmp_path / f"ckpt{freeze}")
            vision = [p.requires_grad for n, p in loaded.base.named_parameters() if is_vision_parameter(n)]
            assert vision and all(flag is (not freeze) for flag in vision), freeze
    finally:
        model.apply_trainability(_config(tmp_path, stage="atc").alarm_config(model.alarm_config))


def test_freeze_vision_false_with_lora_is_refused(tmp_path):
    with pytest.raises(ValueError, match="freeze_vision: false trains the whole vision tower.*use_lora: false"):
        _config(tmp_path, freeze_vision=False, use_lora=True)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number >= 0, got nan"),
        ({"learning_rate": -1e-3}, "learning_rate must be a finite number >= 0"),
        ({"per_device_train_batch_size": -2}, "per_device_train_batch_size must be >= 1"),
        ({"max_steps": -5}, "max_steps must be > 0, or -1"),  # Trainer read it as "train the epochs"
        ({"max_steps": 0}, "max_steps must be > 0, or -1"),
        ({"lora_r": 4}, "lora_r would be ignored: set use_lora: true"),
        ({"use_lora": True, "lora_dropout": 1.5}, "0 <= lora_dropout < 1; got 16, 32, 1.5"),
        ({"use_lora": True, "lora_r": 0}, "lora_r >= 1"),
        # AdamW checks only its defaults; these go into parameter groups and would train silently
        ({"alarm_learning_rate": -1.0}, "alarm_learning_rate must be a finite number >= 0, got -1.0"),
        ({"head_learning_rate": float("nan")}, "head_learning_rate must be a finite number >= 0, got nan"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0, got -1.0"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be >= 1, got 0"),  # ZeroDivisionError
        ({"seed": -1}, "seed must be >= 0, got -1"),  # numpy's set_seed traceback
        ({"alarm_init": "ones"}, "alarm_init must be one of ('zeros', 'mean', 'normal'), got 'ones'"),
        ({"gradient_checkpointing": True, "activation_checkpointing": False}, "contradict each other"),  # was silent
    ],
)
def test_values_torch_or_peft_would_fail_on_later_are_refused_at_load(tmp_path, kw, message):
    with pytest.raises(ValueError) as err:
        _config(tmp_path, **kw)
    assert message in str(err.value)


def test_grpo_config_refuses_the_same_training_values(tmp_path):
    from videosafety_r1.grpo import GRPOConfig

    for kw, message in [
        ({"learning_rate": -1.0}, "learning_rate must be"),
        ({"max_steps": -3}, "max_steps must"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
        (
            {"video_fps": float("nan")},
            "need video_fps a finite number > 0",
        ),  # was read as a decode failure of every video
        ({"gamma_visual": float("nan")}, "gamma_visual and gamma_textual must be >= 0"),  # every reward NaN
        ({"gradient_checkpointing": True, "activation_checkpointing": False}, "contradict each other"),
    ]:
        with pytest.raises(ValueError, match=message):
            GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kw)
