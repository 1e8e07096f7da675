"""The ``zapgate`` command line.

Server-side commands (``serve``, ``token``, ``tenant``, ``audit``) work on the local data directory; client
commands (``pair``, ``send``, ``sessions``, ``events``, ``stop``, ``logout``, ``delete``, ``sim``, ``media``,
``contact``, ``group``, ``chat``, ``history``, ``webhook``) talk to a running gateway over its WebSocket API.
Exit codes are in :mod:`zapgate.cli.exit_codes`.
"""

from __future__ import annotations

import argparse
import re
import sys

from .. import __version__
from . import admin, chats, client, groups, media, server, webhooks

__all__ = ["build_parser", "main", "parse"]

# Options whose value may start with '-' (a southern or western coordinate): argparse would take
# ``--location -23.56,-46.65`` for two options, so such a value is glued to its option first.
NEGATIVE_VALUE_OPTIONS = ("--location",)
NEGATIVE_NUMBER = re.compile(r"-\d")


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


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line the way people type it.

    Two things argparse alone refuses are accepted: a value that starts with '-' after ``--location``
    (``--location -23.5613,-46.6565``), and ``zapgate send``'s TEXT after the options
    (``--react MESSAGE_ID '👍'``: argparse fills the positionals in one go before the options).
    """
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    glued: list[str] = []
    for word in words:
        if glued and glued[-1] in NEGATIVE_VALUE_OPTIONS and NEGATIVE_NUMBER.match(word):
            glued[-1] = f"{glued[-1]}={word}"
        else:
            glued.append(word)
    args, extra = parser.parse_known_args(glued)
    if extra:
        late_text = getattr(args, "late_text", False) and args.text is None
        if late_text and len(extra) == 1 and not extra[0].startswith("-"):
            args.text = extra[0]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    code: int = args.handler(args)
    sys.exit(code)
