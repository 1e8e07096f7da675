"""The ceiling: a bare ``websockets`` JSON request/reply server, the best a Python gateway could do here.

It runs on uvloop with compression off and the gateway's frame limit and ping interval, says ``hello``,
answers ``auth`` with ``ready``, and answers every other frame — after parsing it — with a reply shaped
exactly like the gateway's ``message.send`` reply. No authentication, storage, routing or engine: whatever
the gateway does beyond this is the cost the benchmarks measure.

    python bench/ceiling.py --port 9000      # prints "listening 9000" once it accepts connections
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
import time

import msgspec
import uvloop
from websockets.asyncio.server import ServerConnection, serve

HELLO = msgspec.json.encode(
    {"type": "hello", "server": "ceiling", "auth": "required", "auth_timeout_s": 10.0, "max_frame_bytes": 65536}
).decode()
READY = msgspec.json.encode(
    {"type": "ready", "tenant": "bench", "last_seq": 0, "resume": "none", "engine": "none", "replayed": 0}
).decode()
_decode = msgspec.json.decode
_encode = msgspec.json.encode


async def handler(ws: ServerConnection) -> None:
    await ws.send(HELLO)
    async for message in ws:
        frame = _decode(message)
        if frame.get("type") == "auth":
            await ws.send(READY)
            continue
        data = {
            "message_id": "3EB0" + secrets.token_hex(9).upper(),
            "chat": f"{frame.get('to', '0')}@s.whatsapp.net",
            "status": "sent",
            "timestamp": int(time.time()),
        }
        await ws.send(_encode({"type": "reply", "id": frame.get("id"), "ok": True, "data": data}).decode())


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler, "127.0.0.1", port, compression=None, max_size=65536, ping_interval=20, ping_timeout=20, backlog=4096
    ):
        print(f"listening {port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(main(parser.parse_args().port))
    sys.exit(0)
