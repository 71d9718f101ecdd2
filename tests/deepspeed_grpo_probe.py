"""recipes/grpo.py, run unchanged (through tests/recipe_probe.py, which prints the weight checksums), plus a record of what the policy looks like while it generates.

Launched by tests/test_slow_deepspeed.py with `accelerate launch --config_file launch/cpu_zero{2,3}.yaml`; every
argument goes to the recipe. Each rank prints one line: `[probe] rank R/N {json}` with, per generation call, whether
every parameter was whole (ZeRO-3 gathered) and the alarm vectors seen, whether parameters were partitioned again
after training (ZeRO-3 really shards them), and, where the run wrote checkpoints, the gathered checksum after
`VideoGRPOTrainer._load_from_checkpoint` reloaded the earliest one into the trained model.
"""

import json
import sys
from pathlib import Path

import torch
from recipe_probe import install_checksum_probe, print_done, run_recipe  # tests/ is this script's folder

from videosafety_r1 import rollout, zero3
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.zero3 import parameter_checksum

calls: list[dict] = []
seen: list[torch.nn.Module] = []
trainers: list[VideoGRPOTrainer] = []
original = rollout.HFGenerator.__call__
original_train = VideoGRPOTrainer.train


def recording(self, model, inputs):
    params = list(model.parameters())
    calls.append(
        {
            "whole": all(p.numel() == getattr(p, "ds_numel", p.numel()) > 0 for p in params),
            "alarm_sum": float(model.alarm_embedding.weight.detach().double().sum()),
            "alarm_numel": model.alarm_embedding.weight.numel(),
        }
    )
    if not seen:
        seen.append(model)
    return original(self, model, inputs)


def recording_train(self, *args, **kwargs):
    trainers.append(self)
    return original_train(self, *args, **kwargs)


rollout.HFGenerator.__call__ = recording
VideoGRPOTrainer.train = recording_train
install_checksum_probe()
close_process_group = zero3.close_process_group  # the probe's wrapper: remembers the rank, then closes
zero3.close_process_group = lambda: None  # the recipe's finish_run would end the group; the reload below needs it
run_recipe("grpo", sys.argv[1:])

rank, world = 0, 1
if torch.distributed.is_initialized():
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
after = [p.numel() == 0 and getattr(p, "ds_numel", 0) > 0 for p in seen[0].parameters()] if seen else []
summary = {"calls": calls, "partitioned_after": bool(after) and all(after)}
trainer = trainers[0]
checkpoints = sorted(Path(trainer.args.output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
if checkpoints:  # after the recipe saved final/: a collective under ZeRO-3, so every rank reloads
    trainer._load_from_checkpoint(str(checkpoints[0]))
    checksum = parameter_checksum(trainer.accelerator.unwrap_model(trainer.model))
    summary["reloaded"] = {"checkpoint": checkpoints[0].name, "checksum": checksum}
sys.stdout.write(f"[probe] rank {rank}/{world} {json.dumps(summary)}\n")
sys.stdout.flush()
close_process_group()  # as the recipes' __main__ blocks
print_done()
