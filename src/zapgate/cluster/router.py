"""The one place that decides where a command runs (``docs/scaling.md``).

A command names a session (its request struct has a ``session`` field; ``sim.scan`` names a QR code, which
leads to a session). If this node runs the session, the command runs here; if another node holds its lease, it
is forwarded there (:mod:`.forward`) and its answer handed back unchanged; if no node holds it right now (its node
died, or is handing it over), the router waits for one, up to ``forward_timeout_s``, then answers
``session_unavailable``. A command that finds, while running, that its session moved (a write refused for a
stale fence) did nothing, so it is sent after the session, to its new node. ``session.list`` asks every node
that runs sessions of the tenant. Everything else (``events.fetch``, ``ping``) runs here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec

from ..auth import Caller
from ..errors import SessionUnavailable
from ..protocol import Command, MessageSend, SessionList, SessionListResult, SimScan
from ..sessions.manager import SessionManager
from ..sessions.ownership import NotOwner
from ..storage import LeaseStore, Located, Storage
from .forward import Forwarder

__all__ = ["Router"]

log = logging.getLogger("zapgate.cluster")

POLL_S = 0.1
"""How often a command waiting for its session to get a node looks again (it is also woken by bus notices)."""

Executor = Callable[[Caller, Command], Awaitable[Any]]
CodeLocator = Callable[[str], Awaitable[str | None]]


class Router:
    def __init__(
        self,
        *,
        node: str,
        storage: Storage,
        sessions: SessionManager,
        forwarder: Forwarder,
        timeout: float,
        send_wait: float,
        locate_code: CodeLocator | None,
    ) -> None:
        self.node = node
        self._storage = storage
        self._leases: LeaseStore = storage.leases
        self._sessions = sessions
        self._forwarder = forwarder
        self._timeout = timeout
        self._send_wait = send_wait
        self._locate_code = locate_code
        self.executor: Executor | None = None
        """Runs a command here (the command table's checks and handler); set by the server."""
        self._changed = asyncio.Event()
        self._inflight: collections.Counter[tuple[str, str]] = collections.Counter()
        self._idle = asyncio.Event()

    def changed(self) -> None:
        """Leases changed hands somewhere: commands waiting for a node look again now."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- commands from clients connected here

    async def route(self, caller: Caller, cmd: Command) -> Any:
        if isinstance(cmd, SessionList):
            return await self._list(caller, cmd)
        session = getattr(cmd, "session", None)
        if isinstance(session, str):
            return await self._to_owner(caller, cmd, lambda: self._leases.locate(caller.tenant, session))
        if isinstance(cmd, SimScan) and self._locate_code is not None:
            session_id = await self._locate_code(cmd.qr.strip())
            if session_id is not None:
                located = await self._leases.locate_id(session_id)
                if located is not None and located.tenant == caller.tenant:
                    return await self._to_owner(caller, cmd, lambda: self._leases.locate_id(session_id))
        return await self._execute(caller, cmd)

    async def _to_owner(
        self, caller: Caller, cmd: Command, locate: Callable[[], Awaitable[Located | None]]
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            changed = self._changed
            located = await locate()
            if located is None or self._sessions.runs(located.tenant, located.name) is not None:
                # Here (or nowhere: the handler answers session_not_found, or session.start creates it here).
                try:
                    return await self._execute(caller, cmd, (located.tenant, located.name) if located else None)
                except NotOwner:
                    pass  # it moved (or was created elsewhere) while it ran; nothing was done
            elif located.lease.held and located.lease.node != self.node:
                remaining = max(0.0, deadline - loop.time())
                wait = self._send_wait if isinstance(cmd, MessageSend) else 0.0
                assert located.lease.node is not None
                try:
                    return await self._forwarder.call(
                        located.lease.node,
                        caller,
                        cmd,
                        remaining + wait + 1.0,
                        still_there=functools.partial(self._still_held, located),
                    )
                except NotOwner:
                    pass
            # No node runs it right now (its node died or hands it over; or this node is taking it up).
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SessionUnavailable(
                    "no node runs this session right now (it is moving to another node); retry in a few seconds"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(POLL_S, remaining))

    async def _still_held(self, located: Located) -> bool:
        """Does the node that held the session's lease when a command was forwarded there still hold it?"""
        now = await self._leases.locate_id(located.session_id)
        lease = located.lease
        return now is not None and now.lease.held and (now.lease.node, now.lease.epoch) == (lease.node, lease.epoch)

    async def _list(self, caller: Caller, cmd: SessionList) -> SessionListResult:
        """Every session of the tenant, each described by the node that runs it."""
        located = await self._leases.sessions_of(caller.tenant)
        infos = {}
        by_node: dict[str, list[Located]] = collections.defaultdict(list)
        for found in located:
            session = self._sessions.runs(found.tenant, found.name)
            if session is not None:
                infos[found.name] = self._sessions.info(session)
            elif found.lease.held and found.lease.node is not None and found.lease.node != self.node:
                by_node[found.lease.node].append(found)

        async def ask(node: str) -> None:
            try:
                raw = await self._forwarder.call(node, caller, cmd, self._timeout, local_only=True)
                for info in msgspec.json.decode(bytes(raw), type=SessionListResult).sessions:
                    infos.setdefault(info.session, info)
            except Exception as exc:
                log.info("node %s did not list its sessions (%s); showing what is stored", node, exc)

        await asyncio.gather(*(ask(node) for node in by_node))
        for found in located:
            if found.name not in infos:
                record = await self._storage.load_session(found.session_id)
                if record is not None:
                    infos[found.name] = self._sessions.stored_info(record)
        return SessionListResult(sessions=[infos[name] for name in sorted(infos)])

    # -- commands forwarded by other nodes

    async def serve(self, caller: Caller, cmd: Command, local_only: bool) -> Any:
        """Run a forwarded command here, or raise :class:`NotOwner` when its session does not run here."""
        if local_only and isinstance(cmd, SessionList):
            sessions = [s for s in self._sessions.for_tenant(caller.tenant) if self._sessions.runs(s.tenant, s.name)]
            return SessionListResult(sessions=[self._sessions.info(s) for s in sessions])
        key: tuple[str, str] | None = None
        session = getattr(cmd, "session", None)
        if isinstance(session, str):
            key = (caller.tenant, session)
        elif isinstance(cmd, SimScan) and self._locate_code is not None:
            session_id = await self._locate_code(cmd.qr.strip())
            found = self._sessions.by_id(session_id) if session_id else None
            if found is not None:
                key = (found.tenant, found.name)
        if key is not None and self._sessions.runs(*key) is None:
            raise NotOwner("the session does not run on this node")
        return await self._execute(caller, cmd, key)

    # -- running here

    async def _execute(self, caller: Caller, cmd: Command, key: tuple[str, str] | None = None) -> Any:
        assert self.executor is not None, "the server did not set the router's executor"
        with self._running(key):
            return await self.executor(caller, cmd)

    @contextlib.contextmanager
    def _running(self, key: tuple[str, str] | None) -> Iterator[None]:
        if key is None:
            yield
            return
        self._inflight[key] += 1
        try:
            yield
        finally:
            self._inflight[key] -= 1
            if self._inflight[key] <= 0:
                del self._inflight[key]
                self._idle.set()

    async def wait_idle(self, keys: set[tuple[str, str]], limit_s: float) -> None:
        """Wait (at most ``limit_s`` seconds) until no command runs here for the sessions ``keys``."""
        deadline = time.monotonic() + limit_s
        while any(k in self._inflight for k in keys):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("handing sessions over with commands still running on them")
                return
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), remaining)
