"""Alarm-token text handling: configuration, placement in chat-template text, and literal neutralisation.

Placement is done on text, before the processor expands visual placeholders, so that every downstream structure
the processor builds (`mm_token_type_ids`, M-RoPE grids, per-frame timestamps) already accounts for the two extra
tokens. The same rules exist twice: `insert_alarm_tokens` (Python, for training and our own inference) and
`alarm_chat_template` (Jinja, for exported checkpoints served by other tools); a test keeps them identical.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..constants import TEXTUAL_ALARM, VISUAL_ALARM

logger = logging.getLogger(__name__)


ALARM_INITS = ("zeros", "mean", "normal")  # how new alarm vectors start (AlarmConfig.init)


@dataclass
class AlarmConfig:
    """What the alarm tokens are, where they go, and which parts of the model train.

    The defaults are the published method's: zero-initialised vectors, two `Linear(hidden, 1)` heads, vision tower
    and projector frozen. The turn markers fit every Qwen-style chat template (Qwen2/2.5/3-VL, VideoLLaMA3).
    """

    visual_token: str = field(default=VISUAL_ALARM, metadata={"help": "Token placed after the last visual token."})
    textual_token: str = field(default=TEXTUAL_ALARM, metadata={"help": "Token placed before the user turn ends."})
    init: str = field(default="zeros", metadata={"help": "Alarm vector init: zeros (published), mean or normal."})
    init_std: float = field(default=0.02, metadata={"help": "Std of the `normal` init."})
    use_heads: bool = field(default=True, metadata={"help": "Attach the two harm heads."})
    train_vectors: bool = field(default=True, metadata={"help": "Alarm vectors receive gradients."})
    train_heads: bool = field(default=True, metadata={"help": "Harm heads receive gradients."})
    train_llm: bool = field(default=True, metadata={"help": "Language-model weights receive gradients."})
    freeze_vision: bool = field(default=True, metadata={"help": "Keep vision tower and projector frozen."})
    user_turn_start: str = field(default="<|im_start|>user", metadata={"help": "Marker opening a user turn."})
    turn_end: str = field(default="<|im_end|>", metadata={"help": "Marker closing a turn."})
    visual_pad_tokens: tuple[str, ...] = field(
        default=("<|video_pad|>", "<|image_pad|>"), metadata={"help": "Placeholder tokens of visual content."}
    )
    vision_end_tokens: tuple[str, ...] = field(
        default=("<|vision_end|>",), metadata={"help": "Tokens closing a visual span (skipped before the alarm)."}
    )

    def __post_init__(self) -> None:
        if self.init not in ALARM_INITS:
            raise ValueError(f"AlarmConfig.init must be one of {ALARM_INITS}, got {self.init!r}")
        if self.visual_token == self.textual_token:
            raise ValueError("visual_token and textual_token must differ")
        self.visual_pad_tokens = tuple(self.visual_pad_tokens)
        self.vision_end_tokens = tuple(self.vision_end_tokens)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["visual_pad_tokens"] = list(self.visual_pad_tokens)
        d["vision_end_tokens"] = list(self.vision_end_tokens)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlarmConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown AlarmConfig keys: {sorted(unknown)}")
        return cls(**d)


def neutral_form(literal: str) -> str:
    """What a typed special-token literal becomes: visibly the same words, but never the token.

    Underscores become spaces (``<|visual_alarm|>`` -> ``<|visual alarm|>``, ``<|im_start|>`` -> ``<|im start|>``);
    a literal without one gets a space after its leading punctuation (``<|endoftext|>`` -> ``<| endoftext|>``).
    """
    if "_" in literal:
        return literal.replace("_", " ")
    cut = next((i for i, ch in enumerate(literal) if ch.isalnum()), 1) or 1
    return literal[:cut] + " " + literal[cut:]


def neutralise_alarm_literals(text: str, config: AlarmConfig | None = None) -> str:
    """Replace every alarm literal in `text` by its neutral form (user or model text, never our placement)."""
    cfg = config or AlarmConfig()
    for literal in (cfg.visual_token, cfg.textual_token):
        text = text.replace(literal, neutral_form(literal))
    return text


def special_token_literals(tokenizer: Any, config: AlarmConfig | None = None) -> tuple[str, ...]:
    """Every literal that typed text must never turn into a token: the tokenizer's special tokens (its special
    added tokens such as ``<|im_start|>``, ``<|video_pad|>``, ``<|vision_start|>``) and the two alarm literals.

    Longest first, the order in which :func:`neutralise_special_tokens` and the exported template replace them.
    Literals holding whitespace are left out (their neutral form could not be told apart)."""
    cfg = config or AlarmConfig()
    found = {cfg.visual_token, cfg.textual_token}
    if tokenizer is not None:
        found.update(getattr(tokenizer, "all_special_tokens", None) or [])
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        found.update(t.content for t in decoder.values() if getattr(t, "special", False))
    return tuple(sorted((t for t in found if t and not any(c.isspace() for c in t)), key=lambda t: (-len(t), t)))


NEUTRALISE_PASSES = 2


def neutralise_special_tokens(text: str, literals: tuple[str, ...]) -> str:
    """`text` with every literal of `literals` replaced by its neutral form (two passes, in the given order: the
    exported chat template does exactly the same)."""
    for _ in range(NEUTRALISE_PASSES):
        for literal in literals:
            text = text.replace(literal, neutral_form(literal))
    return text


def neutralise_messages(messages: list[dict[str, Any]], literals: tuple[str, ...]) -> list[dict[str, Any]]:
    """Copies of chat `messages` whose text (string contents and ``{"type": "text"}`` parts, every role) has the
    special-token literals neutralised, so no typed text can fake a turn, a visual placeholder or an alarm."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            message = {**message, "content": neutralise_special_tokens(content, literals)}
        elif isinstance(content, (list, tuple)):
            parts = [
                {**part, "text": neutralise_special_tokens(part["text"], literals)}
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                else part
                for part in content
            ]
            message = {**message, "content": parts}
        out.append(message)
    return out


