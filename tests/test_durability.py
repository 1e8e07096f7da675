"""Durable sends, end to end: an accepted send is never lost and never sent twice.

The crash test runs the real ``zapgate serve`` in a subprocess and kills it with SIGKILL in the middle of a
burst of sends; the simulator's ``simulator.db`` (what "WhatsApp" accepted) is then the judge. The
idempotency tests run the gateway in-process and speak raw JSON frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from zapgate.engines.simulator import SimulatorEngine

from .conftest import fast_settings
from .support import TIMEOUT_SCALE, RawClient, RunningGateway, serve_gateway

PHONE = "5511988880000"
CHATS = ("5521900000001", "5521900000002", "5521900000003", "5521900000004", "5521900000005")
"""Silent contacts: they exist on the simulated network and never answer."""

ZAPGATE = Path(sys.executable).with_name("zapgate")
STARTUP_TIMEOUT = 20.0 * TIMEOUT_SCALE
DRAIN_TIMEOUT = 30.0 * TIMEOUT_SCALE


# -- reading the two databases ----------------------------------------------------------------------


@contextlib.contextmanager
def _read_db(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def deliveries(data_dir: Path, sender: str = PHONE) -> list[dict[str, Any]]:
    """What the simulated WhatsApp accepted from ``sender``, in the order it accepted it."""
    with _read_db(data_dir / "simulator.db") as conn:
        rows = conn.execute(
            "SELECT message_id, recipient, text, attempts FROM deliveries WHERE sender = ? ORDER BY accepted",
            (sender,),
        ).fetchall()
    return [{"message_id": r[0], "recipient": r[1], "text": r[2], "attempts": r[3]} for r in rows]


def outbox(data_dir: Path) -> list[dict[str, Any]]:
    """The gateway's outbox, in the order it accepted the sends."""
    with _read_db(data_dir / "zapgate.db") as conn:
        rows = conn.execute(
            "SELECT message_id, chat, text, idempotency_key, status FROM outbox ORDER BY position"
        ).fetchall()
    return [{"message_id": r[0], "chat": r[1], "text": r[2], "key": r[3], "status": r[4]} for r in rows]


