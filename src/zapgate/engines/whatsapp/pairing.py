"""Linking a new device: QR codes, the pairing code, and how a pairing ends (runs in a worker).

neonize 0.5.2 shows each QR code through a callback and reports the end of the QR phase ("success",
"timeout", "error", "err-client-outdated"...) only through a *login status* callback that its async client
ignores: the ``PairStatus`` event of a failed pairing is queued behind an event pump that never starts, so
without that callback a rejected pairing looked like a QR timeout 165 s later. :func:`login_status_callback`
hooks it (the client's ``_NewAClient__onLoginStatus``, read by ``connect()``), so a pairing ends at once
with its cause.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable
from typing import Any

from ...sessions.qr import WHATSAPP_QR_SCHEDULE, QrSchedule
from ..base import EngineEvent, Failed, PairCode, QrCode
from . import nz

__all__ = ["QR_GRACE_S", "Pairing", "login_status_callback"]

log = logging.getLogger("zapgate.engines.whatsapp")

QR_GRACE_S = 5.0
"""Extra time after the last QR code expired before the pairing counts as timed out (when whatsmeow's own
"timeout" did not come first)."""

# whatsmeow's QR channel events (qrchan.go) that end a pairing, and what zapgate reports for them.
_ENDINGS: dict[str, tuple[str, str]] = {
    "timeout": ("qr_timeout", "no phone scanned the QR codes in time"),
    "error": (
        "pair_error",
        "the phone's confirmation was rejected; the worker log has whatsmeow's 'Failed to pair device' line",
    ),
    "err-client-outdated": ("client_outdated", "WhatsApp no longer accepts this whatsmeow build; upgrade neonize"),
    "err-scanned-without-multidevice": (
        "pair_error",
        "the phone scanned the code without multi-device support; update WhatsApp on the phone",
    ),
    "err-unexpected-state": ("pair_error", "WhatsApp reported an unexpected state while pairing"),
}


def login_status_callback(
    loop: asyncio.AbstractEventLoop, deliver: Callable[[str], None]
) -> Callable[[int, int], None]:
    """A function for neonize's login status callback: Go calls it on its own thread with a C string; it hands
    the text to ``deliver`` on ``loop``. It never raises (an exception would be printed by ctypes and lost)."""

    def on_login_status(_uuid: int, status: int) -> None:
        try:
            name = ctypes.string_at(status).decode("utf-8", "replace") if status else ""
            loop.call_soon_threadsafe(deliver, name)
        except Exception:  # noqa: S110 - nothing can be done on Go's thread; the QR timer still ends the pairing
            pass

    return on_login_status


class Pairing:
    """One pairing attempt: its QR schedule and timer, its pairing code, and the end of its QR phase.

    ``emit`` reports events, ``fail`` ends the session (the keys of the unfinished device are forgotten),
    ``spawn`` runs a background task owned by the session, and ``current`` says whether the client is still the
    session's."""

    def __init__(
        self,
        *,
        session_id: str,
        pair_phone: str | None,
        emit: Callable[[EngineEvent], None],
        fail: Callable[[Failed], None],
        spawn: Callable[[Any], None],
        current: Callable[[], bool],
    ) -> None:
        self.session_id = session_id
        self.pair_phone = pair_phone
        self._emit = emit
        self._fail = fail
        self._spawn = spawn
        self._current = current
        self.schedule: QrSchedule | None = None
        self.attempt = 0
        self.code_requested = False
        self.timer: asyncio.TimerHandle | None = None
        self.succeeded = False

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def qr(self, client: Any, code: str) -> None:
        """A QR code from whatsmeow: show it, and start the pairing's own timeout at the first code of a round."""
        now = time.time()
        if self.schedule is None or self.attempt >= self.schedule.max_attempts:
            self.schedule = QrSchedule(now, WHATSAPP_QR_SCHEDULE)
            self.attempt = 0
            self.cancel()
            delay = self.schedule.ends_at + QR_GRACE_S - now
            self.timer = asyncio.get_running_loop().call_later(delay, self.login_event, "timeout")
        self.attempt += 1
        lifetime = self.schedule.lifetimes[self.attempt - 1]
        self._emit(
            QrCode(code=code, attempt=self.attempt, max_attempts=self.schedule.max_attempts, expires_at=now + lifetime)
        )
        if self.pair_phone is not None and not self.code_requested:
            # whatsmeow can ask for a pairing code only once the first QR proved the socket is up.
            self.code_requested = True
            self._spawn(self._request_code(client, self.pair_phone, self.schedule.ends_at))

    async def _request_code(self, client: Any, phone: str, expires_at: float) -> None:
        try:
            code = await client.PairPhone(phone, True, nz.ClientName.LINUX)
        except Exception as exc:
            log.warning("session %s: WhatsApp gave no pairing code (%s); the QR code still works", self.session_id, exc)
            return
        if self._current():
            self._emit(PairCode(code=str(code), expires_at=expires_at))

    def login_event(self, name: str) -> None:
        """whatsmeow's QR channel said ``name`` (``success``, ``timeout``, ``error``...), or the timer ran out."""
        if not self._current() or self.succeeded:
            return
        if name == "success":
            self.succeeded = True
            self.cancel()
            log.info("session %s: the phone confirmed the pairing", self.session_id)
            return
        ending = _ENDINGS.get(name)
        if ending is None:
            # e.g. "passkey-request": WhatsApp asks the phone to confirm with a passkey; neonize 0.5.2 has no way to
            # answer it, so the pairing may stall until its timeout (docs/engines.md).
            log.warning("session %s: pairing event %r", self.session_id, name)
            return
        self.cancel()
        reason, detail = ending
        log.info("session %s: pairing ended (%s): %s", self.session_id, name, detail)
        self._fail(Failed(reason=reason, detail=detail))

    def rejected(self, error: str) -> None:
        """A ``PairStatus`` event with an error (when neonize delivers one)."""
        if not self._current():
            return
        self.cancel()
        log.warning("session %s: pairing failed: %s", self.session_id, error or "unknown error")
        self._fail(Failed(reason="pair_error", detail=error or None))
