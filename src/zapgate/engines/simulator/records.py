"""What the simulated WhatsApp server keeps, and the codes it hands out.

One gateway keeps it in ``simulator.db`` in the data directory; the nodes of a cluster keep it in their shared
PostgreSQL database (its own tables, versioned in ``zapgate_sim_schema``), so that they all see one WhatsApp.
The SQL here is portable (see :mod:`zapgate.storage.database`): plain functions that run inside a write or read
of the simulator's database.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

from ...protocol.content import Content, Text, content_text
from ...storage.database import Conn
from ..base import EngineEvent
from .rules import Earlier, decode_content

__all__ = [
    "MAIL_ROWS_PER_INSERT",
    "MIGRATIONS",
    "PAIR_CODE_ALPHABET",
    "Connect",
    "Delivery",
    "connected_here",
    "decode_event",
    "encode_event",
    "find_delivery",
    "insert_deliveries",
    "insert_delivery",
    "insert_mail",
    "is_blocked",
    "linked_devices",
    "make_pair_code",
    "make_qr_code",
    "record_connect",
]

PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"

MIGRATIONS = [
    # 1 (zapgate 0.1)
    """
    CREATE TABLE accounts (
        phone TEXT PRIMARY KEY,
        lid TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL
    );
    CREATE TABLE devices (
        jid TEXT PRIMARY KEY,
        phone TEXT NOT NULL,
        device_no {BIGINT} NOT NULL,
        session_id TEXT NOT NULL UNIQUE,
        linked_at {REAL} NOT NULL
    );
    CREATE TABLE deliveries (
        sender TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        reply_to TEXT,
        timestamp {BIGINT} NOT NULL,
        attempts {BIGINT} NOT NULL DEFAULT 1,
        PRIMARY KEY (sender, message_id)
    ) {WITHOUT_ROWID};
    CREATE TABLE mailbox (
        id {AUTOID},
        session_id TEXT NOT NULL,
        event {BLOB} NOT NULL
    );
    CREATE INDEX mailbox_session ON mailbox (session_id, id);
    """,
    # 2: the order in which WhatsApp's side accepted messages (a WITHOUT ROWID table keeps none by itself)
    """
    ALTER TABLE deliveries ADD COLUMN accepted {BIGINT};
    CREATE UNIQUE INDEX deliveries_accepted ON deliveries (accepted);
    """,
    # 3: messages of every kind: the content as JSON (``text`` keeps what a person reads, or '')
    """
    ALTER TABLE deliveries ADD COLUMN content {BLOB};
    """,
    # 4: one WhatsApp for several gateway nodes. The acceptance order comes from a counter row (several writers);
    # the QR codes being shown are visible to every node; ``connections`` is the one live connection of each
    # linked device (the node and lease epoch that made it) and ``connection_log`` every connect, with what it
    # replaced or why it was refused: the record that proves two nodes never fought over a device; a delivery
    # records the connection (node, epoch) it was sent on. ``meta`` holds the random id that names this
    # simulator's notification channel.
    """
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value {BIGINT} NOT NULL
    );
    INSERT INTO counters (name, value) SELECT 'accepted', coalesce(max(accepted), 0) FROM deliveries;
    CREATE TABLE qr_codes (
        code TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at {REAL} NOT NULL
    );
    CREATE INDEX qr_codes_age ON qr_codes (created_at);
    CREATE TABLE connections (
        session_id TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        epoch {BIGINT} NOT NULL,
        since {REAL} NOT NULL
    );
    CREATE TABLE connection_log (
        id {AUTOID},
        session_id TEXT NOT NULL,
        node TEXT NOT NULL,
        epoch {BIGINT} NOT NULL,
        at {REAL} NOT NULL,
        outcome TEXT NOT NULL,
        other_node TEXT,
        other_epoch {BIGINT}
    );
    CREATE TABLE meta (
        one {BIGINT} PRIMARY KEY CHECK (one = 1),
        id TEXT NOT NULL
    );
    ALTER TABLE deliveries ADD COLUMN node TEXT;
    ALTER TABLE deliveries ADD COLUMN epoch {BIGINT};
    """,
    # 5: a simulated phone's number belongs to the tenant whose phone first scanned with it (review §5.7): no other
    # tenant can claim it, nor the echo contact or a contact. NULL: not claimed (the network's own accounts, and
    # phones of before this version, which the next scan claims).
    """
    ALTER TABLE accounts ADD COLUMN owner TEXT;
    """,
    # 6: an account's chat settings (WhatsApp's app state: archived, pinned, muted), which every linked device of
    # the account follows and a new device gets with its history sync
    """
    CREATE TABLE chat_settings (
        phone TEXT NOT NULL,
        chat TEXT NOT NULL,
        archived {BIGINT} NOT NULL DEFAULT 0,
        pinned {BIGINT} NOT NULL DEFAULT 0,
        muted_until {BIGINT} NOT NULL DEFAULT 0,
        PRIMARY KEY (phone, chat)
    );
    """,
    # 7: privacy settings of an account (``sim.contact``): whether it hides its phone number (others see only its
    # LID) and whether it refuses to be added to groups by people who are not its contacts
    """
    ALTER TABLE accounts ADD COLUMN hides_phone {BIGINT} NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN refuses_group_adds {BIGINT} NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX accounts_lid ON accounts (lid);
    """,
    # 8: profiles and privacy: the about text, a verified business name, whether the account has a profile picture
    # (generated from its number) and hides its about and picture from everyone; ``blocks``: who blocked whom
    """
    ALTER TABLE accounts ADD COLUMN about TEXT;
    ALTER TABLE accounts ADD COLUMN business_name TEXT;
    ALTER TABLE accounts ADD COLUMN picture {BIGINT} NOT NULL DEFAULT 1;
    ALTER TABLE accounts ADD COLUMN hide_profile {BIGINT} NOT NULL DEFAULT 0;
    UPDATE accounts SET business_name = 'Zapgate Echo' WHERE kind = 'echo';
    CREATE TABLE blocks (
        phone TEXT NOT NULL,
        blocked TEXT NOT NULL,
        PRIMARY KEY (phone, blocked)
    );
    """,
    # 9: groups (issue 12): settings, the current invite code, and members with their role (``member``,
    # ``admin``, ``superadmin`` for the creator); a message to a group is one delivery whose recipient is the group
    """
    CREATE TABLE groups (
        jid TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        description TEXT,
        owner TEXT NOT NULL,
        created {BIGINT} NOT NULL,
        announce {BIGINT} NOT NULL DEFAULT 0,
        locked {BIGINT} NOT NULL DEFAULT 0,
        ephemeral {BIGINT} NOT NULL DEFAULT 0,
        invite TEXT NOT NULL UNIQUE,
        picture TEXT
    );
    CREATE TABLE group_members (
        group_jid TEXT NOT NULL,
        phone TEXT NOT NULL,
        role TEXT NOT NULL,
        PRIMARY KEY (group_jid, phone)
    );
    CREATE INDEX group_members_phone ON group_members (phone);
    CREATE INDEX deliveries_recipient ON deliveries (recipient, message_id);
    """,
]

_event_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(EngineEvent)


def encode_event(event: EngineEvent) -> bytes:
    return _event_encoder.encode(event)


def decode_event(raw: bytes) -> EngineEvent:
    event: EngineEvent = _event_decoder.decode(raw)
    return event


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def make_qr_code() -> str:
    """A QR payload shaped like WhatsApp's: ``ref,noise public key,identity public key,adv secret``."""
    return f"2@{_b64(48)},{_b64(32)},{_b64(32)},{_b64(32)}"


