"""Every file under launch/ parses, and the accelerate configs pass accelerate's own schema and launch checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
YAMLS = sorted(LAUNCH.rglob("*.yaml")) + sorted(LAUNCH.rglob("*.yml"))
JSONS = sorted(LAUNCH.rglob("*.json"))
ACCELERATE_YAMLS = sorted(LAUNCH.glob("*.yaml"))
SBATCH = sorted(LAUNCH.rglob("*.sbatch"))
EXPECTED = ["single_gpu", "ddp", "zero2", "zero3", "zero3_offload", "multi_node"]
EXPECTED += ["cpu_2proc", "cpu_zero2", "cpu_zero3"]  # CPU, 2 processes over gloo

# accelerate ignores (and, with a config file, rejects) these when `deepspeed_config_file` is set:
# accelerate.utils.dataclasses.DeepSpeedPlugin._deepspeed_config_checks
DS_FILE_EXCLUSIVE = {
    "gradient_accumulation_steps",
    "gradient_clipping",
    "zero_stage",
    "offload_optimizer_device",
    "offload_param_device",
    "offload_param_nvme_path",
    "offload_optimizer_nvme_path",
    "zero3_save_16bit_model",
}
# Trainer fills "auto" for these only from model.config.hidden_size, which a multimodal wrapper lacks
HIDDEN_SIZE_KEYS = ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_expected_files_exist():
    for name in EXPECTED:
        assert (LAUNCH / f"{name}.yaml").is_file(), name
    for name in ("zero2", "zero3", "zero3_offload", "cpu_zero2", "cpu_zero3"):
        assert (LAUNCH / "deepspeed" / f"{name}.json").is_file(), name
    assert (LAUNCH / "slurm" / "train.sbatch").is_file()


@pytest.mark.parametrize("path", YAMLS, ids=_ids(YAMLS))
def test_yaml_parses_and_documents_its_launch_command(path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    text = path.read_text()
    assert text.startswith("#"), "every YAML starts with a comment saying what it is for"
    assert "accelerate launch" in text and f"--config_file launch/{path.name}" in text


@pytest.mark.parametrize("path", ACCELERATE_YAMLS, ids=_ids(ACCELERATE_YAMLS))
def test_accelerate_config_schema(path, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    config = load_config_from_file(str(path))  # unknown top-level keys raise here
    assert isinstance(config, ClusterConfig)
    assert config.num_processes >= 1 and config.num_machines >= 1

    # every nested key must be a real `accelerate launch` option, or accelerate silently ignores it
    parser = launch_command_parser()
    options = {s.lstrip("-") for action in parser._actions for s in action.option_strings}
    for key in config.deepspeed_config:
        assert key in options, f"{path.name}: deepspeed_config.{key} is not an accelerate option"

    ds_file = config.deepspeed_config.get("deepspeed_config_file")
    if ds_file is not None:
        assert (ROOT / ds_file).is_file(), f"{path.name}: {ds_file} does not exist (relative to the repo root)"
        clash = DS_FILE_EXCLUSIVE & set(config.deepspeed_config)
        assert not clash, f"{path.name}: {sorted(clash)} belong in the DeepSpeed JSON"
        assert config.mixed_precision is None, f"{path.name}: mixed_precision clashes with deepspeed_config_file"

    # accelerate's own launch-time validation (consistency of processes, machines, gpu ids, precision)
    monkeypatch.chdir(ROOT)
    args = parser.parse_args(["--config_file", str(path), "train.py"])
    args, defaults, _ = _validate_launch_command(args)
    assert args.num_processes == config.num_processes
    if path.name == "cpu_2proc.yaml":
        # the multi-GPU launcher (torchrun) with CPU processes: `--cpu --num_processes 2` would start only one
        assert args.multi_gpu and args.use_cpu and args.num_processes == 2 and not args.cpu
    if path.name.startswith("cpu_zero"):
        # the DeepSpeed launcher (torchrun inside), CPU processes; tests/test_slow_deepspeed.py runs these for real
        assert args.use_deepspeed and args.use_cpu and args.num_processes == 2 and not args.cpu


@pytest.mark.parametrize("path", JSONS, ids=_ids(JSONS))
def test_deepspeed_json(path):
    config = json.loads(path.read_text())
    assert isinstance(config, dict)
    if path.parent.name != "deepspeed":
        return
    zero = config["zero_optimization"]
    assert config["bf16"]["enabled"] == "auto"
    for key in HIDDEN_SIZE_KEYS:
        assert zero.get(key, 0) != "auto", f"{path.name}: {key} must be explicit (wrapper config has no hidden_size)"
    assert "optimizer" not in config, "a DeepSpeed optimizer would drop the Trainer's parameter groups"
    if zero["stage"] == 3:
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    if path.stem.startswith("cpu_"):
        # torch AdamW (no compiled DeepSpeed optimizer on CPU); ZeRO-3 shards even the tiny test models
        assert config["zero_force_ds_cpu_optimizer"] is False and config["zero_allow_untested_optimizer"] is True
        if zero["stage"] == 3:
            assert zero["stage3_param_persistence_threshold"] == 0
    if "offload" in path.stem:
        assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
        assert config["zero_force_ds_cpu_optimizer"] is False  # the Trainer's torch AdamW steps on CPU


@pytest.mark.parametrize("path", sorted((LAUNCH / "deepspeed").glob("*.json")), ids=lambda p: p.name)
@pytest.mark.deepspeed
def test_deepspeed_json_against_deepspeed(path):
    """DeepSpeed's pydantic models reject unknown or mistyped keys; runs only where deepspeed is installed."""
    from deepspeed.runtime.config import DeepSpeedConfig

    config = json.loads(path.read_text())
    config.update(
        train_batch_size=8, train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=8, gradient_clipping=1.0
    )
    config["bf16"]["enabled"], config["fp16"]["enabled"] = True, False
    DeepSpeedConfig(config)


@pytest.mark.parametrize("path", SBATCH, ids=_ids(SBATCH))
def test_sbatch_syntax(path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    result = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert "#SBATCH" in text and "accelerate launch" in text
    if path.name == "train.sbatch":  # the multi-node one; grpo_vllm_server.sbatch is one node by design
        for needed in ("SLURM_NODEID", "scontrol show hostnames", "--machine_rank", "--main_process_ip", "srun"):
            assert needed in text, needed
