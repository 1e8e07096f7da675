"""Client commands of the CLI (pair, send, sessions, events, stop, logout, delete, sim): they talk to a running
gateway.

Each command connects with the Python SDK (:mod:`zapgate.client`), does one thing and exits with the codes
of :mod:`zapgate.cli.exit_codes`. Results go to stdout (one line, a table or JSON lines), progress and
errors to stderr. ``pair`` lives in :mod:`zapgate.cli.pairing`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

import msgspec

from ..client import (
    DEFAULT_URL,
    Client,
    EventGap,
    GatewayUnreachable,
    MessageStatus,
    RequestTimeout,
    connect,
    event_to_json,
)
from ..errors import ConnectionClosed, Unauthorized, ZapgateError
from ..protocol.content import ContactCard, Contacts, Content, Edit, Location, Poll, Reaction, Revoke, Text, Vote
from .exit_codes import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from .output import Body, Failure, say
from .pairing import pair

__all__ = ["add_commands"]

REQUEST_TIMEOUT = 30.0
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}


# -- registration ----------------------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """Register the client commands on the ``zapgate`` parser."""
    connection = argparse.ArgumentParser(add_help=False)
    options = connection.add_argument_group("connection")
    options.add_argument(
        "--url",
        help=f"the gateway's WebSocket URL (ZAPGATE_URL; default {DEFAULT_URL})",
    )
    options.add_argument(
        "--token",
        help="the tenant's token (ZAPGATE_TOKEN). Prefer the variable: a token on the command line shows up in "
        "'ps' and shell history. Create one on the gateway's machine with 'zapgate token create --tenant NAME'",
    )

    def client_command(
        name: str, body: Body, *, help: str, description: str, timeout: float | None = REQUEST_TIMEOUT
    ) -> Any:
        parser = commands.add_parser(
            name,
            help=help,
            description=description,
            parents=[connection],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=EXIT_CODES_HELP,
        )
        if timeout is not None:
            parser.add_argument(
                "--timeout",
                dest="request_timeout",
                type=_seconds,
                default=timeout,
                metavar="SECONDS",
                help=f"give up when the gateway has not answered within this many seconds (default {timeout:g})",
            )
        parser.set_defaults(handler=lambda args: run(args, body), request_timeout=REQUEST_TIMEOUT)
        return parser

    pairing = client_command(
        "pair",
        pair,
        help="start a session and link a phone to it (QR code or pairing code)",
        description="Start SESSION (created on first use) and link a WhatsApp account to it.\n\n"
        "Without --phone, each QR code is drawn in the terminal as it rotates (WhatsApp shows up to six, the\n"
        "first for 60 s, then 20 s each). On the phone: WhatsApp > Settings > Linked devices > Link a device,\n"
        "then scan. With --phone, a pairing code is printed instead: on the phone choose 'Link with phone\n"
        "number instead' and type it.\n\n"
        "Exits 0 once the session is connected, 4 when no phone linked it before the codes ran out (or\n"
        "--timeout passed), 1 when the gateway reports a failure. Running it for a session that is already\n"
        "linked just waits until it is connected.",
        timeout=None,
    )
    pairing.add_argument("session", metavar="SESSION", help="session name: letters, digits, '.', '_' or '-'")
    pairing.add_argument(
        "--phone",
        metavar="NUMBER",
        help="link by pairing code for this phone number, in international format (e.g. +55 11 99999-0000)",
    )
    pairing.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="give up after this many seconds (default: wait until the gateway's last QR code expires)",
    )

    send = client_command(
        "send",
        _send,
        help="send a message (text, location, contact, poll, reaction, edit, revoke, vote…)",
        description="Send a message from SESSION to TO and print the WhatsApp message id. Without an option\n"
        "that says otherwise, TEXT is sent as a text; with --edit it is the new text.\n\n"
        "The send is idempotent: it carries a key (--idempotency-key, or a fresh one), so if the connection\n"
        "drops the command is repeated safely and the message goes out once.\n\n"
        "examples:\n"
        "  zapgate send main +5511999990000 'Olá!' --wait delivered\n"
        "  zapgate send main +5511999990000 --location -23.5613,-46.6565 --name MASP\n"
        "  zapgate send main +5511999990000 --poll 'Pizza?' --option sim --option não\n"
        "  zapgate send main +5511999990000 --react 3EB0A1B2C3D4E5F6A7B8C9 '👍'\n"
        '  zapgate send main +5511999990000 --content \'{"kind":"text","text":"any kind as JSON"}\'',
    )
    send.add_argument("session", metavar="SESSION", help="a connected session of your tenant")
    send.add_argument("to", metavar="TO", help="recipient: phone number in international format, or a JID")
    send.add_argument("text", metavar="TEXT", nargs="?", help="the message text (or the emoji of --react)")
    send.set_defaults(late_text=True)  # TEXT may also come after the options (see cli.parse)
    kinds = send.add_mutually_exclusive_group()
    kinds.add_argument("--location", metavar="LAT,LNG", help="send a location pin (with --name, --address)")
    kinds.add_argument(
        "--contact", metavar="NAME:PHONE[,PHONE]", help="send a contact card, e.g. 'Carla:+5511988887777'"
    )
    kinds.add_argument("--poll", metavar="QUESTION", help="send a poll with the --option values")
    kinds.add_argument("--vote", metavar="POLL_ID", help="vote in a poll of this chat for the --option values")
    kinds.add_argument("--react", metavar="MESSAGE_ID", help="react to a message with the emoji TEXT ('' removes)")
    kinds.add_argument("--edit", metavar="MESSAGE_ID", help="replace the text of one of your messages by TEXT")
    kinds.add_argument("--revoke", metavar="MESSAGE_ID", help="delete one of your messages for everyone")
    kinds.add_argument("--content", metavar="JSON", help="any content as JSON (docs/protocol.md, 'Content')")
    send.add_argument("--name", help="--location: the place's name")
    send.add_argument("--address", help="--location: the place's address")
    send.add_argument("--option", action="append", default=[], help="--poll/--vote: an option (repeat it)")
    send.add_argument("--selectable", type=int, default=1, help="--poll: how many options a voter may pick (0: any)")
    send.add_argument("--mention", action="append", default=[], help="mention this number or JID (repeat it)")
    send.add_argument("--reply-to", metavar="MESSAGE_ID", help="quote this message of the same chat")
    send.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="repeat-safe key: the same key and text again returns the first result and sends nothing",
    )
    send.add_argument(
        "--wait",
        choices=["sent", "delivered", "read"],
        help="wait until the message is at least this far (exit 1 if it fails, 4 on --timeout)",
    )
    send.add_argument("--json", action="store_true", help="print the gateway's result as JSON")

    sessions = client_command(
        "sessions",
        _sessions,
        help="list the tenant's sessions",
        description="List your tenant's sessions with their status and linked phone.",
    )
    sessions.add_argument("--json", action="store_true", help="print JSON (one array) instead of a table")

    events = client_command(
        "events",
        _events,
        help="print events as JSON lines (for jq), following live",
        description="Print the tenant's events, one JSON object per line, exactly as the gateway sends them,\n"
        "and keep following until interrupted. A dropped connection is resumed from the last event printed,\n"
        "so nothing is skipped or repeated. If the gateway no longer has events you missed, a line\n"
        '{"type":"gap","after":N,"last_seq":M} takes their place (and a warning goes to stderr).\n\n'
        "examples:\n"
        "  zapgate events | jq -c 'select(.event == \"message.received\") | .data'\n"
        "  zapgate events --from 0 --limit 100      # the first 100 events the gateway still keeps\n"
        "  zapgate events --session shop --event 'message.*' --event session.status",
        timeout=None,
    )
    events.add_argument(
        "--from",
        dest="from_seq",
        type=int,
        metavar="SEQ",
        help="start after event number SEQ (0: from the oldest kept); default: only new events",
    )
    events.add_argument(
        "--session",
        dest="sessions",
        action="append",
        metavar="SESSION",
        help="only this session's events (repeat for several); the gateway sends no others",
    )
    events.add_argument(
        "--event",
        dest="event_types",
        action="append",
        metavar="TYPE",
        help="only events of this type: a name (message.received) or a prefix wildcard ('message.*'; quote it "
        "for the shell); repeat for several",
    )
    events.add_argument("--limit", type=int, metavar="N", help="exit after printing N events")

    logout = client_command(
        "logout",
        _logout,
        help="unlink a session from its phone",
        description="Unlink SESSION from its phone and forget its keys. Run 'zapgate pair SESSION' to link again.",
    )
    logout.add_argument("session", metavar="SESSION")

    stop = client_command(
        "stop",
        _stop,
        help="stop a session, keeping its link",
        description="Stop SESSION but keep its link to the phone: 'zapgate pair SESSION' starts it again "
        "without a scan.",
    )
    stop.add_argument("session", metavar="SESSION")

    delete = client_command(
        "delete",
        _delete,
        help="delete a session and everything stored for it",
        description="Log SESSION out (unlinking it from its phone), fail its queued messages and delete it with "
        "everything stored for it.\nIts past events stay in the event log until retention drops them. This "
        "cannot be undone; 'zapgate pair SESSION' then creates a new session.",
    )
    delete.add_argument("session", metavar="SESSION")

    sim = commands.add_parser(
        "sim",
        help="act as the phone on a simulator gateway (scan, unlink, network, receive, restrict)",
        description="Drive the simulated WhatsApp of a gateway started with --engine simulator: play the "
        "phone that scans a QR code, unlinks the device, loses its network, or a contact that writes in.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim_commands = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)

    def sim_command(name: str, body: Body, *, help: str, description: str) -> Any:
        parser = sim_commands.add_parser(
            name, help=help, description=description, parents=[connection], epilog=EXIT_CODES_HELP
        )
        parser.add_argument(
            "--timeout",
            dest="request_timeout",
            type=_seconds,
            default=REQUEST_TIMEOUT,
            metavar="SECONDS",
            help=f"give up when the gateway has not answered within this many seconds (default {REQUEST_TIMEOUT:g})",
        )
        parser.set_defaults(handler=lambda args: run(args, body))
        return parser

    scan = sim_command(
        "scan",
        _sim_scan,
        help="a simulated phone scans a QR code (or types a pairing code)",
        description="A simulated phone with number --phone scans QR (the text 'zapgate pair' prints under "
        "each code on a simulator) or types a pairing code (ABCD-EFGH).",
    )
    scan.add_argument("qr", metavar="QR", help="the QR code's text (2@...) or a pairing code")
    scan.add_argument("--phone", required=True, metavar="NUMBER", help="the phone's number, e.g. +55 11 99999-0000")

    unlink = sim_command(
        "unlink",
        _sim_unlink,
        help="the phone removes the session from its linked devices",
        description="The phone linked to SESSION removes it from 'Linked devices': the session is logged out.",
    )
    unlink.add_argument("session", metavar="SESSION")

    network = sim_command(
        "network",
        _sim_network,
        help="take the session's network down or up",
        description="Drop (off) or restore (on) SESSION's network: it goes 'disconnected', then 'connected'.",
    )
    network.add_argument("session", metavar="SESSION")
    network.add_argument("state", choices=["on", "off"], help="on: network restored; off: network down")

    receive = sim_command(
        "receive",
        _sim_receive,
        help="a contact sends a message to the session",
        description="The contact --from writes TEXT to SESSION's number; prints the message id.",
    )
    receive.add_argument("session", metavar="SESSION")
    receive.add_argument("text", metavar="TEXT")
    receive.add_argument("--from", dest="from_", required=True, metavar="NUMBER", help="the contact's phone number")
    receive.add_argument("--reply-to", metavar="MESSAGE_ID", help="quote this message")

    restrict = sim_command(
        "restrict",
        _sim_restrict,
        help="WhatsApp restricts the session's sending for a while",
        description="WhatsApp restricts SESSION's sending for SECONDS, like a temporary ban: the session emits "
        "session.restricted and holds its queued messages until then. Prints when the restriction ends.",
    )
    restrict.add_argument("session", metavar="SESSION")
    restrict.add_argument("seconds", metavar="SECONDS", type=_seconds, help="how long (at most 7 days)")
    restrict.add_argument("--reason", default="send_restricted", help="the reason reported (default send_restricted)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


# -- running one command -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, body: Body) -> int:
    """Connect, run ``body``, close; turn every failure into a message on stderr and an exit code."""
    token = args.token or os.environ.get("ZAPGATE_TOKEN", "")
    if not token:
        return _fail(
            "no token: set ZAPGATE_TOKEN (or pass --token). Create one on the gateway's machine with "
            "'zapgate token create --tenant NAME'",
            EXIT_USAGE,
        )
    url = args.url or os.environ.get("ZAPGATE_URL") or DEFAULT_URL
    try:
        client = connect(
            url,
            token,
            resume_from=getattr(args, "from_seq", None),
            request_timeout=args.request_timeout,
            sessions=getattr(args, "sessions", None),
            events=getattr(args, "event_types", None),
        )
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)

    async def main() -> int:
        async with client:
            return await body(client, args)

    _report_reconnections()
    try:
        return asyncio.run(main())
    except Failure as exc:
        return _fail(exc.message, exc.code)
    except Unauthorized as exc:
        return _fail(f"the gateway refused the token: {exc.message}", EXIT_ERROR)
    except RequestTimeout as exc:
        return _fail(f"timed out: {exc.message}", EXIT_TIMEOUT)
    except GatewayUnreachable as exc:
        return _fail(f"{exc.message}. Is 'zapgate serve' running there?", EXIT_UNREACHABLE)
    except ConnectionClosed as exc:
        return _fail(exc.message, EXIT_UNREACHABLE)
    except ZapgateError as exc:
        return _fail(f"{exc.message} ({exc.code})", EXIT_ERROR)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. 'zapgate events | head': the reader left, which is fine
        _silence_stdout()
        return EXIT_OK


def _report_reconnections() -> None:
    """Say on stderr when the connection drops and comes back (the SDK logs it at INFO); errors are
    reported once, by :func:`run`."""
    logger = logging.getLogger("zapgate.client")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("zapgate: %(message)s"))
    handler.addFilter(lambda record: record.levelno == logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _fail(message: str, code: int) -> int:
    print(f"zapgate: {message}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# -- send, sessions, stop, logout, delete ------------------------------------------------------------------------------


def _content(args: argparse.Namespace) -> Content:
    """The content the ``send`` options describe; :class:`Failure` (usage) when they do not fit together."""
    text: str | None = args.text
    try:
        if args.content is not None:
            content: Content = msgspec.json.decode(args.content, type=Content)
            return content
        if args.location is not None:
            latitude, _, longitude = args.location.partition(",")
            return Location(latitude=float(latitude), longitude=float(longitude), name=args.name, address=args.address)
        if args.contact is not None:
            name, _, phones = args.contact.partition(":")
            return Contacts(contacts=[ContactCard(name=name.strip(), phones=[p.strip() for p in phones.split(",")])])
        if args.poll is not None:
            return Poll(question=args.poll, options=args.option, selectable=args.selectable)
        if args.vote is not None:
            return Vote(message_id=args.vote, options=args.option)
        if args.react is not None:
            return Reaction(message_id=args.react, emoji=text or "")
        if args.revoke is not None:
            return Revoke(message_id=args.revoke)
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise Failure(f"invalid message options: {exc}", EXIT_USAGE) from None
    if not text:
        raise Failure("nothing to send: give TEXT, or an option such as --location or --poll", EXIT_USAGE)
    if args.edit is not None:
        return Edit(message_id=args.edit, text=text)
    return Text(text=text)


async def _send(client: Client, args: argparse.Namespace) -> int:
    from .media import media_content  # here: cli.media builds on this module

    content = await media_content(client, args) or _content(args)
    result = await client.send(
        args.session,
        args.to,
        content,
        reply_to=args.reply_to,
        mentions=args.mention or None,
        idempotency_key=args.idempotency_key,
    )
    status: str = result.status
    if args.wait and STATUS_RANK[status] < STATUS_RANK[args.wait]:
        try:
            async with asyncio.timeout(args.request_timeout):
                status = await _wait_status(client, result.message_id, args.wait)
        except TimeoutError as exc:
            if isinstance(exc, ZapgateError):
                raise
            raise Failure(
                f"message {result.message_id} was accepted but is not {args.wait} after "
                f"{args.request_timeout:g} s (last status: {status})",
                EXIT_TIMEOUT,
            ) from None
    if args.json:
        say(json.dumps({**msgspec.to_builtins(result), "status": status}))
    else:
        say(result.message_id)
    say(f"{status}: message {result.message_id} to {result.chat}", sys.stderr)
    return EXIT_OK


async def _wait_status(client: Client, message_id: str, wanted: str) -> str:
    async for event in client.events():
        if not isinstance(event, MessageStatus) or event.data.message_id != message_id:
            continue
        if event.data.status == "failed":
            raise Failure(f"message {message_id} failed: {event.data.reason or 'no reason given'}")
        if STATUS_RANK[event.data.status] >= STATUS_RANK[wanted]:
            return event.data.status
    raise ConnectionClosed("the client closed while waiting for the message status")


async def _sessions(client: Client, args: argparse.Namespace) -> int:
    listing = await client.sessions()
    if args.json:
        say(msgspec.json.encode(listing).decode())
        return EXIT_OK
    if not listing:
        say("no sessions yet: start one with 'zapgate pair NAME'", sys.stderr)
        return EXIT_OK
    rows = [("SESSION", "STATUS", "PHONE", "QUEUED", "REASON")]
    for info in listing:
        queued = str(info.outbox.queued) if info.outbox else "0"
        rows.append((info.session, info.status, f"+{info.me.phone}" if info.me else "-", queued, info.reason or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


async def _logout(client: Client, args: argparse.Namespace) -> int:
    await client.logout(args.session)
    say(f"session {args.session} logged out; link it again with 'zapgate pair {args.session}'")
    return EXIT_OK


async def _stop(client: Client, args: argparse.Namespace) -> int:
    info = await client.stop_session(args.session)
    say(f"session {args.session} stopped{'; its link is kept' if info.paired else ''}")
    return EXIT_OK


async def _delete(client: Client, args: argparse.Namespace) -> int:
    await client.delete_session(args.session)
    say(f"session {args.session} deleted")
    return EXIT_OK


# -- events -------------------------------------------------------------------------------------------------


async def _events(client: Client, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit <= 0:
        raise Failure("--limit must be at least 1", EXIT_USAGE)
    printed = 0
    out = sys.stdout
    async for event in client.events():
        if isinstance(event, EventGap):
            say(
                f"warning: the gateway no longer has events {event.after + 1} to {event.last_seq}: they are lost",
                sys.stderr,
            )
            line = json.dumps({"type": "gap", "after": event.after, "last_seq": event.last_seq})
        else:
            line = event_to_json(event).decode()
            printed += 1
        out.write(line + "\n")
        out.flush()
        if args.limit is not None and printed >= args.limit:
            break
    return EXIT_OK


# -- simulator ---------------------------------------------------------------------------------------------


async def _sim_scan(client: Client, args: argparse.Namespace) -> int:
    me = await client.sim_scan(args.qr, args.phone)
    say(f"linked +{me.phone} ({me.jid})")
    return EXIT_OK


async def _sim_unlink(client: Client, args: argparse.Namespace) -> int:
    await client.sim_unlink(args.session)
    say(f"the phone unlinked session {args.session}")
    return EXIT_OK


async def _sim_network(client: Client, args: argparse.Namespace) -> int:
    await client.sim_network(args.session, args.state == "on")
    say(f"session {args.session}: network {args.state}")
    return EXIT_OK


async def _sim_receive(client: Client, args: argparse.Namespace) -> int:
    message_id = await client.sim_receive(args.session, args.from_, args.text, reply_to=args.reply_to)
    say(message_id)
    return EXIT_OK


async def _sim_restrict(client: Client, args: argparse.Namespace) -> int:
    until = await client.sim_restrict(args.session, args.seconds, reason=args.reason)
    say(f"session {args.session}: sending restricted until {time.strftime('%H:%M:%S', time.localtime(until))}")
    return EXIT_OK
