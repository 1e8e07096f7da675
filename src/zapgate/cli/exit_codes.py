"""The exit codes of every ``zapgate`` command (documented in ``docs/cli.md``)."""

from __future__ import annotations

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
]

EXIT_OK = 0
EXIT_ERROR = 1
"""The gateway reported an error, or the operation failed."""
EXIT_USAGE = 2
"""Bad usage or configuration, including a gateway that cannot start (port, data directory)."""
EXIT_UNREACHABLE = 3
"""The gateway could not be reached, or the connection dropped."""
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130
"""A client command stopped by Ctrl-C."""

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 error reported by the gateway (message on stderr), 2 usage or configuration\n"
    "error (e.g. no token), 3 gateway unreachable or connection lost, 4 timeout, 130 interrupted"
)
