"""Client commands of the CLI (pair, send, sessions, events, logout, sim): they talk to a running gateway."""

from __future__ import annotations

from typing import Any

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Register the client commands (filled in with the client SDK)."""
