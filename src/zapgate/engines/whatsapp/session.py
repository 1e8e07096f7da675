"""One WhatsApp session inside an engine worker: a whatsmeow client through neonize, and its life.

A :class:`SessionRunner` connects (pairing a new device by QR or pairing code, or resuming a stored one),
turns neonize's events into zapgate engine events, retries the initial connect with backoff, notices a dead
event pump and a connection that never comes, and stops its client on request or when WhatsApp ends the
session. The rules it follows come from measuring neonize 0.5.2 (``docs/engines.md``):

- ``connect()`` (until Go has registered the client) and ``stop()`` hold the worker's FFI lock exclusively;
  every other call into Go holds it shared (:mod:`.ffi`): Go's client maps have no mutex.
- Every connect uses a **new** ``NewAClient`` object, and the host keeps every one for the life of the process:
  neonize stores a connect's ctypes callbacks on the client object and replaces them at the next ``connect()``,
  while a goroutine of the earlier connect may still call them; and a collected client stops its Go twin.
- Handlers are bound methods registered before ``connect()``; none lets an exception escape (neonize would
  drop it silently). Each handler translates and emits before its first ``await``, so events leave in the
  order neonize delivered them.
- A connect task is never cancelled; ``stop()`` runs with a timeout, and a connect that does not end after
  ``stop()`` is reported to the host as an abandoned executor thread.
- A new pairing uses a fresh client id and ``new_device=True``; a resume passes the stored ``jid`` and is only
  attempted after the device row was found in the store (whatsmeow aborts the process otherwise).
- No call that aborts the process on an unregistered client (``get_me``, ``contact.*``, ``revoke_message`` ...)
  is ever made; ``get_pn_from_lid`` only on a connected client.
- Received messages leave in the order neonize delivered them even when one needs a call into Go first (a
  poll vote is decrypted before it is reported): later messages wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...protocol import GroupParticipantsData, Me
from ..base import (
    Availability,
    ChatState,
    Connected,
    Disconnected,
    EngineEvent,
    Failed,
    GroupChanges,
    GroupJoinedIn,
    GroupParticipantsIn,
    GroupUpdatedIn,
    IdentityIn,
    IdentityPair,
    LoggedOut,
    MessageIn,
    Paired,
)
from . import media, nz, policy, translate
from .accounts import SessionAccounts
from .ffi import FfiLock, GuardedGo
from .groups import SessionGroups, group_events, joined_group, member_pairs
from .history import history_batches, push_names
from .ipc import GroupRequest, Send, WorkerConfig
from .outbound import Outbound
from .pairing import Pairing, login_status_callback
from .policy import Action, Outcome, RetryPolicy, SendFailure
from .polls import PollBook, poll_seen, read_vote, vote_of
from .presence import SessionPresence
from .store import DeviceRef, DeviceStores

__all__ = ["Host", "SendFailure", "SessionRunner"]

log = logging.getLogger("zapgate.engines.whatsapp")

REGISTER_TIMEOUT_S = 5.0
"""How long a connect holds the FFI lock waiting for Go to register the new client."""
REGISTER_POLL_S = 0.01
STOP_TIMEOUT_S = 5.0
"""A ``stop()`` that takes longer is abandoned (its thread may be stuck for ever; see docs/engines.md)."""


class Host(Protocol):
    """What a session needs from the worker hosting it."""

    config: WorkerConfig
    data_dir: Path
    devices: DeviceStores
    """Where device keys are kept (files, or the cluster's PostgreSQL database)."""
    ffi: FfiLock
    proxy: str | None
    """zapgate's proxy for WhatsApp (``wa_proxy``), passed to every connect; None: Go's ``HTTPS_PROXY`` applies."""
    via: str | None
    """The proxy connections actually go through (``proxy``, else ``HTTPS_PROXY``), for error details."""
    polls: PollBook
    """The polls of the worker's sessions (see :mod:`.polls`)."""

    def emit(self, session_id: str, event: EngineEvent) -> None: ...

    def adopt(self, create: Callable[[], Any]) -> Any:
        """A new client made by ``create`` (a ``NewAClient``), kept alive for the life of the process."""
        ...

    def abandoned(self, task: asyncio.Task[Any]) -> None:
        """``task`` (a connect) did not end after ``stop()``."""
        ...

    def ended(self, runner: SessionRunner) -> None: ...


@dataclass(frozen=True, slots=True)
class _Ended:
    """Why a connection ended without a stop: a stable reason, words for people, and the raw text for the log."""

    reason: str
    detail: str | None
    raw: str
    reached: bool


class SessionRunner:
    """Runs one session until it is stopped or WhatsApp ends it; see the module documentation."""

    _pairings = 0  # makes every pairing client id in the process unique

    def __init__(
        self,
        host: Host,
        session_id: str,
        device: DeviceRef | None,
        *,
        pair_phone: str | None = None,
        quiet: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.host = host
        self.session_id = session_id
        self.device = device
        self.pair_phone = pair_phone
        self.quiet = quiet
        """A quiet runner (used to log out a session that is not open) reports nothing to the gateway."""
        config = host.config
        self._retry = retry or policy.connect_policy(
            attempts=config.connect_attempts, base=config.connect_backoff_s, paired=device is not None
        )
        self.store = host.devices.of(device) if device is not None else host.devices.new(session_id)
        self.client: Any = None
        self.online = False
        self.stopping = False
        self.me: Me | None = None
        self.polls = host.polls
        self.outbound = Outbound(self)
        self.groups = SessionGroups(self)
        self.presence = SessionPresence(self, self.outbound.resolve)
        self.accounts = SessionAccounts(self, proxy=host.proxy)
        self.connected_once = asyncio.Event()
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[Any] | None = None
        self._registered = False
        self._reached = False  # this connect got as far as a QR code or a login
        self._stop_requested = asyncio.Event()
        self._stalled = asyncio.Event()
        self._stall: tuple[str, str] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._forget = False
        self._final: EngineEvent | None = None
        self._pairing: Pairing | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._inbound_tail: asyncio.Future[None] | None = None
        """Done when the latest received message has been reported (see the module documentation)."""

    # -- control

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"wa-session-{self.session_id}")

    async def stop(self, within: float = STOP_TIMEOUT_S + 2.0) -> None:
        """Stop the client (keeping the device keys) and wait, at most ``within`` seconds, for the runner to end."""
        self._end()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), within)

    def _end(self, action: Action = Action.STOP, final: EngineEvent | None = None) -> None:
        """End the runner; ``final`` (why it ended) is reported once the client is stopped and, for
        :attr:`Action.FORGET`, the keys are deleted, so whoever sees it sees the cleanup done."""
        if final is not None and self._final is None:
            self._final = final
        self.stopping = True
        self.online = False
        if action is Action.FORGET:
            self._forget = True
        if self._pairing is not None:
            self._pairing.cancel()
        self._unwatch()
        self._stop_requested.set()

    # -- the connect loop

    async def _run(self) -> None:
        failures = 0
        try:
            while not self.stopping:
                ended = await self._connect_once()
                if self.stopping or ended is None:
                    break
                failures = 1 if ended.reached else failures + 1
                self._log_end(ended)
                self.online = False
                await self._release()
                delay = self._retry.delay(failures)
                now = time.time()
                if delay is None:
                    retry_after = self.host.config.failed_retry_s
                    retry_at = now + retry_after if self.device is not None and retry_after > 0 else None
                    failed = Failed(reason=ended.reason, retry_at=retry_at, detail=ended.detail)
                    self._end(Action.FORGET if self.device is None else Action.STOP, failed)
                    break
                if self.device is not None:
                    self._emit(Disconnected(reason=ended.reason, retry_at=now + delay, detail=ended.detail))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
        except Exception:
            log.exception("session %s: runner crashed", self.session_id)
            self._end(final=Failed(reason="engine_error", detail="the engine worker's session runner crashed"))
        finally:
            self.online = False
            self._unwatch()
            await self._release()
            if self._forget and not self.quiet:
                self.store.delete(self.device.jid if self.device is not None else None)
            for task in self._background:
                task.cancel()
            self.done.set()
            self.host.ended(self)
            if self._final is not None:
                self._emit(self._final)

    def _log_end(self, ended: _Ended) -> None:
        if ended.reason == policy.EVENT_STREAM_BROKEN:
            # Once per broken pump; the gateway's log line for the status change maps the id to tenant and name.
            log.error(
                "session %s: neonize stopped delivering events (%s); events WhatsApp sent meanwhile (up to 100) may "
                "be lost; reconnecting",
                self.session_id,
                ended.raw or "no error",
            )
        else:
            log.warning("session %s: connection ended (%s): %s", self.session_id, ended.reason, ended.raw or "-")

    async def _connect_once(self) -> _Ended | None:
        """Connect and wait until the connection ends by itself or stalls (why), or a stop is requested (None)."""
        if self.device is not None and self.store.read(self.device.jid) is None:
            # Resuming a device the store does not hold aborts the whole process inside whatsmeow.
            log.warning("session %s: the device keys are gone; it needs a new pairing", self.session_id)
            self._end(final=LoggedOut(reason="device_keys_missing"))
            return None
        client = self._client()
        self._reached = False
        self._stall = None
        self._stalled.clear()
        async with self.host.ffi.exclusive():
            if self.stopping:
                return None
            if self.device is None:
                self.store.prepare()
            proxy = nz.ProxySettings(proxy_address=self.host.proxy) if self.host.proxy else None
            task: asyncio.Task[Any] = await client.connect(proxy)
            self._connect_task = task
            await self._until_registered(client, task)
        if self.device is not None:
            timeout = self.host.config.connect_timeout_s
            self._watch(policy.CONNECT_TIMEOUT, f"not connected {timeout:g} s after connecting")
        waits = {asyncio.ensure_future(self._stop_requested.wait()), asyncio.ensure_future(self._stalled.wait())}
        try:
            await asyncio.wait({task, *waits}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.stopping:
            return None
        if not task.done():
            assert self._stall is not None
            reason, detail = self._stall
            return _Ended(reason, f"{detail}; reconnecting from the stored keys", detail, reached=True)
        exc = task.exception()
        raw = str(exc) if exc is not None else ""
        if not raw:
            return _Ended(policy.EVENT_STREAM_BROKEN, "neonize's connection ended without an error", raw, self._reached)
        reason = policy.connect_error_reason(raw)
        if reason == policy.EVENT_STREAM_BROKEN:
            broken = f"neonize could not pass on an event ({raw}); events received meanwhile may be lost"
            return _Ended(reason, broken, raw, self._reached)
        return _Ended(reason, policy.connect_error_detail(raw, proxy=self.host.via), raw, self._reached)

    async def _until_registered(self, client: Any, task: asyncio.Task[Any]) -> None:
        """Wait until Go knows the client, the connect ended, or :data:`REGISTER_TIMEOUT_S` passed.

        The probe is ``set_proxy_address`` with ``no_websocket`` and ``no_media``: the one call that is safe on an
        unknown client ("client not found"), and with both flags whatsmeow's ``SetProxyAddress`` changes none of
        the client's transports. (Without them, an empty address *removes* the proxy, also one from
        ``HTTPS_PROXY``, from every later reconnect of that client.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REGISTER_TIMEOUT_S
        while not task.done() and not self._reached and loop.time() < deadline:
            try:
                await client.set_proxy_address(None, no_websocket=True, no_media=True)
            except nz.SetProxyAddressError:
                await asyncio.sleep(REGISTER_POLL_S)
                continue
            break
        # Go keeps a client registered after a failed connect, until stop().
        self._registered = True

    async def _release(self) -> None:
        """Stop the Go client if it is registered; report its connect thread if it does not end."""
        task, self._connect_task = self._connect_task, None
        if self._registered and self.client is not None:
            async with self.host.ffi.exclusive():
                self._registered = False
                try:
                    await asyncio.wait_for(asyncio.shield(self.client.stop()), STOP_TIMEOUT_S)
                except TimeoutError:
                    log.error("session %s: stop() did not return in %.0f s", self.session_id, STOP_TIMEOUT_S)
                except Exception:
                    log.exception("session %s: stop() failed", self.session_id)
        if task is not None:
            if task.done():
                if not task.cancelled():
                    task.exception()  # retrieved: a failed connect is reported through its error text
            else:
                self.host.abandoned(task)

    def _client(self) -> Any:
        """A new client for this attempt: a fresh id with a blank device to pair, or the stored device."""
        path = self.store.name
        # DeviceProps.os is what the phone lists under "Linked devices"; whatsmeow keeps one process-wide copy.
        props = nz.DeviceProps(os=self.host.config.device_name, platformType=nz.DeviceProps.SAFARI)
        ffi = self.host.ffi

        def guarded(client: Any) -> Any:
            client._NewAClient__client = GuardedGo(client._NewAClient__client, ffi)
            return client

        if self.device is None:
            SessionRunner._pairings += 1
            uuid = f"{self.session_id}.pairing{SessionRunner._pairings}"
            client = self.host.adopt(lambda: guarded(nz.NewAClient(path, props=props, uuid=uuid, new_device=True)))
            if self._pairing is not None:
                self._pairing.cancel()
            pairing = self._pairing = Pairing(
                session_id=self.session_id,
                pair_phone=self.pair_phone,
                emit=self._emit,
                fail=lambda failed: self._end(Action.FORGET, failed),
                spawn=self._spawn,
                current=lambda: self._current(client) and self._pairing is pairing and self.device is None,
            )
            client._NewAClient__onLoginStatus = login_status_callback(asyncio.get_running_loop(), pairing.login_event)
        else:
            user, _, server = self.device.jid.partition("@")
            # The device number stays inside User: that keeps the Go client id unique per linked device.
            jid = nz.N.JID(User=user, Server=server, RawAgent=0, Device=0, Integrator=0, IsEmpty=False)
            client = self.host.adopt(lambda: guarded(nz.NewAClient(path, jid=jid, props=props)))
        self._subscribe(client)
        self.client = client
        return client

    def _subscribe(self, client: Any) -> None:
        events = nz.events_module
        client.qr(self._on_qr)
        for event_type, handler in (
            (events.MessageEv, self._on_message),
            (events.ReceiptEv, self._on_receipt),
            (events.HistorySyncEv, self._on_history),
            (events.ChatPresenceEv, self._on_presence),
            (events.PresenceEv, self._on_presence),
            (events.JoinedGroupEv, self._on_group),
            (events.GroupInfoEv, self._on_group),
            (events.ConnectedEv, self._on_connected),
            (events.PairStatusEv, self._on_pair_status),
            (events.KeepAliveRestoredEv, self._on_keepalive_restored),
            (events.DisconnectedEv, self._on_connection_event),
            (events.KeepAliveTimeoutEv, self._on_connection_event),
            (events.LoggedOutEv, self._on_connection_event),
            (events.StreamReplacedEv, self._on_connection_event),
            (events.TemporaryBanEv, self._on_connection_event),
            (events.ConnectFailureEv, self._on_connection_event),
            (events.ClientOutdatedEv, self._on_connection_event),
            (events.StreamErrorEv, self._on_connection_event),
        ):
            client.event(event_type)(handler)

    # -- watchdog: a connection that should come but does not

    def _watch(self, reason: str, detail: str) -> None:
        """Reconnect afresh unless the session is connected within the timeout for ``reason``."""
        config = self.host.config
        seconds = config.reconnect_timeout_s if reason == policy.RECONNECT_TIMEOUT else config.connect_timeout_s
        self._unwatch()
        if seconds > 0:
            self._watchdog = asyncio.get_running_loop().call_later(
                seconds, self._timed_out, self.client, reason, detail
            )

    def _unwatch(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _timed_out(self, client: Any, reason: str, detail: str) -> None:
        self._watchdog = None
        if self._current(client) and not self.online and self.device is not None:
            self._stall = (reason, detail)
            self._stalled.set()

    # -- events from neonize (each runs on the worker's loop; none may raise)

    def _emit(self, event: EngineEvent) -> None:
        if not self.quiet:
            self.host.emit(self.session_id, event)

    def learned(self, pairs: list[IdentityPair]) -> None:
        """Tell the gateway who is who, as WhatsApp told it outside a message (a look-up, a group's members)."""
        if pairs:
            self._emit(IdentityIn(pairs=pairs))

    def _current(self, client: Any) -> bool:
        return client is self.client and not self.stopping

    async def _on_qr(self, client: Any, data: bytes) -> None:
        try:
            if self._current(client) and self._pairing is not None and self.device is None:
                self._reached = True
                self._pairing.qr(client, data.decode())
        except Exception:
            log.exception("session %s: QR handler failed", self.session_id)

    async def _on_pair_status(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            jid = translate.pair_result(event)
            if jid is None:
                if self._pairing is not None:
                    self._pairing.rejected(str(event.Error))
                return
            self._paired(jid)
        except Exception:
            log.exception("session %s: pair status handler failed", self.session_id)

    def _paired(self, jid: str) -> None:
        if self._pairing is not None:
            self._pairing.cancel()
            self._pairing = None
        stored = self.store.read(jid)
        self.device = DeviceRef(engine="whatsapp", jid=jid, store=self.store.ref)
        self._retry = policy.connect_policy(
            attempts=self.host.config.connect_attempts, base=self.host.config.connect_backoff_s, paired=True
        )
        self.me = translate.me_from(jid, stored.lid if stored else None)
        log.info("session %s: paired", self.session_id)
        self._emit(Paired(me=self.me, device=self.device.to_record()))
        if not self.online:
            # whatsmeow reconnects once after pairing; if that fails, no event ever says so.
            timeout = self.host.config.connect_timeout_s
            self._watch(policy.CONNECT_TIMEOUT, f"paired, but WhatsApp did not confirm the connection in {timeout:g} s")

    async def _on_connected(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            self._reached = True
            if self.device is None:
                # The pair status was not seen (it should come first): take the device from the store.
                stored = self.store.read()
                if stored is None:
                    log.error("session %s: connected without a stored device", self.session_id)
                    return
                self._paired(stored.jid)
            self._unwatch()
            self.online = True
            self.me = self._whoami(client)
            self.connected_once.set()
            self._emit(Connected(me=self.me))
            if not self.quiet:
                self._spawn(self.presence.announce(client, lambda: self._current(client) and self.online))
        except Exception:
            log.exception("session %s: connected handler failed", self.session_id)

    async def _on_keepalive_restored(self, client: Any, event: Any) -> None:
        try:
            if self._current(client) and self.device is not None:
                self._unwatch()
                self.online = True
                self._emit(Connected(me=self.me or self._whoami(client)))
        except Exception:
            log.exception("session %s: keep-alive handler failed", self.session_id)

    def _whoami(self, client: Any) -> Me:
        """The linked account from the client's device record (set by neonize when its event pump starts)."""
        assert self.device is not None
        device = client.me
        jid, lid, name = self.device.jid, None, None
        if device is not None:
            if device.HasField("JID") and device.JID.User:
                jid = translate.device_jid_string(device.JID)
            if device.HasField("LID") and device.LID.User:
                lid = translate.device_jid_string(device.LID)
            name = device.PushName or None
        if lid is None:
            stored = self.store.read(self.device.jid)
            lid = stored.lid if stored else None
        return translate.me_from(jid, lid, name)

    async def _on_connection_event(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            outcome = translate.connection_outcome(event, now=time.time(), retry_after=self.host.config.failed_retry_s)
            if outcome is not None:
                self._apply(outcome)
        except Exception:
            log.exception("session %s: connection event handler failed", self.session_id)

    def _apply(self, outcome: Outcome) -> None:
        if outcome.action is not Action.KEEP:
            *before, last = outcome.events
            for event in before:
                self._emit(event)
            log.info("session %s: %s (%s)", self.session_id, last, outcome.action.value)
            self._end(outcome.action, last)
            return
        for event in outcome.events:
            if isinstance(event, Disconnected):
                self.online = False
                if self._watchdog is None and self.device is not None:
                    # whatsmeow reconnects by itself, waiting 2 s longer after every failure, without a cap.
                    timeout = self.host.config.reconnect_timeout_s
                    self._watch(policy.RECONNECT_TIMEOUT, f"whatsmeow has been reconnecting for {timeout:g} s")
            self._emit(event)

    async def _on_message(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            message = translate.message_in(event)
            if message is None:
                return
            vote = vote_of(event)
            earlier = self._inbound_tail
            if vote is None and (earlier is None or earlier.done()):
                self._report(message, event)  # before any await: messages leave in neonize's order
                return
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._inbound_tail = done
            try:
                if earlier is not None:
                    await earlier  # everything before is reported (a poll just received is remembered)
                if vote is not None:
                    message = await read_vote(self.polls, client, self.session_id, message, event, vote)
                if self._current(client):
                    self._report(message, event)
            finally:
                done.set_result(None)
        except Exception:
            log.exception("session %s: message handler failed", self.session_id)

    def _report(self, message: MessageIn, event: Any) -> None:
        self._emit(message)
        if not message.from_me:
            self.accounts.saw_push_name(message.sender, message.push_name)
        self.outbound.received(message.message_id, message.chat, event)
        chat, sender = translate.wire_addresses(event)
        poll = poll_seen(event, chat, sender)
        if poll is not None:
            self.polls.remember(self.session_id, poll)

    async def _on_history(self, client: Any, event: Any) -> None:
        """A history-sync blob: its batches, in order (the gateway stores them after any live event waiting)."""
        try:
            if not self._current(client):
                return
            for jid, name in push_names(event.Data):
                self.accounts.saw_push_name(jid, name)
            for batch in history_batches(event.Data):
                self._emit(batch)
        except Exception:
            log.exception("session %s: history sync handler failed", self.session_id)

    async def _on_presence(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            if isinstance(event, nz.N.ChatPresence):
                presence = translate.chat_presence_in(event)
            else:
                presence = translate.presence_in(event)
            if presence is not None:
                self._emit(self.presence.reported(presence))
        except Exception:
            log.exception("session %s: presence handler failed", self.session_id)

    async def _on_receipt(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            receipt = translate.receipt_in(event)
            if receipt is not None:
                self._emit(receipt)
        except Exception:
            log.exception("session %s: receipt handler failed", self.session_id)

    async def _on_group(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            if isinstance(event, nz.N.JoinedGroup):
                joined = joined_group(event)
                self.groups.cache.put(joined.group)
                self.learned(member_pairs(joined.group))
                self._emit(GroupJoinedIn(data=joined))
                return
            self.groups.cache.forget(translate.jid_string(event.JID))  # members or settings changed
            for data in group_events(event):
                if isinstance(data, GroupParticipantsData):
                    self._emit(GroupParticipantsIn(data=data))
                else:
                    self._emit(GroupUpdatedIn(data=data))
        except Exception:
            log.exception("session %s: group event handler failed", self.session_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- sending (see .outbound)

    def require_online(self) -> Any:
        if not self.online or self.client is None or self.stopping:
            raise SendFailure("not_connected", "the session is not connected to WhatsApp", retryable=True)
        return self.client

    async def send(self, request: Send) -> tuple[str, int, str | None]:
        """Send a message; WhatsApp's message id, timestamp (s), and the chat it went to if not ``request.to``."""
        return await self.outbound.send(request)

    async def mark_read(self, chat: str, sender: str | None, message_ids: list[str]) -> None:
        await self.outbound.mark_read(chat, sender, message_ids)

    async def download(self, media_ref: dict[str, Any], into: str) -> None:
        await media.download(self.require_online(), media_ref, Path(into))

    async def chat_presence(self, chat: str, state: ChatState) -> None:
        await self.presence.chat(chat, state)

    async def set_presence(self, state: Availability) -> None:
        await self.presence.set(state)

    async def subscribe_presence(self, chat: str) -> None:
        await self.presence.subscribe(chat)

    async def group(self, request: GroupRequest) -> Any:
        """Run a group call (see :mod:`.groups`); its answer as zapgate's structs."""
        groups, group = self.groups, request.group or ""
        match request.op:
            case "create":
                return await groups.create(request.subject or "", request.participants)
            case "list":
                return await groups.joined()
            case "info":
                return await groups.info(group)
            case "participants":
                return await groups.participants(group, request.action, request.participants)  # type: ignore[arg-type]
            case "invite_link":
                return await groups.invite_link(group, request.reset)
            case "join":
                return await groups.join(request.code or "")
            case "leave":
                return await groups.leave(group)
            case "update":
                picture = None
                if request.picture is not None:
                    picture = await asyncio.to_thread(Path(request.picture.path).read_bytes)
                return await groups.update(group, request.changes or GroupChanges(), picture)
        raise SendFailure("unsupported", f"unknown group call {request.op!r}", retryable=False)

    async def logout(self, within: float) -> bool:
        """Unlink the device on WhatsApp's side if the session is online; True when WhatsApp confirmed."""
        if not self.online or self.client is None:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(self.client.logout()), within)
        except Exception as exc:
            log.warning("session %s: logout on WhatsApp failed: %s", self.session_id, exc)
            return False
        return True
