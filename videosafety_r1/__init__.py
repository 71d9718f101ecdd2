"""videosafety-r1: alarm tokens, AT-SFT and Safety-GRPO for safer Video LLMs."""

__version__ = "0.1.0"