def newest_seq(data_dir: Path, tenant: str) -> int:
    """The ``seq`` of the tenant's newest stored event (0: none)."""
    with _read_db(data_dir / "zapgate.db") as conn:
        (seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events WHERE tenant = ?", (tenant,)).fetchone()
    return int(seq)


def per_chat(items: list[dict[str, Any]], chat_field: str) -> dict[str, list[str]]:
    chats: dict[str, list[str]] = {}
    for item in items:
        chats.setdefault(item[chat_field].split("@", 1)[0], []).append(item["message_id"])
    return chats


# -- the gateway as a separate process --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class GatewayProcess:
    """``zapgate serve --engine simulator`` in a subprocess, on a fixed port and data directory."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.log = data_dir.parent / "gateway.log"
        # Inherit nothing zapgate-specific from the test run, nor asyncio debug mode (it slows the server).
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_") and k != "PYTHONASYNCIODEBUG"}
        env.update(
            {
                "ZAPGATE_DATA_DIR": str(data_dir),
                "ZAPGATE_PORT": str(self.port),
                "ZAPGATE_PACING": "false",
                "ZAPGATE_SIM_LATENCY_S": "0",
                "ZAPGATE_SIM_CONTACTS": ",".join(CHATS),
                "ZAPGATE_SQLITE_SYNCHRONOUS": "full",
                "ZAPGATE_PING_INTERVAL_S": "0",
                "ZAPGATE_COMMAND_RATE_PER_S": "0",  # the burst is pipelined far beyond a client's fair rate
            }
        )
        env.update({f"ZAPGATE_{k.upper()}": v for k, v in settings.items()})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def token(self, tenant: str) -> str:
        out = subprocess.run(
            [ZAPGATE, "token", "create", "--tenant", tenant],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=STARTUP_TIMEOUT,
        )
        return out.stdout.decode().strip()

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([ZAPGATE, "serve", "--engine", "simulator"], env=self.env, stderr=log)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        # uvicorn binds the port only after the lifespan (storage, engine, sessions) has started.
        while True:
            assert self.proc.poll() is None, f"gateway exited with {self.proc.returncode}:\n{self.log_tail()}"
            try:
                probe = await RawClient.open(self.url)
            except OSError:
                assert loop.time() < deadline, f"gateway did not start:\n{self.log_tail()}"
                await asyncio.sleep(0.05)
                continue
            await probe.close()
            return

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(STARTUP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM: a graceful stop."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def authenticated(url: str, token: str, resume_from: int | None = None) -> AsyncIterator[RawClient]:
    client = await RawClient.open(url)
    try:
        await client.authenticate(token, resume_from)
        yield client
    finally:
        await client.close()


async def wait_drained(client: RawClient, session: str) -> None:
    """Poll ``session.get`` until the session is connected and its outbox is empty."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT
    while True:
        info = await client.call("session.get", session=session)
        if info["status"] == "connected" and info["outbox"]["queued"] == 0:
            return
        assert loop.time() < deadline, f"outbox not drained: {info}"
        await asyncio.sleep(0.05)


class Burst:
    """Pipelines ``message.send`` frames on one connection and collects their replies as they come.

    At most ``window`` frames are ahead of the replies, so that when the client has read k replies the
    gateway cannot have accepted more than k + ``window`` sends: a kill decided on the client's count lands
    mid-burst on the gateway too, however far behind the client's reading is.
    """

    def __init__(self, client: RawClient, sends: dict[str, dict[str, Any]], window: int = 256) -> None:
        self.client = client
        self.sends = sends  # request id -> frame
        self.window = window
        self.replies: dict[str, dict[str, Any]] = {}
        self.sent_events: set[str] = set()  # message ids reported "sent" by a message.status event
        self.enough = asyncio.Event()
        self.kill_after: int | None = None
        self._progress = asyncio.Event()

    async def _write(self) -> None:
        for written, frame in enumerate(self.sends.values()):
            while written - len(self.replies) >= self.window:
                self._progress.clear()
                await self._progress.wait()
            await self.client.send(frame)

    async def _read(self) -> None:
        while len(self.replies) < len(self.sends):
            frame = await self.client.recv(DRAIN_TIMEOUT)
            if frame["type"] == "reply":
                self.replies[frame["id"]] = frame
                self._progress.set()
                if self.kill_after is not None and len(self.replies) >= self.kill_after:
                    self.enough.set()
            elif frame["type"] == "event" and frame["event"] == "message.status" and frame["data"]["status"] == "sent":
                self.sent_events.add(frame["data"]["message_id"])
        self.enough.set()

    async def run(self) -> None:
        """Send everything and read every reply (the connection must stay up)."""
        writer = asyncio.create_task(self._write())
        try:
            await self._read()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def run_until_killed(self, gateway: GatewayProcess, after: int) -> None:
        """Send everything; SIGKILL the gateway once ``after`` replies arrived; read what still comes."""
        self.kill_after = after
        writer, reader = asyncio.create_task(self._write()), asyncio.create_task(self._read())
        await self.enough.wait()
        gateway.kill()
        # Replies the server wrote before it died may still be in our socket buffer: they count.
        (read,) = await asyncio.gather(reader, return_exceptions=True)
        assert isinstance(read, websockets.ConnectionClosed), read
        writer.cancel()  # it may be waiting for replies that will never come
        (written,) = await asyncio.gather(writer, return_exceptions=True)
        assert written is None or isinstance(written, websockets.ConnectionClosed | asyncio.CancelledError), written


def send_frames(indexes: range, session: str) -> dict[str, dict[str, Any]]:
    frames = {}
    for i in indexes:
        frames[f"send{i}"] = {
            "type": "message.send",
            "id": f"send{i}",
            "session": session,
            "to": "+" + CHATS[i % len(CHATS)],
            "text": f"burst message {i}",
            "idempotency_key": f"key-{i}",
        }
    return frames


N = 3000
"""Sends in the burst: thousands, yet the whole test takes a few seconds."""


async def first_sent_event(client: RawClient) -> None:
    await client.event("message.status", lambda e: e["data"]["status"] == "sent", timeout=DRAIN_TIMEOUT)


@pytest.mark.slow
async def test_kill_9_mid_burst_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # send_wait_s=0: a reply comes as soon as its send is durable, so acceptance runs ahead of sending and a
    # kill finds both a backlog in the outbox and sends in flight to WhatsApp.
    gateway = GatewayProcess(data, send_wait_s="0", send_buffer_frames="100000")
    token = gateway.token("t")
    texts = {f"send{i}": f"burst message {i}" for i in range(N)}
    try:
        # 1. A burst of sends, and SIGKILL once half of them are acknowledged.
        await gateway.start()
        async with authenticated(gateway.url, token) as client:
            await client.pair("s", PHONE)
            burst = Burst(client, send_frames(range(N), "s"))
            await burst.run_until_killed(gateway, after=N // 2)
        refused = [r for r in burst.replies.values() if not r["ok"]]
        assert not refused, refused[:3]
        acked = {rid: r["data"] for rid, r in burst.replies.items()}
        assert N // 2 <= len(acked) <= N // 2 + burst.window < N, "the kill must land mid-burst"

        # On disk, with the gateway dead: every acknowledged send is in the outbox under the id its reply gave.
        on_disk = {row["key"]: row for row in outbox(data)}
        for rid, result in acked.items():
            assert on_disk[burst.sends[rid]["idempotency_key"]]["message_id"] == result["message_id"]
        backlog_at_kill = sum(row["status"] == "queued" for row in on_disk.values())
        assert backlog_at_kill > 0, "the kill must find sends not yet handed to WhatsApp"

        # 2. Restart, and SIGKILL again as soon as the outbox has started draining. The client resumes from the
        # last event stored before the kill: a restarted gateway may send (and announce) a small backlog before
        # the client has authenticated, and the events it missed come from the log.
        seq_at_kill = newest_seq(data, "t")
        await gateway.start()
        async with authenticated(gateway.url, token, resume_from=seq_at_kill) as client:
            await first_sent_event(client)
            gateway.kill()
        backlog_at_second_kill = sum(row["status"] == "queued" for row in outbox(data))

        # 3. Restart and let the outbox drain: every acknowledged send reached WhatsApp with no client help.
        await gateway.start()
        async with authenticated(gateway.url, token) as client:
            await wait_drained(client, "s")
            assert {r["message_id"] for r in acked.values()} <= {d["message_id"] for d in deliveries(data)}
            # The client re-sends what it never got an answer for, with the same idempotency keys.
            retry = Burst(client, {rid: frame for rid, frame in burst.sends.items() if rid not in acked})
            await retry.run()
            assert all(r["ok"] for r in retry.replies.values()), [r for r in retry.replies.values() if not r["ok"]][:3]
            await wait_drained(client, "s")
    finally:
        gateway.stop()

    # A key stored before the kill answers with the message id it was stored with.
    replayed = 0
    for rid, reply in retry.replies.items():
        before = on_disk.get(burst.sends[rid]["idempotency_key"])
        if before is not None:
            replayed += 1
            assert reply["data"]["message_id"] == before["message_id"]

    sent = deliveries(data)
    stored = outbox(data)
    by_text = {d["text"]: d for d in sent}
    # Exactly once: one delivery per send, to the right chat; never two for one text under different ids.
    assert len(sent) == len(by_text) == N
    for rid, text in texts.items():
        assert by_text[text]["recipient"] == burst.sends[rid]["to"].lstrip("+")
    # Each idempotency key is stored once and ends sent, with the id WhatsApp has.
    assert len(stored) == len({s["key"] for s in stored}) == N
    assert all(s["status"] == "sent" for s in stored)
    assert {s["message_id"] for s in stored} == {d["message_id"] for d in sent}
    # A send reported "sent" before the first kill was never handed to WhatsApp again.
    assert all(d["attempts"] == 1 for d in sent if d["message_id"] in burst.sent_events)
    # Order per chat is the order of acceptance.
    assert per_chat(sent, "recipient") == per_chat(stored, "chat")

    resent = [d for d in sent if d["attempts"] > 1]
    print(
        f"\nN={N}: acknowledged before the kill {len(acked)}, reported sent {len(burst.sent_events)}, "
        f"backlog at kill {backlog_at_kill}, at second kill {backlog_at_second_kill}; "
        f"retried {len(retry.sends)} (of which {replayed} already stored); "
        f"handed to WhatsApp again with the same id {len(resent)}, max attempts {max(d['attempts'] for d in sent)}"
    )


# -- idempotency over the wire (in-process gateway) -------------------------------------------------


@contextlib.asynccontextmanager
async def paired_gateway(tmp_path: Path) -> AsyncIterator[tuple[RunningGateway, RawClient]]:
    """An in-process gateway whose simulated network knows ``CHATS``, and a client with session "s" paired."""
    async with serve_gateway(fast_settings(tmp_path / "data", sim_contacts=CHATS)) as gateway:
        client = await RawClient.open(gateway.url)
        try:
            await client.authenticate(await gateway.token())
            await client.pair("s", PHONE)
            yield gateway, client
        finally:
            await client.close()


async def accepted_by_whatsapp(gateway: RunningGateway, sender: str = PHONE) -> list[dict[str, Any]]:
    engine = gateway.gateway.engine
    assert isinstance(engine, SimulatorEngine)
    return [d for d in await engine.deliveries() if d["sender"] == sender]


async def test_same_key_same_message_sent_once_and_different_content_conflicts(tmp_path: Path) -> None:
    async with paired_gateway(tmp_path) as (gateway, client):
        send = {"session": "s", "to": "+" + CHATS[0], "text": "pedido 1 confirmado", "idempotency_key": "order-1"}
        first = await client.call("message.send", **send)
        assert first["status"] == "sent" and isinstance(first["timestamp"], int)
        # The same key again: the original result, nothing sent.
        assert await client.call("message.send", **send) == first

        # The same new key several times at once (pipelined, handled concurrently): one message.
        twice = {**send, "text": "pedido 2 confirmado", "idempotency_key": "order-2"}
        burst = Burst(client, {f"dup{i}": {"type": "message.send", "id": f"dup{i}", **twice} for i in range(5)})
        await burst.run()
        assert all(r["ok"] for r in burst.replies.values()), burst.replies
        assert len({r["data"]["message_id"] for r in burst.replies.values()}) == 1
        second = next(iter(burst.replies.values()))["data"]["message_id"]

        # The same key with other content or another recipient: a conflict, and nothing sent.
        for other in ({"text": "pedido 1 cancelado"}, {"to": "+" + CHATS[1]}):
            reply = await client.request("message.send", **{**send, **other})
            assert not reply["ok"] and reply["error"]["code"] == "idempotency_conflict", reply
            assert first["message_id"] in reply["error"]["message"]

        # Pruning old records keeps keys younger than idempotency_ttl_s (24 h by default).
        await gateway.gateway.prune()
        assert await client.call("message.send", **send) == first

        # Keys belong to one session: another session may use the same key for its own message.
        await client.pair("other", "5511966660000")
        elsewhere = await client.call("message.send", **{**send, "session": "other"})
        assert elsewhere["message_id"] != first["message_id"]

        accepted = [(d["message_id"], d["attempts"]) for d in await accepted_by_whatsapp(gateway)]
        assert accepted == [(first["message_id"], 1), (second, 1)]


async def test_a_message_id_drawn_twice_is_drawn_again(tmp_path: Path) -> None:
    # Message ids are a millisecond counter and 32 random bits, so two drawn in the same millisecond can meet: the
    # second message gets another id and is sent; the first message is untouched.
    async with paired_gateway(tmp_path) as (gateway, client):
        first = await client.call("message.send", session="s", to="+" + CHATS[0], text="primeiro")
        engine = gateway.gateway.engine
        draws = iter([first["message_id"]])  # the next id drawn is the first message's again
        fresh = engine.new_message_id
        engine.new_message_id = lambda: next(draws, None) or fresh()  # type: ignore[method-assign]
        second = await client.call("message.send", session="s", to="+" + CHATS[1], text="segundo")
        assert second["status"] == "sent" and second["message_id"] != first["message_id"], second
        accepted = {d["message_id"]: (d["recipient"], d["attempts"]) for d in await accepted_by_whatsapp(gateway)}
        assert accepted == {first["message_id"]: (CHATS[0], 1), second["message_id"]: (CHATS[1], 1)}
        assert next(draws, None) is None  # the collision did happen


async def test_send_while_offline_is_queued_then_goes_out_in_order(tmp_path: Path) -> None:
    async with paired_gateway(tmp_path) as (gateway, client):
        await client.call("sim.network", session="s", online=False)
        await client.status("s", "disconnected")

        queued: list[dict[str, Any]] = []
        for i, chat in enumerate([CHATS[0], CHATS[1], CHATS[0], CHATS[0], CHATS[1]]):
            send = {"session": "s", "to": "+" + chat, "text": f"offline {i}", "idempotency_key": f"off-{i}"}
            reply = await client.call("message.send", **send)
            assert reply["status"] == "queued" and "timestamp" not in reply, reply
            queued.append(reply)
        again = await client.call(
            "message.send", session="s", to="+" + CHATS[0], text="offline 0", idempotency_key="off-0"
        )
        assert again == queued[0]
        assert (await client.call("session.get", session="s"))["outbox"]["queued"] == 5
        assert await accepted_by_whatsapp(gateway) == []

        await client.call("sim.network", session="s", online=True)
        await client.status("s", "connected")
        ids = [q["message_id"] for q in queued]
        for message_id in ids:
            await client.event(
                "message.status", lambda e, m=message_id: e["data"]["message_id"] == m and e["data"]["status"] == "sent"
            )
        sent_order = [
            e["data"]["message_id"]
            for e in client.events
            if e["event"] == "message.status" and e["data"]["status"] == "sent" and e["data"]["message_id"] in ids
        ]
        accepted = await accepted_by_whatsapp(gateway)
        assert [d["attempts"] for d in accepted] == [1] * 5
        # Per chat, WhatsApp got them, and the client heard of them, in the order they were accepted.
        expected = per_chat(queued, "chat")
        assert per_chat(accepted, "recipient") == expected
        assert per_chat([q for m in sent_order for q in queued if q["message_id"] == m], "chat") == expected

        # Once sent, the key answers with the final status and WhatsApp's timestamp.
        done = await client.call(
            "message.send", session="s", to="+" + CHATS[0], text="offline 0", idempotency_key="off-0"
        )
        assert done["message_id"] == ids[0] and done["status"] == "sent" and isinstance(done["timestamp"], int)
        assert (await client.call("session.get", session="s"))["outbox"]["queued"] == 0
