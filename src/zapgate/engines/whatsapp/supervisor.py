"""The gateway side of engine workers: start them, route requests, watch them, restart them.

Sessions are placed in **slots**; a slot holds up to ``wa_sessions_per_worker`` sessions and runs one worker
process at a time. When the process dies or stops answering pings for ``wa_heartbeat_timeout_s``, it is
killed, its sessions are reported ``disconnected`` (reason ``engine_worker_restarted``), and after a backoff
a new process reopens them from their stored device keys: no scan, and clients see ``connected`` again. A
pairing in progress cannot survive its process (the QR codes belonged to it), so such a session is reported
``failed`` with a ``retry_at`` and the session manager starts it again with a fresh QR code. A slot whose
processes keep dying soon after start gives up after ``wa_worker_restarts`` tries: its sessions end
``failed`` (``engine_worker_crash_loop``).

Nothing here imports neonize; a worker that crashes cannot take the gateway with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ...config import Settings
from ..base import Disconnected, EngineEvent, Failed, LoggedOut, Paired
from . import ipc
from .ipc import Channel, ChannelClosed, Reply, Request, WorkerConfig
from .policy import CrashLoop

__all__ = ["WorkerInfo", "WorkerPool", "WorkerUnavailable", "worker_environment"]

log = logging.getLogger("zapgate.engines.whatsapp")
worker_log = logging.getLogger("zapgate.engines.whatsapp.worker")

START_TIMEOUT_S = 30.0
"""A worker must say hello this soon after it was started (Python start plus loading neonize: ~1 s)."""
SHUTDOWN_GRACE_S = 5.0
"""How long :meth:`WorkerPool.close` lets workers stop their sessions before killing them."""
EXIT_GRACE_S = 2.0
"""A worker that closed its channel but is still running after this is killed."""
CONTROL_TIMEOUT_S = 20.0
"""Timeout of open and stop requests."""
HEALTHY_AFTER_S = 60.0
"""A worker that ran this long before dying was healthy: its crash does not count toward a crash loop."""
RESTART_BACKOFF_S = 1.0
"""Base of the (capped, jittered) delay before restarting a dead worker."""
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
"""The directory holding the ``zapgate`` package, put on the worker's ``PYTHONPATH``."""
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def worker_environment(base: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The environment a worker process starts with.

    neonize's Go side reads its settings from the environment the process *started* with (Go copies it
    once, at load; changing ``os.environ`` later has no effect on Go), so they are set here:

    - ``NEONIZE_BOT_TAG=off``: otherwise neonize adds ``<bot biz_bot="1"/>`` to every one-to-one message,
      and recipients see the account labelled as a bot;
    - :data:`~.ipc.PROXY_ENV`: zapgate's proxy for WhatsApp (``wa_proxy``), here rather than on the command
      line because a proxy URL may carry a password. Without one, Go's usual ``HTTPS_PROXY`` / ``NO_PROXY``
      variables, inherited from the gateway, apply;
    - :data:`~.ipc.DEVICE_DATABASE_ENV`: with several nodes, the PostgreSQL database that keeps every device's
      keys (a URL may carry a password too).
    """
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env["NEONIZE_BOT_TAG"] = "off"
    env.pop(ipc.PROXY_ENV, None)
    if settings.wa_proxy:
        env[ipc.PROXY_ENV] = settings.wa_proxy
    env.pop(ipc.DEVICE_DATABASE_ENV, None)
    if settings.clustered:
        env[ipc.DEVICE_DATABASE_ENV] = settings.database_url
    return env


class WorkerUnavailable(Exception):
    """The session has no running worker now: ``code`` is ``not_connected`` when the session is not open,
    ``engine_restarting`` when its worker is starting, restarting or died during the request."""

    def __init__(self, message: str, code: str = "engine_restarting", *, in_flight: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.in_flight = in_flight
        """The worker died while it had the request: whether it acted on it is unknown."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A snapshot of one slot, for health reports and tests."""

    slot: int
    pid: int | None
    ready: bool
    sessions: tuple[str, ...]
    leaked_threads: int
    restarts: int


