"""Contacts and groups on the command line: ``zapgate contact resolve`` and ``zapgate group …`` (they talk to a
running gateway, like :mod:`.client`)."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from ..client import Client
from .client import REQUEST_TIMEOUT, _seconds, run
from .exit_codes import EXIT_CODES_HELP, EXIT_OK
from .media import _parents
from .output import say

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``contact`` and ``group`` (after :func:`.client.add_commands`)."""
    parents = _parents(commands.choices["send"])

    def family(name: str, *, help: str, description: str) -> Any:
        parser = commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)

        def action(action_name: str, body: Any, *, help: str, description: str) -> argparse.ArgumentParser:
            sub: argparse.ArgumentParser = actions.add_parser(
                action_name, help=help, description=description, parents=parents, epilog=EXIT_CODES_HELP
            )
            sub.add_argument(
                "--timeout",
                dest="request_timeout",
                type=_seconds,
                default=REQUEST_TIMEOUT,
                metavar="SECONDS",
                help="give up when the gateway has not answered within this many seconds "
                f"(default {REQUEST_TIMEOUT:g})",
            )
            sub.set_defaults(handler=lambda args: run(args, body))
            return sub

        return action

    contact = family(
        "contact",
        help="who is who: a person's phone number and LID",
        description="Contacts as a session knows them (docs/groups.md).",
    )
    resolve = contact(
        "resolve",
        _resolve,
        help="print a person's phone JID, LID and number",
        description="Print both addresses of CONTACT (a phone number, a phone JID or a LID …@lid) as SESSION\n"
        'knows them, as JSON: {"jid", "lid", "phone"}; a side the session never saw is left out.',
    )
    resolve.add_argument("session", metavar="SESSION")
    resolve.add_argument("contact", metavar="CONTACT", help="+55 11 99999-0000, 5511…@s.whatsapp.net or …@lid")


async def _resolve(client: Client, args: argparse.Namespace) -> int:
    identity = await client.resolve_contact(args.session, args.contact)
    say(msgspec.json.encode(identity).decode())
    return EXIT_OK
