"""What the edge's lean WebSocket protocol assumes of uvicorn and websockets, and what an idle connection keeps.

:class:`~zapgate.server.edge.EdgeWebSocketProtocol` trims uvicorn's per-connection state (``bench/findings.md``,
"Idle connections, round 4"): uvicorn's attributes become slots, its receive queue and "writable" event are
replaced by :mod:`zapgate.server.lean`'s, ``receive`` is rewritten, and the request head is dropped once the
upgrade is accepted. uvicorn and websockets are pinned in ``requirements.lock``; if an upgrade changes what
these overrides rely on, a test here fails and names what to review in ``server/edge.py``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.server import ServerProtocol

from zapgate.server.edge import _UVICORN_ATTRIBUTES, EdgeWebSocketProtocol
from zapgate.server.lean import Inbox, WaitFlag
from zapgate.server.websocket import WebSocketClient

from .conftest import fast_settings
from .support import RawClient, RunningGateway, eventually, serve_gateway

REVIEW = "uvicorn's WebSocketsSansIOProtocol changed: review EdgeWebSocketProtocol's overrides in server/edge.py"


def _methods(cls: type) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    (node,) = tree.body
    assert isinstance(node, ast.ClassDef)
    return {f.name: f for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}


def _self_uses(cls: type) -> list[tuple[str, ast.Attribute, ast.AST | None]]:
    """Every ``self.<name>`` in the class's methods: (method, the attribute node, its parent node)."""
    uses = []
    for name, method in _methods(cls).items():
        parents = {child: parent for parent in ast.walk(method) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(method):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                uses.append((name, node, parents.get(node)))
    return uses


# -- uvicorn's source, as the overrides assume it


def test_every_attribute_uvicorn_sets_is_a_slot_of_the_edge_protocol() -> None:
    assigned = {node.attr for _, node, _ in _self_uses(WebSocketsSansIOProtocol) if isinstance(node.ctx, ast.Store)}
    assert assigned == set(_UVICORN_ATTRIBUTES), REVIEW


def test_uvicorn_uses_only_what_the_lean_queue_and_event_offer() -> None:
    used: dict[str, set[str]] = {"queue": set(), "writable": set()}
    for _, node, parent in _self_uses(WebSocketsSansIOProtocol):
        if node.attr in used and isinstance(node.ctx, ast.Load):
            assert isinstance(parent, ast.Attribute), f"self.{node.attr} is used as a whole: {REVIEW}"
            used[node.attr].add(parent.attr)
    assert used == {"queue": {"put_nowait", "get", "empty"}, "writable": {"set", "clear", "wait"}}, REVIEW
    for stand_in, names in ((Inbox, used["queue"]), (WaitFlag, used["writable"])):
        assert all(callable(getattr(stand_in, name, None)) for name in names)


def test_uvicorn_reads_the_handshake_only_before_the_upgrade_is_accepted() -> None:
    # EdgeWebSocketProtocol deletes self.request in handle_connect and self.response once the accept is sent.
    loads = {
        (method, node.attr)
        for method, node, _ in _self_uses(WebSocketsSansIOProtocol)
        if node.attr in ("request", "response") and isinstance(node.ctx, ast.Load)
    }
    assert loads == {("handle_connect", "response"), ("send", "response")}, REVIEW
    send = inspect.getsource(WebSocketsSansIOProtocol.send)
    assert send.count("self.response") == 3 and send.index("self.response") > send.index('"websocket.accept"')


def test_uvicorns_receive_is_the_one_the_edge_rewrote() -> None:
    # EdgeWebSocketProtocol.receive is this, with the lean inbox's wait instead of the coroutine of Queue.get.
    body = [ast.unparse(statement) for statement in _methods(WebSocketsSansIOProtocol)["receive"].body]
    assert body == [
        "message = await self.queue.get()",
        "if self.read_paused and self.queue.empty():\n"
        "    self.read_paused = False\n"
        "    self.transport.resume_reading()",
        "return message",
    ], REVIEW


def test_websockets_keeps_the_request_in_its_parser_whose_headers_the_edge_empties() -> None:
    source = inspect.getsource(ServerProtocol.parse)
    assert "request = yield from Request.parse(" in source and "yield from super().parse()" in source


# -- a live idle connection


async def _the_connection(gateway: RunningGateway) -> tuple[WebSocketClient, EdgeWebSocketProtocol]:
    """The gateway's side of its one connection, once authenticated, and its protocol."""
    await eventually(lambda: len(gateway.gateway.connections) == 1, "the connection to be authenticated")
    (server_side,) = gateway.gateway.connections
    assert isinstance(server_side, WebSocketClient)
    return server_side, _protocol(server_side)


def _protocol(client: WebSocketClient) -> EdgeWebSocketProtocol:
    receive: Any = client.ws._receive
    protocol = receive.__self__
    assert isinstance(protocol, EdgeWebSocketProtocol)
    return protocol


async def test_an_idle_connection_keeps_no_handshake_and_no_instance_dictionary(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        server_side, protocol = await _the_connection(gateway)
        assert vars(protocol) == {}, "uvicorn set an attribute that is not a slot"
        assert not hasattr(protocol, "request") and not hasattr(protocol, "response")
        assert protocol.scope["headers"] == [] and len(server_side.ws.headers) == 0
        request = protocol.conn.parser.gi_frame.f_locals["request"]
        assert list(request.headers.raw_items()) == []
        assert isinstance(protocol.queue, Inbox) and protocol.queue.empty()
        assert isinstance(protocol.writable, WaitFlag) and protocol.writable.is_set()
        # Still a working connection: a command, and a ping answered by a pong.
        assert "time" in await client.call("ping")
        await asyncio.wait_for(await client.ws.ping(), 10)
        assert "time" in await client.call("ping")


async def test_a_reply_goes_out_at_once_unless_frames_wait_before_it(gateway: RunningGateway) -> None:
    # A reply to a connection with nothing queued is written in the step that makes it, with no writer task: one
    # turn of the event loop sooner (bench/findings.md, round 10). While the transport asks to stop writing, or
    # behind frames already on their way, it is queued, and the writer sends everything in order.
    async with gateway.connect() as client:
        server_side, protocol = await _the_connection(gateway)
        assert "time" in await client.call("ping")
        assert server_side._writer is None, "hello, ready and the reply went out without a writer task"

        protocol.pause_writing()  # what the transport does when its buffer is full
        await client.send({"type": "ping", "id": "held"})
        await eventually(
            lambda: server_side._writer is not None and not server_side._writer.done(),
            "a writer to wait for the transport with the reply",
        )
        await client.send({"type": "ping", "id": "next"})
        await eventually(lambda: len(server_side._out) == 1, "the second reply to be queued behind the first")
        protocol.resume_writing()
        assert [(await client.recv())["id"] for _ in range(2)] == ["held", "next"]

        writer = server_side._writer
        assert writer is not None
        await eventually(writer.done, "the writer to end with the queue empty")
        assert "time" in await client.call("ping")
        assert server_side._writer is writer, "with nothing queued, the reply went out without a new writer task"


def _count_queued(monkeypatch: pytest.MonkeyPatch, protocol: EdgeWebSocketProtocol) -> list[Any]:
    """The messages the protocol queues for the app's ``receive`` from now on (its inbox's ``put_nowait``)."""
    queued: list[Any] = []
    put = Inbox.put_nowait

    def counting_put(inbox: Inbox[Any], item: Any) -> None:
        if inbox is protocol.queue:
            queued.append(item)
        put(inbox, item)

    monkeypatch.setattr(Inbox, "put_nowait", counting_put)
    return queued


async def test_a_command_is_taken_in_the_step_that_read_its_frame(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While the reader waits for a frame with none queued ahead, the protocol hands a command's frame to the
    # connection in the step that read it: it is never queued for the reader, whose next turn would start it one
    # turn of the event loop later (during a burst, a long turn; bench/findings.md, round 13).
    async with gateway.connect() as client:
        server_side, protocol = await _the_connection(gateway)
        queued = _count_queued(monkeypatch, protocol)
        for _ in range(3):
            assert "time" in await client.call("ping")
        await client.send({"type": "events.fetch", "id": "log", "after": 0})
        assert (await client.recv())["id"] == "log"
        assert queued == [], "commands read while the reader waited went through its queue"
        assert server_side._free == gateway.settings.max_inflight_commands


async def test_commands_past_the_in_flight_limit_are_queued_and_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One command at a time: a frame that comes while one runs is queued for the reader (as is every frame behind
    # it), which starts each once the one before has ended. Replies come in the order of the frames; a ping that
    # overtook a read of the event log would answer first.
    settings = fast_settings(tmp_path / "data", max_inflight_commands=1)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        server_side, protocol = await _the_connection(gateway)
        queued = _count_queued(monkeypatch, protocol)
        frames = [
            {"type": "events.fetch", "id": "a", "after": 0},
            {"type": "ping", "id": "b"},
            {"type": "ping", "id": "c"},
            {"type": "events.fetch", "id": "d", "after": 0},
            {"type": "ping", "id": "e"},
        ]
        # The five frames in one write to the socket, so that the gateway reads them in one step, while the
        # first command runs.
        for frame in frames:
            client._commands[frame["id"]] = frame["type"]  # what RawClient.send records, for the contract
            client.ws.protocol.send_text(json.dumps(frame).encode())
        client.ws.transport.write(b"".join(client.ws.protocol.data_to_send()))
        assert [(await client.recv())["id"] for _ in frames] == ["a", "b", "c", "d", "e"]
        assert [json.loads(m["text"])["id"] for m in queued] == ["b", "c", "d", "e"]
        await eventually(lambda: server_side._free == 1, "the one command slot to be free again")
        assert "time" in await client.call("ping")


async def test_the_headers_are_read_before_the_upgrade_is_accepted(gateway: RunningGateway) -> None:
    token = await gateway.token()
    client = await RawClient.open(
        gateway.url, additional_headers={"Authorization": f"Bearer {token}", "Zapgate-Resume-From": "0"}
    )
    try:
        assert client.hello["auth"] == "accepted"
        ready = await client.recv()
        assert ready["type"] == "ready"
    finally:
        await client.close()


# -- the lean stand-ins


async def test_the_inbox_hands_items_over_in_order_and_a_cancelled_get_loses_none() -> None:
    inbox: Inbox[int] = Inbox()
    assert inbox.empty() and inbox.qsize() == 0
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    getter.cancel()  # woken, but cancelled before it ran: the item stays queued
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()


async def test_the_inbox_has_one_reader_at_a_time() -> None:
    inbox: Inbox[str] = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="another reader"):
        await inbox.get()
    inbox.put_nowait("x")
    assert await first == "x"


async def test_the_inbox_wait_is_done_at_once_when_an_item_is_there() -> None:
    inbox: Inbox[str] = Inbox()
    inbox.put_nowait("x")
    waiter = inbox.wait()
    assert waiter.done()
    assert inbox.get_nowait() == "x"


async def test_the_flag_wakes_every_waiter_and_forgets_cancelled_ones() -> None:
    flag = WaitFlag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    await asyncio.sleep(0)
    flag.set()
    assert await waiters[1] is True and await waiters[2] is True
    assert waiters[0].cancelled()
    assert await flag.wait() is True  # set: no waiting
    flag.clear()
    late = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    assert not late.done()
    flag.set()
    assert await late is True