@dataclass(slots=True)
class _OpenSpec:
    device: dict[str, Any] | None
    pair_phone: str | None


class _Process:
    """One running worker process with its channel and pending requests."""

    def __init__(self, proc: asyncio.subprocess.Process, channel: Channel) -> None:
        self.proc = proc
        self.channel = channel
        self.pid = proc.pid
        self.started = time.monotonic()
        self.last_seen = self.started
        self.hello: asyncio.Future[ipc.Hello] = asyncio.get_running_loop().create_future()
        self.leaked_threads = 0
        self.tasks: list[asyncio.Task[None]] = []
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)

    @property
    def ready(self) -> bool:
        return self.hello.done() and not self.hello.cancelled() and self.proc.returncode is None

    async def request(self, make: Callable[[int], Request], within: float) -> Reply:
        request_id = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self.channel.send(make(request_id))  # type: ignore[arg-type]
            return await asyncio.wait_for(future, within)
        except ChannelClosed:
            raise WorkerUnavailable("the engine worker is gone") from None
        finally:
            self._pending.pop(request_id, None)

    def resolve(self, reply: Reply) -> None:
        future = self._pending.pop(reply.id, None)
        if future is not None and not future.done():
            future.set_result(reply)

    def fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerUnavailable("the engine worker died", in_flight=True))
        self._pending.clear()
        if not self.hello.done():
            self.hello.cancel()

    def ping(self) -> None:
        with contextlib.suppress(ChannelClosed):
            self.channel.send(ipc.Ping(seq=next(self._seq)))

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


@dataclass(slots=True)
class _Slot:
    id: int
    crash_loop: CrashLoop
    sessions: dict[str, _OpenSpec] = field(default_factory=dict)
    process: _Process | None = None
    launching: asyncio.Task[None] | None = None
    restarts: int = 0


