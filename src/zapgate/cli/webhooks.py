"""``zapgate webhook create|list|get|update|delete|test|replay|attempts|dead-letters|redeliver|rotate-secret``.

Built on :mod:`.client` (its connection options, :func:`~.client.run` and exit codes) and the connection
options :mod:`.media` copies from ``send``; registered after both. ``docs/webhooks.md`` is the guide.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from ..client import Client
from .client import REQUEST_TIMEOUT, _seconds, run
from .exit_codes import EXIT_CODES_HELP, EXIT_ERROR, EXIT_OK
from .media import _parents
from .output import say

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Register ``zapgate webhook …`` (after :func:`.client.add_commands`)."""
    webhook = commands.add_parser(
        "webhook",
        help="manage the webhook endpoints that receive your events",
        description="Webhook endpoints of your tenant: HTTP URLs the gateway POSTs every event to, signed "
        "(Standard Webhooks), in order, never lost (docs/webhooks.md).\n\n"
        "  zapgate webhook create https://crm.example.com/zapgate --events message.received\n"
        "  zapgate webhook test wh_3f1c9a0b2d4e5f60\n"
        "  zapgate webhook replay wh_3f1c9a0b2d4e5f60 --from-seq 1000",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    parents = _parents(commands.choices["send"])

    def action(name: str, body: Any, *, help: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help, description=description, parents=parents, epilog=EXIT_CODES_HELP
        )
        parser.add_argument(
            "--timeout",
            dest="request_timeout",
            type=_seconds,
            default=REQUEST_TIMEOUT,
            metavar="SECONDS",
            help=f"give up when the gateway has not answered within this many seconds (default {REQUEST_TIMEOUT:g})",
        )
        parser.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")
        parser.set_defaults(handler=lambda args: run(args, body))
        return parser

    def endpoint(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("webhook", metavar="ID", help="the endpoint's id (wh_…), as 'create' printed it")

    def filters(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--events", type=_names, metavar="NAMES", help="only these events, comma-separated (default: all)"
        )
        parser.add_argument(
            "--sessions", type=_names, metavar="NAMES", help="only these sessions, comma-separated (default: all)"
        )
        parser.add_argument("--description", help="a note for yourself (up to 200 characters)")

    create = action(
        "create",
        _create,
        help="add an endpoint; prints its id and secret",
        description="Add an endpoint that receives the tenant's events from now on. Prints its id, then its "
        "signing secret (shown only now: keep it in your receiver's configuration).",
    )
    create.add_argument("endpoint_url", metavar="URL", help="http:// or https:// URL to POST to")
    filters(create)
    create.add_argument("--secret", help="use this whsec_… secret instead of a generated one")
    create.add_argument("--from-seq", type=int, metavar="SEQ", help="also deliver the log from this seq on")

    action("list", _list, help="list the endpoints", description="Every endpoint of the tenant, oldest first.")

    get = action("get", _get, help="show one endpoint", description="Print where ID's delivery stands.")
    endpoint(get)

    update = action(
        "update",
        _update,
        help="change an endpoint, or enable / disable it",
        description="Change what is given. --enable resumes an endpoint the gateway disabled, at its cursor.",
    )
    endpoint(update)
    update.add_argument("--set-url", dest="new_url", metavar="URL", help="deliver to this URL from now on")
    filters(update)
    toggle = update.add_mutually_exclusive_group()
    toggle.add_argument("--enable", dest="enabled", action="store_const", const=True, help="deliver again")
    toggle.add_argument("--disable", dest="enabled", action="store_const", const=False, help="stop delivering")

    delete = action("delete", _delete, help="remove an endpoint", description="Remove ID; nothing more is sent.")
    endpoint(delete)

    test = action(
        "test",
        _test,
        help="send a signed ping now",
        description="POST a signed webhook.ping to ID now; prints the receiver's status and latency. Exits 1 "
        "when the receiver did not answer 2xx.",
    )
    endpoint(test)

    replay = action(
        "replay",
        _replay,
        help="deliver the log again from a seq on",
        description="Move ID's cursor: the events from SEQ on (those the log still holds) are delivered again, "
        "with their original webhook-id.",
    )
    endpoint(replay)
    replay.add_argument("--from-seq", type=int, required=True, metavar="SEQ")

    attempts = action("attempts", _attempts, help="list delivery attempts", description="ID's newest attempts.")
    endpoint(attempts)
    attempts.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 1000)")

    dead = action(
        "dead-letters", _dead_letters, help="list events never accepted", description="ID's dead letters."
    )
    endpoint(dead)

    redeliver = action(
        "redeliver",
        _redeliver,
        help="send dead letters again",
        description="Send ID's dead letters again (the one of --seq, or all).",
    )
    endpoint(redeliver)
    redeliver.add_argument("--seq", type=int, metavar="SEQ")

    rotate = action(
        "rotate-secret",
        _rotate,
        help="replace the signing secret",
        description="A new signing secret (printed; or --secret). The previous one keeps signing too for "
        "webhook_secret_grace_s.",
    )
    endpoint(rotate)
    rotate.add_argument("--secret", help="use this whsec_… secret instead of a generated one")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _json(value: Any) -> None:
    say(msgspec.json.encode(value).decode())


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


async def _create(client: Client, args: argparse.Namespace) -> int:
    created = await client.create_webhook(
        args.endpoint_url,
        events=args.events or (),
        sessions=args.sessions or (),
        secret=args.secret,
        description=args.description or "",
        from_seq=args.from_seq,
    )
    if args.json:
        _json(created)
        return EXIT_OK
    say(created.webhook)
    say(created.secret)
    say("the second line is the signing secret; it is not shown again", sys.stderr)
    return EXIT_OK


async def _list(client: Client, args: argparse.Namespace) -> int:
    listing = await client.webhooks()
    if args.json:
        _json(listing)
        return EXIT_OK
    if not listing:
        say("no webhooks yet: add one with 'zapgate webhook create URL'", sys.stderr)
        return EXIT_OK
    rows = [("ID", "STATE", "PENDING", "LAST", "URL")]
    for hook in listing:
        state = "enabled" if hook.enabled else f"disabled{f' ({hook.disabled_reason})' if hook.disabled_reason else ''}"
        if hook.enabled and hook.failing_since is not None:
            state = "failing"
        rows.append((hook.webhook, state, str(hook.pending), str(hook.last_status or "-"), hook.url))
    _table(rows)
    return EXIT_OK


async def _get(client: Client, args: argparse.Namespace) -> int:
    _json(await client.webhook(args.webhook))
    return EXIT_OK


async def _update(client: Client, args: argparse.Namespace) -> int:
    info = await client.update_webhook(
        args.webhook,
        url=args.new_url,
        events=args.events,
        sessions=args.sessions,
        description=args.description,
        enabled=args.enabled,
    )
    if args.json:
        _json(info)
    else:
        say(f"{info.webhook} updated ({'enabled' if info.enabled else 'disabled'})")
    return EXIT_OK


async def _delete(client: Client, args: argparse.Namespace) -> int:
    await client.delete_webhook(args.webhook)
    say(f"{args.webhook} deleted")
    return EXIT_OK


async def _test(client: Client, args: argparse.Namespace) -> int:
    result = await client.test_webhook(args.webhook)
    if args.json:
        _json(result)
    elif result.status is not None:
        say(f"HTTP {result.status} in {result.latency_ms:.0f} ms")
    else:
        say(f"no answer: {result.error}")
    return EXIT_OK if result.ok else EXIT_ERROR


async def _replay(client: Client, args: argparse.Namespace) -> int:
    info = await client.replay_webhook(args.webhook, args.from_seq)
    if args.json:
        _json(info)
    else:
        say(f"{info.webhook}: delivering again after seq {info.cursor} ({info.pending} events)")
    return EXIT_OK


async def _attempts(client: Client, args: argparse.Namespace) -> int:
    attempts = await client.webhook_attempts(args.webhook, args.limit)
    if args.json:
        _json(attempts)
        return EXIT_OK
    rows = [("SEQ", "EVENT", "TRY", "OUTCOME", "STATUS", "MS", "ERROR")]
    for a in attempts:
        status = str(a.status) if a.status is not None else "-"
        rows.append((str(a.seq), a.event, str(a.attempt), a.outcome, status, f"{a.latency_ms:.0f}", a.error or ""))
    _table(rows)
    return EXIT_OK


async def _dead_letters(client: Client, args: argparse.Namespace) -> int:
    dead = await client.webhook_dead_letters(args.webhook)
    if args.json:
        _json(dead)
        return EXIT_OK
    rows = [("SEQ", "EVENT", "SESSION", "TRIES", "STATUS", "ERROR")]
    for d in dead:
        status = str(d.status) if d.status is not None else "-"
        rows.append((str(d.seq), d.event, d.session or "-", str(d.attempts), status, d.error or ""))
    _table(rows)
    return EXIT_OK


async def _redeliver(client: Client, args: argparse.Namespace) -> int:
    queued = await client.redeliver_webhook(args.webhook, args.seq)
    say(f"{queued} dead letters queued")
    return EXIT_OK


async def _rotate(client: Client, args: argparse.Namespace) -> int:
    rotated = await client.rotate_webhook_secret(args.webhook, args.secret)
    if args.json:
        _json(rotated)
    else:
        say(rotated.secret)
    return EXIT_OK
