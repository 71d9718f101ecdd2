"""Refusal keyword lists, kept importable here; they live in :mod:`videosafety_r1.refusal`, the one matcher the
rewards and the evaluation share."""

from videosafety_r1.refusal import KEYWORD_LISTS, KeywordList, get_keyword_list, is_refusal

__all__ = ["KeywordList", "KEYWORD_LISTS", "get_keyword_list", "is_refusal"]
