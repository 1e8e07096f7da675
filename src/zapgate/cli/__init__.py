"""The ``zapgate`` command line.

Server-side commands (``serve``, ``token``, ``tenant``, ``audit``) work on the local data directory; client
commands (``pair``, ``send``, ``sessions``, ``events``, ``stop``, ``logout``, ``delete``, ``sim``, ``media``,
``contact``, ``group``, ``chat``, ``history``, ``webhook``) talk to a running gateway over its WebSocket API.
Exit codes are in :mod:`zapgate.cli.exit_codes`.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import admin, chats, client, groups, media, server, webhooks

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zapgate",
        description="zapgate: a self-hosted, multi-tenant WhatsApp session gateway.",
        epilog="Exit codes: 0 ok, 1 error reported by the gateway, 2 usage or configuration error, "
        "3 gateway unreachable or connection lost, 4 timeout.",
    )
    parser.add_argument("--version", action="version", version=f"zapgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    server.add_commands(commands)
    admin.add_commands(commands)
    client.add_commands(commands)
    media.add_commands(commands)
    groups.add_commands(commands)
    webhooks.add_commands(commands)
    chats.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    sys.exit(code)
