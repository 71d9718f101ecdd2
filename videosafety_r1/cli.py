"""The ``videosafety-r1`` command: ``validate-data``, ``make-synthetic`` (docs/data.md), ``predict-harm``
(docs/evaluation.md), ``vllm-serve`` (docs/grpo.md).

Exit codes: 0 clean, 1 problems found (or the output pipe closed early, as with ``| head``), 2 usage error (bad
arguments, missing file or data root, or ``vllm-serve`` without the ``vllm`` extra installed).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _write(text: str) -> None:
    """The CLI's only output channel: its report goes to stdout (the library itself only logs)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None


def _at_least_1(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _at_least_0(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive(text: str) -> float:
    value = _number(text, float)
    if not 0 < value < float("inf"):  # NaN too
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _share(text: str) -> float:
    """make_synthetic_dataset's rule for ``safe_share``: 0 <= value <= 1 (NaN refused)."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _path(text: str) -> str:
    """A file or folder argument: an empty one (an unset shell variable, ``--out "$OUT"``) would mean the current
    folder, where a run would write or read files nobody named."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); name a file or folder")
    return text


MAX_TEXT_SHARE = 100.0  # text-only rows per clip; beyond this a run only burns time (1e300 never finishes)


def _text_share(text: str) -> float:
    """``text_share`` for the CLI: 0 <= value <= MAX_TEXT_SHARE (NaN and inf refused; the library needs it finite)."""
    value = _number(text, float)
    if not 0.0 <= value <= MAX_TEXT_SHARE:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_TEXT_SHARE:g}, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videosafety-r1", description=" ".join(__doc__.split("\n\n")[0].split()))
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate-data", help="check dataset files; every problem with file, line and field")
    validate.add_argument(
        "files",
        nargs="+",
        type=_path,
        metavar="FILE",
        help="JSONL or JSON-array files (canonical, published SFT/GRPO, VLGuard)",
    )
    validate.add_argument(
        "--data-root", type=_path, help="folder media paths are relative to (default: each file's folder)"
    )
    validate.add_argument("--kind", default="auto", choices=["auto", "sft", "cot", "grpo", "eval"])
    validate.add_argument("--format", default="auto", help="force a format instead of detecting it per file")
    validate.add_argument("--no-video-check", action="store_true", help="skip opening media (paths still checked)")
    validate.add_argument(
        "--legacy-labels",
        action="store_true",
        help="rows declaring label_convention 'safe=1' or nothing use 1 = safe: convert them on read; rows "
        "declaring 'harmful=1' are refused",
    )
    validate.add_argument("--video-fps", type=float, default=1.0, help="sample videos as training will (default 1)")
    validate.add_argument("--video-max-frames", type=int, default=90, help="frame cap training uses (default 90)")
    validate.add_argument("--video-backend", default="auto", choices=["auto", "decord", "pyav"])
    synth = sub.add_parser(
        "make-synthetic",
        help="write a synthetic safety dataset with known labels",
        description="Write the synthetic benchmark (docs/data.md): OUT/videos/ (the clips), OUT/sft.jsonl, "
        "OUT/cot.jsonl and OUT/grpo.jsonl (training), OUT/eval.jsonl and OUT/calibration.jsonl (held out).",
    )
    synth.add_argument(
        "out",
        type=_path,
        metavar="OUT",
        help="output folder: videos/, sft.jsonl, cot.jsonl, grpo.jsonl, eval.jsonl, calibration.jsonl",
    )
    synth.add_argument("--n", type=_at_least_1, default=64, help="training clips (default 64)")
    synth.add_argument("--seed", type=_at_least_0, default=0, help="data seed (>= 0; default 0)")
    synth.add_argument(
        "--n-eval",
        type=_at_least_1,
        default=None,
        help="held-out clips per eval split (HH, SH, SafeQ), in eval.jsonl and again in calibration.jsonl "
        "(default: max(1, n // 4), as make_synthetic_dataset)",
    )
    synth.add_argument(
        "--safe-share",
        type=_share,
        default=None,
        help="share of training rows with a helpful reference, 0 to 1 (default 0.5, as make_synthetic_dataset)",
    )
    synth.add_argument(
        "--text-share",
        type=_text_share,
        default=None,
        help=f"text-only training rows per clip, 0 to {MAX_TEXT_SHARE:g} (default 0.25, as make_synthetic_dataset)",
    )
    synth.set_defaults(usage_error=synth.error)
    serve = sub.add_parser("vllm-serve", help="serve a plain export with vLLM for GRPO rollouts (vllm_mode=server)")
    serve.add_argument("--model", required=True, type=_path, help="plain export folder (export_plain_checkpoint)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per engine (untested here)")
    serve.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    serve.add_argument("--max-model-len", type=int, default=None)
    serve.add_argument("--dtype", default="auto")
    serve.add_argument("--seed", type=int, default=0)
    harm = sub.add_parser("predict-harm", help="alarm-head harm probabilities and decisions for every row of a file")
    harm.add_argument(
        "--model", required=True, type=_path, metavar="DIR", help="alarm checkpoint or export (calibration applied)"
    )
    harm.add_argument("--data", required=True, type=_path, metavar="FILE", help="JSONL of eval, SFT or GRPO rows")
    harm.add_argument("--out", required=True, type=_path, metavar="FILE", help="output JSONL, one line per row")
    harm.add_argument(
        "--data-root", type=_path, help="folder media paths are relative to (default: the data file's folder)"
    )
    harm.add_argument(
        "--fps", type=_positive, default=None, help="frames per second (default: the checkpoint's training value)"
    )
    harm.add_argument(
        "--max-frames", type=_at_least_1, default=None, help="most frames per video (default: the checkpoint's)"
    )
    harm.add_argument(
        "--threshold", type=float, default=0.5, help="decision threshold on P(harmful), in [0, 1] (default 0.5)"
    )
    harm.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (default 16)")
    return parser


