"""Pairing in the simulator: the QR codes (and pairing codes) a linking device shows, on WhatsApp's schedule.

Codes being shown are also written to the simulator's database, so that with several gateway nodes any node can
tell which session shows a code (a ``sim.scan`` then runs on the node that runs that session).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import QRAlreadyUsed, QRExpired, QRUnknown
from ...sessions.qr import QrSchedule
from ...storage.database import Conn, Database
from ..base import EngineEvent, Failed, PairCode, QrCode
from .records import make_pair_code, make_qr_code

__all__ = ["MAX_REMEMBERED_CODES", "Pairing", "Pairings"]

MAX_REMEMBERED_CODES = 10000
"""Codes of ended pairings remembered to answer ``qr_used`` rather than ``qr_unknown``."""


@dataclass
class Pairing:
    schedule: QrSchedule
    codes: list[str]
    pair_phone: str | None
    pair_code: str | None = None
    timer: asyncio.TimerHandle | None = None


class PairingDevice(Protocol):
    session_id: str
    opened: bool
    pairing: Pairing | None


class Pairings:
    def __init__(
        self, db: Database, schedule: Sequence[float], emit: Callable[[Any, EngineEvent], None]
    ) -> None:
        self._db = db
        self._schedule = tuple(schedule)
        self._emit = emit
        self._index: dict[str, tuple[str, int]] = {}  # code -> (session id, attempt; 0 for a pairing code)
        self._used: dict[str, str] = {}  # code of an ended pairing -> session id

    async def begin(self, device: PairingDevice, pair_phone: str | None) -> None:
        """Show the first QR code (and a pairing code for ``pair_phone``), then the next ones on schedule."""
        self.cancel(device)
        schedule = QrSchedule(time.time(), self._schedule)
        pairing = Pairing(schedule, [make_qr_code() for _ in self._schedule], pair_phone)
        if pair_phone is not None:
            pairing.pair_code = make_pair_code()
        device.pairing = pairing
        for attempt, code in enumerate(pairing.codes, start=1):
            self._index[code] = (device.session_id, attempt)
        if pairing.pair_code is not None:
            self._index[pairing.pair_code] = (device.session_id, 0)
        await self._store(device.session_id, [*pairing.codes, *filter(None, [pairing.pair_code])])
        if device.pairing is not pairing:
            return  # stopped meanwhile
        self._show(device, 1)
        if pairing.pair_code is not None:
            # whatsmeow can only ask for a pairing code once the first QR proved the socket is up.
            self._emit(device, PairCode(code=pairing.pair_code, expires_at=schedule.ends_at))

    def cancel(self, device: PairingDevice) -> None:
        pairing, device.pairing = device.pairing, None
        if pairing is None:
            return
        if pairing.timer is not None:
            pairing.timer.cancel()
        for code in [*pairing.codes, pairing.pair_code]:
            if code is not None:
                self._index.pop(code, None)
                self._used[code] = device.session_id
        while len(self._used) > MAX_REMEMBERED_CODES:
            del self._used[next(iter(self._used))]

    async def locate(self, code: str) -> str | None:
        """The session that shows (or showed) ``code``, on any node."""
        found = self._index.get(code)
        if found is not None:
            return found[0]
        return self._used.get(code) or await self._shown_by(code)

    async def find(
        self, code: str, phone: str, owned: Callable[[str], bool], pairing_of: Callable[[str], Pairing | None]
    ) -> str:
        """The session whose current code ``phone`` scanned (or typed); raises the ``qr_*`` errors."""
        found = self._index.get(code)
        if found is None or not owned(found[0]):
            used_by = self._used.get(code) or (await self._shown_by(code) if found is None else None)
            if used_by is not None and owned(used_by):
                raise QRAlreadyUsed("this code was already used or its pairing ended; start the session again")
            raise QRUnknown("no session is showing this code")
        session_id, attempt = found
        pairing = pairing_of(session_id)
        assert pairing is not None
        if attempt == 0:
            if phone != pairing.pair_phone:
                raise QRUnknown("this pairing code was issued for another phone number")
            return session_id
        current = pairing.schedule.current(time.time())
        if current is None or current.attempt != attempt:
            raise QRExpired(f"QR code {attempt} of {pairing.schedule.max_attempts} has expired; scan the current one")
        return session_id

    def _show(self, device: PairingDevice, attempt: int) -> None:
        pairing = device.pairing
        if pairing is None:
            return
        loop = asyncio.get_running_loop()
        if attempt > pairing.schedule.max_attempts:
            self.cancel(device)
            device.opened = False
            self._emit(device, Failed(reason="qr_timeout"))
            return
        slot = pairing.schedule.slot(attempt)
        self._emit(
            device,
            QrCode(
                code=pairing.codes[attempt - 1],
                attempt=attempt,
                max_attempts=slot.max_attempts,
                expires_at=slot.expires_at,
            ),
        )
        pairing.timer = loop.call_at(
            loop.time() + max(0.0, slot.expires_at - time.time()), self._show, device, attempt + 1
        )

    async def _store(self, session_id: str, codes: list[str]) -> None:
        now = time.time()

        def store(conn: Conn) -> tuple[None, list[Any]]:
            conn.executemany(
                "INSERT INTO qr_codes (code, session_id, created_at) VALUES (?, ?, ?) ON CONFLICT (code) DO NOTHING",
                [(code, session_id, now) for code in codes],
            )
            return None, []

        await self._db.write(store)

    async def _shown_by(self, code: str) -> str | None:
        def read(conn: Conn) -> str | None:
            row = conn.execute("SELECT session_id FROM qr_codes WHERE code = ?", (code,)).fetchone()
            return str(row[0]) if row else None

        return await self._db.read(read)
