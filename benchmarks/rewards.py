"""Safety accuracy reward: the published per-completion loop vs our batched version, side by side.

Reference = the published code path: per completion, a new rouge-score scorer (stemmed), ROUGE-1/2/L mean, labels
compared in Python. Ours = ``accuracy_reward(..., rouge_tokenizer="rouge_score")``, which must give the same values.
Completions come in GRPO groups (6 completions share a reference); each run starts with empty caches.

    python benchmarks/rewards.py            # 48 / 256 / 1024 completions x 150 / 550 words
    python benchmarks/rewards.py --quick    # 48 / 256 completions x 150 words
"""

from __future__ import annotations

import argparse
import random
import re
import time

import torch
from rouge_score import rouge_scorer

from videosafety_r1.rewards import accuracy_reward, parse_tags
from videosafety_r1.rewards import tokenize as tokenize_module

SYLLABLES = "ka ri to na mo se lu vi da pe zo ha ne ti go ra mi su be lo".split()
SUFFIXES = ["", "", "", "s", "ing", "ed", "ly", "ness", "ation", "er"]
SAFE = "free-form-and-choice"


def make_vocab(rng: random.Random, size: int = 5000) -> list[str]:
    stems = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(size)]
    return [s + rng.choice(SUFFIXES) for s in stems]


def make_text(rng: random.Random, vocab: list[str], words: int) -> str:
    # Zipf-like word frequencies, some punctuation and capitals, as in real answers
    out = []
    for i in range(words):
        w = vocab[min(int(rng.paretovariate(1.1)) - 1, len(vocab) - 1)]
        out.append(w.capitalize() if i % 17 == 0 else w)
        if i % 11 == 10:
            out[-1] += rng.choice([",", ".", ";"])
    return " ".join(out)


def make_batch(n: int, words: int, seed: int = 0, group: int = 6) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocab = make_vocab(rng)
    sols, comps = [], []
    for i in range(n):
        if i % group == 0:
            v, t = rng.choice("01"), rng.choice("01")
            ref = f"<answer>{make_text(rng, vocab, words)}</answer><vidType>{v}</vidType><textType>{t}</textType>"
        sols.append(ref)
        answer = make_text(rng, vocab, words)
        comps.append(
            f"<think>{make_text(rng, vocab, 20)}</think><answer>{answer}</answer>"
            f"<vidType>{rng.choice('01')}</vidType><textType>{rng.choice('01')}</textType>"
        )
    return comps, sols


def published_reward(completions: list[str], solution: list[str]) -> list[float]:
    """The published per-completion loop (minus its print), for safety rows."""

    def tag(name: str, text: str) -> str:
        m = re.search(rf"<{name}>\s*(.*?)\s*</{name}>", text, re.DOTALL)
        return m.group(1).strip() if m else ""

    rewards = []
    for content, sol in zip(completions, solution):
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        s = scorer.score(tag("answer", sol), tag("answer", content))
        rouge = (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3
        c_v = float(tag("vidType", content) == tag("vidType", sol))
        c_t = float(tag("textType", content) == tag("textType", sol))
        rewards.append((0.1 + (1 - c_v * c_t) * 0.4) * rouge + c_v + c_t)
    return rewards


def clear_caches() -> None:
    parse_tags.cache_clear()
    tokenize_module._SHARED_IDS.clear()


def timed(fn, *args, **kwargs) -> tuple[float, list[float]]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    parser.add_argument("--device", default=None, help="device for our tensor code (default CPU)")
    parser.add_argument("--group", type=int, default=6, help="completions per reference (1: all unique)")
    parser.add_argument("--sizes", type=int, nargs="*", help="override the completion counts")
    parser.add_argument("--words", type=int, nargs="*", help="override the answer lengths")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = args.sizes or ([48, 256] if args.quick else [48, 256, 1024])
    lengths = args.words or ([150] if args.quick else [150, 550])
    print(
        f"torch {torch.__version__}, 1 thread, ours on {args.device or 'cpu'}, {args.group} completions per reference"
    )
    print(
        f"{'completions':>11} {'words':>5} {'reference s':>11} {'ours s':>8} {'ours warm s':>11} {'speed-up':>8} "
        f"{'max |diff|':>10}"
    )
    for words in lengths:
        for n in sizes:
            comps, sols = make_batch(n, words, group=args.group)
            ref_time, ref = timed(published_reward, comps, sols)
            clear_caches()
            ours_time, ours = timed(
                accuracy_reward, comps, sols, SAFE, rouge_tokenizer="rouge_score", device=args.device
            )
            parse_tags.cache_clear()  # warm = stem/id cache kept, as from the second GRPO step on
            warm_time, _ = timed(accuracy_reward, comps, sols, SAFE, rouge_tokenizer="rouge_score", device=args.device)
            diff = max(abs(a - b) for a, b in zip(ref, ours))
            print(
                f"{n:>11} {words:>5} {ref_time:>11.3f} {ours_time:>8.3f} {warm_time:>11.3f} "
                f"{ref_time / ours_time:>7.1f}x {diff:>10.1e}"
            )


if __name__ == "__main__":
    main()
