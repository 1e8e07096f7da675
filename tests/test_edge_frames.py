"""A connection's queued frames are written by the edge itself (``text_frame_header`` and the payload, one write for
the lot), byte for byte what ``websockets`` writes, at each length encoding of RFC 6455; and a client reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

from zapgate.server.edge import text_frame_header

from .conftest import fast_settings
from .support import serve_gateway

PHONE = "+55 11 99999-0001"
CONTACT = "+55 31 90000-0001"


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_a_text_frame_is_what_websockets_writes(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(len(payload)) + payload == expected


async def test_events_and_a_reply_over_64_kib_reach_the_client_whole(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway, gateway.connect() as client:
        await client.pair("s", PHONE)
        texts = [f"{i} " + "ç" * (250 * i) for i in range(1, 41)]  # events from about 0.5 to 20 KB
        for text in texts:
            await client.call("sim.receive", session="s", **{"from": CONTACT}, text=text)
        received = [await client.event("message.received", lambda e, t=text: e["data"]["text"] == t) for text in texts]
        assert [e["data"]["text"] for e in received] == texts
        fetched = await client.call("events.fetch", after=0, limit=1000)  # one reply, as much as a reply may hold
        got = [e["data"]["text"] for e in fetched["events"] if e["event"] == "message.received"]
        assert got == texts[: len(got)]
        assert sum(len(text.encode()) for text in got) > 3 * 65_536
        assert (await client.call("ping"))["time"] > 0
