"""Shared fixtures: one thread, offline, and tiny models built from configs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
torch.set_num_threads(1)

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl", "video_llama_3"]

# Optional extras: tests marked with one skip, naming the install command, where the extra is absent (the README's
# `make test` installs none); `.ci/run` installs them afterwards and runs these tests on their own.
EXTRAS = {"deepspeed": "make install EXTRAS=dev,deepspeed"}


def pytest_collection_modifyitems(config, items):
    import importlib.util

    for extra, command in EXTRAS.items():
        if importlib.util.find_spec(extra) is not None:
            continue
        skip = pytest.mark.skip(reason=f"needs the optional {extra!r} extra: {command}")
        for item in items:
            if extra in item.keywords:
                item.add_marker(skip)


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """One saved tiny Qwen2.5-VL checkpoint shared by every test that loads from disk."""
    from videosafety_r1.testing import save_tiny_video_llm

    return save_tiny_video_llm(tmp_path_factory.mktemp("tiny_ckpt"), "qwen2_5_vl", seed=0)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """One run of the README demo command's script, shared by every slow test that needs trained checkpoints:
    returns (output folder, stdout, wall seconds).

    ``.ci/run`` has already run ``make demo`` (the README command, default seed) as a newcomer would: it passes that
    run's folder, log and seconds in ``VSR_DEMO_OUT`` / ``VSR_DEMO_LOG`` / ``VSR_DEMO_SECONDS`` so the slow suite
    checks that run instead of training the same models again."""
    root = Path(__file__).resolve().parents[1]
    reused = os.environ.get("VSR_DEMO_OUT")
    if reused and (Path(reused) / "summary.json").is_file():
        stdout = Path(os.environ["VSR_DEMO_LOG"]).read_text(encoding="utf-8")
        return Path(reused), stdout, float(os.environ.get("VSR_DEMO_SECONDS", "nan"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    out = tmp_path_factory.mktemp("demo")
    start = time.time()
    proc = subprocess.run(
        [sys.executable, str(root / "recipes" / "demo.py"), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout, time.time() - start


@pytest.fixture(scope="session")
def grpo_data(tmp_path_factory):
    """(data root, GRPO records) of a 4-clip synthetic dataset, shared by the GRPO option and consistency tests."""
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset

    root = tmp_path_factory.mktemp("grpo_data")
    paths = make_synthetic_dataset(root, 4, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], root)
    return root, records


@pytest.fixture
def refused(capsys):
    """``refused(main, argv) -> stderr``: a recipe's ``main`` must stop on bad input with exit status 2 and one
    message (``videosafety_r1.errors.exit_on_input_error``), no traceback."""

    def run(main, argv):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "Traceback" not in err, err
        return err

    return run