def make_pair_code() -> str:
    chars = "".join(secrets.choice(PAIR_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


class Delivery(NamedTuple):
    """A message the server accepts: ``connection`` is the (node, epoch) of the device connection that sent it
    (None when a simulated phone sent it)."""

    sender: str
    recipient: str
    message_id: str
    content: Content
    reply_to: str | None
    timestamp: int
    connection: tuple[str, int] | None = None


def insert_delivery(
    conn: Conn,
    sender: str,
    recipient: str,
    message_id: str,
    content: Content,
    reply_to: str | None,
    ts: int,
    connection: tuple[str, int] | None = None,
) -> None:
    """Record an accepted message; ``connection`` is the (node, epoch) of the device connection that sent it
    (None when a simulated phone sent it)."""
    insert_deliveries(conn, [Delivery(sender, recipient, message_id, content, reply_to, ts, connection)])


def accepted_so_far(conn: Conn) -> int:
    """The acceptance number of the last message WhatsApp's side accepted (0: none yet)."""
    row = conn.execute("SELECT value FROM counters WHERE name = 'accepted'").fetchone()
    return int(row[0]) if row else 0


def insert_deliveries(conn: Conn, deliveries: Sequence[Delivery]) -> None:
    """Record accepted messages, in this order of acceptance (one counter update and one ``executemany``)."""
    if not deliveries:
        return
    (last,) = conn.execute(
        "UPDATE counters SET value = value + ? WHERE name = 'accepted' RETURNING value", (len(deliveries),)
    ).fetchone()
    first = int(last) - len(deliveries) + 1
    conn.executemany(
        "INSERT INTO deliveries (sender, message_id, recipient, text, content, reply_to, timestamp, accepted, node, "
        "epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                d.sender,
                d.message_id,
                d.recipient,
                content_text(d.content) or "",
                _event_encoder.encode(d.content),
                d.reply_to,
                d.timestamp,
                first + i,
                *(d.connection or (None, None)),
            )
            for i, d in enumerate(deliveries)
        ],
    )


