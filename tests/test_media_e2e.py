"""Media end to end on the simulator, over real sockets and HTTP: a file uploaded for one session arrives at
another with the same content, field by field, and the same bytes (by SHA-256); URLs and inline data; tenants
apart; failed downloads reported, retried automatically and by command, resumed after a restart."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from zapgate.storage import open_storage

from . import media_kit as kit
from .conftest import fast_settings
from .support import TIMEOUT_SCALE, RawClient, RunningGateway, serve_asgi, serve_gateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
ALICE_JID = "5511999990001@s.whatsapp.net"
ECHO = "+1 555 000 0000"


async def pair_both(client: RawClient) -> None:
    await client.pair("alice", ALICE)
    await client.pair("bob", BOB)


async def bob_receives(client: RawClient, message_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``message.received`` Bob's session gets for ``message_id``, and the ``media.ready`` that follows."""
    received = await client.event(
        "message.received", lambda e: e["session"] == "bob" and e["data"]["message_id"] == message_id
    )
    media_id = received["data"]["content"]["media"]["id"]
    ready = await client.event("media.ready", lambda e: e["data"]["media_id"] == media_id)
    assert ready["session"] == "bob"
    return received["data"], ready["data"]


FILES: dict[str, tuple[Callable[[], bytes], str, dict[str, Any]]] = {
    # kind: (the file, its type, the rest of the content)
    "image": (kit.png, "image/png", {"caption": "a foto 📷", "view_once": True}),
    "video": (kit.mp4, "video/mp4", {"caption": "o vídeo", "gif": True, "seconds": 3}),
    "audio": (kit.mp3, "audio/mpeg", {"seconds": 1}),
    "voice": (kit.ogg_opus, "audio/ogg", {"voice": True, "seconds": 2}),
    "document": (kit.pdf, "application/pdf", {"filename": "relatório.pdf", "caption": "segue", "pages": 2}),
    "sticker": (kit.webp, "image/webp", {}),
}


@pytest.mark.parametrize("name", list(FILES))
async def test_every_kind_arrives_with_the_same_content_and_the_same_bytes(gateway: RunningGateway, name: str) -> None:
    make, mimetype, rest = FILES[name]
    data = make()
    kind = "audio" if name == "voice" else name
    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await pair_both(client)
        uploaded = await kit.upload(
            http, data, filename=rest.get("filename", f"{name}.bin"), mimetype=mimetype, multipart=name != "image"
        )
        assert (uploaded["sha256"], uploaded["size"], uploaded["mimetype"]) == (kit.sha(data), len(data), mimetype)
        content = {"kind": kind, "media": {"id": uploaded["media_id"]}, **rest}
        sent = await client.call("message.send", session="alice", to=BOB, content=content)
        assert sent["status"] == "sent"

        received, ready = await bob_receives(client, sent["message_id"])
        got = received["content"]
        assert received["kind"] == kind and received["chat"] == ALICE_JID
        # Field by field, everything but the file is what Alice sent; the file is described, not embedded.
        assert {k: v for k, v in got.items() if k != "media"} == {k: v for k, v in content.items() if k != "media"}
        media = got["media"]
        assert media["status"] == "pending" and media["id"].startswith("med_") and media["id"] != uploaded["media_id"]
        assert (media["sha256"], media["size"], media["mimetype"]) == (kit.sha(data), len(data), mimetype)
        assert media.get("filename") == (rest["filename"] if kind == "document" else None)
        assert set(media) <= {"id", "mimetype", "size", "sha256", "filename", "status"}
        # The gateway downloaded it: the same bytes, served with their type.
        assert (ready["sha256"], ready["size"], ready["mimetype"]) == (kit.sha(data), len(data), mimetype)
        assert ready["message_id"] == sent["message_id"] and ready["chat"] == ALICE_JID
        answer = await http.get(f"/v1/media/{media['id']}")
        assert answer.status_code == 200 and answer.headers["content-type"] == mimetype
        assert kit.sha(answer.content) == kit.sha(data)
        info = await client.call("media.get", media_id=media["id"])
        assert (info["status"], info["origin"], info["session"], info["attempts"]) == ("ready", "received", "bob", 1)
        if kind == "image":
            assert (ready["width"], ready["height"]) == (64, 48)


