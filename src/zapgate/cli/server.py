"""``zapgate serve`` and ``zapgate token``: commands that run on the gateway's machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError, Settings, is_loopback

__all__ = ["add_commands"]

log = logging.getLogger("zapgate.server")


def add_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway: WebSocket API at /v1/ws, health at /healthz. Every option can also be "
        "set with a ZAPGATE_* environment variable (flags win); see docs/configuration.md for all settings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", help="interface to bind (ZAPGATE_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port, 0 for any free one (ZAPGATE_PORT; default 8787)")
    serve.add_argument(
        "--data-dir", type=Path, help="database and device keys (ZAPGATE_DATA_DIR; default ./zapgate-data)"
    )
    serve.add_argument(
        "--engine",
        choices=["whatsapp", "simulator"],
        help="'whatsapp' reaches real WhatsApp; 'simulator' is an offline sandbox (ZAPGATE_ENGINE; default whatsapp)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(ZAPGATE_LOG_LEVEL)")
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
        return Settings.load(os.environ, data_dir=getattr(args, "data_dir", None), **extra)
    except ConfigError as exc:
        print(f"zapgate: configuration error: {exc}", file=sys.stderr)
        return None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..server import create_app, uvicorn_config

    settings = _settings(args, host=args.host, port=args.port, engine=args.engine, log_level=args.log_level)
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    if not is_loopback(settings.host):
        log.warning(
            "listening on %s: reachable from other machines. Put a TLS-terminating proxy in front and keep "
            "tokens secret; see docs/security.md",
            settings.host,
        )
    from . import firstrun

    app = create_app(settings)
    config = uvicorn_config(app, settings)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the port is open: the address printed works
                await firstrun.welcome(app.state.gateway, self.servers[0].sockets[0].getsockname()[1], sys.stderr)

    # uvicorn re-raises the Ctrl+C it already handled with a clean shutdown: not an error, no traceback.
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run()
    return 0


async def _with_storage(settings: Settings, fn: Any) -> Any:
    from ..auth import TokenIssuer
    from ..storage import open_storage

    storage = open_storage(settings.storage_url, synchronous=settings.sqlite_synchronous)
    await storage.open()
    try:
        return await fn(storage, TokenIssuer(storage))
    finally:
        await storage.close()


def run_token_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2

    async def create(storage: Any, issuer: Any) -> str:
        record, token = await issuer.create(args.tenant, args.label)
        print(f"created token {record.id} for tenant {record.tenant}; it is shown only once", file=sys.stderr)
        return str(token)

    try:
        token = asyncio.run(_with_storage(settings, create))
    except ValueError as exc:
        print(f"zapgate: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2

    async def listing(storage: Any, issuer: Any) -> list[Any]:
        result: list[Any] = await storage.list_tokens(args.tenant)
        return result

    records = asyncio.run(_with_storage(settings, listing))
    print(f"{'ID':<14}{'TENANT':<20}{'CREATED':<22}{'STATE':<9}LABEL")
    for r in records:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        print(f"{r.id:<14}{r.tenant:<20}{created:<22}{'revoked' if r.revoked_at else 'active':<9}{r.label}")
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2

    async def revoke(storage: Any, issuer: Any) -> bool:
        result: bool = await issuer.revoke(args.token_id)
        return result

    if asyncio.run(_with_storage(settings, revoke)):
        print(f"revoked {args.token_id}", file=sys.stderr)
        return 0
    print(f"zapgate: no active token with id {args.token_id}", file=sys.stderr)
    return 1
