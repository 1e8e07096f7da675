"""The ``zapgate`` command line.

Server-side commands (``serve``, ``token``) work on the local data directory; client commands (``pair``,
``send``, ``sessions``, ``events``, ``logout``, ``sim``) talk to a running gateway over its WebSocket API.

Exit codes: 0 success; 1 the gateway answered with an error or the operation failed; 2 bad usage or
configuration; 3 the gateway could not be reached or the connection dropped; 4 timed out.
"""

from __future__ import annotations

import argparse
import sys

from . import client, server

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zapgate",
        description="zapgate: a self-hosted, multi-tenant WhatsApp session gateway.",
        epilog="Exit codes: 0 ok, 1 error reported by the gateway, 2 usage or configuration error, "
        "3 gateway unreachable or connection lost, 4 timeout.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    server.add_commands(commands)
    client.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    sys.exit(code)