def find_delivery(conn: Conn, message_id: str) -> Earlier | None:
    """The message the server accepted with this id (from anyone), if any."""
    row = conn.execute(
        "SELECT sender, recipient, timestamp, content, text FROM deliveries WHERE message_id = ? LIMIT 1",
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    sender, recipient, timestamp, raw, text = row
    content = decode_content(bytes(raw)) if raw is not None else Text(text=text or " ")
    return Earlier(sender=sender, recipient=recipient, timestamp=int(timestamp), content=content)


def is_blocked(conn: Conn, phone: str, by: str) -> bool:
    """Whether the account ``by`` blocked ``phone`` (WhatsApp then accepts ``phone``'s messages to it, but never
    delivers them)."""
    return conn.execute("SELECT 1 FROM blocks WHERE phone = ? AND blocked = ?", (by, phone)).fetchone() is not None


def linked_devices(conn: Conn, phone: str) -> list[str]:
    """The session ids of the devices linked to ``phone`` (WhatsApp delivers to each of them)."""
    return [str(r[0]) for r in conn.execute("SELECT session_id FROM devices WHERE phone = ?", (phone,))]


MAIL_ROWS_PER_INSERT = 400
"""Mailbox rows written by one ``INSERT`` statement (two parameters each, far under SQLite's limit)."""


def insert_mail(conn: Conn, mail: Sequence[tuple[str, bytes]]) -> list[int]:
    """Store encoded events for (session id, event) pairs; return their mailbox row ids, in the same order.

    The rows go in with multi-row ``INSERT``s. ``RETURNING`` promises no order of its rows, but the ids one
    statement takes grow in the order of its rows (SQLite's ``AUTOINCREMENT``, PostgreSQL's identity sequence),
    so sorted they match the rows."""
    ids: list[int] = []
    for start in range(0, len(mail), MAIL_ROWS_PER_INSERT):
        chunk = mail[start : start + MAIL_ROWS_PER_INSERT]
        values = ", ".join(["(?, ?)"] * len(chunk))
        rows = conn.execute(
            f"INSERT INTO mailbox (session_id, event) VALUES {values} RETURNING id",  # noqa: S608
            [value for item in chunk for value in item],
        ).fetchall()
        ids += sorted(int(row[0]) for row in rows)
    return ids


class Connect(msgspec.Struct, frozen=True):
    """What a connect did: ``connected``, ``replaced`` (another node's connection was still up: it is cut off), or
    ``refused`` (a newer lease epoch holds the device: this connect comes from a node that lost it)."""

    outcome: str
    other_node: str | None = None
    other_epoch: int | None = None


def record_connect(conn: Conn, session_id: str, node: str, epoch: int, now: float) -> Connect:
    """A device connects from ``node`` under lease ``epoch``: WhatsApp keeps one connection per device."""
    row = conn.execute("SELECT node, epoch FROM connections WHERE session_id = ?", (session_id,)).fetchone()
    other: tuple[str, int] | None = (str(row[0]), int(row[1])) if row else None
    if other is not None and other[1] > epoch:
        result = Connect("refused", other[0], other[1])
    elif other is not None and other != (node, epoch):
        result = Connect("replaced", other[0], other[1])
    else:
        result = Connect("connected")
    if result.outcome != "refused":
        conn.execute(
            "INSERT INTO connections (session_id, node, epoch, since) VALUES (?, ?, ?, ?) ON CONFLICT (session_id) "
            "DO UPDATE SET node = excluded.node, epoch = excluded.epoch, since = excluded.since",
            (session_id, node, epoch, now),
        )
    conn.execute(
        "INSERT INTO connection_log (session_id, node, epoch, at, outcome, other_node, other_epoch) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_id, node, epoch, now, result.outcome, result.other_node, result.other_epoch),
    )
    return result


def connected_here(conn: Conn, session_id: str, node: str, epoch: int) -> bool:
    """True when the device's live connection is this node's, under this epoch."""
    row: Any = conn.execute("SELECT node, epoch FROM connections WHERE session_id = ?", (session_id,)).fetchone()
    return row is not None and (str(row[0]), int(row[1])) == (node, epoch)
