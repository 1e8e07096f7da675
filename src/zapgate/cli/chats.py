"""Chats, history and contacts from the command line: ``zapgate chat list|read|archive|pin|mute``,
``zapgate history``, ``zapgate contact check|info|block|unblock|blocklist``.

Built on :mod:`.client` (connection options, :func:`~.client.run`, exit codes); registered after it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..client import Client
from .client import REQUEST_TIMEOUT, _seconds, run
from .exit_codes import EXIT_CODES_HELP, EXIT_OK
from .media import _parents
from .output import say

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``chat``, ``history`` and ``contact`` (after :func:`.client.add_commands`)."""
    parents = _parents(commands.choices["send"])

    def group(name: str, help: str, description: str) -> Any:
        parser = commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)

    def action(actions: Any, name: str, body: Any, *, help: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help, description=description, parents=parents, epilog=EXIT_CODES_HELP
        )
        _common(parser, body)
        parser.add_argument("session", metavar="SESSION")
        return parser

    chat = group("chat", "list chats, read them, archive, pin or mute them", "The chats of a session.")
    listing = action(
        chat, "list", _chat_list, help="list chats, most recent first", description="List SESSION's chats."
    )
    listing.add_argument("--limit", type=int, default=50, help="at most this many (1-500, default 50)")
    listing.add_argument("--before", metavar="CHAT", help="the chats after CHAT (the last of the previous page)")
    only = listing.add_mutually_exclusive_group()
    only.add_argument("--archived", dest="archived", action="store_true", default=None, help="only archived chats")
    only.add_argument("--not-archived", dest="archived", action="store_false", help="only chats not archived")
    listing.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")
    read = action(chat, "read", _chat_read, help="read a whole chat", description="Send read receipts for CHAT.")
    read.add_argument("chat", metavar="CHAT")
    for name, body, what in (("archive", _chat_archive, "archive"), ("pin", _chat_pin, "pin")):
        parser = action(chat, name, body, help=f"{what} a chat (--undo: un{what})", description=f"{what.title()} CHAT.")
        parser.add_argument("chat", metavar="CHAT")
        parser.add_argument("--undo", action="store_true", help=f"un{what} instead")
    mute = action(chat, "mute", _chat_mute, help="mute a chat (--undo: unmute)", description="Mute CHAT.")
    mute.add_argument("chat", metavar="CHAT")
    mute.add_argument(
        "--for", dest="mute_for", type=_seconds, metavar="SECONDS", help="for this long (default: until unmuted)"
    )
    mute.add_argument("--undo", action="store_true", help="unmute instead")

    history = commands.add_parser(
        "history",
        help="print the stored messages of a chat",
        description="The messages the gateway stored for CHAT of SESSION (received, sent, and WhatsApp's history "
        "sync), newest first.",
        parents=parents,
        epilog=EXIT_CODES_HELP,
    )
    _common(history, _history)
    history.add_argument("session", metavar="SESSION")
    history.add_argument("chat", metavar="CHAT")
    history.add_argument("--before", metavar="MESSAGE_ID", help="only messages older than this one")
    history.add_argument("--limit", type=int, default=50, help="at most this many (1-500, default 50)")
    history.add_argument("--json", action="store_true", help="print one message per line as JSON")

    contact = _actions_of(commands.choices["contact"]) if "contact" in commands.choices else None
    if contact is None:
        contact = group("contact", "check numbers, show profiles, block contacts", "Contacts of a session.")
    check = action(contact, "check", _check, help="are these numbers on WhatsApp?", description="Check PHONE… (1-100).")
    check.add_argument("phones", metavar="PHONE", nargs="+")
    check.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")
    info = action(contact, "info", _info, help="show a contact's profile", description="Show CONTACT's profile.")
    info.add_argument("contact", metavar="CONTACT", help="a phone number, phone JID or LID")
    info.add_argument("--picture", metavar="FILE", help="also save the profile picture to FILE")
    for name, body in (("block", _block), ("unblock", _unblock)):
        parser = action(contact, name, body, help=f"{name} a contact", description=f"{name.title()} CONTACT.")
        parser.add_argument("contact", metavar="CONTACT")
    action(contact, "blocklist", _blocklist, help="list blocked contacts", description="Who SESSION's account blocked.")


