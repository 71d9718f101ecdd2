"""Batched word error rate for OCR rows.

The Levenshtein recurrence is vectorised across rows and hypothesis positions: for reference word i, the
substitution/deletion candidates ``T[j]`` come from row i-1, and the insertion chain
``D[i, j] = min_k<=j T[k] + (j - k)`` is one ``cummin`` of ``T[k] - k``. The Python loop runs once per reference
word position, never per pair.
"""

from __future__ import annotations

import torch


def _ids(texts: list[str], vocab: dict[str, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    words = [t.split() for t in texts]
    lengths = torch.tensor([len(w) for w in words], dtype=torch.long)
    width = max(1, int(lengths.max()) if len(words) else 1)
    padded = torch.full((len(words), width), -1, dtype=torch.long)
    for row, ws in enumerate(words):
        if ws:
            padded[row, : len(ws)] = torch.tensor([vocab.setdefault(w, len(vocab)) for w in ws])
    return padded.to(device), lengths.to(device)


def edit_distances(references: list[str], hypotheses: list[str], device: torch.device | str | None = None):
    """Word-level Levenshtein distance of each pair (whitespace split, case-sensitive) and reference lengths."""
    device = torch.device("cpu") if device is None else torch.device(device)
    vocab: dict[str, int] = {}
    ref, ref_len = _ids(references, vocab, device)  # [N, M]
    hyp, hyp_len = _ids(hypotheses, vocab, device)  # [N, H]
    rows, width = hyp.shape
    cols = torch.arange(width + 1, device=device)
    dist = cols.expand(rows, -1).clone()  # [N, H+1], row 0 of the table
    for i in range(1, ref.shape[1] + 1):
        substitute = dist[:, :-1] + (ref[:, i - 1 : i] != hyp).long()
        delete = dist[:, 1:] + 1
        best = torch.cat([torch.full((rows, 1), i, device=device), torch.minimum(substitute, delete)], dim=1)
        new = torch.cummin(best - cols, dim=1).values + cols
        dist = torch.where((i <= ref_len)[:, None], new, dist)
    return dist.gather(1, hyp_len[:, None]).squeeze(1), ref_len


def word_error_rates(
    references: list[str], hypotheses: list[str], device: torch.device | str | None = None
) -> torch.Tensor:
    """``[N]`` word error rate = edit distance / max(1, reference words), as the published OCR reward."""
    if not references:
        return torch.zeros(0, dtype=torch.float64)
    dist, ref_len = edit_distances(references, hypotheses, device)
    return dist.double() / ref_len.clamp_min(1).double()
