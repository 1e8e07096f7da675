"""What every client command shares: how it prints, and how it stops with an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from ..client import Client
from .exit_codes import EXIT_ERROR

__all__ = ["Body", "Failure", "say"]

Body = Callable[[Client, argparse.Namespace], Awaitable[int]]
"""A client command: runs on an open client, returns the exit code."""


class Failure(Exception):
    """The command cannot go on: ``message`` for stderr, ``code`` for the exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def say(text: str = "", out: TextIO | None = None) -> None:
    """Print one line now (stdout unless ``out``): output must show while a command waits."""
    print(text, file=out or sys.stdout, flush=True)
