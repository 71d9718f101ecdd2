"""AT-SFT overhead: step time and memory of an AT-SFT step vs a plain SFT step, same model and batch, side by side.

AT-SFT step: `AlarmVideoLLM` forward (alarm-embedding hook, final-norm capture, two heads) + CE + 0.1·BCE_v +
0.1·BCE_t + backward + AdamW step. Plain step: the same base weights without alarm tokens, on the same batch with
the two alarm columns removed, CE + backward + AdamW step. Repetitions are interleaved (A, B, A, B, ...) after a
warm-up; the table gives median milliseconds and ratios (goal: <= 1.05x).

Memory: on CUDA the peak of `torch.cuda.max_memory_allocated` over the timed steps; on every device the bytes of
tensors saved for backward (`torch.autograd.graph.saved_tensors_hooks`, each storage counted once), which is the
activation memory the alarm machinery adds.

    OMP_NUM_THREADS=1 python benchmarks/at_sft_overhead.py [--hidden 256 --layers 4] [--device cpu|cuda]
        [--dtype float32|bfloat16] [--steps 10] [--batch 4] [--frames 8]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


def build_base(family: str, hidden: int | None, layers: int | None, seed: int = 0):
    """The tiny model of `family`, or the same architecture widened / deepened from `tiny_config`."""
    import transformers

    from videosafety_r1.testing import _check_family, tiny_config, tiny_processor, tiny_video_llm

    if hidden is None and layers is None:
        return tiny_video_llm(family, seed)
    processor = tiny_processor(family)
    config = tiny_config(family, processor.tokenizer)
    text = config.text_config
    if hidden is not None:
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        text.hidden_size = hidden
        text.intermediate_size = 2 * hidden
        text.num_attention_heads = hidden // head_dim  # keep head_dim, so the M-RoPE sections still fit
        text.num_key_value_heads = max(1, text.num_attention_heads // 2)
        if hasattr(config.vision_config, "out_hidden_size"):
            config.vision_config.out_hidden_size = hidden
    if layers is not None:
        text.num_hidden_layers = layers
        if getattr(text, "layer_types", None) is not None:
            text.layer_types = [text.layer_types[0]] * layers
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = getattr(transformers, _check_family(family).model_cls)(config)
    return model, processor


def build_batches(processor, batch: int, frames: int, workdir: Path) -> tuple[dict, dict]:
    """(alarm batch, plain batch): the SFTCollator's batch, and the same batch with both alarm columns removed."""
    from videosafety_r1.alarm import AlarmConfig, register_alarm_tokens
    from videosafety_r1.data.collate import MediaLoader, SFTCollator
    from videosafety_r1.data.schema import Media, SafetyLabels, SFTRecord, Turn
    from videosafety_r1.testing import write_synthetic_video

    cfg = AlarmConfig()
    v_id, t_id = register_alarm_tokens(processor, cfg)
    records = []
    for i in range(batch):
        path = write_synthetic_video(
            workdir / f"clip{i}.mp4", num_frames=frames, size=64, fps=4, seed=i, harmful=bool(i % 2)
        )
        records.append(
            SFTRecord(
                id=f"bench-{i}",
                media=Media("video", str(path)),
                conversation=[
                    Turn("user", "What happens in this video, and is any of it dangerous?"),
                    Turn("assistant", "A coloured square moves across the frame. " * (1 + i % 3)),
                ],
                safety_labels=SafetyLabels(visual=i % 2, textual=(i // 2) % 2),
            )
        )
    collator = SFTCollator(processor, MediaLoader(workdir, fps=4.0, max_frames=frames), alarm_config=cfg)
    alarm = collator(records)
    keep = (alarm["input_ids"] != v_id) & (alarm["input_ids"] != t_id)  # [B, L]; exactly 2 False per row
    seq_len = alarm["input_ids"].shape[1]
    plain = {}
    for key, value in alarm.items():
        if key in ("visual_alarm_labels", "textual_alarm_labels"):
            continue
        if torch.is_tensor(value) and value.dim() == 2 and value.shape == (batch, seq_len):
            plain[key] = value[keep].view(batch, seq_len - 2)
        else:
            plain[key] = value
    return alarm, plain


def to_device(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device)
            if v.is_floating_point():
                v = v.to(dtype)
        out[k] = v
    return out


class Runner:
    """One model, its optimizer and its batch; `step()` runs forward + loss + backward + AdamW step."""

    def __init__(self, name: str, model, batch: dict, alarm: bool, device: torch.device) -> None:
        from videosafety_r1.alarm import is_vision_parameter

        self.name, self.model, self.batch, self.alarm, self.device = name, model, batch, alarm, device
        if not alarm:
            for n, p in model.named_parameters():
                p.requires_grad_(not is_vision_parameter(n))
        model.train()
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        self.times: list[float] = []
        self.peaks: list[int] = []
        self.saved_bytes = 0
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def loss(self) -> torch.Tensor:
        from videosafety_r1.sft import alarm_losses

        if not self.alarm:
            return self.model(**self.batch).loss
        inputs = dict(self.batch)
        v_labels = inputs.pop("visual_alarm_labels")
        t_labels = inputs.pop("textual_alarm_labels")
        out = self.model(**inputs)
        v_bce, _ = alarm_losses(out.visual_alarm_logits, v_labels)
        t_bce, _ = alarm_losses(out.textual_alarm_logits, t_labels)
        return out.loss + 0.1 * v_bce + 0.1 * t_bce

    def step(self, record: bool) -> None:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        self.loss().backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if record:
            self.times.append(elapsed)
            if cuda:
                self.peaks.append(torch.cuda.max_memory_allocated())

    def measure_saved(self) -> None:
        """Bytes of distinct storages autograd saves for backward during one forward (no step taken)."""
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self.loss()
        del loss
        self.saved_bytes = sum(seen.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="qwen2_5_vl", help="tiny model family (videosafety_r1.testing)")
    parser.add_argument("--hidden", type=int, default=None, help="LLM hidden size (default: the tiny model's 64)")
    parser.add_argument("--layers", type=int, default=None, help="LLM layers (default: the tiny model's 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (interleaved)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--batch", type=int, default=4, help="rows per batch")
    parser.add_argument("--frames", type=int, default=8, help="frames per synthetic clip")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    from videosafety_r1.alarm import AlarmConfig, add_alarm_tokens

    base, processor = build_base(args.family, args.hidden, args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        alarm_batch, plain_batch = build_batches(processor, args.batch, args.frames, Path(tmp))
    plain_model = copy.deepcopy(base).to(device=device, dtype=dtype)
    alarm_model = add_alarm_tokens(base.to(device=device, dtype=dtype), processor, AlarmConfig())  # atc switches
    runners = [
        Runner("AT-SFT", alarm_model, to_device(alarm_batch, device, dtype), True, device),
        Runner("plain SFT", plain_model, to_device(plain_batch, device, dtype), False, device),
    ]
    for r in runners:
        r.measure_saved()
    for i in range(args.warmup + args.steps):
        for r in runners if i % 2 == 0 else runners[::-1]:  # A,B then B,A: neither always runs first
            r.step(record=i >= args.warmup)

    at, plain = runners
    ids = alarm_batch["input_ids"]
    size = f"hidden {base.config.text_config.hidden_size}, layers {base.config.text_config.num_hidden_layers}"
    print(
        f"\nAT-SFT overhead: {args.family} ({size}), {device.type} {args.dtype}, batch {ids.shape[0]} x "
        f"{ids.shape[1]} tokens (plain {ids.shape[1] - 2}), {args.steps} interleaved steps after {args.warmup} warm-up"
    )
    rows = [("median step (ms)", [1e3 * statistics.median(r.times) for r in runners], "{:.1f}")]
    rows.append(("min step (ms)", [1e3 * min(r.times) for r in runners], "{:.1f}"))
    rows.append(("saved for backward (MiB)", [r.saved_bytes / 2**20 for r in runners], "{:.2f}"))
    if device.type == "cuda":
        rows.append(("peak allocated (MiB)", [max(r.peaks) / 2**20 for r in runners], "{:.1f}"))
    rows.append(("trainable params (M)", [r.trainable / 1e6 for r in runners], "{:.3f}"))
    print(f"| {'metric':<26} | {at.name:>10} | {plain.name:>10} | {'ratio':>6} |")
    print(f"|{'-' * 28}|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
    for name, (a, b), fmt in rows:
        print(f"| {name:<26} | {fmt.format(a):>10} | {fmt.format(b):>10} | {a / b:>5.3f}x |")
    ratio = statistics.median(at.times) / statistics.median(plain.times)
    verdict = "within" if ratio <= 1.05 else "ABOVE"
    print(f"step-time ratio {ratio:.3f}x: {verdict} the 1.05x goal")


if __name__ == "__main__":
    main()
