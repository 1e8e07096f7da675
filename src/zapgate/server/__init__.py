"""The ASGI application: WebSocket ``/v1/ws``, ``/healthz``, ``/metrics``, media (``/v1/media``), the REST routes
and the dashboard."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import Settings
from ..engines.base import Engine
from ..gateway import Gateway
from ..origins import OriginPolicy
from .dashboard import Dashboard
from .edge import EdgeWebSocketProtocol, http_protocol
from .guard import EdgeGuard
from .http import healthz, session_qr_png
from .media import download_media, upload_media
from .metrics import GatewayCollector, metrics
from .websocket import websocket_endpoint

__all__ = ["create_app", "uvicorn_config"]


class _App(Starlette):
    """Starlette, except that ``/v1/ws`` goes straight to its endpoint.

    Starlette's middleware and router add nothing to a WebSocket connection, but every open connection keeps
    their coroutine frames alive for its whole life: about 4.7 KiB per idle client (30.3 → 25.6 KiB,
    ``bench/idle_clients.py``). Any other path, including ``/v1/ws`` under a ``root_path``, takes the usual route.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/v1/ws":
            scope["app"] = self
            await websocket_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, engine: Engine | None = None) -> Starlette:
    """Build the application; the gateway it owns starts and stops with the ASGI lifespan."""
    gateway = Gateway(settings, engine=engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = _App(
        routes=[
            WebSocketRoute("/v1/ws", websocket_endpoint),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/v1/sessions/{session}/qr.png", session_qr_png),
            Route("/v1/media", upload_media, methods=["POST"]),
            Route("/v1/media/{media_id}", download_media, methods=["GET", "HEAD"]),
            *(Dashboard().routes() if settings.dashboard else []),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.origin_policy = OriginPolicy.of(settings.allowed_origins)
    app.state.edge = EdgeGuard(settings)
    app.state.metrics = CollectorRegistry(auto_describe=True)
    app.state.metrics.register(GatewayCollector(gateway))
    return app


def uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    """How zapgate runs under uvicorn: its edge protocols (limits before authentication, see ``server/edge.py``),
    sans-I/O websockets, no compression, frame limit and pings from settings."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if _REDACT_QUERY not in logger.filters:
            logger.addFilter(_REDACT_QUERY)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http_protocol(app.state.edge),
        ws=EdgeWebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,  # no compression: cheaper per connection, no decompression bombs
        ws_ping_interval=settings.ping_interval_s or None,
        ws_ping_timeout=settings.ping_timeout_s or None,
        # From trusted proxies, X-Forwarded-For names the client and X-Forwarded-Proto the scheme (the Origin
        # check needs it); the edge counts connections against the same client (guard.forwarded_client).
        proxy_headers=True,
        forwarded_allow_ips=list(settings.trusted_proxies),
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


class _RedactQuery(logging.Filter):
    """Drops the query string from the request paths uvicorn logs (``"WebSocket /v1/ws?token=…" [accepted]``):
    a client that puts a token in the URL must not find it in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "?" in a for a in record.args):
            record.args = tuple(
                a.partition("?")[0] + "?…" if isinstance(a, str) and a.startswith("/") and "?" in a else a
                for a in record.args
            )
        return True


_REDACT_QUERY = _RedactQuery()
