"""``EvalConfig``: everything one evaluation run needs, loadable from YAML with ``load_config``.

A plain dataclass (no trainer is involved), grouped by concern: model, data, generation, judge, statistics, outputs.
The whole config is written into ``results.json`` so a number can be traced to the run that produced it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from videosafety_r1.evaluation.metrics import HARMFUL_SPLITS
from videosafety_r1.refusal import KEYWORD_LISTS
from videosafety_r1.runs import ON_EXISTING_OUTPUT

__all__ = ["EvalConfig", "JUDGES", "PROMPT_FORMATS"]

JUDGES = ("keyword", "transformers", "http")
PROMPT_FORMATS = ("query", "reasoning")


@dataclass
class EvalConfig:
    """Settings of ``run_evaluation``; validated in ``__post_init__`` so a bad value fails before the model loads.

    ``model_name_or_path`` and ``eval_file`` may stay empty in Python (``run_evaluation`` then needs a model object,
    and raises without ``eval_file``); ``recipes/evaluate.py`` requires both.
    """

    renamed_fields: ClassVar[dict[str, str]] = {"fps": "video_fps", "max_frames": "video_max_frames"}

    # --- model -------------------------------------------------------------------------------------------------
    model_name_or_path: str = field(
        default="",
        metadata={"help": "Checkpoint to evaluate: an alarm-token checkpoint, a plain export or any base Video LLM."},
    )
    eval_file: str = field(default="", metadata={"help": "Benchmark JSONL in the canonical eval format."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto (as saved), bfloat16, float16, float32."})
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "Attention kernel: sdpa, eager, flash_attention_2."}
    )
    # --- data --------------------------------------------------------------------------------------------------
    data_root: str | None = field(
        default=None, metadata={"help": "Directory media paths are relative to; default: the eval file's directory."}
    )
    on_bad_row: str = field(default="error", metadata={"help": "Invalid benchmark rows: error (stop) or skip (log)."})
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate only the first N rows (smoke runs)."})
    video_fps: float | None = field(
        default=None,
        metadata={
            "help": "Frames per second sampled from each video; unset: the checkpoint's training value, else 1."
        },
    )
    video_max_frames: int | None = field(
        default=None, metadata={"help": "Most frames per video; unset: the checkpoint's training value, else 90."}
    )
    text_only_pass: bool = field(
        default=False,
        metadata={
            "help": "Also run every harmful-query row that has media without it (id suffix '::text'), to report "
            "how much the video lowers DSR (relative drop 1 - DSR_video / DSR_text)."
        },
    )
    prompt_format: str = field(
        default="query",
        metadata={
            "help": "query: the benchmark question as given; reasoning: the question plus the think / answer / "
            "vidType / textType instructions the CoT and GRPO stages train with (data.collate.grpo_prompt_text)."
        },
    )
    # --- generation --------------------------------------------------------------------------------------------
    batch_size: int = field(default=8, metadata={"help": "Prompts per generation batch (per process)."})
    max_new_tokens: int = field(default=512, metadata={"help": "Most new tokens per completion."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature; 0 = greedy decoding."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus mass when sampling (temperature > 0)."})
    # --- judge -------------------------------------------------------------------------------------------------
    judge: str = field(default="keyword", metadata={"help": "Judge: keyword (offline), transformers (local) or http."})
    judge_keywords: str = field(
        default="default", metadata={"help": "Keyword list: default, multilingual, vlguard, gcg or jbb."}
    )
    judge_model: str | None = field(
        default=None,
        metadata={"help": "transformers: local path of the judge LM; http: the served model name."},
    )
    judge_template: str | None = field(
        default=None,
        metadata={"help": "Prompt template name; default guard_safe_unsafe (transformers), refusal_harm_json (http)."},
    )
    judge_use_chat_template: bool = field(
        default=False,
        metadata={"help": "transformers: render with the judge tokenizer's chat template (Llama Guard)."},
    )
    judge_base_url: str = field(
        default="http://127.0.0.1:8000/v1", metadata={"help": "http: OpenAI-compatible server URL."}
    )
    judge_api_key_env: str | None = field(
        default="OPENAI_API_KEY", metadata={"help": "http: NAME of the environment variable holding the API key."}
    )
    judge_concurrency: int = field(default=8, metadata={"help": "http: parallel requests."})
    judge_timeout_s: float = field(default=60.0, metadata={"help": "http: seconds to wait for one reply."})
    judge_max_retries: int = field(
        default=3, metadata={"help": "http: retries of a timed-out, refused, 429 or 5xx request; then it fails."}
    )
    judge_backoff_s: float = field(
        default=1.0,
        metadata={
            "help": "http: first wait before a retry, doubled each time; a Retry-After header (429/503) replaces it, "
            "capped at 60 s."
        },
    )
    judge_batch_size: int = field(default=8, metadata={"help": "transformers: judge forward batch size."})
    judge_cache: bool = field(
        default=True, metadata={"help": "http: cache replies in OUTPUT_DIR/judge_cache.jsonl (failures are retried)."}
    )
    # --- statistics and outputs --------------------------------------------------------------------------------
    bootstrap_samples: int = field(default=1000, metadata={"help": "Bootstrap resamples for 95%% intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling and of the bootstrap."})
    output_dir: str = field(default="eval_out", metadata={"help": "Where samples.jsonl, results.json, CSVs, PNGs go."})
    on_existing_output: str = field(
        default="resume",
        metadata={
            "help": "output_dir already holds an evaluation: resume (skip finished items when model, weights, data, "
            "generation, video and judge settings match, else refuse naming the differences), error (always "
            "refuse) or overwrite (delete its samples and results, start fresh)."
        },
    )
    plots: bool = field(default=True, metadata={"help": "Write PNG plots."})
    checkpoints: list[str] | None = field(
        default=None,
        metadata={
            "help": "Earlier evaluations (output dirs or results.json files) to draw with this run in "
            "dsr_vs_frr.png, in order (e.g. base, AT-SFT, CoT, GRPO)."
        },
    )
    dsr_split: str = field(default="HH", metadata={"help": "Harmful split whose DSR the DSR-vs-FRR plot uses."})

    def __post_init__(self) -> None:
        if self.on_existing_output not in ON_EXISTING_OUTPUT:
            raise ValueError(
                f"on_existing_output must be one of {ON_EXISTING_OUTPUT}, got {self.on_existing_output!r}"
            )
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {self.prompt_format!r}")
        if self.judge not in JUDGES:
            raise ValueError(f"judge must be one of {JUDGES}, got {self.judge!r}")
        if self.judge == "transformers" and not self.judge_model:
            raise ValueError("judge=transformers needs judge_model (a local causal LM path)")
        if self.judge == "http" and not self.judge_model:
            raise ValueError("judge=http needs judge_model (the served model name)")
        if self.on_bad_row not in ("error", "skip"):
            raise ValueError(f"on_bad_row must be error or skip, got {self.on_bad_row!r}")
        for name in ("batch_size", "max_new_tokens", "video_max_frames", "judge_concurrency", "judge_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):  # NaN and inf too
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.video_fps is not None and not (math.isfinite(self.video_fps) and self.video_fps > 0):
            raise ValueError(f"video_fps must be a finite number > 0, got {self.video_fps}")
        if not (math.isfinite(self.judge_timeout_s) and self.judge_timeout_s > 0):
            raise ValueError(f"judge_timeout_s must be a finite number > 0, got {self.judge_timeout_s}")
        if self.judge_max_retries < 0 or not (math.isfinite(self.judge_backoff_s) and self.judge_backoff_s >= 0):
            raise ValueError(
                f"judge_max_retries and judge_backoff_s must be >= 0, got {self.judge_max_retries}, "
                f"{self.judge_backoff_s}"
            )
        if self.bootstrap_samples < 0:
            raise ValueError("bootstrap_samples must be >= 0")
        if self.seed < 0:  # numpy's set_seed would refuse it with a traceback
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 (or unset for every row), got {self.max_samples}")
        if self.judge_keywords not in KEYWORD_LISTS:
            raise ValueError(f"judge_keywords must be one of {sorted(KEYWORD_LISTS)}, got {self.judge_keywords!r}")
        if self.judge == "keyword":
            unused = [name for name in ("judge_model", "judge_template") if getattr(self, name)]
            if unused:
                raise ValueError(f"{', '.join(unused)} would be ignored: judge=keyword uses no model (set judge)")
        if self.dsr_split not in HARMFUL_SPLITS:
            raise ValueError(f"dsr_split must be one of {HARMFUL_SPLITS}, got {self.dsr_split!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
