"""Batched ROUGE-1/2/L F-measures as tensor code.

GRPO scores every completion of every step, so ROUGE runs on the whole batch at once: token ids are padded into
``[N, L]`` tensors, n-gram overlaps come from one sort of (row, n-gram) keys, and the LCS from a bit-parallel
algorithm (Allison-Dix / Crochemore et al.: ``V <- (V + (V & M)) | (V & ~M)``, LCS = zero bits of ``V``) whose
state is ``[N, W]`` int64 words, so the Python loop runs once per hypothesis position, never per pair. Multi-word
carries are resolved with a carry-lookahead on bits packed per row, not by rippling through the words.
"""

from __future__ import annotations

import torch

from .tokenize import encode

_WORD = 64
_MAX_LOOKAHEAD_WORDS = 62  # carry bits of one row packed into one int64
_BITS = torch.tensor([(1 << k) if k < 63 else -(1 << 63) for k in range(64)], dtype=torch.long)


def _pad(seqs: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate id lists into a padded ``[N, L]`` tensor (pad -1) and their lengths ``[N]``."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    n, width = len(seqs), int(lengths.max()) if seqs else 0
    padded = torch.full((n, max(width, 1)), -1, dtype=torch.long)
    if flat.numel():
        mask = torch.arange(padded.shape[1]) < lengths[:, None]
        padded[mask] = flat
    return padded.to(device), lengths.to(device)


def _ngram_keys(ids: torch.Tensor, lengths: torch.Tensor, n: int, base: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique-per-row keys of every n-gram (row-major), flattened with the row index of each key."""
    rows, width = ids.shape
    if width < n:
        empty = torch.empty(0, dtype=torch.long, device=ids.device)
        return empty, empty
    key = torch.zeros(rows, width - n + 1, dtype=torch.long, device=ids.device)
    for k in range(n):
        key = key * base + ids[:, k : width - n + 1 + k].clamp_min(0)
    valid = torch.arange(width - n + 1, device=ids.device)[None, :] < (lengths[:, None] - n + 1)
    row = torch.arange(rows, device=ids.device)[:, None].expand_as(key)
    return key[valid] + row[valid] * base**n, row[valid]


def _ngram_overlap(ref, ref_len, hyp, hyp_len, n: int, base: int) -> tuple[torch.Tensor, ...]:
    """Clipped n-gram overlap, reference and hypothesis n-gram counts per row."""
    rows = ref.shape[0]
    ref_keys, ref_rows = _ngram_keys(ref, ref_len, n, base)
    hyp_keys, _ = _ngram_keys(hyp, hyp_len, n, base)
    overlap = torch.zeros(rows, dtype=torch.long, device=ref.device)
    if ref_keys.numel() and hyp_keys.numel():
        uniq, inverse, ref_counts = torch.unique(ref_keys, return_inverse=True, return_counts=True)
        pos = torch.searchsorted(uniq, hyp_keys).clamp_max(uniq.numel() - 1)
        found = uniq[pos] == hyp_keys
        hyp_counts = torch.bincount(pos[found], minlength=uniq.numel())
        uniq_rows = torch.zeros_like(uniq).scatter_(0, inverse, ref_rows)
        overlap.index_add_(0, uniq_rows, torch.minimum(ref_counts, hyp_counts))
    return overlap, (ref_len - n + 1).clamp_min(0), (hyp_len - n + 1).clamp_min(0)


def _match_masks(pattern: torch.Tensor, pattern_len: torch.Tensor, text: torch.Tensor, words: int) -> torch.Tensor:
    """``[T, N, W]`` bit masks: bit i of step j, row r is set where ``pattern[r, i] == text[r, j]``."""
    rows, width = pattern.shape
    device = pattern.device
    base = int(max(pattern.max(), text.max(), 0)) + 1
    pos = torch.arange(width, device=device)
    valid = pos[None, :] < pattern_len[:, None]
    row = torch.arange(rows, device=device)[:, None].expand_as(pattern)
    keys = (row * base + pattern)[valid]
    uniq, inverse = torch.unique(keys, return_inverse=True)
    table = torch.zeros(uniq.numel() * words + 1, dtype=torch.long, device=device)
    bit_pos = pos[None, :].expand_as(pattern)[valid]
    # Bits of one word come from distinct positions, so a sum is their OR.
    table.index_add_(0, inverse * words + bit_pos // _WORD, _BITS.to(device)[bit_pos % _WORD])
    table = table[:-1].view(-1, words) if uniq.numel() else table.new_zeros(0, words)
    text_keys = torch.arange(rows, device=device)[:, None] * base + text
    idx = torch.searchsorted(uniq, text_keys).clamp_max(max(uniq.numel() - 1, 0))
    hit = (uniq[idx] == text_keys) & (text >= 0) if uniq.numel() else torch.zeros_like(text, dtype=torch.bool)
    masks = torch.zeros(text.shape[1], rows, words, dtype=torch.long, device=device)
    masks[hit.T] = table[idx.T[hit.T]]
    return masks


def _popcount(x: torch.Tensor) -> torch.Tensor:
    """Set bits per int64 element (SWAR; arithmetic shifts are masked off)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    return ((x * 0x0101010101010101) >> 56) & 0xFF


def lcs_lengths(pattern: torch.Tensor, pattern_len: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """LCS length per row of padded id tensors (pad -1 never matches), bit-parallel over the pattern."""
    rows, device = pattern.shape[0], pattern.device
    if rows == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    words = max(1, -(-int(pattern_len.max()) // _WORD))
    masks = _match_masks(pattern, pattern_len, text, words)  # [T, N, W]
    state = torch.full((rows, words), -1, dtype=torch.long, device=device)  # [N, W], all ones
    shifts = torch.arange(words, device=device)
    lookahead = words <= _MAX_LOOKAHEAD_WORDS
    for step in range(text.shape[1]):
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


def rouge_from_ids(
    references: list[list[int]], hypotheses: list[list[int]], device: torch.device | str | None = None
) -> torch.Tensor:
    """``[N, 3]`` float64 ROUGE-1/2/L F-measures from token-id lists (ids comparable across the batch)."""
    device = torch.device("cpu") if device is None else torch.device(device)
    if not references:
        return torch.zeros(0, 3, dtype=torch.float64, device=device)
    ref, ref_len = _pad(references, device)
    hyp, hyp_len = _pad(hypotheses, device)
    base = int(max(ref.max(), hyp.max(), 0)) + 1
    scores = []
    for n in (1, 2):
        if (ref.shape[0] + 1) * base**n >= 2**62:  # keys would overflow int64: renumber the ids densely
            pad = torch.full((1,), -1, dtype=torch.long, device=device)
            _, dense = torch.unique(torch.cat([pad, ref.flatten(), hyp.flatten()]), return_inverse=True)
            dense = dense[1:] - 1
            ref, hyp = dense[: ref.numel()].view_as(ref), dense[ref.numel() :].view_as(hyp)
            base = int(dense.max()) + 1
        scores.append(_fmeasure(*_ngram_overlap(ref, ref_len, hyp, hyp_len, n, base)))
    # LCS is symmetric: run the loop over the shorter side, keep the longer one in the bit vector.
    if hyp.shape[1] <= ref.shape[1]:
        lcs = lcs_lengths(ref, ref_len, hyp)
    else:
        lcs = lcs_lengths(hyp, hyp_len, ref)
    lcs = torch.where((ref_len > 0) & (hyp_len > 0), lcs, torch.zeros_like(lcs))
    scores.append(_fmeasure(lcs, ref_len, hyp_len))
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
    ids = encode(list(references) + list(hypotheses), tokenizer)
    return rouge_from_ids(ids[: len(references)], ids[len(references) :], device)
