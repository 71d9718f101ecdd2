"""The tag grammar of CoT targets and completions, parsed once for data, rewards and evaluation.

A target or completion of the method reads::

    <think>reasoning</think><answer>response</answer><vidType>0|1</vidType><textType>0|1</textType>

Non-safety GRPO rows (multiple choice, numerical, OCR, ...) are prompted for ``<think>`` and ``<answer>`` only.
Whitespace is allowed between the tags and after the last one (generation often ends with a newline before the
end-of-turn token), not before the first.

**Which ``<answer>`` counts.** When a text holds several complete ``<answer>`` spans, the **first** one counts
everywhere: in the rewards, in evaluation's judge and in validation. Generation is trained to stop after one full
layout, so what follows a first complete answer is an overrun, and the published reward (Video-R1's
``extract_answer``) reads the first span too; judging a later span would let a policy hide a harmful first answer
behind a refusal it appends. A text with more than one span of any tag is malformed: it gets no format reward
(:func:`format_ok`) and evaluation counts it as a format failure.

Low module: imports nothing of the package but :mod:`videosafety_r1.constants`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .constants import LABELS, SAFETY_PROBLEM_TYPE

TAG_NAMES = ("think", "answer", "vidType", "textType")
#: The tags a row of each kind must produce, in order.
SAFETY_TAGS = TAG_NAMES
ANSWER_TAGS = ("think", "answer")

_SPAN = {name: re.compile(rf"<{name}>(.*?)</{name}>", re.DOTALL) for name in TAG_NAMES}
_ANY_TAG = re.compile(r"</?(?:think|answer|vidType|textType)>")
_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)


def _layout(tags: tuple[str, ...], labels: bool) -> re.Pattern:
    """Full-match pattern of ``tags`` in order, each exactly once, no tag nested in another's content."""
    body = r"(?:(?!</?(?:think|answer|vidType|textType)>).)*?"
    parts = []
    for name in tags:
        inner = r"\s*[01]\s*" if labels and name in ("vidType", "textType") else body
        parts.append(rf"<{name}>{inner}</{name}>")
    return re.compile(r"\s*".join(parts) + r"\s*", re.DOTALL)


#: A well-formed safety layout (labels may hold any text; :func:`parse_tags` says whether they are 0/1).
SAFETY_FORMAT = _layout(SAFETY_TAGS, labels=False)
#: A well-formed think + answer layout.
ANSWER_FORMAT = _layout(ANSWER_TAGS, labels=False)
#: A CoT training target: the safety layout with 0/1 labels (validation of SFT targets).
COT_FORMAT = _layout(SAFETY_TAGS, labels=True)


@dataclass(frozen=True)
class Tags:
    """The spans of one text (completion or reference solution), stripped; None where a tag is absent.

    ``vid_type`` / ``text_type`` are the labels, 0 (safe) / 1 (harmful), None when absent or not a 0/1;
    ``vid_type_raw`` / ``text_type_raw`` the stripped texts (for error messages). ``answer_count`` counts complete
    ``<answer>`` spans.
    """

    think: str | None
    answer: str | None
    vid_type: int | None
    text_type: int | None
    answer_count: int = 0
    vid_type_raw: str | None = None
    text_type_raw: str | None = None

    @property
    def has_answer(self) -> bool:
        return self.answer is not None

    @property
    def answer_text(self) -> str:
        """The answer, or "" when absent (what string metrics such as ROUGE compare)."""
        return self.answer or ""

    @property
    def format_ok(self) -> bool:
        """One answer and both labels readable (evaluation's per-sample format check)."""
        return self.answer_count == 1 and self.vid_type is not None and self.text_type is not None


def _first(name: str, text: str) -> str | None:
    match = _SPAN[name].search(text)
    return match.group(1).strip() if match else None


def _label(value: str | None) -> int | None:
    return int(value) if value in LABELS else None


@lru_cache(maxsize=16384)
def parse_tags(text: str) -> Tags:
    """Tags of ``text``: the first complete span of each tag, stripped (cached by text)."""
    text = text if isinstance(text, str) else ""
    vid, txt = _first("vidType", text), _first("textType", text)
    return Tags(
        think=_first("think", text),
        answer=_first("answer", text),
        vid_type=_label(vid),
        text_type=_label(txt),
        answer_count=len(_SPAN["answer"].findall(text)),
        vid_type_raw=vid,
        text_type_raw=txt,
    )


def extract_tag(text: str, tag: str) -> str | None:
    """Content of the first ``<tag>…</tag>`` in ``text``, unstripped (None when absent)."""
    pattern = _SPAN.get(tag) or re.compile(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL)
    match = pattern.search(text)
    return match.group(1) if match else None


def format_ok(text: str, problem_type: str | None = None) -> bool:
    """Whether ``text`` is exactly the layout its row asks for: safety rows (and rows of unknown type) need think,
    answer, vidType and textType; other problem types think and answer. Each tag once, in order."""
    pattern = SAFETY_FORMAT if problem_type in (None, SAFETY_PROBLEM_TYPE) else ANSWER_FORMAT
    return pattern.fullmatch(text) is not None


def format_cot(think: str, answer: str, visual: int, textual: int) -> str:
    """The CoT target of stages 3-4: ``<think>…</think><answer>…</answer><vidType>v</vidType><textType>t</textType>``."""
    return f"<think>{think}</think><answer>{answer}</answer><vidType>{visual}</vidType><textType>{textual}</textType>"


def strip_tags(text: str) -> str:
    """``text`` without any ``<think>`` block (closed or not) and without stray tags: what a judge may read of a
    completion that has no ``<answer>`` span."""
    return _ANY_TAG.sub("", _THINK_BLOCK.sub("", text)).strip()
