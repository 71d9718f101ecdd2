"""Safety-GRPO recipe (stage 4): video-aware GRPO from an AT-SFT CoT checkpoint.

Launch:
    accelerate launch recipes/grpo.py --config recipes/configs/demo/grpo.yaml

Any config field can be overridden on the command line (`--beta 0.0`). Consumes a GRPO JSONL (see docs/data.md)
and the CoT cold-start checkpoint; writes Trainer checkpoints, `<output_dir>/final`, `<output_dir>/export`,
`completions.jsonl` samples and `reward_curve.png` (total reward and each term).
"""

import argparse
import logging
import os
import sys

import transformers
from transformers.trainer_utils import get_last_checkpoint

from videosafety_r1.alarm import export_plain_checkpoint, load_pretrained
from videosafety_r1.config import load_config
from videosafety_r1.data import load_dataset_checked
from videosafety_r1.evaluation.plots import plot_reward_curve
from videosafety_r1.grpo import GRPOConfig
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.zero3 import parameter_checksum, zero3_init_disabled

logger = logging.getLogger("grpo")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file of GRPOConfig fields")
    known, overrides = parser.parse_known_args(argv)
    args = load_config(GRPOConfig, known.config, overrides)

    # seed, logging
    transformers.set_seed(args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=args.get_process_log_level())
    transformers.utils.logging.set_verbosity(args.get_process_log_level())

    # last checkpoint
    last = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
    if last:
        logger.info("resuming from %s", last)

    # data, validated before any rollout
    on_bad_row = {"raise": "error"}.get(args.on_bad_row, args.on_bad_row)
    records, _ = load_dataset_checked(
        args.train_file,
        args.data_root,
        kind="grpo",
        on_bad_row=on_bad_row,
        video_fps=args.video_fps,  # decode as the rollouts will
        video_max_frames=args.video_max_frames,
    )

    # processor and model (alarm vectors stay frozen: GRPOConfig.freeze_alarm)
    model, processor = load_pretrained(args.model_name_or_path, **args.load_kwargs)

    # rewards come from args.reward_funcs / reward_weights; trainer
    trainer = VideoGRPOTrainer(model, args, train_dataset=records, processing_class=processor)

    # train / resume
    trainer.train(resume_from_checkpoint=last)

    # save: training form, plain export, reward curve
    final = os.path.join(args.output_dir, "final")
    trainer.save_model(final)
    trainer.accelerator.wait_for_everyone()
    history = trainer.reward_history
    # checksums of the whole weights (gathered under ZeRO-3, so every rank takes part)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    checksum = parameter_checksum(unwrapped)
    alarm_checksum = sum(float(v.double().sum()) for v in unwrapped.alarm_state_dict().values())
    rank = f"rank {trainer.accelerator.process_index}/{trainer.accelerator.num_processes}"
    # one write per line, so the lines of several ranks sharing a pipe never interleave mid-line
    sys.stdout.write(f"[grpo] {rank} parameter checksum {checksum:.12e}\n")
    sys.stdout.write(f"[grpo] {rank} alarm checksum {alarm_checksum:.12e}\n")
    sys.stdout.flush()
    if trainer.accelerator.is_main_process:
        with zero3_init_disabled():  # one rank reloads whole weights, even under DeepSpeed ZeRO-3
            reloaded, reloaded_processor = load_pretrained(final)
        export_plain_checkpoint(reloaded, reloaded_processor, os.path.join(args.output_dir, "export"))
        curve = os.path.join(args.output_dir, "reward_curve.png")
        plot = plot_reward_curve(history, curve, terms=trainer.reward_term_history)
        k = max(1, len(history) // 4)
        start = sum(v for _, v in history[:k]) / k
        end = sum(v for _, v in history[-k:]) / k
        print(f"[grpo] mean reward first {k} steps {start:.3f} -> last {k} steps {end:.3f}; plot {plot}")
        print(f"[grpo] checkpoint: {final}")
    return {"final": final, "reward_history": history, "checksum": checksum}


if __name__ == "__main__":
    main(sys.argv[1:])
    from videosafety_r1.zero3 import close_process_group

    close_process_group()  # every rank leaves together (one leaving alone can abort at exit)
