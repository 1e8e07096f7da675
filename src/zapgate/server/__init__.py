"""The ASGI application: WebSocket ``/v1/ws``, the REST routes (one per command, ``rest.py``), media
(``/v1/media``), the API's descriptions (``/v1/openapi.json``, ``/v1/asyncapi.json``, ``/v1/docs``), ``/healthz``,
``/metrics`` and the dashboard."""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..config import Settings
from ..engines.base import Engine
from ..gateway import Gateway
from ..origins import OriginPolicy
from .apidocs import asyncapi_json, docs_asset, docs_page, openapi_json
from .commands import execute
from .dashboard import Dashboard
from .edge import EdgeWebSocketProtocol, http_protocol
from .guard import EdgeGuard
from .http import healthz, session_qr_png
from .media import download_media, upload_media
from .metrics import GatewayCollector, metrics, metrics_app
from .rest import not_found, rest_routes
from .rest_events import Streams, events_endpoint
from .websocket import websocket_endpoint

__all__ = ["GatewayServer", "create_app", "uvicorn_config"]

log = logging.getLogger("zapgate.server")

CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"]


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
    if gateway.cluster is not None and gateway.cluster.router is not None:
        gateway.cluster.router.executor = functools.partial(execute, gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],  # every method of the REST routes
                allow_headers=CORS_HEADERS,
                expose_headers=["WWW-Authenticate"],
                max_age=600,
            )
        )
    app = _App(
        routes=[
            WebSocketRoute("/v1/ws", websocket_endpoint),
            Route("/healthz", healthz),
            *([] if settings.metrics_port else [Route("/metrics", metrics)]),
            Route("/v1/sessions/{session}/qr.png", session_qr_png),
            Route("/v1/media", upload_media, methods=["POST"]),
            Route("/v1/media/{media_id}", download_media, methods=["GET", "HEAD"]),
            *(Dashboard().routes() if settings.dashboard else []),
            Route("/v1/openapi.json", openapi_json),
            Route("/v1/asyncapi.json", asyncapi_json),
            Route("/v1/docs", docs_page),
            Route("/v1/docs/{asset}", docs_asset),
            *rest_routes({"events.fetch": events_endpoint}),
        ],
        middleware=middleware,
        exception_handlers={404: not_found, 405: not_found},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.origin_policy = OriginPolicy.of(settings.allowed_origins)
    app.state.edge = EdgeGuard(settings)
    app.state.streams = Streams()
    app.state.api_documents = {}
    app.state.metrics = CollectorRegistry(auto_describe=True)
    app.state.metrics.register(GatewayCollector(gateway))
    app.state.metrics_token = settings.metrics_token
    return app


class GatewayServer(uvicorn.Server):
    """uvicorn's server, which first ends the app's long-lived HTTP responses when it shuts down, and runs the
    separate ``/metrics`` listener when ``metrics_port`` is set.

    uvicorn waits for HTTP responses in progress before it stops (up to its grace period), and tells them
    nothing: an event stream or a long-poll would hold the shutdown that long. Ending them first lets a client
    see the end of its stream at once and reconnect (with ``Last-Event-ID``) to the next server.

    The metrics listener is a second uvicorn server in the same event loop, with the same edge limits (its own
    connection counts), started once the gateway has started and stopped before it; ``metrics_sockets`` are
    sockets bound for it beforehand (``zapgate serve`` binds them to report a busy port in one line)."""

    def __init__(self, config: uvicorn.Config, metrics_sockets: list[socket.socket] | None = None) -> None:
        super().__init__(config)
        self.metrics_server: uvicorn.Server | None = None
        self._metrics_sockets = metrics_sockets

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        state = getattr(self.config.app, "state", None)
        gateway = getattr(state, "gateway", None)
        if not self.started or not isinstance(gateway, Gateway) or not gateway.settings.metrics_port:
            return
        settings = gateway.settings.replace(host=gateway.settings.metrics_host, port=gateway.settings.metrics_port)
        app = metrics_app(state.metrics, settings.metrics_token)  # type: ignore[union-attr]
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            http=http_protocol(EdgeGuard(settings)),
            lifespan="off",
            log_config=None,
            access_log=False,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(self._metrics_sockets)
        self.metrics_server = server
        log.info("metrics served on http://%s:%d/metrics", settings.host, server.servers[0].sockets[0].getsockname()[1])

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        streams = getattr(getattr(self.config.app, "state", None), "streams", None)
        if isinstance(streams, Streams):
            streams.close()
        if self.metrics_server is not None:
            await self.metrics_server.shutdown(self._metrics_sockets)
            self.metrics_server = None
        await super().shutdown(sockets)


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
