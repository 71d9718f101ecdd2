"""Safety-GRPO recipe (stage 4): video-aware GRPO from an AT-SFT CoT checkpoint.

Launch:
    accelerate launch recipes/grpo.py --config recipes/configs/demo/grpo.yaml

Any config field can be overridden on the command line (`--beta 0.0`); `--help` lists them. Consumes a GRPO JSONL
(see docs/data.md) and the CoT cold-start checkpoint; writes Trainer checkpoints, `<output_dir>/final`,
`<output_dir>/export`, `completions.jsonl` samples, `reward_curve.png` (total reward and each term),
`train_results.json` and `run_fingerprint.json`. Rerunning into the same `output_dir` resumes the run when its
config matches, and refuses otherwise (`on_existing_output`, docs/training.md).
"""

import logging
import os
import sys

import transformers

from videosafety_r1.alarm import load_pretrained
from videosafety_r1.config import check_model_path, parse_recipe_args
from videosafety_r1.errors import exit_on_input_error
from videosafety_r1.evaluation.plots import plot_reward_curve
from videosafety_r1.grpo import GRPOConfig
from videosafety_r1.grpo.trainer import VideoGRPOTrainer
from videosafety_r1.runs import finish_run, load_train_files, resume_checkpoint

logger = logging.getLogger("grpo")


def main(argv: list[str] | None = None) -> dict:
    args, _ = parse_recipe_args(GRPOConfig, argv, __doc__, required=("model_name_or_path", "train_file"))
    transformers.set_seed(args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=args.get_process_log_level())
    transformers.utils.logging.set_verbosity(args.get_process_log_level())

    # everything checkable before the model loads, and the data before the output folder is touched; bad input is
    # one message and exit 2
    with exit_on_input_error("grpo.py"):
        check_model_path(args.model_name_or_path)
        sampling = {"video_fps": args.video_fps, "video_max_frames": args.video_max_frames}  # decode as rollouts will
        records = load_train_files(
            args.train_file, args.data_root, kind="grpo", on_bad_row=args.on_bad_row, **sampling
        )
        last = resume_checkpoint(args, is_main_process=args.process_index == 0)

    # alarm vectors stay frozen (GRPOConfig.freeze_alarm); rewards come from args.reward_funcs / reward_weights
    model, processor = load_pretrained(args.model_name_or_path, **args.load_kwargs)
    trainer = VideoGRPOTrainer(model, args, train_dataset=records, processing_class=processor)
    train_output = trainer.train(resume_from_checkpoint=last)
    final = finish_run(trainer, train_output, export_plain=args.export_plain)

    history = trainer.reward_history
    if trainer.accelerator.is_main_process:
        curve = plot_reward_curve(
            history, os.path.join(args.output_dir, "reward_curve.png"), terms=trainer.reward_term_history
        )
        k = max(1, len(history) // 4)
        start, end = sum(v for _, v in history[:k]) / k, sum(v for _, v in history[-k:]) / k
        print(f"[grpo] mean reward first {k} steps {start:.3f} -> last {k} steps {end:.3f}; plot {curve}")
        print(f"[grpo] checkpoint: {final}")
    return {"final": str(final), "reward_history": history}


if __name__ == "__main__":
    main(sys.argv[1:])
