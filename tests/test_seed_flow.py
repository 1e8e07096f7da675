"""The seed's flow end to end over a real socket: token → session → QR → scan → connected → send → answer."""

from __future__ import annotations

from pathlib import Path

from .conftest import fast_settings
from .services import postgres_schema
from .support import RunningGateway, serve_gateway


async def test_seed_flow_with_echo_contact(gateway: RunningGateway) -> None:
    async with gateway.connect("acme") as client:
        assert client.hello is not None and client.hello["auth"] == "required"
        assert client.ready is not None and client.ready["tenant"] == "acme"

        started = await client.call("session.start", session="main")
        assert started["session"] == "main" and started["status"] in {"starting", "qr"}
        qr = await client.event("session.qr")
        assert qr["data"]["attempt"] == 1 and qr["data"]["max_attempts"] == 3
        assert qr["data"]["qr"].startswith("2@") and qr["data"]["qr"].count(",") == 3

        linked = await client.call("sim.scan", qr=qr["data"]["qr"], phone="+55 11 99999-0000")
        assert linked["me"]["phone"] == "5511999990000"
        connected = await client.status("main", "connected")
        assert connected["data"]["me"]["jid"].startswith("5511999990000:")

        sent = await client.call("message.send", session="main", to="+1 555 000 0000", text="olá")
        assert sent["status"] == "sent" and sent["chat"] == "15550000000@s.whatsapp.net"
        assert isinstance(sent["timestamp"], int)
        message_id = sent["message_id"]

        def about(status: str):
            return lambda e: e["data"]["message_id"] == message_id and e["data"]["status"] == status

        await client.event("message.status", about("delivered"))
        await client.event("message.status", about("read"))
        echo = await client.event("message.received", lambda e: e["data"]["reply_to"] == message_id)
        assert echo["data"]["text"] == "olá"
        assert echo["data"]["from"] == "15550000000@s.whatsapp.net"

        seqs = [e["seq"] for e in client.events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_seed_flow_on_postgresql(tmp_path: Path) -> None:
    """The same flow with the gateway's state in PostgreSQL (``ZAPGATE_DATABASE_URL``)."""
    for url in postgres_schema():
        settings = fast_settings(tmp_path / "data", database_url=url)
        async with serve_gateway(settings) as gateway, gateway.connect("acme") as client:
            await client.pair("main", "+55 11 99999-0000")
            sent = await client.call("message.send", session="main", to="+1 555 000 0000", text="olá")
            message_id = sent["message_id"]
            echo = await client.event("message.received", lambda e, m=message_id: e["data"]["reply_to"] == m)
            assert echo["data"]["text"] == "olá"
        async with serve_gateway(settings) as gateway, gateway.connect("acme") as client:
            assert (await client.call("session.get", session="main"))["paired"] is True
            page = await client.call("events.fetch", after=0, limit=1000)
            seqs = [e["seq"] for e in page["events"]]
            assert seqs == list(range(1, len(seqs) + 1))
