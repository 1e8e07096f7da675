"""Gateway message ids ↔ WhatsApp message ids (neonize cannot send with a chosen id).

The gateway-side engine is driven here with events as its workers deliver them, with a real SQLite id table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import (
    Connected,
    DownloadError,
    EngineEvent,
    MediaFile,
    MessageIn,
    Outgoing,
    Quote,
    ReceiptIn,
    SendError,
    Sent,
    Target,
)
from zapgate.engines.whatsapp import WhatsAppEngine, ipc
from zapgate.engines.whatsapp.engine import MEDIA_SEND_TIMEOUT_S
from zapgate.engines.whatsapp.ids import MessageIds
from zapgate.engines.whatsapp.store import STORE_DIR
from zapgate.jid import Jid
from zapgate.protocol import Me
from zapgate.protocol.content import Edit, Image, Media, Reaction, Revoke, Text, Vote

from .conftest import fast_settings

SESSION = "ses_ids"


async def test_the_id_table(storage_url: str) -> None:
    """On SQLite (one gateway) and PostgreSQL (several nodes share it, so the node a session moves to knows what
    WhatsApp already took)."""
    ids = MessageIds(storage_url, synchronous="normal")
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


async def test_reactions_edits_revokes_and_votes_name_their_target_by_the_gateways_id(
    engine: tuple[WhatsAppEngine, list[EngineEvent]],
) -> None:
    eng, delivered = engine
    await eng._ids.begin(SESSION, "3EB0GATEWAY1")
    await eng._ids.complete(SESSION, "3EB0GATEWAY1", "3EB0WHATSAPP1", 1_795_909_999)
    chat = "5511999990000@s.whatsapp.net"
    contents = [
        Reaction(message_id="3EB0WHATSAPP1", emoji="👍"),
        Edit(message_id="3EB0WHATSAPP1", text="novo"),
        Revoke(message_id="3EB0WHATSAPP1"),
        Vote(message_id="3EB0WHATSAPP1", options=["sim"]),
        Reaction(message_id="3A0FROMTHEPHONE", emoji="❤"),  # not one the gateway sent: kept as it is
    ]
    for number, content in enumerate(contents):
        eng._from_worker(
            SESSION, MessageIn(message_id=f"3A{number}", chat=chat, sender=chat, content=content, timestamp=2)
        )
    await _settled(delivered, len(contents))
    assert [e.content.message_id for e in delivered] == [  # type: ignore[union-attr]
        "3EB0GATEWAY1",
        "3EB0GATEWAY1",
        "3EB0GATEWAY1",
        "3EB0GATEWAY1",
        "3A0FROMTHEPHONE",
    ]
    # And the other way: a target the gateway names by its own id goes to the worker with WhatsApp's.
    ours = await eng._target(SESSION, Target(message_id="3EB0GATEWAY1", from_me=True))
    assert (ours.message_id, ours.from_me) == ("3EB0WHATSAPP1", True)
    theirs = await eng._target(SESSION, Target(message_id="3A0X", from_me=False, sender=chat))
    assert (theirs.message_id, theirs.from_me, theirs.participant) == ("3A0X", False, chat)


async def test_without_a_worker_sends_downloads_and_presence_are_retryable(
    engine: tuple[WhatsAppEngine, list[EngineEvent]], tmp_path: Path
) -> None:
    eng, _ = engine
    with pytest.raises(SendError) as media_missing:
        await eng.send(SESSION, "3EB0GATEWAY9", Jid("5511999990000"), Image(media=Media(id="med_0123456789ab")))
    assert (media_missing.value.code, media_missing.value.retryable) == ("media_missing", False)
    with pytest.raises(DownloadError) as download:
        await eng.download(SESSION, {"media_type": "image"}, tmp_path / "x")
    assert download.value.retryable
    for call in (
        eng.chat_presence(SESSION, Jid("5511999990000"), "typing"),
        eng.set_presence(SESSION, "available"),
        eng.subscribe_presence(SESSION, Jid("5511999990000")),
    ):
        with pytest.raises(SendError) as presence:
            await call
        assert presence.value.retryable


async def test_a_media_send_hands_the_worker_the_stored_files_path_not_its_bytes(
    engine: tuple[WhatsAppEngine, list[EngineEvent]],
) -> None:
    eng, _ = engine
    handed: list[tuple[ipc.Request, float]] = []

    async def worker(session_id: str, make: Any, timeout: float) -> ipc.Reply:  # stands in for the worker pool
        handed.append((make(1), timeout))
        return ipc.Reply(id=1, wa_id="3EB0WHATSAPP7", timestamp=1_795_909_999)

    eng._pool.request = worker  # type: ignore[method-assign]
    file = MediaFile(path="/data/media/ab/cd/abcd", mimetype="image/png", size=3, sha256="ab" * 32)
    inline = Image(media=Media(data="iVBO"), caption="foto")
    sent = await eng.send(SESSION, "3EB0GATEWAY7", Jid("5511999990000"), inline, Outgoing(media=file))
    assert sent == Sent(1_795_909_999)
    ((request, timeout),) = handed
    assert isinstance(request, ipc.Send)
    assert request.content == Image(media=Media(), caption="foto") and request.media == file
    assert timeout == MEDIA_SEND_TIMEOUT_S  # the worker uploads first


async def test_received_messages_waiting_together_go_to_the_batch_sink_in_order(tmp_path: Path) -> None:
    """Messages the workers delivered together reach the gateway's batch sink together, in order; other events
    keep their place between them, and a message the batch could not store is stored on its own after it."""
    engine = WhatsAppEngine(fast_settings(tmp_path / "data", engine="whatsapp"))
    delivered: list[EngineEvent] = []
    batches: list[list[str]] = []
    refuse_once = {"3A2"}

    async def sink(session_id: str, event: EngineEvent) -> None:
        delivered.append(event)

    async def batch_sink(session_id: str, events: Sequence[EngineEvent]) -> list[BaseException | None]:
        batches.append([e.message_id for e in events if isinstance(e, MessageIn)])
        outcomes: list[BaseException | None] = []
        for event in events:
            if isinstance(event, MessageIn) and event.message_id in refuse_once:
                refuse_once.discard(event.message_id)
                outcomes.append(OSError("disk full"))
            else:
                delivered.append(event)
                outcomes.append(None)
        return outcomes

    await engine.start(sink, batch_sink)
    try:
        chat = "5511999990000@s.whatsapp.net"

        def message(n: int) -> MessageIn:
            return MessageIn(message_id=f"3A{n}", chat=chat, sender=chat, content=Text(text=str(n)), timestamp=n)

        for n in range(5):
            engine._from_worker(SESSION, message(n))
        engine._from_worker(SESSION, ReceiptIn(message_ids=["3EB0PHONE"], chat=chat, status="read", timestamp=9))
        for n in range(5, 8):
            engine._from_worker(SESSION, message(n))
        await _settled(delivered, 9)
        order = [e.message_id if isinstance(e, MessageIn) else "receipt" for e in delivered]
        assert order == ["3A0", "3A1", "3A3", "3A4", "3A2", "receipt", "3A5", "3A6", "3A7"]
        assert batches == [["3A0", "3A1", "3A2", "3A3", "3A4"], ["3A5", "3A6", "3A7"]]
    finally:
        await engine.close()