def _actions_of(parser: argparse.ArgumentParser) -> Any:
    """The sub-command table of a command another module registered (``contact``: ``contact resolve``)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _common(parser: argparse.ArgumentParser, body: Any) -> None:
    parser.add_argument(
        "--timeout",
        dest="request_timeout",
        type=_seconds,
        default=REQUEST_TIMEOUT,
        metavar="SECONDS",
        help=f"give up when the gateway has not answered within this many seconds (default {REQUEST_TIMEOUT:g})",
    )
    parser.set_defaults(handler=lambda args: run(args, body))


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def _json(value: Any) -> str:
    return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)


async def _chat_list(client: Client, args: argparse.Namespace) -> int:
    page = await client.chats(args.session, limit=args.limit, before=args.before, archived=args.archived)
    if args.json:
        say(_json(page))
        return EXIT_OK
    for c in page.chats:
        flags = "".join(f for f, on in (("A", c.archived), ("P", c.pinned), ("M", c.muted)) if on) or "-"
        last = c.last_message
        text = "" if last is None else ("me: " if last.from_me else "") + (last.text or f"[{last.kind}]")
        say(f"{c.chat}\t{c.name or ''}\t{c.unread} unread\t{flags}\t{_when(c.timestamp)}\t{text[:60]}")
    if page.more and page.chats:
        say(f"more: --before {page.chats[-1].chat}", sys.stderr)
    return EXIT_OK


async def _chat_read(client: Client, args: argparse.Namespace) -> int:
    say(f"{args.chat}: {await client.read_chat(args.session, args.chat)} message(s) read")
    return EXIT_OK


async def _chat_archive(client: Client, args: argparse.Namespace) -> int:
    chat = await client.archive_chat(args.session, args.chat, archived=not args.undo)
    say(f"{chat.chat}: {'archived' if chat.archived else 'not archived'}")
    return EXIT_OK


async def _chat_pin(client: Client, args: argparse.Namespace) -> int:
    chat = await client.pin_chat(args.session, args.chat, pinned=not args.undo)
    say(f"{chat.chat}: {'pinned' if chat.pinned else 'not pinned'}")
    return EXIT_OK


async def _chat_mute(client: Client, args: argparse.Namespace) -> int:
    if args.undo:
        chat = await client.unmute_chat(args.session, args.chat)
    else:
        until = int(time.time() + args.mute_for) if args.mute_for else None
        chat = await client.mute_chat(args.session, args.chat, until=until)
    state = "not muted" if not chat.muted else f"muted until {_when(chat.muted_until)}" if chat.muted_until else "muted"
    say(f"{chat.chat}: {state}")
    return EXIT_OK


async def _history(client: Client, args: argparse.Namespace) -> int:
    page = await client.history(args.session, args.chat, before=args.before, limit=args.limit)
    for m in page.messages:
        if args.json:
            say(_json(m))
            continue
        who = "me" if m.from_me else (m.push_name or m.from_ or "?")
        say(f"{_when(m.timestamp)}\t{m.message_id}\t{who}: {m.text or f'[{m.kind}]'}")
    if page.more and page.messages:
        say(f"more: --before {page.messages[-1].message_id}", sys.stderr)
    return EXIT_OK


async def _check(client: Client, args: argparse.Namespace) -> int:
    answers = await client.check_numbers(args.session, args.phones)
    for a in answers:
        if args.json:
            say(_json(a))
        elif not a.on_whatsapp:
            say(f"{a.phone}\tnot on WhatsApp")
        else:
            business = f"\tbusiness: {a.business_name}" if a.business else ""
            say(f"{a.phone}\t{a.jid}\t{a.lid or ''}{business}")
    return EXIT_OK


async def _info(client: Client, args: argparse.Namespace) -> int:
    info = await client.contact_info(args.session, args.contact)
    say(_json(info))
    if args.picture:
        if info.picture is None:
            say("no profile picture (none, or hidden by the contact's privacy)", sys.stderr)
        else:
            await client.download_to(info.picture.media_id, args.picture)
            say(f"picture written to {args.picture}", sys.stderr)
    return EXIT_OK


async def _block(client: Client, args: argparse.Namespace) -> int:
    result = await client.block(args.session, args.contact)
    say(f"{result.jid}: {'blocked' if result.blocked else 'not blocked'}")
    return EXIT_OK


async def _unblock(client: Client, args: argparse.Namespace) -> int:
    result = await client.block(args.session, args.contact, blocked=False)
    say(f"{result.jid}: {'blocked' if result.blocked else 'not blocked'}")
    return EXIT_OK


async def _blocklist(client: Client, args: argparse.Namespace) -> int:
    for jid in await client.blocklist(args.session):
        say(jid)
    return EXIT_OK
