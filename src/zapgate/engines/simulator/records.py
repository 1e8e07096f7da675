"""What the simulated WhatsApp server keeps in ``simulator.db``, and the codes it hands out (pure helpers)."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from collections.abc import Sequence

import msgspec

from ...protocol.content import Content, Text, content_text
from ..base import EngineEvent
from .rules import Earlier, decode_content

__all__ = [
    "MIGRATIONS",
    "PAIR_CODE_ALPHABET",
    "decode_event",
    "encode_event",
    "find_delivery",
    "insert_delivery",
    "insert_mail",
    "make_pair_code",
    "make_qr_code",
]

PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"

MIGRATIONS = [
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
        device_no INTEGER NOT NULL,
        session_id TEXT NOT NULL UNIQUE,
        linked_at REAL NOT NULL
    );
    CREATE TABLE deliveries (
        sender TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        reply_to TEXT,
        timestamp INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (sender, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE mailbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        event BLOB NOT NULL
    );
    CREATE INDEX mailbox_session ON mailbox (session_id, id);
    """,
    # 2: the order in which WhatsApp's side accepted messages (a WITHOUT ROWID table keeps none by itself)
    """
    ALTER TABLE deliveries ADD COLUMN accepted INTEGER;
    CREATE UNIQUE INDEX deliveries_accepted ON deliveries (accepted);
    """,
    # 3: messages of every kind: the content as JSON (``text`` keeps what a person reads, or '')
    """
    ALTER TABLE deliveries ADD COLUMN content BLOB;
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


def insert_delivery(
    conn: sqlite3.Connection,
    sender: str,
    recipient: str,
    message_id: str,
    content: Content,
    reply_to: str | None,
    ts: int,
) -> None:
    conn.execute(
        "INSERT INTO deliveries (sender, message_id, recipient, text, content, reply_to, timestamp, accepted) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(accepted), 0) + 1 FROM deliveries))",
        (sender, message_id, recipient, content_text(content) or "", _event_encoder.encode(content), reply_to, ts),
    )


def find_delivery(conn: sqlite3.Connection, message_id: str) -> Earlier | None:
    """The message the server accepted with this id (from anyone), if any."""
    row = conn.execute(
        "SELECT sender, recipient, timestamp, content, text FROM deliveries WHERE message_id = ? LIMIT 1",
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    sender, recipient, timestamp, raw, text = row
    content = decode_content(raw) if raw is not None else Text(text=text or " ")
    return Earlier(sender=sender, recipient=recipient, timestamp=int(timestamp), content=content)


def insert_mail(conn: sqlite3.Connection, mail: Sequence[tuple[str, bytes]]) -> list[int]:
    """Store encoded events for (session id, event) pairs; return their mailbox row ids."""
    ids = []
    for session_id, raw in mail:
        cur = conn.execute("INSERT INTO mailbox (session_id, event) VALUES (?, ?)", (session_id, raw))
        ids.append(cur.lastrowid or 0)
    return ids
