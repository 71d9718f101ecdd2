"""``InputError``: what is wrong is the user's input (a config value, a data row, a path, an output folder holding
another run), not the code. Recipes turn it into one message and exit status 2 (``exit_on_input_error``), as
argparse does for a bad option: a traceback would bury the message and read as a crash."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)

__all__ = ["InputError", "exit_on_input_error"]


class InputError(ValueError):
    """Bad user input found by a check; the message names the file, line and field (or the path) to fix.

    A ``ValueError`` subclass, so code that caught ``ValueError`` before keeps working."""


@contextlib.contextmanager
def exit_on_input_error(prog: str) -> Iterator[None]:
    """Inside the block, an :class:`InputError` prints ``PROG: error: MESSAGE`` on stderr and exits with status 2
    (``SystemExit``); the traceback goes to the debug log. Other exceptions pass through unchanged: they are bugs."""
    try:
        yield
    except InputError as err:
        logger.debug("input error", exc_info=True)
        argparse.ArgumentParser(prog=prog).exit(2, f"{prog}: error: {err}\n")
