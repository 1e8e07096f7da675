"""Gateway message ids ↔ WhatsApp message ids (neonize cannot send with a chosen id).

The gateway-side engine is driven here with events as its workers deliver them, with a real SQLite id table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zapgate.engines.base import Connected, EngineEvent, MessageIn, Quote, ReceiptIn, Sent
from zapgate.engines.whatsapp import WhatsAppEngine
from zapgate.engines.whatsapp.ids import MessageIds
from zapgate.engines.whatsapp.store import STORE_DIR
from zapgate.jid import Jid
from zapgate.protocol import Me
from zapgate.protocol.content import Text

from .conftest import fast_settings

SESSION = "ses_ids"


async def test_the_id_table(tmp_path: Path) -> None:
    ids = MessageIds(tmp_path / "ids.db", synchronous="normal")
    await ids.open()
    try:
        assert await ids.begin(SESSION, "3EB0GATEWAY1")
        assert await ids.sent(SESSION, "3EB0GATEWAY1") is None  # outcome unknown until completed
        assert not await ids.begin(SESSION, "3EB0GATEWAY1")  # a second attempt learns the first is unresolved
        await ids.complete(SESSION, "3EB0GATEWAY1", "3EB0WHATSAPP1", 1_795_909_999)
        assert await ids.sent(SESSION, "3EB0GATEWAY1") == ("3EB0WHATSAPP1", 1_795_909_999, None)
        await ids.begin(SESSION, "3EB0GATEWAY3")
        await ids.complete(SESSION, "3EB0GATEWAY3", "3EB0WHATSAPP3", 1_795_909_999, "551188887777@s.whatsapp.net")
        assert await ids.sent(SESSION, "3EB0GATEWAY3") == (
            "3EB0WHATSAPP3",
            1_795_909_999,
            "551188887777@s.whatsapp.net",
        )
        assert await ids.to_gateway(SESSION, ["3EB0WHATSAPP1", "3AOTHER"]) == {"3EB0WHATSAPP1": "3EB0GATEWAY1"}
        assert await ids.to_gateway("ses_other", ["3EB0WHATSAPP1"]) == {}
        await ids.begin(SESSION, "3EB0GATEWAY2")
        await ids.abandon(SESSION, "3EB0GATEWAY2")  # certainly not sent: forgotten
        assert await ids.begin(SESSION, "3EB0GATEWAY2")
        await ids.forget(SESSION)
        assert await ids.sent(SESSION, "3EB0GATEWAY1") is None
    finally:
        await ids.close()


async def recorded_as_sent(data_dir: Path, message_id: str, wa_id: str, timestamp: int) -> None:
    """Record, in the id table the engine keeps in its data directory, that WhatsApp took ``message_id``."""
    ids = MessageIds(data_dir / STORE_DIR / "messages.db", synchronous="normal")
    await ids.open()
    try:
        await ids.begin(SESSION, message_id)
        await ids.complete(SESSION, message_id, wa_id, timestamp)
    finally:
        await ids.close()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[WhatsAppEngine, list[EngineEvent]]]:
    engine = WhatsAppEngine(fast_settings(tmp_path / "data", engine="whatsapp"))
    delivered: list[EngineEvent] = []

    async def sink(session_id: str, event: EngineEvent) -> None:
        delivered.append(event)

    await engine.start(sink)
    try:
        yield engine, delivered
    finally:
        await engine.close()


async def _settled(delivered: list[EngineEvent], count: int) -> None:
    async with asyncio.timeout(10):
        while len(delivered) < count:
            await asyncio.sleep(0.001)


async def test_receipts_and_replies_name_the_message_by_the_gateways_id(
    engine: tuple[WhatsAppEngine, list[EngineEvent]], tmp_path: Path
) -> None:
    eng, delivered = engine
    await recorded_as_sent(tmp_path / "data", "3EB0GATEWAY1", "3EB0WHATSAPP1", 1_795_909_999)
    chat = "5511999990000@s.whatsapp.net"
    eng._from_worker(
        SESSION, ReceiptIn(message_ids=["3EB0WHATSAPP1", "3EB0PHONE"], chat=chat, status="read", timestamp=1)
    )
    reply = MessageIn(
        message_id="3A01", chat=chat, sender=chat, content=Text(text="ok"), timestamp=2, reply_to="3EB0WHATSAPP1"
    )
    eng._from_worker(SESSION, reply)
    await _settled(delivered, 2)
    assert delivered == [
        ReceiptIn(message_ids=["3EB0GATEWAY1", "3EB0PHONE"], chat=chat, status="read", timestamp=1),
        MessageIn(
            message_id="3A01", chat=chat, sender=chat, content=Text(text="ok"), timestamp=2, reply_to="3EB0GATEWAY1"
        ),
    ]


async def test_a_message_recorded_as_sent_is_not_sent_again(
    engine: tuple[WhatsAppEngine, list[EngineEvent]], tmp_path: Path
) -> None:
    eng, _ = engine
    await recorded_as_sent(tmp_path / "data", "3EB0GATEWAY1", "3EB0WHATSAPP1", 1_795_909_999)
    # No worker runs this session: anything but the recorded answer would fail.
    assert await eng.send(SESSION, "3EB0GATEWAY1", Jid("5511999990000"), Text(text="olá")) == Sent(1_795_909_999)
    await eng._ids.begin(SESSION, "3EB0GATEWAY2")
    await eng._ids.complete(SESSION, "3EB0GATEWAY2", "3EB0WHATSAPP2", 1_795_909_999, "551188887777@s.whatsapp.net")
    # ... with the chat it went to, when WhatsApp knew the recipient by another JID.
    assert await eng.send(SESSION, "3EB0GATEWAY2", Jid("5511988887777"), Text(text="olá")) == Sent(
        1_795_909_999, "551188887777@s.whatsapp.net"
    )


async def test_quotes_carry_whatsapps_id_author_and_text(
    engine: tuple[WhatsAppEngine, list[EngineEvent]], tmp_path: Path
) -> None:
    eng, delivered = engine
    me = Me(phone="5511911112222", jid="5511911112222:7@s.whatsapp.net", lid="99887766@lid")
    chat = "5511999990000@s.whatsapp.net"
    eng._from_worker(SESSION, Connected(me=me))
    eng._from_worker(
        SESSION, MessageIn(message_id="3A01", chat=chat, sender=chat, content=Text(text="pergunta"), timestamp=2)
    )
    await _settled(delivered, 2)
    inbound = await eng._quote(SESSION, Quote(message_id="3A01", sender=chat))
    assert (inbound.message_id, inbound.participant, inbound.text) == ("3A01", chat, "pergunta")

    await recorded_as_sent(tmp_path / "data", "3EB0GATEWAY1", "3EB0WHATSAPP1", 1_795_909_999)
    ours = await eng._quote(SESSION, Quote(message_id="3EB0GATEWAY1", sender=chat))
    assert (ours.message_id, ours.participant) == ("3EB0WHATSAPP1", "5511911112222@s.whatsapp.net")
