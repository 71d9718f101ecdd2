"""The vLLM colocate start export of a DeepSpeed ZeRO-3 partitioned model, on two CPU processes.

Launched by tests/test_zero3_vllm_export.py with `accelerate launch --config_file launch/cpu_zero3.yaml`; argument:
an output folder. Both ranks build the same tiny alarm model (plain, then with a LoRA adapter); rank 0 writes the
plain export of the whole model as the reference; then the model is partitioned with `deepspeed.zero.Init` and both
ranks call the colocate start export (`_engine_export`, as `build_vllm_generator` does) and the pushed weights
(`engine_weights`). Each rank prints `[zero3-export] rank R/N {json}`: whether the parameters were partitioned,
which export folders exist, and (rank 0) every file and tensor that differs from the reference.
"""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from safetensors.torch import load_file

from videosafety_r1.alarm import add_alarm_tokens, export_plain_checkpoint
from videosafety_r1.grpo.vllm_generator import _engine_export
from videosafety_r1.grpo.vllm_weights import engine_weights
from videosafety_r1.testing import tiny_video_llm
from videosafety_r1.zero3 import any_partitioned, zero3_init_disabled

DS_CONFIG = {"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}, "train_batch_size": 2}


def build(lora: bool):
    torch.manual_seed(0)
    with zero3_init_disabled():
        base, processor = tiny_video_llm("qwen2_5_vl", 0)
    if lora:
        from peft import LoraConfig, get_peft_model

        base = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    model = add_alarm_tokens(base, processor)
    with torch.no_grad():
        model.alarm_embedding.weight.normal_()  # distinct alarm rows: the bake is visible in the export
    return model, processor


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def compare(ref: Path, got: Path) -> list[str]:
    """Every difference between two exports: file names, JSON files, safetensors contents."""
    problems = []
    ref_files = {p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file()}
    got_files = {p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()}
    if ref_files != got_files:
        problems.append(
            f"files: only reference {sorted(ref_files - got_files)}, only ZeRO-3 {sorted(got_files - ref_files)}"
        )
    for name in sorted(ref_files & got_files):
        if name.endswith(".json") and json.loads((ref / name).read_text()) != json.loads((got / name).read_text()):
            problems.append(f"{name} differs")
    for sub in ("", "alarm"):
        a, b = tensors(ref / sub), tensors(got / sub)
        if sorted(a) != sorted(b):
            problems.append(f"{sub or 'top'} tensor names differ: {sorted(set(a) ^ set(b))[:5]}")
        problems += [f"{sub or 'top'}/{k} differs" for k in sorted(set(a) & set(b)) if not torch.equal(a[k], b[k])]
    return problems


def main(out: Path) -> None:
    import deepspeed

    state = PartialState(cpu=True)  # as TrainingArguments(use_cpu=True) sets it up: gloo over the launcher's ranks
    report: dict = {}
    for lora in (False, True):
        tag = "lora" if lora else "plain"
        model, processor = build(lora)
        reference = out / tag / "reference"
        if state.is_main_process:
            export_plain_checkpoint(model, processor, reference)
        whole = {n: t.clone() for n, t in engine_weights(model)}
        with deepspeed.zero.Init(module=model, config_dict_or_path=DS_CONFIG):
            pass
        partitioned = any_partitioned(model)
        folder = Path(_engine_export(model, processor, str(out / tag), state.process_index))
        pushed = dict(engine_weights(model))  # the weight push under ZeRO-3: every rank gathers
        entry = {
            "partitioned": partitioned,
            "still_partitioned": any_partitioned(model),
            "folder": folder.name,
            "folders": sorted(p.name for p in (out / tag / "vllm-engine").iterdir()),
            "push_matches": sorted(pushed) == sorted(whole) and all(torch.equal(pushed[k], whole[k]) for k in whole),
        }
        if state.is_main_process:
            entry["differences"] = compare(reference, folder)
        report[tag] = entry
    print(f"[zero3-export] rank {state.process_index}/{state.num_processes} {json.dumps(report)}", flush=True)
    state.wait_for_everyone()
    rank, world = state.process_index, state.num_processes
    state.destroy_process_group()
    print(f"[done] rank {rank}/{world}", flush=True)  # the last statement (tests/launching.py)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
