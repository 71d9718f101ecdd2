"""The built-in CPU demo: tiny model + synthetic data through every stage of the method.

Launch:
    python recipes/demo.py --out demo_out

Steps: synthetic data (training seed 0, held-out seed 1) and a tiny random Qwen2.5-VL checkpoint, then AT-SFT
alarm init -> ATC -> CoT cold start (recipes/at_sft.py), Safety-GRPO (recipes/grpo.py), and an evaluation of the
final checkpoint on the synthetic HH / SH / SafeQ split (recipes/evaluate.py), all with recipes/configs/demo/*.yaml.
Prints where checkpoints, metrics and plots are.
"""

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "configs" / "demo"


def _run_recipe(script: str, config: str, out: Path, extra: list[str]) -> dict:
    """Run a sibling recipe's main() in this process, with demo_out/ paths pointed at `out`."""
    import runpy

    namespace = runpy.run_path(str(HERE / script), run_name="demo_step")
    text = (CONFIGS / config).read_text().replace("demo_out/", f"{out.as_posix()}/")
    patched = out / "configs" / config
    patched.parent.mkdir(parents=True, exist_ok=True)
    patched.write_text(text)
    return namespace["main"](["--config", str(patched), *extra])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="folder for data, checkpoints and metrics")
    parser.add_argument("--n", type=int, default=96, help="synthetic training clips")
    parser.add_argument("--family", default="qwen2_5_vl", help="tiny model family")
    parser.add_argument("--stages", default="alarm_init,atc,cot", help="comma-separated AT-SFT stages to run")
    parser.add_argument("--skip-grpo", action="store_true", help="stop after AT-SFT")
    parser.add_argument("--skip-eval", action="store_true", help="do not evaluate the final checkpoint")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from videosafety_r1.data import make_synthetic_dataset
    from videosafety_r1.testing import save_tiny_video_llm

    out = Path(args.out)
    start = time.time()
    make_synthetic_dataset(out / "data", n=args.n, seed=0)
    make_synthetic_dataset(out / "heldout", n=64, seed=1)
    save_tiny_video_llm(out / "base", args.family, seed=0)
    print(f"[demo] data in {out / 'data'}, held-out in {out / 'heldout'}, tiny base model in {out / 'base'}")
    for stage in args.stages.split(","):
        t = time.time()
        _run_recipe("at_sft.py", f"{stage}.yaml", out, [])
        print(f"[demo] AT-SFT {stage} done in {time.time() - t:.0f} s -> {out / stage / 'final'}")
    last = out / args.stages.split(",")[-1] / "final"
    if not args.skip_grpo:
        t = time.time()
        _run_recipe("grpo.py", "grpo.yaml", out, ["--model_name_or_path", str(last)])
        last = out / "grpo" / "final"
        print(
            f"[demo] Safety-GRPO done in {time.time() - t:.0f} s -> {last} (curve: {out / 'grpo' / 'reward_curve.png'})"
        )
    if not args.skip_eval:
        t = time.time()
        _run_recipe("evaluate.py", "evaluate.yaml", out, ["--model_name_or_path", str(last)])
        print(f"[demo] evaluation done in {time.time() - t:.0f} s -> {out / 'eval' / 'results.json'}")
    print(f"[demo] finished in {time.time() - start:.0f} s; checkpoints under {out}/<stage>/final")


if __name__ == "__main__":
    main(sys.argv[1:])
