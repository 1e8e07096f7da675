"""``zapgate serve``: run the gateway under uvicorn.

It checks what can stop a gateway from starting before it starts anything: the admin token, if one is given
(strong enough, in a private file), the data directory's lock (creating the directory if needed) and its port;
if any fails it exits 2 with one line on stderr, before the gateway logs "gateway ready". SIGTERM and Ctrl-C stop
it gracefully (connections closed, sessions and engine workers stopped) and it exits 0, without a traceback.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys

import uvicorn

from ..config import ConfigError, Settings, is_loopback
from ..datadir import DataDirError
from ..gateway import Gateway
from ..server import GatewayServer, create_app, uvicorn_config
from . import firstrun
from .exit_codes import EXIT_OK, EXIT_USAGE

__all__ = ["serve"]

log = logging.getLogger("zapgate.server")

BACKLOG = 2048
"""Connections the kernel queues before they are accepted (uvicorn's default)."""

GC_YOUNG_THRESHOLD = 20_000
"""Net allocations of container objects between two collections of the garbage collector's youngest generation
(CPython's default is 700). Almost everything a command allocates is freed by reference counting; collecting
every 700 allocations cost about a tenth of the gateway's CPU per ``message.send`` (``bench/findings.md``,
"Round 5"; ``docs/decisions.md``)."""


class _Terminated(Exception):
    """SIGTERM arrived: stop like on Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def serve(settings: Settings) -> int:
    """Run the gateway until SIGTERM or Ctrl-C; return the exit code."""
    # uvicorn handles SIGTERM and Ctrl-C while it runs, then raises the signal again once it has shut down.
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _serve(settings)
    except (KeyboardInterrupt, _Terminated):
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(settings: Settings) -> int:
    try:
        app = create_app(settings)
    except ConfigError as exc:  # a weak or exposed admin token, for one
        print(f"zapgate: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    gateway: Gateway = app.state.gateway
    try:
        gateway.data_lock.acquire()
    except DataDirError as exc:
        print(f"zapgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        listeners = [(settings.host, settings.port)]
        if settings.metrics_port:
            listeners.append((settings.metrics_host, settings.metrics_port))
        sockets: list[list[socket.socket]] = []
        for host, port in listeners:
            try:
                sockets.append(_bind(host, port))
            except OSError as exc:
                for bound in sockets:
                    for sock in bound:
                        sock.close()
                reason = exc.strerror.lower() if exc.strerror else str(exc)
                print(f"zapgate: cannot listen on {_host_port(host, port)}: {reason}", file=sys.stderr)
                return EXIT_USAGE
        _warn_if_exposed(settings)
        server = _Server(uvicorn_config(app, settings), gateway, sockets[1] if settings.metrics_port else None)
        try:
            server.run(sockets=sockets[0])
        except SystemExit:  # uvicorn's way to give up when the application did not start
            print("zapgate: the gateway did not start; the log above says why", file=sys.stderr)
            return EXIT_USAGE
        finally:
            for bound in sockets:
                for sock in bound:
                    sock.close()
        return EXIT_OK
    finally:
        gateway.data_lock.release()


def _warn_if_exposed(settings: Settings) -> None:
    """Say at WARNING what a gateway reachable from other machines leaves open."""
    if is_loopback(settings.host):
        return
    log.warning(
        "listening on %s: reachable from other machines. Put a TLS-terminating proxy in front and keep "
        "tokens secret; see docs/security.md",
        settings.host,
    )
    if not settings.allowed_hosts:
        log.warning(
            "ZAPGATE_ALLOWED_HOSTS is not set: requests with any Host header are answered. Set it to the names "
            "clients use (zapgate.example.com) to refuse others, which defeats DNS rebinding; see docs/security.md"
        )
    if not settings.metrics_token and (not settings.metrics_port or not is_loopback(settings.metrics_host)):
        log.warning(
            "/metrics is open to whoever reaches it: set ZAPGATE_METRICS_TOKEN, or ZAPGATE_METRICS_PORT to serve "
            "it on 127.0.0.1 only"
        )


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listen on every address ``host`` resolves to, all on one port (``0``: a free one)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if bound[0] is not sock:  # the same port on every address
                address = (address[0], bound[0].getsockname()[1], *address[2:])
            sock.bind(address)
            # Listening at once makes the port ours: SO_REUSEADDR would let a second process bind it as long
            # as nobody listens. Connections wait in the backlog until the gateway has started.
            sock.listen(BACKLOG)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Server(GatewayServer):
    """uvicorn's server (ending SSE streams first at shutdown) on sockets bound beforehand; once it serves, it
    says where, and greets a first run."""

    def __init__(
        self, config: uvicorn.Config, gateway: Gateway, metrics_sockets: list[socket.socket] | None = None
    ) -> None:
        super().__init__(config, metrics_sockets)
        self.gateway = gateway

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            _tune_gc()
        if self.started and sockets:
            port = sockets[0].getsockname()[1]
            where = _host_port(self.config.host, port)
            log.info("zapgate running on http://%s (WebSocket API at ws://%s/v1/ws)", where, where)
            await firstrun.welcome(self.gateway, port, sys.stderr)  # the port is open: the address printed works


def _tune_gc() -> None:
    """Once the gateway serves: what starting it made lives as long as the process, so ``gc.freeze`` keeps it out
    of every later collection; and the youngest generation is collected every :data:`GC_YOUNG_THRESHOLD`
    allocations."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
