"""One WhatsApp session inside an engine worker: a whatsmeow client through neonize, and its life.

A :class:`SessionRunner` connects (pairing a new device by QR or pairing code, or resuming a stored one),
turns neonize's events into zapgate engine events, retries the initial connect with backoff, notices a dead
event pump, and stops its client on request or when WhatsApp ends the session. The rules it follows come from
measuring neonize 0.5.2 (``docs/engines.md``):

- ``connect()`` and ``stop()`` run one at a time in the worker (:attr:`Host.gate`): overlapping ones abort
  the process. The gate is held until Go has registered the client.
- Handlers are bound methods registered before ``connect()``; none lets an exception escape (neonize would
  drop it silently). Each handler translates and emits before its first ``await``, so events leave in the
  order neonize delivered them.
- A connect task is never cancelled; ``stop()`` runs with a timeout, and a connect that does not end after
  ``stop()`` is reported to the host as an abandoned executor thread.
- A new pairing uses a fresh client id and ``new_device=True``; a resume passes the stored ``jid`` and is only
  attempted after the device row was found in the store (whatsmeow aborts the process otherwise).
- No call that aborts the process on an unregistered client (``get_me``, ``contact.*``, ``revoke_message`` ...)
  is ever made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ...jid import USER_SERVER
from ...protocol import Me
from ...sessions.qr import WHATSAPP_QR_SCHEDULE, QrSchedule
from ..base import Connected, Disconnected, EngineEvent, Failed, LoggedOut, PairCode, Paired, QrCode
from . import nz, policy, translate
from .ipc import QuoteRef, WorkerConfig
from .policy import Action, Outcome, RetryPolicy
from .store import DeviceRef, delete_store, read_device, store_path

__all__ = ["Host", "SendFailure", "SessionRunner"]

log = logging.getLogger("zapgate.engines.whatsapp")

REGISTER_TIMEOUT_S = 5.0
"""How long the gate waits for Go to register a new client before letting the next connect run."""
REGISTER_POLL_S = 0.01
STOP_TIMEOUT_S = 5.0
"""A ``stop()`` that takes longer is abandoned (its thread may be stuck for ever; see docs/engines.md)."""
QR_GRACE_S = 5.0
"""Extra time after the last QR code expired before the pairing counts as timed out."""


class SendFailure(Exception):
    """A send or read receipt that did not go out; carries the :class:`~zapgate.engines.base.SendError` fields."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class Host(Protocol):
    """What a session needs from the worker hosting it."""

    config: WorkerConfig
    data_dir: Path
    gate: asyncio.Lock

    def emit(self, session_id: str, event: EngineEvent) -> None: ...

    def client(self, uuid: str, create: Callable[[], Any]) -> Any:
        """The one client object for ``uuid`` in this process, created on first use and kept for ever."""
        ...

    def abandoned(self, task: asyncio.Task[Any]) -> None:
        """``task`` (a connect) did not end after ``stop()``."""
        ...

    def ended(self, runner: SessionRunner) -> None: ...


