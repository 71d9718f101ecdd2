"""Text -> integer token ids for batched ROUGE, with two tokenizers and a stem cache.

``"rouge_score"`` reproduces the rouge-score package (lower-case, keep ``[a-z0-9]`` runs, Porter-stem words of more
than 3 characters), so scores are equal to it. ``"multilingual"`` keeps every script: scripts written without spaces
(Han, kana, Thai, Lao, Khmer, Myanmar, ...) count one character (with its combining marks) per token, other scripts
one Unicode word (letters, marks, digits) per token; ASCII words are stemmed exactly as in parity mode, so plain
English scores the same under both.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import regex
from nltk.stem.porter import PorterStemmer

logger = logging.getLogger(__name__)

TOKENIZERS = ("multilingual", "rouge_score")

_ASCII_WORD = re.compile(r"[a-z0-9]+")
_NO_SPACE_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}\p{Yi}"
_MULTI_TOKEN = regex.compile(rf"(?V1)[{_NO_SPACE_SCRIPTS}]\p{{M}}*|[[\p{{L}}\p{{N}}\p{{M}}]--[{_NO_SPACE_SCRIPTS}]]+")
_MAX_CACHE = 500_000


class TokenIds:
    """Maps raw tokens to stable integer ids, stemming each distinct token once.

    Two raw tokens with the same stem get the same id, so ids can be compared directly by tensor code. The map is
    shared by calls (GRPO sees the same vocabulary step after step) and cleared when it grows past ``max_size``;
    ids are therefore only comparable within one call of :meth:`lookup`.
    """

    def __init__(self, max_size: int = _MAX_CACHE) -> None:
        self._stemmer = PorterStemmer()
        self._ids: dict[str, int] = {}
        self._stem_ids: dict[str, int] = {}
        self.max_size = max_size

    @property
    def size(self) -> int:
        """Number of distinct ids handed out since the last reset."""
        return len(self._stem_ids)

    def _new_id(self, token: str, stem_ascii: bool) -> int:
        stem = token
        if stem_ascii and len(token) > 3 and _ASCII_WORD.fullmatch(token):
            stem = self._stemmer.stem(token)
        token_id = self._stem_ids.setdefault(stem, len(self._stem_ids))
        self._ids[token] = token_id
        return token_id

    def lookup(self, tokens: list[str], stem: bool = True) -> np.ndarray:
        """int64 ids of a flat token list; resets the cache first if it has grown too large."""
        if len(self._ids) > self.max_size:
            self._ids.clear()
            self._stem_ids.clear()
        ids = self._ids
        try:
            return np.fromiter(map(ids.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        except KeyError:
            for token in set(tokens).difference(ids):
                self._new_id(token, stem)
            return np.fromiter(map(ids.__getitem__, tokens), dtype=np.int64, count=len(tokens))


def split_parity(text: str) -> list[str]:
    """rouge-score's tokenization before stemming (its stemmer then applies to words of more than 3 characters)."""
    return _ASCII_WORD.findall(text.lower())


def split_multilingual(text: str) -> list[str]:
    """Unicode-aware tokenization: one token per character in space-less scripts, per word elsewhere."""
    text = text.lower()
    if text.isascii():  # same tokens as the general pattern, several times faster
        return _ASCII_WORD.findall(text)
    return _MULTI_TOKEN.findall(text)


_SPLITTERS = {"rouge_score": split_parity, "multilingual": split_multilingual}
_SHARED_IDS: dict[str, TokenIds] = {}


def encode(texts: list[str], tokenizer: str = "multilingual") -> tuple[np.ndarray, np.ndarray]:
    """Flat int64 token ids of all texts (stemmed; comparable within this call) and the token count of each text."""
    if tokenizer not in _SPLITTERS:
        raise ValueError(f"unknown ROUGE tokenizer {tokenizer!r}; choose one of {TOKENIZERS}")
    split = _SPLITTERS[tokenizer]
    tokens: list[str] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    seen: dict[str, list[str]] = {}  # GRPO repeats each reference once per generation
    for i, text in enumerate(texts):
        text = text if isinstance(text, str) else ""
        words = seen.get(text)
        if words is None:
            words = seen[text] = split(text)
        tokens += words
        lengths[i] = len(words)
    return _SHARED_IDS.setdefault(tokenizer, TokenIds()).lookup(tokens), lengths