class WorkerPool:
    """Engine worker processes and the sessions placed on them (see the module documentation).

    ``emit(session_id, event)`` receives every session event, in order per session, including the ones the
    pool itself produces when a worker dies.
    """

    def __init__(self, settings: Settings, emit: Callable[[str, EngineEvent], None]) -> None:
        self._settings = settings
        self._emit = emit
        self._slots: dict[int, _Slot] = {}
        self._where: dict[str, int] = {}
        self._slot_ids = itertools.count(1)
        self._closing = asyncio.Event()

    # -- public surface

    def workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(
                slot=slot.id,
                pid=slot.process.pid if slot.process else None,
                ready=bool(slot.process and slot.process.ready),
                sessions=tuple(sorted(slot.sessions)),
                leaked_threads=slot.process.leaked_threads if slot.process else 0,
                restarts=slot.restarts,
            )
            for slot in self._slots.values()
        ]

    def hosts(self, session_id: str) -> bool:
        return session_id in self._where

    async def open(self, session_id: str, device: dict[str, Any] | None, pair_phone: str | None) -> None:
        """Place the session on a worker (starting one if needed) and start it there."""
        if self._closing.is_set():
            raise WorkerUnavailable("the engine is shutting down", "not_connected")
        slot = self._slot_of(session_id) or self._pick_slot()
        self._where[session_id] = slot.id
        spec = slot.sessions[session_id] = _OpenSpec(device, pair_phone)
        process = slot.process
        if process is not None and process.ready:
            await self._send_open(process, session_id, spec)
        elif slot.launching is None:
            slot.launching = asyncio.create_task(self._launch(slot, 0.0), name=f"wa-worker-{slot.id}-start")

    async def stop(self, session_id: str) -> None:
        """Stop the session on its worker, if it runs anywhere. Idempotent."""
        slot = self._release(session_id)
        if slot is not None and slot.process is not None and slot.process.ready:
            with contextlib.suppress(WorkerUnavailable, TimeoutError):
                await slot.process.request(lambda i: ipc.StopSession(id=i, session_id=session_id), CONTROL_TIMEOUT_S)
            await self._retire_if_idle(slot)

    async def logout(self, session_id: str, device: dict[str, Any] | None, within: float) -> bool:
        """Log the session out through a worker (its own, or any, started if needed); False when no worker
        could do it within ``within`` seconds, in which case the caller deletes the keys itself."""
        slot = self._release(session_id)
        process = slot.process if slot is not None and slot.process is not None and slot.process.ready else None
        if process is None:
            process = await self._any_ready_process()
        if process is None:
            return False
        try:
            reply = await process.request(
                lambda i: ipc.LogoutSession(id=i, session_id=session_id, device=device), within
            )
        except (WorkerUnavailable, TimeoutError):
            return False
        finally:
            if slot is not None:
                await self._retire_if_idle(slot)
        return reply.ok

    async def request(self, session_id: str, make: Callable[[int], Request], within: float) -> Reply:
        """Send a request to the session's worker; raises :class:`WorkerUnavailable` if there is none now."""
        slot = self._slot_of(session_id)
        if slot is None:
            raise WorkerUnavailable("the session is not running", "not_connected")
        process = slot.process
        if process is None or not process.ready:
            raise WorkerUnavailable("the session's engine worker is starting")
        return await process.request(make, within)

    async def close(self) -> None:
        """Stop every worker: ask nicely, then kill what is left after :data:`SHUTDOWN_GRACE_S`."""
        self._closing.set()
        launches = [slot.launching for slot in self._slots.values() if slot.launching is not None]
        await asyncio.gather(*launches, return_exceptions=True)
        processes = [slot.process for slot in self._slots.values() if slot.process is not None]
        for process in processes:
            with contextlib.suppress(ChannelClosed):
                process.channel.send(ipc.Shutdown(id=0))
        tasks = [task for process in processes for task in process.tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
            if pending:
                for process in processes:
                    process.kill()
                await asyncio.gather(*pending, return_exceptions=True)
        self._slots.clear()
        self._where.clear()

    # -- placement

    def _slot_of(self, session_id: str) -> _Slot | None:
        slot_id = self._where.get(session_id)
        return self._slots.get(slot_id) if slot_id is not None else None

    def _pick_slot(self) -> _Slot:
        limit = self._settings.wa_sessions_per_worker
        for slot in self._slots.values():
            leaked = slot.process.leaked_threads if slot.process else 0
            if len(slot.sessions) + leaked < limit:
                return slot
        slot = _Slot(
            id=next(self._slot_ids),
            crash_loop=CrashLoop(
                max_restarts=self._settings.wa_worker_restarts, base=RESTART_BACKOFF_S, healthy_after=HEALTHY_AFTER_S
            ),
        )
        self._slots[slot.id] = slot
        return slot

    def _release(self, session_id: str) -> _Slot | None:
        slot = self._slot_of(session_id)
        self._where.pop(session_id, None)
        if slot is not None:
            slot.sessions.pop(session_id, None)
        return slot

    async def _any_ready_process(self) -> _Process | None:
        for slot in self._slots.values():
            if slot.process is not None and slot.process.ready:
                return slot.process
        if self._closing.is_set():
            return None
        slot = self._pick_slot()
        if slot.launching is None and slot.process is None:
            slot.launching = asyncio.create_task(self._launch(slot, 0.0), name=f"wa-worker-{slot.id}-start")
        if slot.launching is not None:
            await asyncio.gather(slot.launching, return_exceptions=True)
        return slot.process if slot.process is not None and slot.process.ready else None

    async def _retire_if_idle(self, slot: _Slot) -> None:
        """An empty worker that leaked executor threads is shut down; the next session gets a fresh one."""
        process = slot.process
        if slot.sessions or process is None or process.leaked_threads == 0:
            return
        log.info("engine worker %d (pid %d) is idle with leaked threads: recycling it", slot.id, process.pid)
        with contextlib.suppress(ChannelClosed):
            process.channel.send(ipc.Shutdown(id=0))

    async def _send_open(self, process: _Process, session_id: str, spec: _OpenSpec) -> None:
        try:
            reply = await process.request(
                lambda i: ipc.OpenSession(id=i, session_id=session_id, device=spec.device, pair_phone=spec.pair_phone),
                CONTROL_TIMEOUT_S,
            )
        except (WorkerUnavailable, TimeoutError):
            return  # the worker died or hangs: its restart reopens the session
        if not reply.ok:
            log.error("session %s: the engine worker could not open it: %s", session_id, reply.error_message)
            self._release(session_id)
            self._emit(session_id, Failed(reason=reply.error_code or "engine_error"))

    # -- process lifecycle

    def _worker_config(self, slot: _Slot) -> str:
        s = self._settings
        config = WorkerConfig(
            worker_id=slot.id,
            data_dir=str(s.data_dir.resolve()),
            max_sessions=s.wa_sessions_per_worker,
            connect_attempts=s.wa_connect_attempts,
            connect_backoff_s=s.wa_connect_backoff_s,
            failed_retry_s=s.wa_failed_retry_s,
            log_level=s.log_level,
            device_name=s.wa_device_name,
            connect_timeout_s=s.wa_connect_timeout_s,
            reconnect_timeout_s=s.wa_reconnect_timeout_s,
        )
        return msgspec.json.encode(config).decode()

    async def _launch(self, slot: _Slot, delay: float) -> None:
        """Start a worker for ``slot`` after ``delay`` seconds and open the slot's sessions on it."""
        try:
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            if self._closing.is_set() or (not slot.sessions and slot.restarts > 0):
                return
            try:
                process = await self._spawn(slot)
            except OSError as exc:
                log.error("could not start an engine worker: %s", exc)
                self._lost(slot, lived=0.0, why=f"an engine worker could not be started ({exc})")
                return
            slot.process = process
            closing: asyncio.Future[Any] = asyncio.ensure_future(self._closing.wait())
            hello: asyncio.Future[Any] = process.hello
            try:
                await asyncio.wait({hello, closing}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
            if self._closing.is_set() or process.hello.cancelled():
                return  # shutting down (close() stops it), or it died (its reader restarts it)
            if not process.hello.done():
                log.error("engine worker %d (pid %d) did not start in %.0f s", slot.id, process.pid, START_TIMEOUT_S)
                process.kill()
                return
            said = process.hello.result()
            log.info("engine worker %d started (pid %d, neonize %s)", slot.id, said.pid, said.neonize_version)
            for session_id, spec in list(slot.sessions.items()):
                await self._send_open(process, session_id, spec)
        finally:
            if slot.launching is asyncio.current_task():
                slot.launching = None

    async def _spawn(self, slot: _Slot) -> _Process:
        ours, theirs = socket.socketpair()
        try:
            env = worker_environment(os.environ, self._settings)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "zapgate.engines.whatsapp.worker",
                "--fd",
                str(theirs.fileno()),
                "--config",
                self._worker_config(slot),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # neonize prints there
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl+C in the terminal is for the gateway, which stops the workers
                env=env,
                limit=1024 * 1024,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        channel = await Channel.over_socket(ours)
        process = _Process(proc, channel)
        process.tasks = [
            asyncio.create_task(self._read(slot, process), name=f"wa-worker-{slot.id}-read"),
            asyncio.create_task(self._heartbeat(slot, process), name=f"wa-worker-{slot.id}-heartbeat"),
        ]
        return process

    async def _read(self, slot: _Slot, process: _Process) -> None:
        relay = asyncio.create_task(self._relay_stderr(slot, process))
        try:
            while True:
                message = await process.channel.receive()
                process.last_seen = time.monotonic()
                match message:
                    case ipc.SessionEvent():
                        self._on_event(slot, message.session_id, message.event)
                    case ipc.Reply():
                        process.resolve(message)
                    case ipc.Pong():
                        process.leaked_threads = message.leaked_threads
                    case ipc.Hello():
                        if not process.hello.done():
                            process.hello.set_result(message)
        except ChannelClosed:
            pass
        finally:
            process.fail_pending()
            if process.proc.returncode is None:
                try:
                    await asyncio.wait_for(asyncio.shield(process.proc.wait()), EXIT_GRACE_S)
                except TimeoutError:
                    process.kill()
            await process.proc.wait()
            await relay
            await process.channel.close()
            if slot.process is process:
                slot.process = None
            if not self._closing.is_set():
                log.error(
                    "engine worker %d (pid %d) exited with code %s after %.1f s",
                    slot.id,
                    process.pid,
                    process.proc.returncode,
                    time.monotonic() - process.started,
                )
                lived = time.monotonic() - process.started
                code = process.proc.returncode
                why = f"the engine worker (pid {process.pid}) exited with code {code} after {lived:.0f} s"
                self._lost(slot, lived=lived, why=why)

    async def _heartbeat(self, slot: _Slot, process: _Process) -> None:
        interval = self._settings.wa_heartbeat_s
        timeout = self._settings.wa_heartbeat_timeout_s
        while process.proc.returncode is None and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), interval)
            if self._closing.is_set() or process.proc.returncode is not None:
                return
            silent = time.monotonic() - process.last_seen
            limit = timeout if process.ready else max(timeout, START_TIMEOUT_S)
            if silent > limit:
                log.error("engine worker %d (pid %d) silent for %.1f s: killing it", slot.id, process.pid, silent)
                process.kill()
                return
            process.ping()

    async def _relay_stderr(self, slot: _Slot, process: _Process) -> None:
        """Worker logs (and Go panics) arrive on its stderr; they go to the gateway's log."""
        stream = process.proc.stderr
        if stream is None:
            return
        prefix = f"[worker {slot.id} pid {process.pid}]"
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit: take it in pieces
                line = await stream.read(64 * 1024)
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                first, _, rest = text.partition(" ")
                level = _LEVELS.get(first)
                worker_log.log(level or logging.WARNING, "%s %s", prefix, rest if level else text)

    def _on_event(self, slot: _Slot, session_id: str, event: EngineEvent) -> None:
        spec = slot.sessions.get(session_id)
        if spec is not None:
            if isinstance(event, Paired):
                # From now on a restart resumes the device instead of starting a new pairing.
                spec.device, spec.pair_phone = dict(event.device), None
            elif isinstance(event, (Failed, LoggedOut)):
                # The worker ended the session; only the session manager may start it again.
                self._release(session_id)
        self._emit(session_id, event)

    def _lost(self, slot: _Slot, lived: float, why: str) -> None:
        """The slot's worker is gone (``why``, in words): tell its sessions and restart it, unless it keeps
        dying."""
        if not slot.sessions:
            self._slots.pop(slot.id, None)
            return
        delay = slot.crash_loop.record_exit(lived)
        now = time.time()
        for session_id, spec in list(slot.sessions.items()):
            if delay is None:
                self._release(session_id)
                detail = f"{why}; it kept dying right after each restart"
                self._emit(session_id, Failed(reason="engine_worker_crash_loop", detail=detail))
            elif spec.device is None:
                self._release(session_id)
                self._emit(session_id, Failed(reason="engine_worker_restarted", retry_at=now + delay, detail=why))
            else:
                self._emit(session_id, Disconnected(reason="engine_worker_restarted", retry_at=now + delay, detail=why))
        if delay is None:
            log.error("engine worker %d keeps dying: giving up on it", slot.id)
            self._slots.pop(slot.id, None)
            return
        slot.restarts += 1
        log.warning("restarting engine worker %d in %.1f s", slot.id, delay)
        slot.launching = asyncio.create_task(self._launch(slot, delay), name=f"wa-worker-{slot.id}-restart")