def _validate(args: argparse.Namespace) -> int:
    from videosafety_r1.data.importers import FORMATS
    from videosafety_r1.data.validate import validate_file

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing or (args.data_root and not Path(args.data_root).is_dir()):
        shown = [f"{f} (a folder: give its JSONL files)" if Path(f).is_dir() else f for f in missing]
        _write(f"error: not found: {', '.join(shown) or args.data_root}")
        return EXIT_USAGE
    if not (math.isfinite(args.video_fps) and args.video_fps > 0):
        _write(f"error: --video-fps must be a finite number > 0, got {args.video_fps}")
        return EXIT_USAGE
    if args.video_max_frames < 1:
        _write(f"error: --video-max-frames must be >= 1, got {args.video_max_frames}")
        return EXIT_USAGE
    if args.format != "auto" and args.format not in FORMATS:
        _write(f"error: --format must be auto or one of {', '.join(FORMATS)}")
        return EXIT_USAGE
    problems = 0
    for name in args.files:
        _, report = validate_file(
            name,
            args.data_root,
            fmt=args.format,
            kind=args.kind,
            check_videos=not args.no_video_check,
            legacy_labels=args.legacy_labels,
            video_fps=args.video_fps,
            video_max_frames=args.video_max_frames,
            video_backend=args.video_backend,
        )
        problems += len(report.problems)
        fmt = report.formats.get(name, "unknown")
        _write(f"== {name} ({fmt})")
        _write(report.summary())
    _write("OK" if not problems else f"FAILED: {problems} problems")
    return EXIT_PROBLEMS if problems else EXIT_OK


def _make_synthetic(args: argparse.Namespace) -> int:
    from videosafety_r1.data.synthetic import make_synthetic_dataset

    # unset options keep make_synthetic_dataset's defaults, so the CLI and the library write the same data
    shares = {k: v for k, v in (("safe_share", args.safe_share), ("text_share", args.text_share)) if v is not None}
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        args.usage_error(f"argument OUT: exists and is not a folder: {args.out}")
    try:
        (out / "videos").mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a parent is a file, no permission, read-only disk: a usage error, not a traceback
        args.usage_error(f"argument OUT: cannot create {err.filename or out / 'videos'}: {err.strerror or err}")
    paths = make_synthetic_dataset(args.out, args.n, args.seed, n_eval=args.n_eval, **shares)
    _write("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return EXIT_OK


def _vllm_serve(args: argparse.Namespace) -> int:
    from videosafety_r1.grpo.vllm_server import check_server_modules, serve

    try:
        check_server_modules()
    except ImportError as err:
        _write(f"error: {err}")
        return EXIT_USAGE
    if not Path(args.model).is_dir():
        _write(f"error: not found: {args.model}")
        return EXIT_USAGE
    logging.getLogger("videosafety_r1").setLevel(logging.INFO)
    serve(
        args.model,
        host=args.host,
        port=args.port,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        seed=args.seed,
    )
    return EXIT_OK


def _predict_harm(args: argparse.Namespace) -> int:
    from videosafety_r1.alarm.predict_cli import predict_harm_file
    from videosafety_r1.errors import InputError

    if not Path(args.data).is_file() or not Path(args.model).is_dir():
        _write(f"error: not found: {args.data if not Path(args.data).is_file() else args.model}")
        return EXIT_USAGE
    if not 0 <= args.threshold <= 1:
        _write(f"error: --threshold is a probability in [0, 1], got {args.threshold}")
        return EXIT_USAGE
    if args.batch_size < 1:
        _write(f"error: --batch-size must be >= 1, got {args.batch_size}")
        return EXIT_USAGE
    try:
        summary = predict_harm_file(
            args.model, args.data, args.out, args.data_root, args.fps, args.max_frames, args.threshold, args.batch_size
        )
    except InputError as err:  # bad rows or paths: the report, not a traceback
        _write(f"error: {err}")
        return EXIT_USAGE
    _write(summary)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``videosafety-r1`` script; returns the exit code (argparse errors exit 2)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    handlers = {
        "validate-data": _validate,
        "make-synthetic": _make_synthetic,
        "predict-harm": _predict_harm,
        "vllm-serve": _vllm_serve,
    }
    try:
        return handlers[args.command](args)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit must not fail again
        return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