async def test_the_outbox_keeps_a_media_id_never_the_bytes(gateway: RunningGateway) -> None:
    """Inline data is stored as a file first: what the outbox keeps names it by id."""
    data = kit.png(8, 8)
    async with gateway.connect() as client:
        await pair_both(client)
        await client.call("sim.network", session="alice", online=False)
        await client.status("alice", "disconnected")
        inline = {"data": base64.b64encode(data).decode(), "mimetype": "image/png"}
        sent = await client.call("message.send", session="alice", to=BOB, content={"kind": "image", "media": inline})
        assert sent["status"] == "queued"
        item = await gateway.gateway.storage.outbox_item(sent["message_id"])
        assert item is not None and b'"data"' not in item.content and base64.b64encode(data) not in item.content
        assert b'"id":"med_' in item.content
        await client.call("sim.network", session="alice", online=True)
        _, ready = await bob_receives(client, sent["message_id"])
        assert ready["sha256"] == kit.sha(data)


async def test_inline_data_and_data_urls(gateway: RunningGateway) -> None:
    data = kit.png(10, 10, "blue")
    async with gateway.connect() as client:
        await pair_both(client)
        for given in (base64.b64encode(data).decode(), "data:image/png;base64," + base64.b64encode(data).decode()):
            media = {"data": given}
            sent = await client.call("message.send", session="alice", to=BOB, content={"kind": "image", "media": media})
            _, ready = await bob_receives(client, sent["message_id"])
            assert ready["sha256"] == kit.sha(data)
        reply = await client.request(
            "message.send", session="alice", to=BOB, content={"kind": "document", "media": {"data": "!!not base64"}}
        )
        assert reply["error"]["code"] == "invalid_request" and "base64" in reply["error"]["message"]


