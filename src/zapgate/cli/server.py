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

__all__ = ["add_commands", "configure_logging"]


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


def _settings(args: argparse.Namespace, **extra: Any) -> Settings | None:
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


def run_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, host=args.host, port=args.port, engine=args.engine, log_level=args.log_level)
    if settings is None:
        return EXIT_USAGE
    configure_logging(settings.log_level)
    from .serve import serve  # uvicorn and the server stack: only for this command

    return serve(settings)


def _with_storage(settings: Settings, fn: Any, *, create: bool = False) -> tuple[int, Any]:
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
    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE

    async def create(storage: Any, issuer: TokenIssuer) -> str:
        record, token = await issuer.create(args.tenant, args.label)
        print(
            f"created token {record.id} for tenant {record.tenant} in {_where(settings)}; it is shown only once",
            file=sys.stderr,
        )
        return token

    code, token = _with_storage(settings, create, create=True)
    if code == EXIT_OK:
        print(token)
    return code


def run_token_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE

    async def listing(storage: Storage, issuer: TokenIssuer) -> list[TokenRecord]:
        return await storage.list_tokens(args.tenant)

    code, records = _with_storage(settings, listing)
    if code != EXIT_OK:
        return code
    print(f"{'ID':<14}{'TENANT':<20}{'CREATED':<22}{'STATE':<9}LABEL")
    for r in records:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        print(f"{r.id:<14}{r.tenant:<20}{created:<22}{'revoked' if r.revoked_at else 'active':<9}{r.label}")
    return EXIT_OK


def run_token_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE

    async def revoke(storage: Storage, issuer: TokenIssuer) -> bool:
        return await issuer.revoke(args.token_id)

    code, revoked = _with_storage(settings, revoke)
    if code != EXIT_OK:
        return code
    if revoked:
        print(f"revoked {args.token_id}", file=sys.stderr)
        return EXIT_OK
    print(f"zapgate: no active token with id {args.token_id}", file=sys.stderr)
    return EXIT_ERROR
