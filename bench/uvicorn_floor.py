"""uvicorn's floor: the ceiling's handshake (``hello``, ``auth`` → ``ready``) as a bare ASGI app under uvicorn.

The same uvicorn settings as the gateway (uvloop, httptools, sans-I/O websockets, no compression, the same
frame limit and pings) but no Starlette, no zapgate: what every connection costs before zapgate adds anything.
Scenario 2 measures its memory per idle connection next to the ceiling (bare ``websockets``) and the gateway.

    python bench/uvicorn_floor.py --port 9000
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from ceiling import HELLO, READY


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": HELLO})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if '"auth"' in (message.get("text") or ""):
            await send({"type": "websocket.send", "text": READY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=parser.parse_args().port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=65536,
        ws_per_message_deflate=False,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        lifespan="off",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
