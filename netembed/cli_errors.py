"""How the command line reports a problem: one line on stderr naming the flag, and an exit status.

A traceback tells a user nothing they can act on; a line such as
`error: mask_ratio must be in (0, 1), got 1 (--mask-ratio)` does. Unexpected errors (bugs)
are one line too, with NETEMBED_TRACEBACK=1 to see where they came from.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import USER_ERRORS


class CliError(Exception):
    """A problem worth one line on stderr and a non-zero exit, not a traceback."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line naming it (not the whole usage) and exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def warn_divergence(zoo) -> None:
    """Refuse a zoo in which every model diverged (nothing is saved); note it when only some did."""
    from .divergence import check_not_all_diverged, divergence_note

    check_not_all_diverged(zoo)
    note = divergence_note(zoo)
    if note:
        print(f"warning: {note}", file=sys.stderr)


def exit_status(e: Exception) -> int:
    """Print one line for `e` on stderr and return the exit status (call from an except block)."""
    if isinstance(e, (*USER_ERRORS, CliError)):
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    if isinstance(e, MemoryError):
        print("error: out of memory; use fewer models, a smaller width or batch", file=sys.stderr)
        return 3
    if isinstance(e, OSError):
        print(f"error: {e.strerror or one_line(e)}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    if os.environ.get("NETEMBED_TRACEBACK"):
        raise e
    print(f"error: unexpected {type(e).__name__}: {one_line(e)} (NETEMBED_TRACEBACK=1 shows where)", file=sys.stderr)
    return 1


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:500] or type(e).__name__
