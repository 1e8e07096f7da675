"""What the session manager relies on from every engine: one test body per promise, run against the simulator
and the real whatsapp engine (offline: its workers load neonize and cannot reach WhatsApp)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines import create_engine
from zapgate.engines.base import Engine, EngineEvent, Failed, LoggedOut, QrCode, SendError
from zapgate.jid import Jid

from .conftest import fast_settings

# A device record as each engine stores it; each is foreign to the other engine.
DEVICE_RECORDS: dict[str, dict[str, Any]] = {
    "simulator": {"jid": "5511911112222:1@s.whatsapp.net", "phone": "5511911112222", "lid": "1:1@lid"},
    "whatsapp": {"engine": "whatsapp", "jid": "5511911112222:7@s.whatsapp.net", "store": "whatsapp/ses_x.db"},
}


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, EngineEvent]] = []
        self._changed = asyncio.Condition()

    async def sink(self, session_id: str, event: EngineEvent) -> None:
        async with self._changed:
            self.seen.append((session_id, event))
            self._changed.notify_all()

    async def first(self, session_id: str) -> EngineEvent:
        async with asyncio.timeout(30), self._changed:
            while True:
                for sid, event in self.seen:
                    if sid == session_id:
                        return event
                await self._changed.wait()


@pytest.fixture(params=["simulator", "whatsapp"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, Engine, Events]]:
    settings = fast_settings(
        tmp_path / "data",
        engine=request.param,
        wa_connect_attempts=2,
        wa_connect_backoff_s=0.05,
        wa_heartbeat_s=0.2,
    )
    engine = create_engine(settings)
    events = Events()
    await engine.start(events.sink)
    try:
        yield request.param, engine, events
    finally:
        await asyncio.wait_for(engine.close(), 15)  # "must finish in seconds"


async def test_message_ids_look_like_whatsapp_web_ids(engine: tuple[str, Engine, Events]) -> None:
    _, eng, _ = engine
    ids = {eng.new_message_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"3EB0[0-9A-F]{18}", i) for i in ids)


async def test_stop_and_logout_of_sessions_never_opened_are_harmless_and_idempotent(
    engine: tuple[str, Engine, Events],
) -> None:
    name, eng, events = engine
    for _ in range(2):
        await eng.stop("ses_never")
        await eng.logout("ses_never", None)
        await eng.logout("ses_never", DEVICE_RECORDS[name])  # its keys are not there
    assert events.seen == []


async def test_sending_on_a_session_that_is_not_open_stays_queued(engine: tuple[str, Engine, Events]) -> None:
    _, eng, _ = engine
    with pytest.raises(SendError) as refused:
        await eng.send_text("ses_never", eng.new_message_id(), Jid("5511999990000"), "olá")
    assert (refused.value.code, refused.value.retryable) == ("not_connected", True)


async def test_a_device_the_engine_does_not_hold_needs_a_new_pairing(engine: tuple[str, Engine, Events]) -> None:
    name, eng, events = engine
    foreign = DEVICE_RECORDS["whatsapp" if name == "simulator" else "simulator"]
    await eng.open("ses_foreign", foreign)
    assert isinstance(await events.first("ses_foreign"), LoggedOut)


async def test_an_unpaired_session_shows_a_qr_code_or_says_why_it_cannot(engine: tuple[str, Engine, Events]) -> None:
    name, eng, events = engine
    await eng.open("ses_new", None)
    first = await events.first("ses_new")
    if name == "simulator":
        assert isinstance(first, QrCode) and first.attempt == 1
    else:  # no machine here reaches WhatsApp
        assert first == Failed(reason="whatsapp_unreachable")
    await eng.stop("ses_new")
    await eng.stop("ses_new")