async def test_inline_data_over_the_limit_is_refused(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", max_frame_bytes=256 * 1024)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await pair_both(client)
        big = base64.b64encode(os.urandom(48 * 1024 + 1)).decode()
        reply = await client.request(
            "message.send", session="alice", to=BOB, content={"kind": "document", "media": {"data": big}}
        )
        assert reply["error"]["code"] == "invalid_request" and "POST /v1/media" in reply["error"]["message"]


# -- media URLs ------------------------------------------------------------------------------------------------


@pytest.fixture
async def file_server() -> AsyncIterator[tuple[int, dict[str, int]]]:
    """A web server on 127.0.0.1 with a picture, a large file, an error, a slow answer and a redirect."""
    picture = kit.png(20, 20, "green")
    hits: dict[str, int] = {}

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        hits[name] = hits.get(name, 0) + 1
        if name == "photo.png":
            return Response(picture, media_type="application/octet-stream")
        if name == "big.bin":
            return Response(os.urandom(300_000), media_type="application/octet-stream")
        if name == "gone":
            return Response(b"no", status_code=404)
        if name == "gzipped":
            return Response(b"xx", headers={"Content-Encoding": "gzip"})
        if name == "slow":

            async def trickle() -> AsyncIterator[bytes]:
                for _ in range(100):
                    yield b"x"
                    await asyncio.sleep(0.5)

            return StreamingResponse(trickle())
        return Response(b"?", status_code=302, headers={"Location": f"/{name.removeprefix('to-')}"})

    app = Starlette(routes=[Route("/{name}", serve)])
    async with serve_asgi(app) as port:
        yield port, hits


async def test_a_media_url_is_fetched_when_the_message_is_accepted(
    tmp_path: Path, file_server: tuple[int, dict[str, int]]
) -> None:
    port, hits = file_server
    settings = fast_settings(
        tmp_path / "data",
        outbound_allow=("127.0.0.1/32",),
        media_max_bytes=200_000,
        media_fetch_timeout_s=2.0 * TIMEOUT_SCALE,
    )
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await pair_both(client)
        base = f"http://127.0.0.1:{port}"
        content = {"kind": "image", "media": {"url": f"{base}/to-photo.png"}, "caption": "da web"}
        sent = await client.call("message.send", session="alice", to=BOB, content=content)
        received, ready = await bob_receives(client, sent["message_id"])
        assert received["content"]["caption"] == "da web" and ready["mimetype"] == "image/png"
        assert hits["photo.png"] == 1

        for path, code, says in [
            ("gone", "media_fetch_failed", "HTTP 404"),
            ("big.bin", "media_too_large", "media_max_bytes"),
            ("gzipped", "media_fetch_failed", "uncompressed"),
            ("slow", "media_fetch_failed", "media_fetch_timeout_s"),  # a byte every 0.5 s, for 50 s: over the cap
        ]:
            doc = {"kind": "document", "media": {"url": f"{base}/{path}"}}
            reply = await client.request("message.send", session="alice", to=BOB, content=doc, idempotency_key=path)
            assert reply["error"]["code"] == code and says in reply["error"]["message"], reply
        # A failed fetch is an error reply, never a stored message that cannot go out.
        assert (
            await gateway.gateway.storage.find_message(gateway.gateway.sessions.get("acme", "alice").id, "gone") is None
        )
        reply = await client.request(
            "message.send", session="alice", to=BOB, content={"kind": "image", "media": {"url": "ftp://x/y.png"}}
        )
        assert reply["error"]["code"] == "media_fetch_failed" and "http" in reply["error"]["message"]


async def test_media_urls_to_the_gateways_own_network_are_refused_by_default(
    gateway: RunningGateway, file_server: tuple[int, dict[str, int]]
) -> None:
    port, hits = file_server
    async with gateway.connect() as client:
        await pair_both(client)
        for url in (f"http://127.0.0.1:{port}/photo.png", f"http://localhost:{port}/photo.png"):
            reply = await client.request(
                "message.send", session="alice", to=BOB, content={"kind": "image", "media": {"url": url}}
            )
            assert reply["error"]["code"] == "media_fetch_failed", reply
            assert "not a public address" in reply["error"]["message"]
        # The gateway's own port, too (its metrics, its API).
        own = f"http://127.0.0.1:{gateway.port}/metrics"
        reply = await client.request(
            "message.send", session="alice", to=BOB, content={"kind": "document", "media": {"url": own}}
        )
        assert reply["error"]["code"] == "media_fetch_failed"
    assert hits == {}


# -- tenants -------------------------------------------------------------------------------------------------


async def test_another_tenants_media_is_refused_exactly_like_a_missing_one(gateway: RunningGateway) -> None:
    acme, other = await gateway.token("acme"), await gateway.token("other")
    async with kit.http(gateway.http, acme) as mine, kit.http(gateway.http, other) as theirs:
        uploaded = await kit.upload(mine, kit.png(), filename="secret.png", mimetype="image/png")
        media_id = uploaded["media_id"]
        missing = "med_" + "x" * 24
        assert (await mine.get(f"/v1/media/{media_id}")).status_code == 200
        for_them, nothing = await theirs.get(f"/v1/media/{media_id}"), await theirs.get(f"/v1/media/{missing}")
        assert for_them.status_code == nothing.status_code == 404
        assert for_them.json() == {"code": "media_not_found", "message": f"no media {media_id}"}
        assert nothing.json() == {"code": "media_not_found", "message": f"no media {missing}"}
        assert set(for_them.headers) == set(nothing.headers)
        head = await theirs.head(f"/v1/media/{media_id}")
        assert head.status_code == 404
    async with gateway.connect("other") as client:
        await client.pair("theirs", "+5511977770000")
        for command, fields in [
            ("media.get", {"media_id": media_id}),
            ("media.retry", {"media_id": media_id}),
            ("message.send", {"session": "theirs", "to": BOB, "content": {"kind": "image", "media": {"id": media_id}}}),
        ]:
            reply = await client.request(command, **fields)
            assert reply["error"] == {"code": "media_not_found", "message": f"no media {media_id}"} or (
                reply["error"]["code"] == "media_not_found" and media_id in reply["error"]["message"]
            ), reply


# -- failed downloads ------------------------------------------------------------------------------------------


async def test_a_failed_download_is_reported_then_retried_by_itself(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data", media_retry_base_s=0.05)) as gateway:
        token = await gateway.token()
        async with gateway.connect() as client, kit.http(gateway.http, token) as http:
            await pair_both(client)
            await client.call("sim.media_fail", session="bob", times=2)
            data = kit.pdf()
            uploaded = await kit.upload(http, data, filename="a.pdf")
            content = {"kind": "document", "media": {"id": uploaded["media_id"]}}
            sent = await client.call("message.send", session="alice", to=BOB, content=content)
            received = await client.event("message.received", lambda e: e["data"]["message_id"] == sent["message_id"])
            media_id = received["data"]["content"]["media"]["id"]
            for attempt in (1, 2):
                failed = await client.event("media.failed", lambda e, n=attempt: e["data"]["attempts"] == n)
                data_ = failed["data"]
                assert (data_["media_id"], data_["reason"], data_["message_id"]) == (
                    media_id,
                    "cdn_timeout",
                    sent["message_id"],
                )
                assert data_["retry_at"] > failed["ts"] and data_["detail"]
            ready = await client.event("media.ready", lambda e: e["data"]["media_id"] == media_id)
            assert ready["data"]["sha256"] == kit.sha(data)
            info = await client.call("media.get", media_id=media_id)
            assert (info["status"], info["attempts"]) == ("ready", 3) and "reason" not in info
            # The event log tells the same story to a client that was not listening.
            page = await client.call("events.fetch", after=0, limit=1000)
            story = [e["event"] for e in page["events"] if e["data"].get("media_id") == media_id]
            assert story == ["media.failed", "media.failed", "media.ready"]


async def test_a_file_gone_from_whatsapp_fails_for_good_until_retried_by_command(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await pair_both(client)
        await client.call("sim.media_fail", session="bob", times=1, reason="media_expired")
        uploaded = await kit.upload(http, kit.png(), mimetype="image/png")
        sent = await client.call(
            "message.send", session="alice", to=BOB, content={"kind": "image", "media": {"id": uploaded["media_id"]}}
        )
        failed = await client.event("media.failed", lambda e: e["data"]["message_id"] == sent["message_id"])
        media_id = failed["data"]["media_id"]
        assert failed["data"]["reason"] == "media_expired" and "retry_at" not in failed["data"]
        info = await client.call("media.get", media_id=media_id)
        assert (info["status"], info["reason"]) == ("failed", "media_expired") and "retry_at" not in info
        answer = await http.get(f"/v1/media/{media_id}")
        assert answer.status_code == 409 and answer.json()["code"] == "media_not_ready"
        # A pending or failed file cannot be sent on.
        reply = await client.request(
            "message.send", session="bob", to=ECHO, content={"kind": "image", "media": {"id": media_id}}
        )
        assert reply["error"]["code"] == "media_not_ready"

        retried = await client.call("media.retry", media_id=media_id)
        assert retried["status"] in ("pending", "ready")
        ready = await client.event("media.ready", lambda e: e["data"]["media_id"] == media_id)
        assert ready["data"]["sha256"] == uploaded["sha256"]
        assert (await client.call("media.retry", media_id=media_id))["status"] == "ready"  # nothing left to do
        # Now it is stored, the received file can be forwarded like an upload.
        forwarded = await client.call(
            "message.send", session="bob", to=ALICE, content={"kind": "image", "media": {"id": media_id}}
        )
        back, again = await alice_receives(client, forwarded["message_id"])
        assert again["sha256"] == uploaded["sha256"] and back["content"]["media"]["id"] != media_id


async def alice_receives(client: RawClient, message_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    received = await client.event(
        "message.received", lambda e: e["session"] == "alice" and e["data"]["message_id"] == message_id
    )
    media_id = received["data"]["content"]["media"]["id"]
    ready = await client.event("media.ready", lambda e: e["data"]["media_id"] == media_id)
    return received["data"], ready["data"]


async def test_unfinished_downloads_resume_after_a_restart(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", media_retry_base_s=4.0)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        async with gateway.connect() as client, kit.http(gateway.http, token) as http:
            await pair_both(client)
            await client.call("sim.media_fail", session="bob", times=1)
            uploaded = await kit.upload(http, kit.mp4(), mimetype="video/mp4")
            content = {"kind": "video", "media": {"id": uploaded["media_id"]}}
            sent = await client.call("message.send", session="alice", to=BOB, content=content)
            failed = await client.event("media.failed", lambda e: e["data"]["message_id"] == sent["message_id"])
            media_id = failed["data"]["media_id"]
            seq = failed["seq"]
    # The gateway stopped before the retry was due (2 to 4 s after the failure): the file waits on disk.
    storage = open_storage(settings.storage_url)
    await storage.open()
    try:
        row = await storage.media.get(media_id)
        assert row is not None and row.status == "failed" and row.next_attempt_at is not None
    finally:
        await storage.close()
    async with serve_gateway(settings) as gateway:
        client = await RawClient.open(gateway.url)
        try:
            await client.authenticate(token, resume_from=seq)
            ready = await client.event("media.ready", lambda e: e["data"]["media_id"] == media_id)
            assert ready["data"]["sha256"] == uploaded["sha256"]
        finally:
            await client.close()


# -- the simulator's contacts send files too ----------------------------------------------------------------------


async def test_a_contact_sends_a_file_and_the_echo_contact_echoes_one(gateway: RunningGateway) -> None:
    data = kit.png(12, 12, "yellow")
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        inline = {"data": base64.b64encode(data).decode()}
        message_id = await client.call(
            "sim.receive", session="alice", **{"from": BOB}, content={"kind": "image", "media": inline, "caption": "oi"}
        )
        received, ready = await alice_receives(client, message_id["message_id"])
        assert received["content"]["caption"] == "oi" and ready["sha256"] == kit.sha(data)
        sent = await client.call(
            "message.send", session="alice", to=ECHO, content={"kind": "image", "media": {"id": ready["media_id"]}}
        )
        echo = await client.event("message.received", lambda e: e["data"].get("reply_to") == sent["message_id"])
        echoed = await client.event(
            "media.ready", lambda e: e["data"]["media_id"] == echo["data"]["content"]["media"]["id"]
        )
        assert echoed["data"]["sha256"] == kit.sha(data)


async def test_files_that_do_not_fit_their_kind_are_refused(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await client.pair("alice", ALICE)
        a_pdf = (await kit.upload(http, kit.pdf(), filename="x.pdf"))["media_id"]
        an_mp3 = (await kit.upload(http, kit.mp3()))["media_id"]
        a_png = (await kit.upload(http, kit.png()))["media_id"]
        for content, says in [
            ({"kind": "image", "media": {"id": a_pdf}}, "send it as a document"),
            ({"kind": "audio", "media": {"id": an_mp3}, "voice": True}, "OGG/Opus"),
            ({"kind": "sticker", "media": {"id": a_png}}, "WebP"),
            ({"kind": "video", "media": {"id": a_png}}, "a video must be"),
        ]:
            reply = await client.request("message.send", session="alice", to=BOB, content=content)
            assert reply["error"]["code"] == "invalid_request" and says in reply["error"]["message"], reply
        # A document may be any file; and a declared type overrides what the gateway read (the sender's call).
        for content in (
            {"kind": "document", "media": {"id": a_png}},
            {"kind": "image", "media": {"id": a_pdf, "mimetype": "image/jpeg"}},
        ):
            assert (await client.call("message.send", session="alice", to=ECHO, content=content))["status"] == "sent"


async def test_deleting_a_session_deletes_its_received_files(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await pair_both(client)
        uploaded = await kit.upload(http, kit.png())
        sent = await client.call(
            "message.send", session="alice", to=BOB, content={"kind": "image", "media": {"id": uploaded["media_id"]}}
        )
        _, ready = await bob_receives(client, sent["message_id"])
        await client.call("session.delete", session="bob")
        assert (await http.get(f"/v1/media/{ready['media_id']}")).status_code == 404
        assert (
            await http.get(f"/v1/media/{uploaded['media_id']}")
        ).status_code == 200  # an upload is not the session's


async def test_same_key_same_upload_is_one_message(gateway: RunningGateway) -> None:
    """Uploading the same file again returns the same media id, so a program that re-runs "upload, then send
    with my key" after a crash gets its first message back rather than a conflict."""
    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await pair_both(client)
        data = kit.pdf()
        first = await kit.upload(http, data, filename="pedido.pdf")
        again = await kit.upload(http, data, filename="pedido.pdf", multipart=True)
        other_name = await kit.upload(http, data, filename="outro.pdf")
        assert first["media_id"] == again["media_id"] != other_name["media_id"]
        send = {"session": "alice", "to": BOB, "idempotency_key": "pedido-1"}
        one = await client.call(
            "message.send", content={"kind": "document", "media": {"id": first["media_id"]}}, **send
        )
        two = await client.call(
            "message.send", content={"kind": "document", "media": {"id": again["media_id"]}}, **send
        )
        assert one["message_id"] == two["message_id"]
        conflict = await client.request(
            "message.send", content={"kind": "document", "media": {"id": other_name["media_id"]}}, **send
        )
        assert conflict["error"]["code"] == "idempotency_conflict"


# -- retention ----------------------------------------------------------------------------------------------------


async def test_retention_deletes_unused_files_but_not_shared_or_queued_ones(gateway: RunningGateway) -> None:
    library = gateway.gateway.media
    retention = gateway.settings.media_retention_s

    async def age(*media_ids: str) -> None:
        """Make files look unused for longer than the retention (the stored clock, not a sleep)."""

        def op(conn: Any) -> tuple[None, list[Any]]:
            for media_id in media_ids:
                conn.execute("UPDATE media SET used_at = ? WHERE id = ?", (time.time() - retention - 60, media_id))
            return None, []

        await gateway.gateway.storage.db.write(op)

    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await client.pair("alice", ALICE)
        old = await kit.upload(http, kit.pdf(), filename="old.pdf")
        shared = await kit.upload(http, kit.png(5, 5), filename="one.png")
        same_bytes = await kit.upload(http, kit.png(5, 5), filename="two.png")
        assert same_bytes["sha256"] == shared["sha256"] and same_bytes["media_id"] != shared["media_id"]
        await client.call("sim.network", session="alice", online=False)
        await client.status("alice", "disconnected")
        queued = await client.call(
            "message.send", session="alice", to=ECHO, content={"kind": "image", "media": {"id": shared["media_id"]}}
        )
        assert queued["status"] == "queued"
        await age(old["media_id"], shared["media_id"])
        orphan = await library.blobs.put(chunk(os.urandom(100)), max_bytes=1000)  # as a crash would leave it
        os.utime(library.blobs.path(orphan.sha256), (1.0, 1.0))

        assert await library.prune(time.time()) == 1  # the old PDF's blob
        assert await library.sweep(time.time()) == 1  # the orphan (the daily sweep already ran at start)
        assert (await http.get(f"/v1/media/{old['media_id']}")).status_code == 404
        assert not await library.blobs.exists(old["sha256"]) and not await library.blobs.exists(orphan.sha256)
        # The file of the queued message stays.
        assert (await http.get(f"/v1/media/{shared['media_id']}")).status_code == 200
        await client.call("sim.network", session="alice", online=True)
        await client.event("message.status", lambda e: e["data"]["message_id"] == queued["message_id"])
        # Once sent, it ages like any other file; its blob stays while another row names it.
        await age(shared["media_id"])
        assert await library.prune(time.time()) == 0
        assert (await http.get(f"/v1/media/{shared['media_id']}")).status_code == 404
        assert (await http.get(f"/v1/media/{same_bytes['media_id']}")).content == kit.png(5, 5)
        await age(same_bytes["media_id"])
        assert await library.prune(time.time()) == 1
        assert not await library.blobs.exists(shared["sha256"])


async def chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_queued_message_whose_file_vanished_fails_with_media_gone(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with gateway.connect() as client, kit.http(gateway.http, token) as http:
        await client.pair("alice", ALICE)
        uploaded = await kit.upload(http, kit.pdf())
        await client.call("sim.network", session="alice", online=False)
        await client.status("alice", "disconnected")
        queued = await client.call(
            "message.send",
            session="alice",
            to=ECHO,
            content={"kind": "document", "media": {"id": uploaded["media_id"]}},
        )
        gateway.gateway.media.blobs.path(uploaded["sha256"]).unlink()  # an operator deleted it by hand
        await client.call("sim.network", session="alice", online=True)
        failed = await client.event("message.status", lambda e: e["data"]["message_id"] == queued["message_id"])
        assert failed["data"]["status"] == "failed" and failed["data"]["reason"] == "media_gone"
