"""An engine worker process: hosts many WhatsApp sessions on one long-lived asyncio loop.

Started by the gateway's supervisor as ``python -m zapgate.engines.whatsapp.worker --fd N --config JSON``
with one end of a Unix socket pair as file descriptor ``N`` (see :mod:`.ipc`). It answers pings from its
event loop (a blocked loop stops answering and gets the worker restarted), runs requests concurrently, and
forwards session events in order.

It exits when asked to (:class:`~.ipc.Shutdown`), when the gateway closes the channel, and, on Linux, when
the gateway process dies (``PR_SET_PDEATHSIG``), so no worker outlives its gateway. It exits with
``os._exit``: executor threads stuck inside neonize would otherwise keep the interpreter alive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from ..base import EngineEvent, Failed, LoggedOut
from . import ipc
from .ffi import FfiLock
from .ipc import Channel, ChannelClosed, Reply, WorkerConfig
from .policy import RetryPolicy
from .polls import PollBook
from .session import SendFailure, SessionRunner
from .store import STORE_DIR, DeviceRef, DeviceStore, DeviceStores

__all__ = ["Worker", "main"]

log = logging.getLogger("zapgate.engines.whatsapp.worker")

SHUTDOWN_BUDGET_S = 3.0
"""Time a worker gives its sessions to stop before it exits anyway."""
LOGOUT_CONNECT_TIMEOUT_S = 15.0
"""How long a logout of a session that is not open waits to reach WhatsApp to unlink the device there."""
LOGOUT_TIMEOUT_S = 10.0
ABANDON_GRACE_S = 5.0
"""A connect still running this long after its ``stop()`` is counted as a leaked executor thread."""


class Worker:
    """The sessions of one worker process and the request handlers (see the module documentation)."""

    def __init__(self, config: WorkerConfig, channel: Channel) -> None:
        env = os.environ  # this process's launch environment, which is also the one Go read
        self.config = config
        self.data_dir = Path(config.data_dir)
        self.devices = DeviceStores(self.data_dir, env.get(ipc.DEVICE_DATABASE_ENV) or None)
        self.ffi = FfiLock()
        self.channel = channel
        self.proxy = env.get(ipc.PROXY_ENV) or None
        # Go's own proxy variables, read at process start, apply when zapgate sets none (its NO_PROXY is not
        # consulted here: this only names the proxy in error details).
        self.via = self.proxy or env.get("HTTPS_PROXY") or env.get("https_proxy") or None
        self.sessions: dict[str, SessionRunner] = {}
        self.polls = PollBook(self.data_dir / STORE_DIR / "polls.db")
        self._clients: list[Any] = []  # never shrinks: see SessionRunner (callbacks, and Go twins stopped on GC)
        self._leaked: set[asyncio.Task[Any]] = set()
        self._requests: set[asyncio.Task[None]] = set()

    # -- Host protocol (for session runners)

    def emit(self, session_id: str, event: EngineEvent) -> None:
        try:
            self.channel.send(ipc.SessionEvent(session_id=session_id, event=event))
        except ChannelClosed:
            log.debug("channel closed; %s for %s dropped", type(event).__name__, session_id)

    def adopt(self, create: Callable[[], Any]) -> Any:
        client = create()
        self._clients.append(client)
        return client

    def abandoned(self, task: asyncio.Task[Any]) -> None:
        def check() -> None:
            if not task.done():
                self._leaked.add(task)
                log.warning("a neonize connect did not end after stop(): %d executor threads leaked", len(self._leaked))

        def finished(_: asyncio.Task[Any]) -> None:
            self._leaked.discard(task)
            if not task.cancelled():
                task.exception()

        task.add_done_callback(finished)
        asyncio.get_running_loop().call_later(ABANDON_GRACE_S, check)

    def ended(self, runner: SessionRunner) -> None:
        if self.sessions.get(runner.session_id) is runner:
            del self.sessions[runner.session_id]

    # -- serving

    async def serve(self) -> None:
        """Answer the gateway until it asks to shut down or goes away."""
        await self.polls.open()
        self.channel.send(ipc.Hello(pid=os.getpid(), neonize_version=_neonize_version()))
        while True:
            try:
                message = await self.channel.receive()
            except ChannelClosed:
                log.info("gateway closed the channel")
                return
            if isinstance(message, ipc.Ping):
                pong = ipc.Pong(seq=message.seq, sessions=len(self.sessions), leaked_threads=len(self._leaked))
                self._send(pong)
            elif isinstance(message, ipc.Shutdown):
                self._send(Reply(id=message.id))
                return
            elif isinstance(message, ipc.Request):
                task = asyncio.create_task(self._answer(message))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)

    def _send(self, message: ipc.Message) -> None:
        with contextlib.suppress(ChannelClosed):
            self.channel.send(message)

    async def _answer(self, request: ipc.Request) -> None:
        try:
            reply = await self._handle(request)
        except SendFailure as exc:
            reply = Reply(
                id=request.id, ok=False, error_code=exc.code, error_message=exc.message, retryable=exc.retryable
            )
        except Exception as exc:
            log.exception("request %s failed", type(request).__name__)
            reply = Reply(id=request.id, ok=False, error_code="engine_error", error_message=str(exc), retryable=True)
        self._send(reply)

    async def _handle(self, request: ipc.Request) -> Reply:
        match request:
            case ipc.OpenSession():
                await self.open(request.session_id, request.device, request.pair_phone)
                return Reply(id=request.id)
            case ipc.StopSession():
                runner = self.sessions.get(request.session_id)
                if runner is not None:
                    await runner.stop()
                return Reply(id=request.id)
            case ipc.LogoutSession():
                await self.logout(request.session_id, request.device)
                return Reply(id=request.id)
            case ipc.Send():
                wa_id, timestamp, chat = await self._runner(request.session_id).send(request)
                return Reply(id=request.id, wa_id=wa_id, timestamp=timestamp, chat=chat)
            case ipc.MarkRead():
                await self._runner(request.session_id).mark_read(request.chat, request.sender, request.message_ids)
                return Reply(id=request.id)
            case ipc.Download():
                await self._runner(request.session_id).download(request.media_ref, request.into)
                return Reply(id=request.id)
            case ipc.ChatPresence():
                await self._runner(request.session_id).chat_presence(request.chat, request.state)
                return Reply(id=request.id)
            case ipc.SetPresence():
                await self._runner(request.session_id).set_presence(request.state)
                return Reply(id=request.id)
            case ipc.SubscribePresence():
                await self._runner(request.session_id).subscribe_presence(request.chat)
                return Reply(id=request.id)
            case ipc.CheckPhones():
                answers = await self._runner(request.session_id).accounts.check(request.phones)
                return Reply(id=request.id, data=msgspec.to_builtins(answers))
            case ipc.ContactInfo():
                profile = await self._runner(request.session_id).accounts.info(request.jid)
                return Reply(id=request.id, data=msgspec.to_builtins(profile))
            case ipc.ProfilePicture():
                picture_id = await self._runner(request.session_id).accounts.picture(request.jid, request.into)
                return Reply(id=request.id, data=picture_id)
            case ipc.SetBlocked():
                blocked = await self._runner(request.session_id).accounts.block(request.jid, request.blocked)
                return Reply(id=request.id, data=blocked)
            case ipc.Blocklist():
                return Reply(id=request.id, data=await self._runner(request.session_id).accounts.blocklist())
            case ipc.GroupRequest():
                result = await self._runner(request.session_id).group(request)
                return Reply(id=request.id, data=msgspec.to_builtins(result))
        raise ValueError(f"unknown request {type(request).__name__}")

    def _runner(self, session_id: str) -> SessionRunner:
        runner = self.sessions.get(session_id)
        if runner is None:
            raise SendFailure("not_connected", "the session is not running", retryable=True)
        return runner

    # -- sessions

    async def open(self, session_id: str, device: dict[str, Any] | None, pair_phone: str | None) -> None:
        """Start the session unless it runs already; progress is reported as events."""
        current = self.sessions.get(session_id)
        if current is not None:
            if not current.stopping:
                return
            await current.done.wait()
            if self.sessions.get(session_id) is not None:
                return
        ref: DeviceRef | None = None
        if device is not None:
            try:
                ref = DeviceRef.from_record(device)
                store = self.devices.of(ref)
            except ValueError as exc:
                log.warning("session %s: %s; it needs a new pairing", session_id, exc)
                self.emit(session_id, LoggedOut(reason="device_record_invalid"))
                return
            if store.read(ref.jid) is None:
                log.warning("session %s: device keys of %s are missing; it needs a new pairing", session_id, ref.jid)
                self.emit(session_id, LoggedOut(reason="device_keys_missing"))
                return
            if self._device_in_use(ref.jid):
                # Two clients on one device would replace each other's stream for ever.
                log.error("session %s: device %s is already running in another session", session_id, ref.jid)
                self.emit(session_id, Failed(reason="device_in_use"))
                return
        else:
            self.devices.leftovers(session_id).delete()  # of an earlier pairing, if any
        runner = SessionRunner(self, session_id, ref, pair_phone=pair_phone if ref is None else None)
        self.sessions[session_id] = runner
        runner.start()

    async def logout(self, session_id: str, device: dict[str, Any] | None) -> None:
        """Unlink the device on WhatsApp when it can be reached, stop the session, delete its keys."""
        stores: list[DeviceStore] = [self.devices.leftovers(session_id)]
        ref: DeviceRef | None = None
        if device is not None:
            try:
                ref = DeviceRef.from_record(device)
                stores.append(self.devices.of(ref))
            except ValueError:
                ref = None
        runner = self.sessions.get(session_id)
        if (
            runner is None
            and ref is not None
            and not self._device_in_use(ref.jid)
            and stores[-1].read(ref.jid) is not None
        ):
            runner = SessionRunner(self, session_id, ref, quiet=True, retry=RetryPolicy(1, 1.0))
            runner.start()
            connected = asyncio.ensure_future(runner.connected_once.wait())
            done = asyncio.ensure_future(runner.done.wait())
            await asyncio.wait({connected, done}, timeout=LOGOUT_CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            connected.cancel()
            done.cancel()
        if runner is not None:
            unlinked = await runner.logout(LOGOUT_TIMEOUT_S)
            log.info("session %s: logged out%s", session_id, "" if unlinked else " (WhatsApp not told: offline)")
            await runner.stop()
        for store in stores:
            store.delete(ref.jid if ref is not None else None)
        await self.polls.forget(session_id)

    def _device_in_use(self, jid: str) -> bool:
        return any(r.device is not None and r.device.jid == jid and not r.stopping for r in self.sessions.values())

    async def shutdown(self) -> None:
        """Stop every session, keeping their keys, within :data:`SHUTDOWN_BUDGET_S`."""
        runners = list(self.sessions.values())
        for runner in runners:
            runner._end()
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        for runner in runners:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await runner.stop(within=remaining)
        for task in self._requests:
            task.cancel()
        with contextlib.suppress(TimeoutError, ChannelClosed):
            await asyncio.wait_for(self.channel.drain(), 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.polls.close(), 1.0)


def _neonize_version() -> str:
    from . import nz

    return nz.neonize_version


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the gateway that started it dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


async def _run(config: WorkerConfig, fd: int) -> None:
    from . import nz

    loop = asyncio.get_running_loop()
    # Every live session pins one executor thread inside neonize's connect; abandoned pairings may pin more.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2 * config.max_sessions + 32))
    nz.events_module.event_global_loop = loop
    channel = await Channel.over_socket(socket.socket(fileno=fd))
    worker = Worker(config, channel)
    await worker.serve()
    await worker.shutdown()
    # Not a return into asyncio.run(): it would join the default executor, and a thread stuck in neonize
    # would keep this process alive for ever.
    logging.shutdown()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zapgate-wa-worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the channel to the gateway")
    parser.add_argument("--config", required=True, help="WorkerConfig as JSON")
    args = parser.parse_args(argv)
    config = msgspec.json.decode(args.config, type=WorkerConfig)
    _die_with_parent()
    # whatsmeow (Go) creates its key store and SQLite's journal files itself, with the umask's default mode: with
    # this umask they are private (0600) whatever the gateway was started with.
    os.umask(0o077)
    level = getattr(logging, config.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    from . import nz

    # whatsmeow's own logs: warnings and errors only, unless the gateway runs at debug level.
    nz.set_go_log_level(logging.INFO if level <= logging.DEBUG else logging.WARNING)
    code = 0
    try:
        asyncio.run(_run(config, args.fd))
    except BaseException:
        log.exception("worker %d crashed", config.worker_id)
        code = 1
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