class _Pairing:
    def __init__(self) -> None:
        self.schedule: QrSchedule | None = None
        self.attempt = 0
        self.code_requested = False
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


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
        self.store = host.data_dir / device.store if device is not None else store_path(host.data_dir, session_id)
        self.client: Any = None
        self.online = False
        self.stopping = False
        self.me: Me | None = None
        self.connected_once = asyncio.Event()
        self.done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[Any] | None = None
        self._registered = False
        self._reached = False  # this connect got as far as a QR code or a login
        self._stop_requested = asyncio.Event()
        self._forget = False
        self._final: EngineEvent | None = None
        self._pairing: _Pairing | None = None
        self._on_whatsapp: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()

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
        self._stop_requested.set()

    # -- the connect loop

    async def _run(self) -> None:
        failures = 0
        try:
            while not self.stopping:
                error = await self._connect_once()
                if self.stopping:
                    break
                failures = 1 if self._reached else failures + 1
                reason = policy.connect_error_reason(error) if error else "event_stream_broken"
                log.warning("session %s: connection ended (%s): %s", self.session_id, reason, error or "no error")
                self.online = False
                await self._release()
                delay = self._retry.delay(failures)
                now = time.time()
                if delay is None:
                    retry_after = self.host.config.failed_retry_s
                    retry_at = now + retry_after if self.device is not None and retry_after > 0 else None
                    self._end(
                        Action.FORGET if self.device is None else Action.STOP, Failed(reason=reason, retry_at=retry_at)
                    )
                    break
                if self.device is not None:
                    self._emit(Disconnected(reason=reason, retry_at=now + delay))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
        except Exception:
            log.exception("session %s: runner crashed", self.session_id)
            self._end(final=Failed(reason="engine_error"))
        finally:
            self.online = False
            await self._release()
            if self._forget and not self.quiet:
                delete_store(self.store)
            for task in self._background:
                task.cancel()
            self.done.set()
            self.host.ended(self)
            if self._final is not None:
                self._emit(self._final)

    async def _connect_once(self) -> str | None:
        """Connect and wait until the connection ends by itself (its error text, or "" without one) or a stop
        is requested (None)."""
        if self.device is not None and read_device(self.store, self.device.jid) is None:
            # Resuming a device the store does not hold aborts the whole process inside whatsmeow.
            log.warning("session %s: the device keys are gone; it needs a new pairing", self.session_id)
            self._end(final=LoggedOut(reason="device_keys_missing"))
            return None
        client = self._client()
        self._reached = False
        async with self.host.gate:
            if self.stopping:
                return None
            if self.device is None:
                self.store.parent.mkdir(parents=True, exist_ok=True)
            task: asyncio.Task[Any] = await client.connect()
            self._connect_task = task
            await self._until_registered(client, task)
        stop_wait = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
        if not task.done():
            return None
        exc = task.exception()
        return str(exc) if exc is not None else ""

    async def _until_registered(self, client: Any, task: asyncio.Task[Any]) -> None:
        """Wait until Go knows the client (the only safe probe is ``set_proxy_address``), the connect ended,
        or :data:`REGISTER_TIMEOUT_S` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REGISTER_TIMEOUT_S
        while not task.done() and loop.time() < deadline:
            try:
                await client.set_proxy_address(None)
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
            async with self.host.gate:
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
        """The client for this attempt: a fresh id with a blank device to pair, or the stored device."""
        if self.device is None:
            SessionRunner._pairings += 1
            uuid = f"{self.session_id}.pairing{SessionRunner._pairings}"
            path = str(self.store)
            client = self.host.client(uuid, lambda: nz.NewAClient(path, uuid=uuid, new_device=True))
            if self._pairing is not None:
                self._pairing.cancel()
            self._pairing = _Pairing()
        else:
            user, _, server = self.device.jid.partition("@")
            # The device number stays inside User: that keeps the Go client id unique per linked device.
            jid = nz.N.JID(User=user, Server=server, RawAgent=0, Device=0, Integrator=0, IsEmpty=False)
            path = str(self.store)
            client = self.host.client(user, lambda: nz.NewAClient(path, jid=jid))
            client.name = path  # the client object is reused for ever; its store is read at each connect
        self._subscribe(client)
        self.client = client
        return client

    def _subscribe(self, client: Any) -> None:
        events = nz.events_module
        client.qr(self._on_qr)
        for event_type, handler in (
            (events.MessageEv, self._on_message),
            (events.ReceiptEv, self._on_receipt),
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

    # -- events from neonize (each runs on the worker's loop; none may raise)

    def _emit(self, event: EngineEvent) -> None:
        if not self.quiet:
            self.host.emit(self.session_id, event)

    def _current(self, client: Any) -> bool:
        return client is self.client and not self.stopping

    async def _on_qr(self, client: Any, data: bytes) -> None:
        try:
            pairing = self._pairing
            if not self._current(client) or pairing is None:
                return
            self._reached = True
            now = time.time()
            if pairing.schedule is None or pairing.attempt >= pairing.schedule.max_attempts:
                pairing.schedule = QrSchedule(now, WHATSAPP_QR_SCHEDULE)
                pairing.attempt = 0
                pairing.cancel()
                delay = pairing.schedule.ends_at + QR_GRACE_S - now
                pairing.timer = asyncio.get_running_loop().call_later(delay, self._qr_timed_out, client)
            pairing.attempt += 1
            lifetime = pairing.schedule.lifetimes[pairing.attempt - 1]
            self._emit(
                QrCode(
                    code=data.decode(),
                    attempt=pairing.attempt,
                    max_attempts=pairing.schedule.max_attempts,
                    expires_at=now + lifetime,
                )
            )
            if self.pair_phone is not None and not pairing.code_requested:
                # whatsmeow can ask for a pairing code only once the first QR proved the socket is up.
                pairing.code_requested = True
                self._spawn(self._request_pair_code(client, self.pair_phone, pairing.schedule.ends_at))
        except Exception:
            log.exception("session %s: QR handler failed", self.session_id)

    async def _request_pair_code(self, client: Any, phone: str, expires_at: float) -> None:
        try:
            code = await client.PairPhone(phone, True, nz.ClientName.LINUX)
        except Exception as exc:
            log.warning("session %s: WhatsApp gave no pairing code (%s); the QR code still works", self.session_id, exc)
            return
        if self._current(client):
            self._emit(PairCode(code=str(code), expires_at=expires_at))

    def _qr_timed_out(self, client: Any) -> None:
        if not self._current(client) or self.device is not None:
            return
        log.info("session %s: no phone scanned the QR codes", self.session_id)
        self._end(Action.FORGET, Failed(reason="qr_timeout"))

    async def _on_pair_status(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            jid = translate.pair_result(event)
            if jid is None:
                log.warning("session %s: pairing failed: %s", self.session_id, event.Error or "unknown error")
                self._end(Action.FORGET, Failed(reason="pair_error"))
                return
            self._paired(jid)
        except Exception:
            log.exception("session %s: pair status handler failed", self.session_id)

    def _paired(self, jid: str) -> None:
        if self._pairing is not None:
            self._pairing.cancel()
            self._pairing = None
        stored = read_device(self.store, jid)
        relative = self.store.relative_to(self.host.data_dir).as_posix()
        self.device = DeviceRef(engine="whatsapp", jid=jid, store=relative)
        self._retry = policy.connect_policy(
            attempts=self.host.config.connect_attempts, base=self.host.config.connect_backoff_s, paired=True
        )
        self.me = translate.me_from(jid, stored.lid if stored else None)
        log.info("session %s: paired", self.session_id)
        self._emit(Paired(me=self.me, device=self.device.to_record()))

    async def _on_connected(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            self._reached = True
            if self.device is None:
                # The pair status was not seen (it should come first): take the device from the store.
                stored = read_device(self.store)
                if stored is None:
                    log.error("session %s: connected without a stored device", self.session_id)
                    return
                self._paired(stored.jid)
            self.online = True
            self.me = self._whoami(client)
            self.connected_once.set()
            self._emit(Connected(me=self.me))
        except Exception:
            log.exception("session %s: connected handler failed", self.session_id)

    async def _on_keepalive_restored(self, client: Any, event: Any) -> None:
        try:
            if self._current(client) and self.device is not None:
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
            stored = read_device(self.store, self.device.jid)
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
            self._emit(event)

    async def _on_message(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            message = translate.message_in(event)
            if message is not None:
                self._emit(message)
        except Exception:
            log.exception("session %s: message handler failed", self.session_id)

    async def _on_receipt(self, client: Any, event: Any) -> None:
        try:
            if not self._current(client):
                return
            receipt = translate.receipt_in(event)
            if receipt is not None:
                self._emit(receipt)
        except Exception:
            log.exception("session %s: receipt handler failed", self.session_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- sending

    def _require_online(self) -> Any:
        if not self.online or self.client is None or self.stopping:
            raise SendFailure("not_connected", "the session is not connected to WhatsApp", retryable=True)
        return self.client

    @staticmethod
    def _jid(text: str) -> Any:
        user, _, server = text.partition("@")
        return nz.build_jid(user, server or USER_SERVER)

    async def send_text(self, to: str, text: str, quote: QuoteRef | None) -> tuple[str, int]:
        """Send a text (quoting ``quote``); returns WhatsApp's message id and timestamp in seconds."""
        client = self._require_online()
        user, _, server = to.partition("@")
        if server == USER_SERVER and user not in self._on_whatsapp:
            try:
                answers = await client.is_on_whatsapp("+" + user)
            except Exception as exc:
                code, retryable = policy.send_error(str(exc))
                raise SendFailure(code, f"could not check {user} on WhatsApp: {exc}", retryable=retryable) from None
            if answers and not any(answer.IsIn for answer in answers):
                raise SendFailure("not_on_whatsapp", f"{user} is not on WhatsApp", retryable=False)
            self._on_whatsapp.add(user)
        if quote is None:
            message = nz.WAMessage(conversation=text)
        else:
            context = nz.ContextInfo(
                stanzaID=quote.message_id,
                participant=quote.participant,
                quotedMessage=nz.WAMessage(conversation=quote.text or ""),
            )
            message = nz.WAMessage(extendedTextMessage=nz.ExtendedTextMessage(text=text, contextInfo=context))
        try:
            response = await client.send_message(self._jid(to), message)
        except Exception as exc:
            code, retryable = policy.send_error(str(exc))
            raise SendFailure(code, str(exc), retryable=retryable) from None
        return str(response.ID), policy.to_seconds(int(response.Timestamp))

    async def mark_read(self, chat: str, sender: str | None, message_ids: list[str]) -> None:
        client = self._require_online()
        try:
            await client.mark_read(
                *message_ids,
                chat=self._jid(chat),
                sender=self._jid(sender or chat),
                receipt=nz.ReceiptType.READ,
            )
        except Exception as exc:
            code, retryable = policy.send_error(str(exc))
            raise SendFailure(code, str(exc), retryable=retryable) from None

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