def _user_turn(text: str, cfg: AlarmConfig) -> tuple[int, int]:
    start = text.find(cfg.user_turn_start)
    if start < 0:
        return 0, len(text)
    end = text.find(cfg.turn_end, start)
    return start, (len(text) if end < 0 else end)


def _visual_end(text: str, start: int, end: int, cfg: AlarmConfig) -> int | None:
    """Index just after the last visual token in text[start:end], or None for a text-only turn."""
    best, best_len = -1, 0
    for pad in cfg.visual_pad_tokens:
        i = text.rfind(pad, start, end)
        if i > best:
            best, best_len = i, len(pad)
    if best < 0:
        return None
    pos = best + best_len
    for group in (cfg.visual_pad_tokens, cfg.vision_end_tokens):
        advanced = True
        while advanced:
            advanced = False
            for tok in group:
                if text.startswith(tok, pos) and pos + len(tok) <= end:
                    pos += len(tok)
                    advanced = True
    return pos


def insert_alarm_tokens(prompt: str, processor: Any = None, config: AlarmConfig | None = None) -> str:
    """Put exactly one visual and one textual alarm token into the first user turn of chat-template text.

    Alarm literals already sitting at the two canonical positions are taken as ours (so a second call changes
    nothing); every other alarm literal is neutralised, so text a user typed never becomes an alarm id. The visual
    alarm goes right after the last visual token of the turn, the textual alarm right before the turn ends;
    text-only turns get both before the end. `processor` is accepted for API symmetry (the markers come from
    `config`, whose defaults fit every supported family).
    """
    cfg = config or getattr(processor, "alarm_config", None) or AlarmConfig()
    text = prompt
    start, end = _user_turn(text, cfg)
    # 1. take back alarm tokens at canonical positions (the output of an earlier call)
    if text[start:end].endswith(cfg.textual_token):
        text = text[: end - len(cfg.textual_token)] + text[end:]
        end -= len(cfg.textual_token)
    vpos = _visual_end(text, start, end, cfg)
    vpos = end - len(cfg.visual_token) if vpos is None else vpos
    if vpos >= start and text.startswith(cfg.visual_token, vpos) and vpos + len(cfg.visual_token) <= end:
        text = text[:vpos] + text[vpos + len(cfg.visual_token) :]
    # 2. neutralise every other literal, anywhere
    text = neutralise_alarm_literals(text, cfg)
    # 3. insert at the canonical positions
    start, end = _user_turn(text, cfg)
    text = text[:end] + cfg.textual_token + text[end:]
    vpos = _visual_end(text, start, end, cfg)
    vpos = end if vpos is None else vpos
    return text[:vpos] + cfg.visual_token + text[vpos:]


def _j(s: str) -> str:
    return json.dumps(s)


def _jinja_neutraliser(literals: tuple[str, ...]) -> str:
    """Jinja that rebinds `messages` to :func:`neutralise_messages` of them (same literals, order and passes)."""

    def chain(expr: str) -> str:
        for _ in range(NEUTRALISE_PASSES):
            for lit in literals:
                expr += "|replace(" + _j(lit) + ", " + _j(neutral_form(lit)) + ")"
        return expr

    return (
        "{%- set vsr_m = namespace(msgs=[]) -%}{%- for m in messages -%}"
        "{%- if m['content'] is defined and m['content'] is string -%}"
        "{%- set vsr_m.msgs = vsr_m.msgs + [dict(m, content=" + chain("m['content']") + ")] -%}"
        "{%- elif m['content'] is defined and m['content'] is sequence and m['content'] is not mapping -%}"
        "{%- set vsr_p = namespace(parts=[]) -%}{%- for part in m['content'] -%}"
        "{%- if part is mapping and part['type'] == 'text' and part['text'] is string -%}"
        "{%- set vsr_p.parts = vsr_p.parts + [dict(part, text=" + chain("part['text']") + ")] -%}"
        "{%- else -%}{%- set vsr_p.parts = vsr_p.parts + [part] -%}{%- endif -%}{%- endfor -%}"
        "{%- set vsr_m.msgs = vsr_m.msgs + [dict(m, content=vsr_p.parts)] -%}"
        "{%- else -%}{%- set vsr_m.msgs = vsr_m.msgs + [m] -%}{%- endif -%}{%- endfor -%}"
        "{%- set messages = vsr_m.msgs -%}"
    )


