"""Rollout time: HF ``generate`` (our ``HFGenerator``) against vLLM (our ``VLLMGenerator``, colocated engine) on the
same model, prompts (with video), G and token budget, side by side; prints a table with the ratio.

Two completion regimes: ``fixed`` (EOS ignored, every completion has exactly ``--tokens`` tokens) and ``eos``
(completions stop at EOS; the tiny random model's EOS is made likely so lengths vary). Models: the default tiny
Qwen2.5-VL (head_dim 64, 128 wide, 2 layers) and ``--hidden 256 --layers 4``. One untimed warm-up call each, then
``--repeats`` timed calls; the median is reported. Needs the vLLM venv (``make vllm-env``):

    VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_CPU_KVCACHE_SPACE=1 OMP_NUM_THREADS=1 \\
        .venv-vllm/bin/python benchmarks/rollout.py [--hidden 256 --layers 4] [--prompts 16 --generations 8
        --tokens 128] [--mode fixed|eos|both]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import torch  # noqa: E402


def build_model(hidden: int, layers: int):
    import transformers

    from videosafety_r1.alarm import add_alarm_tokens
    from videosafety_r1.testing import tiny_config, tiny_processor

    processor = tiny_processor("qwen2_5_vl")
    config = tiny_config("qwen2_5_vl", processor.tokenizer, head_dim=64)
    config.text_config.hidden_size = hidden
    config.text_config.num_attention_heads = hidden // 64
    config.text_config.num_key_value_heads = 1
    config.text_config.intermediate_size = 2 * hidden
    config.text_config.num_hidden_layers = layers
    config.text_config.layer_types = ["full_attention"] * layers
    config.vision_config.out_hidden_size = hidden
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = transformers.Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    return add_alarm_tokens(model, processor), processor


def prompts(processor, n: int, root: Path):
    from videosafety_r1.data import load_dataset_checked, make_synthetic_dataset
    from videosafety_r1.data.collate import GRPOPromptCollator, MediaLoader
    from videosafety_r1.grpo.vllm_generator import collate_with_media

    paths = make_synthetic_dataset(root / "data", n, seed=0)
    records, _ = load_dataset_checked(paths["grpo"], root / "data")
    collator = GRPOPromptCollator(processor, MediaLoader(root / "data", fps=2.0, max_frames=8))
    pairs = [collate_with_media(collator, r, processor.tokenizer) for r in records[:n]]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (and engine graph capture)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mode", choices=["fixed", "eos", "both"], default="both")
    args = parser.parse_args()

    from videosafety_r1.grpo.rollout import HFGenerator, assemble, placeholder_token_ids
    from videosafety_r1.grpo.vllm_generator import ColocateEngine, VLLMGenerator, write_engine_export

    model, processor = build_model(args.hidden, args.layers)
    tok = processor.tokenizer
    eos = tok.eos_token_id
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        items, engine_prompts = prompts(processor, args.prompts, Path(tmp))
        G = args.generations
        batch = assemble(items, [i for i in range(len(items)) for _ in range(G)], tok.pad_token_id)  # [B*G, P]
        for mode in ["fixed", "eos"] if args.mode == "both" else [args.mode]:
            if mode == "eos":  # make EOS likely (~3% per token) so completions end at different lengths
                base = model.get_base_model()
                with torch.no_grad():
                    emb = base.get_input_embeddings().weight
                    c = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
                    c = c / c.norm()
                    emb.add_(2.0 * emb.norm(dim=1).mean() * c)  # a direction every text position carries
                    base.lm_head.weight[eos] = 0.25 * c
            export = write_engine_export(model, processor, Path(tmp) / f"export-{mode}")
            engine = ColocateEngine(export, dtype="float32", seed=0, max_model_len=4096)
            stop = [] if mode == "fixed" else [eos]
            hf = HFGenerator(
                max_new_tokens=args.tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_id=stop or None,
                suppress_token_ids=placeholder_token_ids(model),
                extra={"min_new_tokens": args.tokens} if mode == "fixed" else {},
            )
            vl = VLLMGenerator(
                engine,
                G,
                args.tokens,
                pad_token_id=tok.pad_token_id,
                eos_token_ids=stop,
                extra={"ignore_eos": True} if mode == "fixed" else {},
            )
            with torch.no_grad():
                t_hf, out_hf = timed(lambda hf=hf: hf(model, batch), args.repeats)
            t_vl, out_vl = timed(lambda vl=vl: vl(model, batch, engine_prompts, policy_version=0), args.repeats)
            tokens_hf = int((out_hf != tok.pad_token_id).sum())
            tokens_vl = int((out_vl != tok.pad_token_id).sum())
            rows.append((mode, t_hf, t_vl, tokens_hf, tokens_vl))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"\nmodel: Qwen2.5-VL {args.hidden} wide, {args.layers} layers, {params:.2f}M parameters; "
        f"{args.prompts} prompts with video x G={args.generations}, <= {args.tokens} new tokens; "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'completions':<12} {'HF generate s':>14} {'vLLM s':>9} {'HF/vLLM':>8} {'HF tokens':>10} {'vLLM tokens':>12}"
    )
    for mode, t_hf, t_vl, n_hf, n_vl in rows:
        print(f"{mode:<12} {t_hf:>14.2f} {t_vl:>9.2f} {t_hf / t_vl:>8.2f} {n_hf:>10d} {n_vl:>12d}")


if __name__ == "__main__":
    main()
