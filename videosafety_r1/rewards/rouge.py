"""Batched ROUGE-1/2/L F-measures as tensor code.

GRPO scores every completion of every step, so ROUGE runs on the whole batch at once: token ids are padded into
``[N, L]`` tensors, n-gram overlaps come from one sort of (row, n-gram) keys, and the LCS from a bit-parallel
algorithm (Allison-Dix / Crochemore et al.: ``V <- (V + (V & M)) | (V & ~M)``, LCS = zero bits of ``V``) whose
state is ``[N, W]`` int64 words, so the Python loop runs once per hypothesis position, never per pair. Multi-word
carries are resolved with a carry-lookahead on bits packed per row, not by rippling through the words.
"""

from __future__ import annotations

import numpy as np
import torch

from .tokenize import encode

_WORD = 64
_MAX_LOOKAHEAD_WORDS = 62  # carry bits of one row packed into one int64
_BITS = torch.tensor([(1 << k) if k < 63 else -(1 << 63) for k in range(64)], dtype=torch.long)


class _Flat:
    """Token ids of N texts as one flat ``[S]`` tensor with the row and in-row position of every token."""

    def __init__(self, ids: np.ndarray, lengths: np.ndarray, device: torch.device) -> None:
        self.ids = torch.from_numpy(ids).to(device)  # [S]
        self.lengths = torch.from_numpy(lengths).to(device)  # [N]
        rows = torch.arange(len(lengths), device=device)
        self.rows = torch.repeat_interleave(rows, self.lengths)  # [S]
        starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.pos = torch.arange(self.ids.numel(), device=device) - starts[self.rows]  # [S]

    def ngram_keys(self, n: int, base: int) -> torch.Tensor:
        """One int64 key per n-gram that starts in this text, unique across rows (row-major)."""
        keep = self.pos[: self.ids.numel() - n + 1] <= self.lengths[self.rows[: self.ids.numel() - n + 1]] - n
        key = self.rows[: keep.numel()].clone()
        for k in range(n):
            key = key * base + self.ids[k : k + keep.numel()]
        return key[keep]