def alarm_chat_template(
    template: str, config: AlarmConfig | None = None, special_tokens: tuple[str, ...] | None = None
) -> str:
    """Wrap a chat template so that its rendering equals `insert_alarm_tokens(original rendering)` of the messages
    after :func:`neutralise_messages` with `special_tokens` (default: the two alarm literals only; pass
    :func:`special_token_literals` of the tokenizer, as `export_plain_checkpoint` does).

    Exported checkpoints carry this template, so vLLM, TGI or lmms-eval place the alarm tokens (and neutralise
    typed special tokens) without any code of ours.
    """
    c = config or AlarmConfig()
    literals = special_tokens if special_tokens is not None else special_token_literals(None, c)
    va, ta, us, te = _j(c.visual_token), _j(c.textual_token), _j(c.user_turn_start), _j(c.turn_end)
    pads, ends = _j(list(c.visual_pad_tokens)), _j(list(c.vision_end_tokens))
    # Jinja has no while loop: bounded for-loops with a namespace flag play the role of the Python loops above.
    visual_end = (
        "{%- set ns.best = -1 -%}{%- set ns.blen = 0 -%}"
        "{%- for p in " + pads + " -%}{%- set i = ns.t[:ns.e].rfind(p, ns.s) -%}"
        "{%- if i > ns.best -%}{%- set ns.best = i -%}{%- set ns.blen = p|length -%}{%- endif -%}{%- endfor -%}"
        "{%- if ns.best < 0 -%}{%- set ns.v = -1 -%}{%- else -%}{%- set ns.v = ns.best + ns.blen -%}"
        "{%- for group in [" + pads + ", " + ends + "] -%}{%- set ns.go = true -%}"
        "{%- for _ in range(ns.e - ns.v + 1) -%}{%- if ns.go -%}{%- set ns.go = false -%}"
        "{%- for tok in group -%}{%- if not ns.go and ns.t[ns.v:].startswith(tok) "
        "and ns.v + tok|length <= ns.e -%}{%- set ns.v = ns.v + tok|length -%}{%- set ns.go = true -%}"
        "{%- endif -%}{%- endfor -%}{%- endif -%}{%- endfor -%}{%- endfor -%}{%- endif -%}"
    )
    user_turn = (
        "{%- set ns.s = ns.t.find(" + us + ") -%}"
        "{%- if ns.s < 0 -%}{%- set ns.s = 0 -%}{%- set ns.e = ns.t|length -%}{%- else -%}"
        "{%- set ns.e = ns.t.find(" + te + ", ns.s) -%}{%- if ns.e < 0 -%}{%- set ns.e = ns.t|length -%}"
        "{%- endif -%}{%- endif -%}"
    )
    return (
        _jinja_neutraliser(tuple(literals)) + "{%- set vsr_rendered -%}" + template + "{%- endset -%}"
        "{%- set ns = namespace(t=vsr_rendered, s=0, e=0, v=-1, best=-1, blen=0, go=false) -%}"
        + user_turn
        + "{%- if ns.t[ns.s:ns.e].endswith("
        + ta
        + ") -%}"
        "{%- set ns.t = ns.t[:ns.e - " + str(len(c.textual_token)) + "] + ns.t[ns.e:] -%}"
        "{%- set ns.e = ns.e - "
        + str(len(c.textual_token))
        + " -%}{%- endif -%}"
        + visual_end
        + "{%- if ns.v < 0 -%}{%- set ns.v = ns.e - "
        + str(len(c.visual_token))
        + " -%}{%- endif -%}"
        "{%- if ns.v >= ns.s and ns.t[ns.v:].startswith("
        + va
        + ") and ns.v + "
        + str(len(c.visual_token))
        + " <= ns.e -%}{%- set ns.t = ns.t[:ns.v] + ns.t[ns.v + "
        + str(len(c.visual_token))
        + ":] -%}{%- endif -%}"
        "{%- set ns.t = ns.t|replace("
        + va
        + ", "
        + _j(neutral_form(c.visual_token))
        + ")|replace("
        + ta
        + ", "
        + _j(neutral_form(c.textual_token))
        + ") -%}"
        + user_turn
        + "{%- set ns.t = ns.t[:ns.e] + "
        + ta
        + " + ns.t[ns.e:] -%}"
        + visual_end
        + "{%- if ns.v < 0 -%}{%- set ns.v = ns.e -%}{%- endif -%}"
        "{{- ns.t[:ns.v] + " + va + " + ns.t[ns.v:] -}}"
    )
