"""AT-SFT recipe: one stage (alarm_init, atc or cot) of alarm-token supervised fine-tuning.

Launch:
    accelerate launch recipes/at_sft.py --config recipes/configs/demo/atc.yaml

Any config field can be overridden on the command line (`--learning_rate 1e-5`); `--help` lists them. Consumes
JSONL files of SFT rows (see docs/data.md) and a base or alarm checkpoint; writes Trainer checkpoints,
`<output_dir>/final` (the format the next stage and GRPO load), `<output_dir>/export` (a plain transformers
checkpoint), `train_results.json` / `eval_results.json` and `run_fingerprint.json`. Rerunning into the same
`output_dir` resumes the run when its config matches, and refuses otherwise (`on_existing_output`, docs/training.md).
"""

import logging
import sys

import transformers

from videosafety_r1.config import check_model_path, parse_recipe_args
from videosafety_r1.errors import exit_on_input_error
from videosafety_r1.runs import finish_run, resume_checkpoint
from videosafety_r1.sft import ATSFTConfig, ATSFTTrainer, build_sft_collator, build_sft_model, load_sft_datasets

logger = logging.getLogger("at_sft")


def main(argv: list[str] | None = None) -> dict:
    args, _ = parse_recipe_args(ATSFTConfig, argv, __doc__, required=("model_name_or_path", "train_file"))
    transformers.set_seed(args.seed)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=args.get_process_log_level())
    transformers.utils.logging.set_verbosity(args.get_process_log_level())

    # everything checkable before the model loads, and the data before the output folder is touched; bad input is
    # one message and exit 2
    with exit_on_input_error("at_sft.py"):
        check_model_path(args.model_name_or_path)
        train, evaluation = load_sft_datasets(args)
        last = resume_checkpoint(args, is_main_process=args.process_index == 0)

    model, processor = build_sft_model(args)
    trainer = ATSFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=build_sft_collator(args, processor, model),
        processing_class=processor,
    )
    metrics = {}
    if evaluation is not None and args.stage == "atc":
        if trainer.is_deepspeed_enabled:
            # evaluate() before train() leaves DeepSpeed unable to train (huggingface/transformers#44889): evaluate
            # at step 0 inside train() instead
            args.eval_on_start = True
        else:
            metrics["eval_before"] = trainer.evaluate()
    train_output = trainer.train(resume_from_checkpoint=last)
    if args.eval_on_start and evaluation is not None:
        metrics["eval_before"] = next(h for h in trainer.state.log_history if "eval_runtime" in h)
    if evaluation is not None:
        metrics["eval"] = trainer.evaluate()
    final = finish_run(trainer, train_output, export_plain=args.export_plain, metrics=metrics)

    if trainer.accelerator.is_main_process:
        for when, key in (("before", "eval_before"), ("after", "eval")):
            if key in metrics:
                shown = {k: round(v, 3) for k, v in metrics[key].items() if "acc/" in k or "loss/lm" in k}
                print(f"[at_sft:{args.stage}] {when}: {shown}")
        print(f"[at_sft:{args.stage}] checkpoint: {final}")
    return {"before": metrics.get("eval_before"), "after": metrics.get("eval"), "final": str(final)}


if __name__ == "__main__":
    main(sys.argv[1:])
