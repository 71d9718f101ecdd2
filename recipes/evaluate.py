"""Evaluate a checkpoint on a safety benchmark: generate, judge the <answer> span, score DSR / ASR / FRR and the
alarm heads, and write samples.jsonl, results.json, CSV tables and plots (docs/evaluation.md).

Launch (one process, or N with --num_processes N: rows are sharded by rank and merged by rank 0):
    accelerate launch recipes/evaluate.py --config recipes/configs/demo/evaluate.yaml

Any EvalConfig field can be overridden after the config, e.g. ``--model_name_or_path demo_out/cot/final`` or
``--text_only_pass false``; ``--help`` lists them. A killed run resumes: launch the same command again. A rerun into
an ``output_dir`` that holds another model's or other settings' samples is refused (``on_existing_output``).
"""

from __future__ import annotations

import logging
import sys

from transformers import set_seed

from videosafety_r1.config import check_model_path, parse_recipe_args
from videosafety_r1.errors import exit_on_input_error
from videosafety_r1.evaluation import EvalConfig, distributed_state, format_table, run_evaluation, summary_rows
from videosafety_r1.zero3 import close_process_group

logger = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> dict:
    config, _ = parse_recipe_args(EvalConfig, argv, __doc__, required=("model_name_or_path", "eval_file"))
    state = distributed_state()
    logging.basicConfig(
        level=logging.INFO if state.is_main_process else logging.WARNING,
        format=f"%(asctime)s [rank {state.process_index}] %(levelname)s %(name)s: %(message)s",
    )
    with exit_on_input_error("evaluate.py"):  # bad input (model path, data, output folder): one message, exit 2
        check_model_path(config.model_name_or_path)
        set_seed(config.seed)
        logger.info("evaluating %s on %s -> %s", config.model_name_or_path, config.eval_file, config.output_dir)
        results = run_evaluation(config)

    if state.is_main_process:
        metrics = results["metrics"]
        print(format_table(summary_rows(metrics)))
        for head, m in (metrics.get("alarm") or {}).items():
            print(f"alarm head {head}: AUROC {m.get('auroc')}, F1 {m.get('f1')}, ECE {m.get('ece')}")
        print(f"results: {config.output_dir}/results.json")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
    close_process_group()  # every rank leaves together (one leaving alone can abort at exit)