def _pair_counts(ref_keys: torch.Tensor, hyp_keys: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sorted union of keys, each key's count on both sides, and the union index of every reference key."""
    uniq, inverse = torch.unique(torch.cat([ref_keys, hyp_keys]), return_inverse=True)
    ref_inv, hyp_inv = inverse[: ref_keys.numel()], inverse[ref_keys.numel() :]
    ref_counts = torch.bincount(ref_inv, minlength=uniq.numel())
    hyp_counts = torch.bincount(hyp_inv, minlength=uniq.numel())
    return uniq, ref_counts, hyp_counts, ref_inv, hyp_inv


def _overlap(ref: _Flat, hyp: _Flat, n: int, base: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped n-gram overlap per row, then the n-gram counts of reference and hypothesis."""
    rows = ref.lengths.numel()
    uniq, ref_counts, hyp_counts, _, _ = _pair_counts(ref.ngram_keys(n, base), hyp.ngram_keys(n, base))
    overlap = torch.zeros(rows, dtype=torch.long, device=ref.ids.device)
    overlap.index_add_(0, uniq // base**n, torch.minimum(ref_counts, hyp_counts))
    return overlap, (ref.lengths - n + 1).clamp_min(0), (hyp.lengths - n + 1).clamp_min(0)


def _match_masks(pattern: _Flat, text: _Flat, base: int, words: int) -> torch.Tensor:
    """``[T, N, W]`` bit masks: bit i of step j, row r is set where ``pattern[r, i] == text[r, j]``."""
    device = pattern.ids.device
    uniq, _, _, pat_inv, text_inv = _pair_counts(pattern.rows * base + pattern.ids, text.rows * base + text.ids)
    table = torch.zeros((uniq.numel() + 1) * words, dtype=torch.long, device=device)  # last row: no match
    # Bits of one word come from distinct positions, so their sum is their OR.
    table.index_add_(0, pat_inv * words + pattern.pos // _WORD, _BITS.to(device)[pattern.pos % _WORD])
    steps = int(text.lengths.max()) if text.lengths.numel() else 0
    index = torch.full((steps, text.lengths.numel()), uniq.numel(), dtype=torch.long, device=device)
    index[text.pos, text.rows] = text_inv
    return table.view(-1, words)[index]


def _popcount(x: torch.Tensor) -> torch.Tensor:
    """Set bits per int64 element (SWAR; arithmetic shifts are masked off)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return ((x * 0x0101010101010101) >> 56) & 0xFF


def lcs_lengths(pattern: _Flat, text: _Flat, base: int) -> torch.Tensor:
    """LCS length per row, bit-parallel over the pattern, one loop step per text position."""
    rows, device = pattern.lengths.numel(), pattern.ids.device
    pattern_len = pattern.lengths
    words = max(1, -(-int(pattern_len.max()) // _WORD)) if rows else 1
    masks = _match_masks(pattern, text, base, words)  # [T, N, W]
    state = torch.full((rows, words), -1, dtype=torch.long, device=device)  # [N, W], all ones
    shifts = torch.arange(words, device=device)
    lookahead = words <= _MAX_LOOKAHEAD_WORDS
    for step in range(masks.shape[0]):
        match = state & masks[step]
        total = state + match
        if words > 1:
            # unsigned carry out of each word, and words that pass an incoming carry on (all ones)
            out = ((state & match) | ((state | match) & ~total)) < 0
            if lookahead:
                gen = (out.long() << shifts).sum(-1, keepdim=True)
                prop = ((total == -1).long() << shifts).sum(-1, keepdim=True)
                both = gen | prop
                carry_in = (((both + gen) ^ both ^ gen) >> shifts) & 1
            else:
                carry_in = torch.zeros_like(total)
                for w in range(1, words):
                    carry_in[:, w] = (out[:, w - 1] | ((total[:, w - 1] == -1) & (carry_in[:, w - 1] > 0))).long()
            total = total + carry_in
        state = total | (state & ~match)
    # valid bits of each row: the first pattern_len positions
    bit_index = shifts[None, :] * _WORD
    full = (pattern_len[:, None] - bit_index).clamp(0, _WORD)
    valid = torch.where(full >= _WORD, torch.full_like(full, -1), (torch.ones_like(full) << full) - 1)
    ones = _popcount(state & valid).sum(-1)
    return pattern_len - ones


def _fmeasure(overlap: torch.Tensor, ref_count: torch.Tensor, hyp_count: torch.Tensor) -> torch.Tensor:
    overlap = overlap.double()
    precision = overlap / hyp_count.clamp_min(1).double()
    recall = overlap / ref_count.clamp_min(1).double()
    denom = precision + recall
    return torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(denom))


def rouge_from_ids(ids: np.ndarray, lengths: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """``[N, 3]`` float64 ROUGE-1/2/L F-measures from flat token ids of N references followed by N hypotheses."""
    device = torch.device("cpu") if device is None else torch.device(device)
    rows = len(lengths) // 2
    if rows == 0:
        return torch.zeros(0, 3, dtype=torch.float64, device=device)
    split = int(lengths[:rows].sum())
    if ids.size and (rows + 1) * (int(ids.max()) + 1) ** 2 >= 2**62:  # bigram keys would overflow: renumber
        ids = np.unique(ids, return_inverse=True)[1].reshape(-1).astype(np.int64)
    base = int(ids.max()) + 1 if ids.size else 1
    ref, hyp = _Flat(ids[:split], lengths[:rows], device), _Flat(ids[split:], lengths[rows:], device)
    scores = [_fmeasure(*_overlap(ref, hyp, n, base)) for n in (1, 2)]
    # LCS is symmetric: loop over the side with fewer positions, keep the other in the bit vector.
    if int(hyp.lengths.max()) <= int(ref.lengths.max()):
        lcs = lcs_lengths(ref, hyp, base)
    else:
        lcs = lcs_lengths(hyp, ref, base)
    scores.append(_fmeasure(lcs, ref.lengths, hyp.lengths))
    return torch.stack(scores, dim=1)


def rouge_scores(
    references: list[str],
    hypotheses: list[str],
    tokenizer: str = "multilingual",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[N, 3]`` ROUGE-1, ROUGE-2, ROUGE-L F-measures (stemmed) of each hypothesis against its reference.

    ``tokenizer="rouge_score"`` equals the rouge-score package with ``use_stemmer=True``; ``"multilingual"`` (the
    default) also scores non-Latin scripts. ``device`` places the tensor work (default CPU).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return rouge_from_ids(*encode(list(references) + list(hypotheses), tokenizer), device)
