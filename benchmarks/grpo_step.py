"""GRPO step time: VideoGRPOTrainer vs TRL's GRPOTrainer (same tiny text-only model and settings), and our video
step with vs without the vision-once reuse. One run each, side by side; prints a table of ratios.

    OMP_NUM_THREADS=1 python benchmarks/grpo_step.py [--steps 6] [--generations 4] [--completion 16]
        [--vision-depth 8 --vision-hidden 256]   # a tower big enough for the reuse to matter
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402

COMMON = dict(
    learning_rate=1e-3,
    warmup_steps=0,
    logging_steps=1,
    report_to=[],
    save_strategy="no",
    use_cpu=True,
    gradient_checkpointing=False,
    disable_tqdm=True,
    beta=0.04,
    loss_type="grpo",
    temperature=1.0,
    top_p=0.95,
    seed=0,
)


def length_reward(completions, **kwargs):
    return [float(len(c)) / 10 for c in completions]


def save_text_model(path: Path) -> Path:
    """A tiny Qwen2 causal LM with the tiny tokenizer, saved so both trainers load it by path."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from videosafety_r1.testing import tiny_config, tiny_tokenizer

    tok = tiny_tokenizer()
    config = Qwen2Config(
        vocab_size=tiny_config("qwen2_5_vl", tok).text_config.vocab_size,  # the same padded vocabulary
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def step_time(trainer, steps: int) -> float:
    """Mean seconds per optimizer step, excluding the first (warm-up) step."""
    times = []
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    trainer.add_callback(Clock())
    trainer.train()
    return sum(times[1:]) / max(len(times) - 1, 1)


def text_runs(work: Path, steps: int, G: int, completion: int) -> tuple[float, float]:
    import datasets
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from videosafety_r1.grpo import GRPOConfig
    from videosafety_r1.grpo.trainer import VideoGRPOTrainer

    path = save_text_model(work / "text_model")
    tok = AutoTokenizer.from_pretrained(path)
    prompts = [f"describe the video clip number {i} and tell me what the person is doing there" for i in range(64)]
    size = dict(
        per_device_train_batch_size=2 * G, num_generations=G, max_completion_length=completion, max_steps=steps
    )

    trl_args = trl.GRPOConfig(output_dir=str(work / "trl"), **COMMON, **size)
    trl_trainer = trl.GRPOTrainer(
        model=str(path),
        reward_funcs=length_reward,
        args=trl_args,
        train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
    )
    t_trl = step_time(trl_trainer, steps)

    def collate(rows):
        batch = dict(tok([r["prompt"] for r in rows], return_tensors="pt", padding=True, padding_side="left"))
        batch["prompts"] = [r["prompt"] for r in rows]
        return batch

    ours_args = GRPOConfig(output_dir=str(work / "ours"), reward_funcs=["format"], **COMMON, **size)
    ours = VideoGRPOTrainer(
        AutoModelForCausalLM.from_pretrained(path),
        ours_args,
        train_dataset=[{"prompt": p} for p in prompts],
        processing_class=tok,
        reward_funcs=[length_reward],
        prompt_collator=collate,
    )
    return step_time(ours, steps), t_trl


def _video_model(vision_depth: int, vision_hidden: int) -> tuple[Any, Any]:
    """The tiny Qwen2.5-VL, or the same LLM with a wider/deeper vision tower (0 keeps the tiny tower): the reuse
    saves tower time, which the 32-wide, 2-block tiny tower barely has."""
    import transformers

    from videosafety_r1.testing import tiny_video_llm

    model, processor = tiny_video_llm("qwen2_5_vl")
    if not (vision_depth or vision_hidden):
        return model, processor
    vision = model.config.vision_config
    depth, hidden = vision_depth or vision.depth, vision_hidden or vision.hidden_size
    vision.depth, vision.hidden_size, vision.intermediate_size = depth, hidden, 2 * hidden
    vision.num_heads, vision.fullatt_block_indexes = max(2, hidden // 32), [depth - 1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        bigger = transformers.Qwen2_5_VLForConditionalGeneration(model.config)
    bigger.generation_config = model.generation_config
    return bigger.eval(), processor


def video_runs(
    work: Path, steps: int, G: int, completion: int, frames: int, vision_depth: int = 0, vision_hidden: int = 0
) -> tuple[float, float, int, int]:
    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
    from videosafety_r1.grpo import GRPOConfig
    from videosafety_r1.grpo.trainer import VideoGRPOTrainer
    from videosafety_r1.grpo.vision_cache import find_vision_module

    paths = make_synthetic_dataset(work / "data", 16, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], work / "data")
    results = []
    for reuse in (True, False):
        model, processor = _video_model(vision_depth, vision_hidden)
        model = add_alarm_tokens(model, processor)
        args = GRPOConfig(
            output_dir=str(work / f"video_{reuse}"),
            per_device_train_batch_size=2 * G,
            num_generations=G,
            max_completion_length=completion,
            max_steps=steps,
            data_root=str(work / "data"),
            video_fps=8.0,
            video_max_frames=frames,
            reuse_vision_features=reuse,
            **COMMON,
        )
        trainer = VideoGRPOTrainer(
            model, args, train_dataset=records, processing_class=processor, reward_funcs=[length_reward]
        )
        calls = []
        find_vision_module(trainer.model)[2].register_forward_hook(lambda m, a, o, calls=calls: calls.append(1))
        results.append((step_time(trainer, steps), len(calls)))
    return results[0][0], results[1][0], results[0][1], results[1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--completion", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--vision-depth", type=int, default=0, help="vision blocks (0: the tiny tower's 2)")
    parser.add_argument("--vision-hidden", type=int, default=0, help="vision width (0: the tiny tower's 32)")
    opts = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours, theirs = text_runs(work, opts.steps, opts.generations, opts.completion)
        reuse, no_reuse, calls_reuse, calls_plain = video_runs(
            work, opts.steps, opts.generations, opts.completion, opts.frames, opts.vision_depth, opts.vision_hidden
        )
    print(
        f"\nGRPO step time, {opts.steps} steps (first excluded), G={opts.generations}, 2 prompts/step, "
        f"{opts.completion} new tokens, beta=0.04, CPU, {torch.get_num_threads()} thread(s)"
    )
    print(f"{'comparison':<44}{'ours s/step':>12}{'baseline s/step':>17}{'ratio':>8}")
    print(f"{'text-only: VideoGRPOTrainer vs trl.GRPOTrainer':<44}{ours:>12.3f}{theirs:>17.3f}{ours / theirs:>8.2f}")
    print(f"{'video: vision reuse vs no reuse':<44}{reuse:>12.3f}{no_reuse:>17.3f}{reuse / no_reuse:>8.2f}")
    tower = f"depth {opts.vision_depth or 2}, width {opts.vision_hidden or 32}"
    print(f"vision-tower calls over the run ({tower}): {calls_reuse} with reuse, {calls_plain} without")


if __name__ == "__main__":
    main()
