"""``zapgate serve`` and ``zapgate token``: commands that run on the gateway's machine (``serve`` itself is in
:mod:`zapgate.cli.serve`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ENGINES, ConfigError, Settings
from ..errors import ZapgateError
from .exit_codes import EXIT_ERROR, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from ..auth import TokenIssuer
    from ..storage import Storage, TokenRecord

__all__ = [
    "CLI_TOKEN_ID",
    "add_commands",
    "audit_local",
    "configure_logging",
    "parse_duration",
    "settings_for",
    "with_storage",
]


def add_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway: WebSocket API at /v1/ws, health at /healthz. Every option can also be "
        "set with a ZAPGATE_* environment variable (flags win); see docs/configuration.md for all settings.",
    )
    serve.add_argument("--host", help="interface to bind (ZAPGATE_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port, 0 for any free one (ZAPGATE_PORT; default 8787)")
    serve.add_argument(
        "--data-dir", type=Path, help="database and device keys (ZAPGATE_DATA_DIR; default ./zapgate-data)"
    )
    serve.add_argument(
        "--engine",
        choices=ENGINES,
        help="'whatsapp' reaches real WhatsApp; 'simulator' is an offline sandbox (ZAPGATE_ENGINE; default whatsapp)",
    )
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="(ZAPGATE_LOG_LEVEL; default info)"
    )
    serve.set_defaults(handler=run_serve)

    token = commands.add_parser(
        "token",
        help="create, list and revoke tenant tokens",
        description="Manage tenant tokens in the local data directory (works while the gateway runs).",
    )
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_commands.add_parser(
        "create",
        help="create a token and print it (shown once)",
        description="Create a token for a tenant (created on first use) and print it alone on stdout. Only "
        "its hash is stored: keep it, it cannot be shown again.",
    )
    create.add_argument("--tenant", required=True, help="tenant name: lower-case letters, digits, '-' or '_'")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="admin, tenant, send or read (repeat, or separate with commas; default: tenant). See docs/security.md",
    )
    create.add_argument(
        "--session",
        action="append",
        metavar="NAME",
        help="limit the token to this session (repeat, or separate with commas); default: every session",
    )
    create.add_argument(
        "--expires-in", metavar="DURATION", help="the token expires after this long: 3600, 90m, 12h, 30d"
    )
    create.add_argument("--label", default="", help="a note to recognise the token by in 'token list'")
    create.add_argument("--data-dir", type=Path, help="(ZAPGATE_DATA_DIR; default ./zapgate-data)")
    create.set_defaults(handler=run_token_create)
    listing = token_commands.add_parser("list", help="list tokens (ids and tenants, never the secrets)")
    listing.add_argument("--tenant", help="only this tenant's tokens")
    listing.add_argument("--data-dir", type=Path, help="(ZAPGATE_DATA_DIR; default ./zapgate-data)")
    listing.set_defaults(handler=run_token_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", help="the id shown by 'zapgate token list'")
    revoke.add_argument("--data-dir", type=Path, help="(ZAPGATE_DATA_DIR; default ./zapgate-data)")
    revoke.set_defaults(handler=run_token_revoke)


def settings_for(args: argparse.Namespace, **extra: Any) -> Settings | None:
    try:
        settings = Settings.load(os.environ, data_dir=getattr(args, "data_dir", None), **extra)
    except ConfigError as exc:
        print(f"zapgate: configuration error: {exc}", file=sys.stderr)
        return None
    # Absolute from here on: logs and messages then say exactly which directory is meant.
    return settings.replace(data_dir=settings.data_dir.absolute())


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # httpx logs every request's URL at INFO: webhook and media URLs are the tenants', and may carry secrets.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_for(args, host=args.host, port=args.port, engine=args.engine, log_level=args.log_level)
    if settings is None:
        return EXIT_USAGE
    configure_logging(settings.log_level)
    from .serve import serve  # uvicorn and the server stack: only for this command

    return serve(settings)


def _listed(values: list[str] | None) -> list[str]:
    """Repeated options, each possibly comma-separated, as one list."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from ``3600``, ``90s``, ``90m``, ``12h`` or ``30d``; :class:`ValueError` otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(
            f"--expires-in {text!r}: give seconds, or a number with s, m, h or d (90m, 12h, 30d)"
        ) from None
    if not 0 < seconds <= 10 * 365 * 86400:
        raise ValueError(f"--expires-in {text!r}: must be more than 0 and at most 10 years")
    return seconds


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


CLI_TOKEN_ID = "cli"
"""Who the audit log names for changes made with ``zapgate`` commands on the gateway's machine."""


