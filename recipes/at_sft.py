"""AT-SFT recipe: one stage (alarm_init, atc or cot) of alarm-token supervised fine-tuning.

Launch:
    accelerate launch recipes/at_sft.py --config recipes/configs/demo/atc.yaml

Any config field can be overridden on the command line (`--learning_rate 1e-5`). Consumes a JSONL of SFT rows (see
docs/data.md) and a base or alarm checkpoint; writes Trainer checkpoints, `<output_dir>/final` (the format the next
stage and GRPO load) and `<output_dir>/export` (a plain transformers checkpoint).
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
from videosafety_r1.data.collate import MediaLoader, SFTCollator, with_absolute_media
from videosafety_r1.sft import ATSFTConfig, ATSFTTrainer, build_sft_model
from videosafety_r1.zero3 import parameter_checksum, zero3_init_disabled

logger = logging.getLogger("at_sft")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file of ATSFTConfig fields")
    known, overrides = parser.parse_known_args(argv)
    args = load_config(ATSFTConfig, known.config, overrides)

    # seed, logging
    transformers.set_seed(args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=args.get_process_log_level())
    transformers.utils.logging.set_verbosity(args.get_process_log_level())

    # last checkpoint
    last = None
    if os.path.isdir(args.output_dir):
        last = get_last_checkpoint(args.output_dir)
        if last:
            logger.info("resuming from %s", last)

    # data, validated before any training starts
    sampling = {"video_fps": args.video_fps, "video_max_frames": args.video_max_frames}  # read as training will
    train, report = load_dataset_checked(
        args.train_file, args.data_root, kind="sft", on_bad_row=args.on_bad_row, **sampling
    )
    logger.info("training rows: %d (%s)", len(train), report.summary().splitlines()[0] if report.problems else "clean")
    evaluation = None
    if args.eval_file:
        eval_root = args.eval_data_root or args.data_root
        evaluation, _ = load_dataset_checked(
            args.eval_file, eval_root, kind="sft", on_bad_row=args.on_bad_row, **sampling
        )
        evaluation = with_absolute_media(evaluation, eval_root)

    # processor and model
    model, processor = build_sft_model(args)
    collator = SFTCollator(
        processor,
        MediaLoader(args.data_root, args.video_fps, args.video_max_frames),
        alarm_config=model.alarm_config,
        max_length=args.max_length,
        truncation=args.truncation,
    )

    # trainer
    trainer = ATSFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        processing_class=processor,
    )
    results = {}
    if evaluation is not None and args.stage == "atc":
        if trainer.is_deepspeed_enabled:
            # evaluate() before train() leaves DeepSpeed unable to train (huggingface/transformers#44889): evaluate
            # at step 0 inside train() instead
            args.eval_on_start = True
        else:
            results["before"] = trainer.evaluate()

    # train / resume
    trainer.train(resume_from_checkpoint=last)
    if args.eval_on_start and evaluation is not None:
        results["before"] = next(h for h in trainer.state.log_history if "eval_runtime" in h)
    if evaluation is not None:
        results["after"] = trainer.evaluate()

    # save: the training form, then a plain export built from it
    final = os.path.join(args.output_dir, "final")
    trainer.save_model(final)
    trainer.accelerator.wait_for_everyone()
    if args.export_plain and trainer.accelerator.is_main_process:
        with zero3_init_disabled():  # one rank reloads whole weights, even under DeepSpeed ZeRO-3
            reloaded, reloaded_processor = load_pretrained(final)
        export_plain_checkpoint(reloaded, reloaded_processor, os.path.join(args.output_dir, "export"))
    results["final"] = final
    # checksums of the whole weights (gathered under ZeRO-3, so every rank takes part)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    checksum = parameter_checksum(unwrapped)
    alarm_checksum = sum(float(v.double().sum()) for v in unwrapped.alarm_state_dict().values())
    rank = f"rank {trainer.accelerator.process_index}/{trainer.accelerator.num_processes}"
    # one write per line, so the lines of several ranks sharing a pipe never interleave mid-line
    sys.stdout.write(f"[at_sft:{args.stage}] {rank} parameter checksum {checksum:.12e}\n")
    sys.stdout.write(f"[at_sft:{args.stage}] {rank} alarm checksum {alarm_checksum:.12e}\n")
    sys.stdout.flush()
    results["checksum"] = checksum
    if trainer.accelerator.is_main_process:
        for when in ("before", "after"):
            if when in results:
                acc = {k: round(v, 3) for k, v in results[when].items() if "acc/" in k or "loss/lm" in k}
                print(f"[at_sft:{args.stage}] {when}: {acc}")
        print(f"[at_sft:{args.stage}] checkpoint: {final}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
    from videosafety_r1.zero3 import close_process_group

    close_process_group()  # every rank leaves together (one leaving alone can abort at exit)
