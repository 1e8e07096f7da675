"""Contacts and groups on the command line: ``zapgate contact resolve`` and ``zapgate group …`` (they talk to a
running gateway, like :mod:`.client`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import msgspec

from ..client import Client
from ..protocol.content import Media
from .client import REQUEST_TIMEOUT, _seconds, run
from .exit_codes import EXIT_CODES_HELP, EXIT_ERROR, EXIT_OK
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

    group = family(
        "group",
        help="create and manage groups",
        description="Groups of a session's account (docs/groups.md). GROUP is a group JID (120363…@g.us);\n"
        "people are phone numbers, JIDs or LIDs. Results are printed as JSON.",
    )
    create = group(
        "create",
        _create,
        help="create a group",
        description="Create a group named SUBJECT with PARTICIPANTS; prints the group and one result per person.",
    )
    create.add_argument("session", metavar="SESSION")
    create.add_argument("subject", metavar="SUBJECT")
    create.add_argument("participants", metavar="PARTICIPANT", nargs="*")
    listing = group("list", _list, help="list the account's groups", description="List SESSION's groups.")
    listing.add_argument("session", metavar="SESSION")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info = group("info", _info, help="show a group and its members", description="Print GROUP with its members.")
    info.add_argument("session", metavar="SESSION")
    info.add_argument("group", metavar="GROUP")
    for action in ("add", "remove", "promote", "demote"):
        change = group(
            action,
            _participants,
            help=f"{action} members" if action in ("add", "remove") else f"{action} members (admin rights)",
            description=f"{action.capitalize()} PARTICIPANTS in GROUP; prints one result per person. Exits 1 "
            "when WhatsApp refused anyone.",
        )
        change.add_argument("session", metavar="SESSION")
        change.add_argument("group", metavar="GROUP")
        change.add_argument("participants", metavar="PARTICIPANT", nargs="+")
        change.set_defaults(action=action)
    invite = group("invite", _invite, help="print the invite link", description="Print GROUP's invite link.")
    invite.add_argument("session", metavar="SESSION")
    invite.add_argument("group", metavar="GROUP")
    invite.add_argument("--reset", action="store_true", help="revoke the current link and print a new one")
    join = group("join", _join, help="join a group by invite link", description="Join by LINK; prints the group.")
    join.add_argument("session", metavar="SESSION")
    join.add_argument("link", metavar="LINK")
    leave = group("leave", _leave, help="leave a group", description="Leave GROUP.")
    leave.add_argument("session", metavar="SESSION")
    leave.add_argument("group", metavar="GROUP")
    update = group(
        "update",
        _update,
        help="change a group's subject, description, picture or settings",
        description="Change what the options give; prints the group.",
    )
    update.add_argument("session", metavar="SESSION")
    update.add_argument("group", metavar="GROUP")
    update.add_argument("--subject")
    update.add_argument("--description", help="'' removes it")
    update.add_argument("--picture", type=Path, metavar="FILE", help="a JPEG or PNG image")
    update.add_argument("--announce", choices=["on", "off"], help="on: only admins send messages")
    update.add_argument("--locked", choices=["on", "off"], help="on: only admins edit the group")
    update.add_argument(
        "--ephemeral", type=int, choices=[0, 86400, 604800, 7776000], help="disappearing messages (seconds; 0 off)"
    )


async def _resolve(client: Client, args: argparse.Namespace) -> int:
    identity = await client.resolve_contact(args.session, args.contact)
    say(msgspec.json.encode(identity).decode())
    return EXIT_OK


def _json(value: Any) -> None:
    say(msgspec.json.encode(value).decode())


async def _create(client: Client, args: argparse.Namespace) -> int:
    _json(await client.create_group(args.session, args.subject, args.participants))
    return EXIT_OK


async def _list(client: Client, args: argparse.Namespace) -> int:
    groups = await client.groups(args.session)
    if args.json:
        _json(groups)
        return EXIT_OK
    for info in groups:
        say(f"{info.group}  {info.size:>4}  {info.subject}")
    return EXIT_OK


async def _info(client: Client, args: argparse.Namespace) -> int:
    _json(await client.group_info(args.session, args.group))
    return EXIT_OK


async def _participants(client: Client, args: argparse.Namespace) -> int:
    results = await client.group_participants(args.session, args.group, args.action, args.participants)
    _json(results)
    return EXIT_OK if all(r.status == "ok" for r in results) else EXIT_ERROR


async def _invite(client: Client, args: argparse.Namespace) -> int:
    say(await client.group_invite_link(args.session, args.group, reset=args.reset))
    return EXIT_OK


async def _join(client: Client, args: argparse.Namespace) -> int:
    _json(await client.join_group(args.session, args.link))
    return EXIT_OK


async def _leave(client: Client, args: argparse.Namespace) -> int:
    await client.leave_group(args.session, args.group)
    say(f"left {args.group}")
    return EXIT_OK


async def _update(client: Client, args: argparse.Namespace) -> int:
    picture = None
    if args.picture is not None:
        picture = Media(id=(await client.upload(args.picture)).media_id)
    switch = {"on": True, "off": False, None: None}
    info = await client.update_group(
        args.session,
        args.group,
        subject=args.subject,
        description=args.description,
        picture=picture,
        announce=switch[args.announce],
        locked=switch[args.locked],
        ephemeral=args.ephemeral,
    )
    _json(info)
    return EXIT_OK