async def audit_local(storage: Storage, command: str, tenant: str | None, detail: str) -> None:
    await storage.tenants.audit(
        ts=time.time(), token_id=CLI_TOKEN_ID, tenant=tenant, session=None, command=command, outcome="ok", detail=detail
    )


def with_storage(settings: Settings, fn: Any, *, create: bool = False) -> tuple[int, Any]:
    """Run ``fn(storage, issuer)`` on the data directory's database: ``(EXIT_OK, result)``, or an exit code
    after one line on stderr. Only ``create`` makes a database (and its directory) that does not exist yet."""
    from ..auth import TokenIssuer
    from ..storage import open_storage

    if not create and not settings.database_url and not settings.database_path.exists():
        print(
            f"zapgate: no zapgate database in {settings.data_dir}; pass the gateway's --data-dir "
            "(or set ZAPGATE_DATA_DIR)",
            file=sys.stderr,
        )
        return EXIT_USAGE, None

    async def run() -> Any:
        storage = open_storage(settings.storage_url, synchronous=settings.sqlite_synchronous)
        await storage.open()
        try:
            return await fn(storage, TokenIssuer(storage))
        finally:
            await storage.close()

    try:
        return EXIT_OK, asyncio.run(run())
    except ZapgateError as exc:
        print(f"zapgate: {exc.message}", file=sys.stderr)
        return EXIT_USAGE, None
    except Exception as exc:  # the database cannot be reached or used (SQLite, PostgreSQL or the file system)
        print(f"zapgate: cannot use the database in {_where(settings)}: {exc}", file=sys.stderr)
        return EXIT_USAGE, None


def _where(settings: Settings) -> str:
    """Where the token commands work: the data directory, or the database URL (without its password)."""
    from ..storage import redact_url

    return redact_url(settings.database_url) if settings.database_url else str(settings.data_dir)


def run_token_create(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE

    try:
        scopes = _listed(args.scope) or ["tenant"]
        sessions = _listed(args.session) or None
        expires_in = parse_duration(args.expires_in) if args.expires_in is not None else None
    except ValueError as exc:
        print(f"zapgate: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def create(storage: Storage, issuer: TokenIssuer) -> str:
        now = time.time()
        expires_at = now + expires_in if expires_in is not None else None
        record, token = await issuer.create(
            args.tenant, args.label, scopes=scopes, sessions=sessions, expires_at=expires_at
        )
        await audit_local(storage, "token.create", record.tenant, f"token {record.id} ({','.join(record.scopes)})")
        limits = f", sessions {', '.join(record.sessions)}" if record.sessions else ""
        until = f", expires {_when(record.expires_at)}" if record.expires_at else ""
        print(
            f"created token {record.id} for tenant {record.tenant} (scopes {', '.join(record.scopes)}{limits}{until}) "
            f"in {_where(settings)}; it is shown only once",
            file=sys.stderr,
        )
        return token

    code, token = with_storage(settings, create, create=True)
    if code == EXIT_OK:
        print(token)
    return code


def run_token_list(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE

    async def listing(storage: Storage, issuer: TokenIssuer) -> list[TokenRecord]:
        return await storage.tenants.list_tokens(args.tenant)

    code, records = with_storage(settings, listing)
    if code != EXIT_OK:
        return code
    now = time.time()
    print(f"{'ID':<14}{'TENANT':<20}{'SCOPES':<15}{'SESSIONS':<16}{'CREATED':<21}{'EXPIRES':<21}{'STATE':<9}LABEL")
    for r in records:
        state = "revoked" if r.revoked_at else "expired" if r.expires_at and r.expires_at <= now else "active"
        sessions = ",".join(r.sessions) if r.sessions is not None else "all"
        print(
            f"{r.id:<14}{r.tenant:<20}{','.join(r.scopes):<15}{sessions:<16}{_when(r.created_at):<21}"
            f"{_when(r.expires_at) if r.expires_at else 'never':<21}{state:<9}{r.label}"
        )
    return EXIT_OK


def run_token_revoke(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if settings is None:
        return EXIT_USAGE

    async def revoke(storage: Storage, issuer: TokenIssuer) -> bool:
        record = await issuer.revoke(args.token_id)
        if record is not None:
            await audit_local(storage, "token.revoke", record.tenant, f"token {record.id}")
        return record is not None

    code, revoked = with_storage(settings, revoke)
    if code != EXIT_OK:
        return code
    if revoked:
        print(f"revoked {args.token_id}", file=sys.stderr)
        return EXIT_OK
    print(f"zapgate: no active token with id {args.token_id}", file=sys.stderr)
    return EXIT_ERROR
