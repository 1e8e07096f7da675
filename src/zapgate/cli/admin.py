"""``zapgate tenant`` and ``zapgate audit``: tenants, their quotas and the audit log, on the gateway's machine.

Like ``zapgate token`` they work on the gateway's database (its data directory, or ``ZAPGATE_DATABASE_URL``),
also while it runs; the admin API (``tenant.*``, ``audit.list``) does the same over the network. A tenant
disabled here is enforced by the running gateway at its next periodic check (within 30 s): its connections are
closed and its sessions stopped; through the API that happens at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..storage import AuditEntry, Storage, TenantQuotas, TenantRecord
from ..storage.tenants import QUOTA_FIELDS, effective_quotas
from .exit_codes import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from .server import audit_local, settings_for, with_storage

__all__ = ["add_commands"]


def _quota(text: str) -> int | None:
    if text.strip().lower() == "default":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (or 'default')") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a quota is 0 (no limit) or more")
    return value


def _quota_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("quotas (0: no limit; 'default': the gateway's setting)")
    group.add_argument("--max-sessions", type=_quota, default=argparse.SUPPRESS, metavar="N")
    group.add_argument("--max-queued-messages", type=_quota, default=argparse.SUPPRESS, metavar="N")
    group.add_argument("--max-queued-bytes", type=_quota, default=argparse.SUPPRESS, metavar="N")


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="(ZAPGATE_DATA_DIR; default ./zapgate-data)")


def add_commands(commands: Any) -> None:
    tenant = commands.add_parser(
        "tenant",
        help="create, list, disable and enable tenants; set their quotas",
        description="Manage tenants in the gateway's database (works while the gateway runs; see docs/security.md).",
    )
    actions = tenant.add_subparsers(dest="tenant_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a tenant, with quotas of its own if given")
    create.add_argument("name", help="lower-case letters, digits, '-' or '_'")
    _quota_options(create)
    _data_dir(create)
    create.set_defaults(handler=run_tenant_create)
    update = actions.add_parser("update", help="change a tenant's quotas")
    update.add_argument("name")
    _quota_options(update)
    _data_dir(update)
    update.set_defaults(handler=run_tenant_update)
    listing = actions.add_parser("list", help="list tenants with their quotas and usage")
    _data_dir(listing)
    listing.set_defaults(handler=run_tenant_list)
    for action, help_text in (
        ("disable", "refuse the tenant's tokens, close its connections and stop its sessions"),
        ("enable", "accept the tenant's tokens again (its sessions stay stopped until started)"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("name")
        _data_dir(sub)
        sub.set_defaults(handler=run_tenant_switch, enable=action == "enable")

    audit = commands.add_parser(
        "audit",
        help="show the audit log",
        description="Show the audit log (who did what, when, and how it ended), oldest first: the newest --limit "
        "entries, or those after --after ID.",
    )
    audit.add_argument("--tenant", help="only this tenant's entries")
    audit.add_argument("--after", type=int, metavar="ID", help="entries after this id")
    audit.add_argument("--limit", type=int, default=50, help="at most this many entries (1-1000; default 50)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    _data_dir(audit)
    audit.set_defaults(handler=run_audit)


def _given_quotas(args: argparse.Namespace) -> dict[str, int | None]:
    return {f: getattr(args, f) for f in QUOTA_FIELDS if hasattr(args, f)}


def _check_name(name: str) -> bool:
    from ..auth import valid_tenant

    if valid_tenant(name):
        return True
    print(
        f"zapgate: invalid tenant name {name!r}: use 1-63 lower-case letters, digits, '-' or '_', starting with a "
        "letter or digit",
        file=sys.stderr,
    )
    return False


def _show(record: TenantRecord, defaults: TenantQuotas) -> str:
    applied = effective_quotas(record.quotas, defaults)
    parts = []
    for field in QUOTA_FIELDS:
        value = getattr(applied, field)
        own = getattr(record.quotas, field) is not None
        parts.append(f"{field}={value or 'unlimited'}{'' if own else ' (default)'}")
    state = "disabled" if record.disabled_at else "active"
    return f"{record.name} ({state}): {', '.join(parts)}"


def run_tenant_create(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None or not _check_name(args.name):
        return EXIT_USAGE
    quotas = _given_quotas(args)

    async def create(storage: Storage, issuer: Any) -> TenantRecord:
        record = await storage.tenants.create_tenant(args.name, time.time(), TenantQuotas(**quotas))
        await audit_local(storage, "tenant.create", record.name, json.dumps(quotas) if quotas else "")
        return record

    code, record = with_storage(settings, create, create=True)
    if code == EXIT_OK:
        print(f"created tenant {_show(record, settings.tenant_quotas)}", file=sys.stderr)
    return code


def run_tenant_update(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE
    quotas = _given_quotas(args)
    if not quotas:
        print(
            "zapgate: give at least one of --max-sessions, --max-queued-messages, --max-queued-bytes", file=sys.stderr
        )
        return EXIT_USAGE

    async def update(storage: Storage, issuer: Any) -> TenantRecord | None:
        record = await storage.tenants.update_tenant(args.name, quotas=quotas)
        if record is not None:
            await audit_local(storage, "tenant.update", record.name, json.dumps(quotas))
        return record

    code, record = with_storage(settings, update)
    if code != EXIT_OK:
        return code
    if record is None:
        print(f"zapgate: no tenant {args.name!r}", file=sys.stderr)
        return EXIT_ERROR
    print(f"updated tenant {_show(record, settings.tenant_quotas)}", file=sys.stderr)
    return EXIT_OK


def run_tenant_switch(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE
    command = "tenant.enable" if args.enable else "tenant.disable"

    async def switch(storage: Storage, issuer: Any) -> TenantRecord | None:
        record = await storage.tenants.update_tenant(args.name, disabled_at=None if args.enable else time.time())
        if record is not None:
            await audit_local(storage, command, record.name, "")
        return record

    code, record = with_storage(settings, switch)
    if code != EXIT_OK:
        return code
    if record is None:
        print(f"zapgate: no tenant {args.name!r}", file=sys.stderr)
        return EXIT_ERROR
    done = "enabled" if args.enable else "disabled (a running gateway closes its connections within 30 s)"
    print(f"tenant {record.name} {done}", file=sys.stderr)
    return EXIT_OK


def run_tenant_list(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE

    async def listing(storage: Storage, issuer: Any) -> list[tuple[TenantRecord, tuple[int, int, int]]]:
        return [(t, await storage.tenants.usage(t.name)) for t in await storage.tenants.list_tenants()]

    code, rows = with_storage(settings, listing)
    if code != EXIT_OK:
        return code
    print(f"{'TENANT':<24}{'STATE':<10}{'SESSIONS':<14}{'QUEUED':<16}{'QUEUED BYTES':<24}")
    for record, (sessions, queued, queued_bytes) in rows:
        limits = effective_quotas(record.quotas, settings.tenant_quotas)

        def of(used: int, limit: int | None) -> str:
            return f"{used}/{limit}" if limit else f"{used}/-"

        print(
            f"{record.name:<24}{'disabled' if record.disabled_at else 'active':<10}"
            f"{of(sessions, limits.max_sessions):<14}{of(queued, limits.max_queued_messages):<16}"
            f"{of(queued_bytes, limits.max_queued_bytes):<24}"
        )
    return EXIT_OK


def _entry_json(entry: AuditEntry) -> str:
    fields = {
        "id": entry.id,
        "ts": entry.ts,
        "token_id": entry.token_id,
        "tenant": entry.tenant,
        "session": entry.session,
        "command": entry.command,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }
    return json.dumps({k: v for k, v in fields.items() if v is not None})


def run_audit(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE
    if not 1 <= args.limit <= 1000:
        print("zapgate: --limit must be between 1 and 1000", file=sys.stderr)
        return EXIT_USAGE

    async def read(storage: Storage, issuer: Any) -> list[AuditEntry]:
        return await storage.tenants.list_audit(tenant=args.tenant, after=args.after, limit=args.limit)

    code, entries = with_storage(settings, read)
    if code != EXIT_OK:
        return code
    if args.json:
        for entry in entries:
            print(_entry_json(entry))
        return EXIT_OK
    print(f"{'ID':<8}{'WHEN':<21}{'TOKEN':<14}{'TENANT':<16}{'SESSION':<16}{'COMMAND':<18}OUTCOME")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
        print(
            f"{e.id:<8}{when:<21}{e.token_id or '-':<14}{e.tenant or '-':<16}{e.session or '-':<16}{e.command:<18}"
            f"{e.outcome}"
        )
    return EXIT_OK
