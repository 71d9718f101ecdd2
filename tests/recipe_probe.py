"""Run a recipe unchanged and print, on every rank, checksums of the trained weights (test plumbing, not the recipe's).

    accelerate launch tests/recipe_probe.py at_sft --config recipes/configs/demo/atc.yaml ...
    accelerate launch tests/recipe_probe.py grpo --config recipes/configs/demo/grpo.yaml ...

Right after `Trainer.train` returns (every rank, so ZeRO-3 can gather), each rank writes two lines,
`[<tag>] rank R/N parameter checksum X` and `[<tag>] rank R/N alarm checksum Y`, where tag is `at_sft:<stage>` or
`grpo`; tests/test_slow_sft.py and tests/test_slow_deepspeed.py parse them. As its last statement,
each rank writes `[done] rank R/N`: everything the run had to do is done (tests/launching.py).
"""

import runpy
import sys
from pathlib import Path

import transformers

from videosafety_r1 import zero3
from videosafety_r1.zero3 import parameter_checksum

ROOT = Path(__file__).resolve().parents[1]


def install_checksum_probe() -> None:
    """Wrap `transformers.Trainer.train` (the base of both recipes' trainers) to print the checksums after it."""
    original = transformers.Trainer.train

    def train(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        checksum = parameter_checksum(model)
        alarm = sum(float(v.double().sum()) for v in model.alarm_state_dict().values())
        stage = getattr(self.args, "stage", None)
        tag = f"at_sft:{stage}" if stage else "grpo"
        rank = f"rank {self.accelerator.process_index}/{self.accelerator.num_processes}"
        # one write per line, so the lines of several ranks sharing a pipe never interleave mid-line
        sys.stdout.write(f"[{tag}] {rank} parameter checksum {checksum:.12e}\n")
        sys.stdout.write(f"[{tag}] {rank} alarm checksum {alarm:.12e}\n")
        sys.stdout.flush()
        return output

    transformers.Trainer.train = train
    close = zero3.close_process_group

    def close_process_group() -> None:  # remember who we were: the rank is gone once the group is
        import torch.distributed as dist

        if dist.is_initialized():
            RANK[:] = [dist.get_rank(), dist.get_world_size()]
        close()

    zero3.close_process_group = close_process_group


RANK = [0, 1]  # [rank, world], set when the process group closes


def print_done() -> None:
    """`[done] rank R/N`: the last thing a probe does (tests/launching.py)."""
    sys.stdout.write(f"[done] rank {RANK[0]}/{RANK[1]}\n")
    sys.stdout.flush()


def run_recipe(name: str, argv: list[str]) -> dict:
    main = runpy.run_path(str(ROOT / "recipes" / f"{name}.py"), run_name="probe")["main"]
    return main(argv)


if __name__ == "__main__":
    install_checksum_probe()
    run_recipe(sys.argv[1], sys.argv[2:])
    print_done()
