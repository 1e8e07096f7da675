"""Simulated phones belong to one tenant (review §5.7): ``sim.scan`` cannot claim the echo contact, a contact, or
another tenant's number; the claim survives a restart and holds on every node of a cluster."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zapgate.config import Settings

from .conftest import fast_settings
from .services import postgres_schema
from .support import RawClient, RunningGateway, serve_gateway

ALICE = "+55 11 91234-0001"
BOB = "+55 11 91234-0002"
CONTACT = "+55 11 91234-0099"


async def showing(client: RawClient, session: str) -> str:
    """Start ``session``; the QR code it shows."""
    await client.call("session.start", session=session)
    qr = await client.event("session.qr", lambda e: e["session"] == session)
    return str(qr["data"]["qr"])


async def refused_scan(client: RawClient, qr: str, phone: str) -> str:
    reply = await client.request("sim.scan", qr=qr, phone=phone)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "phone_taken", reply
    return str(reply["error"]["message"])


async def test_another_tenants_phone_cannot_be_claimed_and_nothing_it_receives_leaks(gateway: RunningGateway) -> None:
    async with gateway.connect("acme") as acme, gateway.connect("globex") as globex:
        await acme.pair("shop", ALICE)
        qr = await showing(globex, "spy")
        message = await refused_scan(globex, qr, ALICE)
        assert "another tenant" in message and "globex" not in message and "acme" not in message
        # The refused scan used nothing up: the same code links globex's own number.
        await globex.call("sim.scan", qr=qr, phone=BOB)
        await globex.status("spy", "connected")
        # What is sent to ALICE reaches acme's session only.
        sent = await globex.call("message.send", session="spy", to=ALICE, text="for alice")
        assert sent["status"] == "sent"
        received = await acme.event("message.received", lambda e: e["data"]["text"] == "for alice")
        assert received["session"] == "shop"
        assert not [e for e in globex.events if e["event"] == "message.received"]


async def test_a_tenant_links_its_own_phone_to_several_sessions(gateway: RunningGateway) -> None:
    async with gateway.connect("acme") as acme:
        first = await acme.pair("one", ALICE)
        second = await acme.pair("two", ALICE)
        assert first["data"]["me"]["phone"] == second["data"]["me"]["phone"] == "5511912340001"
        assert first["data"]["me"]["jid"] != second["data"]["me"]["jid"]  # two linked devices of one phone


async def test_the_echo_contact_and_contacts_cannot_be_scanned_with(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", sim_contacts=("+55 11 91234-0050",))
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("shop", ALICE)
        await client.call("sim.receive", session="shop", **{"from": CONTACT}, text="hi")
        qr = await showing(client, "other")
        assert "echo contact" in await refused_scan(client, qr, "+1 555 000 0000")
        assert "contact of the simulated network" in await refused_scan(client, qr, "+55 11 91234-0050")
        assert "contact of the simulated network" in await refused_scan(client, qr, CONTACT)
        # The echo contact still answers.
        await client.call("message.send", session="shop", to="+1 555 000 0000", text="ping")
        await client.event("message.received", lambda e: e["data"]["text"] == "ping" and not e["data"]["from_me"])


async def test_the_claim_survives_a_restart(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data")
    async with serve_gateway(settings) as gateway, gateway.connect("acme") as acme:
        await acme.pair("shop", ALICE)
    async with serve_gateway(settings) as gateway, gateway.connect("globex") as globex:
        await refused_scan(globex, await showing(globex, "spy"), ALICE)


@contextlib.asynccontextmanager
async def node(tmp_path: Path, name: str, database_url: str) -> AsyncIterator[RunningGateway]:
    settings: Settings = fast_settings(tmp_path / name, database_url=database_url, node_name=name)
    async with serve_gateway(settings) as gateway:
        yield gateway


@pytest.mark.slow
async def test_the_claim_holds_on_every_node_of_a_cluster(tmp_path: Path) -> None:
    for database_url in postgres_schema():
        async with node(tmp_path, "a", database_url) as a, node(tmp_path, "b", database_url) as b:
            async with a.connect("acme") as acme:
                await acme.pair("shop", ALICE)
            async with b.connect("globex") as globex:
                await refused_scan(globex, await showing(globex, "spy"), ALICE)
