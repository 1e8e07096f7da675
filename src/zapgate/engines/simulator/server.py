"""WhatsApp's servers as the simulator plays them: what they keep, and how they reach a connected device.

The state (accounts, linked devices, deliveries, mailboxes, QR codes, connections; :mod:`.records`) lives in the
simulator's database. With one gateway that is ``simulator.db``, and every device is on this node. With several
nodes it is their shared PostgreSQL database, and a device is connected to the node that runs its session: mail
for a device, or the news that another node's connection replaced a device's, is announced on a PostgreSQL
notification channel inside the transaction that stores it (so it is heard only once committed), and the node
that has the device connected picks it up.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...storage.by_url import database_for
from ...storage.database import Conn, Database
from .records import MIGRATIONS

__all__ = ["SimServer"]

log = logging.getLogger("zapgate.engines.simulator")

CODE_RETENTION_S = 86400.0
CONNECTION_LOG_RETENTION_S = 7 * 86400.0
NOTICES_RECONNECT_S = 1.0
ECHO_BUSINESS_NAME = "Zapgate Echo"
"""The echo contact is a verified business account."""


class SimServer:
    def __init__(
        self, data_dir: Path, *, database_url: str | None, node: str, lock_hold_limit_s: float | None = None
    ) -> None:
        self.shared = database_url is not None
        self.node = node
        self.db: Database = database_for(
            database_url or data_dir / "simulator.db",
            synchronous="normal",
            migrations=MIGRATIONS,
            name="zapgate-sim",
            version_table="zapgate_sim_schema",
            lock_hold_limit_s=lock_hold_limit_s,
        )
        self._url = database_url
        self.accounts: dict[str, tuple[str, str]] = {}
        """phone → (kind, lid); accounts are never removed, so a cached one is always right."""
        self.by_lid: dict[str, str] = {}
        """lid → phone, for the accounts in :attr:`accounts`."""
        self.privacy: dict[str, tuple[bool, bool]] = {}
        """phone → (hides its phone number, refuses group adds) as last read or set here (``sim.contact``)."""
        self.on_mail: Callable[[list[str]], None] = lambda _: None
        """Told the sessions another node mailed something to (shared mode)."""
        self.on_replaced: Callable[[str, str, int], None] = lambda *_: None
        """Told that another node's connection replaced (session, node, epoch) (shared mode)."""
        self._channel = ""
        self._listener: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.db.open()
        before = time.time()

        def load(conn: Conn) -> tuple[tuple[list[Any], list[Any]], list[Any]]:
            conn.execute("DELETE FROM qr_codes WHERE created_at < ?", (before - CODE_RETENTION_S,))
            conn.execute("DELETE FROM connection_log WHERE at < ?", (before - CONNECTION_LOG_RETENTION_S,))
            conn.execute(
                "INSERT INTO meta (one, id) VALUES (1, ?) ON CONFLICT (one) DO NOTHING", (secrets.token_hex(6),)
            )
            meta = conn.execute("SELECT id FROM meta WHERE one = 1").fetchall()
            rows = conn.execute("SELECT phone, kind, lid, hides_phone, refuses_group_adds FROM accounts").fetchall()
            return (rows, meta), []

        accounts, meta = await self.db.write(load)
        self.accounts.clear()  # (in place: the engine holds this dict)
        for row in accounts:
            self._cache(row)
        if self.shared:
            self._channel = f"zgsim_{meta[0][0]}"
            listening = asyncio.get_running_loop().create_future()
            self._listener = asyncio.create_task(self._listen(listening), name="sim-listener")
            await listening

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.db.close()

    # -- accounts

    async def account(self, phone: str) -> tuple[str, str] | None:
        """(kind, lid) of the account of ``phone``, if it exists (another node may have made it)."""
        known = self.accounts.get(phone)
        if known is not None or not self.shared:
            return known

        def read(conn: Conn) -> Any:
            return conn.execute(
                "SELECT phone, kind, lid, hides_phone, refuses_group_adds FROM accounts WHERE phone = ?", (phone,)
            ).fetchone()

        row = await self.db.read(read)
        if row is not None:
            self._cache(row)
        return self.accounts.get(phone)

    async def phone_of_lid(self, lid: str) -> str | None:
        """The phone number of the account whose LID is ``lid`` (user part), if there is one."""
        known = self.by_lid.get(lid)
        if known is not None or not self.shared:
            return known

        def read(conn: Conn) -> Any:
            return conn.execute(
                "SELECT phone, kind, lid, hides_phone, refuses_group_adds FROM accounts WHERE lid = ?", (lid,)
            ).fetchone()

        row = await self.db.read(read)
        if row is not None:
            self._cache(row)
        return self.by_lid.get(lid)

    def hides_phone(self, phone: str) -> bool:
        return self.privacy.get(phone, (False, False))[0]

    def refuses_group_adds(self, phone: str) -> bool:
        return self.privacy.get(phone, (False, False))[1]

    async def set_privacy(self, phone: str, *, hide_phone: bool | None, refuse_group_adds: bool | None) -> None:
        """Change an existing account's privacy settings (None keeps a setting)."""

        def change(conn: Conn) -> tuple[Any, list[Any]]:
            if hide_phone is not None:
                conn.execute("UPDATE accounts SET hides_phone = ? WHERE phone = ?", (int(hide_phone), phone))
            if refuse_group_adds is not None:
                conn.execute(
                    "UPDATE accounts SET refuses_group_adds = ? WHERE phone = ?", (int(refuse_group_adds), phone)
                )
            return conn.execute(
                "SELECT phone, kind, lid, hides_phone, refuses_group_adds FROM accounts WHERE phone = ?", (phone,)
            ).fetchone(), []

        self._cache(await self.db.write(change))

    def _cache(self, row: Any) -> None:
        phone, kind, lid, hides, refuses = (str(row[0]), str(row[1]), str(row[2]), bool(row[3]), bool(row[4]))
        self.accounts[phone] = (kind, lid)
        self.by_lid[lid] = phone
        self.privacy[phone] = (hides, refuses)

    async def add_account(self, phone: str, kind: str) -> None:
        lid = str(10**13 + secrets.randbelow(9 * 10**13))
        name = "Echo" if kind == "echo" else f"Contact {phone[-4:]}" if kind == "contact" else f"Phone {phone[-4:]}"

        def add(conn: Conn) -> tuple[Any, list[Any]]:
            conn.execute(
                "INSERT INTO accounts (phone, lid, kind, name, business_name) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (phone) DO NOTHING",
                (phone, lid, kind, name, ECHO_BUSINESS_NAME if kind == "echo" else None),
            )
            return conn.execute(
                "SELECT phone, kind, lid, hides_phone, refuses_group_adds FROM accounts WHERE phone = ?", (phone,)
            ).fetchone(), []

        self._cache(await self.db.write(add))

    async def claim_phone(self, phone: str, tenant: str) -> tuple[str, str | None]:
        """Make ``phone`` a phone of ``tenant`` unless it is already another's; return its (kind, owner).

        Atomic in the simulator's database, so two tenants (on two nodes) scanning with one new number at once
        cannot both get it. Only a ``phone`` account is claimed: the echo contact and contacts are the network's.
        """
        lid = str(10**13 + secrets.randbelow(9 * 10**13))

        def claim(conn: Conn) -> tuple[Any, list[Any]]:
            conn.execute(
                "INSERT INTO accounts (phone, lid, kind, name, owner) VALUES (?, ?, 'phone', ?, ?) "
                "ON CONFLICT (phone) DO NOTHING",
                (phone, lid, f"Phone {phone[-4:]}", tenant),
            )
            conn.execute(
                "UPDATE accounts SET owner = ? WHERE phone = ? AND owner IS NULL AND kind = 'phone'", (tenant, phone)
            )
            return conn.execute("SELECT kind, lid, owner FROM accounts WHERE phone = ?", (phone,)).fetchone(), []

        kind, lid, owner = await self.db.write(claim)
        self.accounts[phone] = (str(kind), str(lid))
        self.by_lid[str(lid)] = phone
        return str(kind), None if owner is None else str(owner)

    async def owner(self, phone: str) -> str | None:
        """The tenant whose simulated phone ``phone`` is (None: nobody's, or not a phone)."""

        def read(conn: Conn) -> Any:
            return conn.execute("SELECT owner FROM accounts WHERE phone = ?", (phone,)).fetchone()

        row = await self.db.read(read)
        return None if row is None or row[0] is None else str(row[0])

    # -- notifications between nodes (shared mode)

    def announce(self, conn: Conn, kind: str, words: list[str]) -> None:
        """Inside a write: tell the other nodes (on commit) — ``mail`` for sessions, or ``replaced``."""
        if not self.shared or not words:
            return
        payload = " ".join([kind, *words])
        while len(payload) > 7900:  # a notification carries at most 8000 bytes
            cut = payload.rindex(" ", 0, 7900)
            conn.execute("SELECT pg_notify(?, ?)", (self._channel, payload[:cut]))
            payload = f"{kind} {payload[cut + 1 :]}"
        conn.execute("SELECT pg_notify(?, ?)", (self._channel, payload))

    async def _listen(self, listening: asyncio.Future[None]) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url or "", autocommit=True, application_name="zapgate-sim"
                ) as conn:
                    await conn.execute(f'LISTEN "{self._channel}"')
                    if not listening.done():
                        listening.set_result(None)
                    async for note in conn.notifies():
                        self._heard(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not listening.done():
                    listening.set_exception(exc)
                    return
                log.warning("simulator: notification channel lost (%s); reconnecting", exc)
            await asyncio.sleep(NOTICES_RECONNECT_S)

    def _heard(self, payload: str) -> None:
        kind, *words = payload.split(" ")
        try:
            if kind == "mail":
                self.on_mail(words)
            elif kind == "replaced" and len(words) == 3:
                self.on_replaced(words[0], words[1], int(words[2]))
        except Exception:
            log.exception("simulator: handling a %s notification failed", kind)
