"""Files through the SDK and the CLI, against a real gateway on 127.0.0.1: upload, send each kind, typed events,
download (whole or to a file), errors as the SDK's classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapgate.client import (
    Audio,
    Document,
    Image,
    MediaFailed,
    MediaReady,
    MessageReceived,
    Sticker,
    Video,
    connect,
)
from zapgate.client.media import http_base
from zapgate.errors import InvalidRequest, MediaNotFound, MediaNotReady, RateLimited

from . import media_kit as kit
from .conftest import fast_settings
from .support import RunningGateway, serve_gateway
from .test_cli import ECHO, cli, cli_env
from .test_client import next_event, pair

BOB = "+55 21 98888-0002"


def test_the_http_base_is_derived_from_the_websocket_url() -> None:
    assert http_base("ws://127.0.0.1:8787/v1/ws") == "http://127.0.0.1:8787"
    assert http_base("wss://gw.example.com/v1/ws") == "https://gw.example.com"
    assert http_base("wss://gw.example.com/zap/v1/ws?x=1") == "https://gw.example.com/zap"
    with pytest.raises(ValueError, match="ws://"):
        http_base("http://x/v1/ws")


async def test_the_sdk_sends_every_kind_and_downloads_what_arrives(gateway: RunningGateway, tmp_path: Path) -> None:
    token = await gateway.token()
    photo = tmp_path / "foto.png"
    photo.write_bytes(kit.png())
    files = {
        "image": (photo, Image),
        "video": (kit.mp4(), Video),
        "voice": (kit.ogg_opus(), Audio),
        "document": (kit.pdf(), Document),
        "sticker": (kit.webp(), Sticker),
    }
    async with connect(gateway.url, token) as gw:
        await pair(gw, "alice", "+55 11 99999-0001")
        await pair(gw, "bob", BOB)
        uploaded = await gw.upload(photo)
        assert (uploaded.filename, uploaded.mimetype, uploaded.width) == ("foto.png", "image/png", 64)
        for kind, (file, expected) in files.items():
            if kind == "image":
                sent = await gw.send_image("alice", BOB, file, caption="olha")
            elif kind == "video":
                sent = await gw.send_video("alice", BOB, file, caption="vídeo")
            elif kind == "voice":
                sent = await gw.send_audio("alice", BOB, file, voice=True)
            elif kind == "document":
                sent = await gw.send_document("alice", BOB, file, filename="nota.pdf", caption="segue")
            else:
                sent = await gw.send_sticker("alice", BOB, file)
            received = await next_event(gw, MessageReceived, lambda e, m=sent.message_id: e.data.message_id == m)
            content = received.data.content
            assert isinstance(content, expected), kind
            assert content.media.id is not None and content.media.status == "pending"
            ready = await next_event(gw, MediaReady, lambda e, i=content.media.id: e.data.media_id == i)
            data = file.read_bytes() if isinstance(file, Path) else file
            assert ready.data.sha256 == kit.sha(data)
            assert await gw.download(content.media.id) == data
            if kind == "document":
                assert isinstance(content, Document) and content.filename == "nota.pdf" and content.caption == "segue"
                saved = await gw.download_to(content.media.id, tmp_path / "saved.pdf")
                assert saved.read_bytes() == data and not (tmp_path / "saved.pdf.part").exists()
            if kind == "voice":
                assert isinstance(content, Audio) and content.voice

        info = await gw.media_info(uploaded.media_id)
        assert info.status == "ready" and info.origin == "upload"
        with pytest.raises(MediaNotFound):
            await gw.download("med_" + "z" * 24)
        with pytest.raises(MediaNotFound):
            await gw.download_to("med_" + "z" * 24, tmp_path / "none")
        assert not (tmp_path / "none").exists() and not (tmp_path / "none.part").exists()
        with pytest.raises(InvalidRequest, match="OGG/Opus"):
            await gw.send_audio("alice", BOB, kit.mp3(), voice=True)


async def test_sdk_failed_downloads_and_retry(gateway: RunningGateway) -> None:
    async with connect(gateway.url, await gateway.token()) as gw:
        await pair(gw, "alice", "+55 11 99999-0001")
        await pair(gw, "bob", BOB)
        assert await gw.sim_fail_downloads("bob", 1, "media_expired") == 1
        sent = await gw.send_image("alice", BOB, kit.png())
        failed = await next_event(gw, MediaFailed, lambda e: e.data.message_id == sent.message_id)
        assert failed.data.reason == "media_expired" and failed.data.retry_at is None
        with pytest.raises(MediaNotReady):
            await gw.download(failed.data.media_id)
        again = await gw.retry_media(failed.data.media_id)
        assert again.status in ("pending", "ready")
        await next_event(gw, MediaReady, lambda e: e.data.media_id == failed.data.media_id)


async def test_repeating_a_keyed_send_image_sends_once(gateway: RunningGateway) -> None:
    async with connect(gateway.url, await gateway.token()) as gw:
        await pair(gw, "alice", "+55 11 99999-0001")
        picture = kit.png(30, 30)
        first = await gw.send_image("alice", ECHO, picture, caption="pedido 7", idempotency_key="pedido-7")
        again = await gw.send_image("alice", ECHO, picture, caption="pedido 7", idempotency_key="pedido-7")
        assert first.message_id == again.message_id


@pytest.mark.slow
async def test_cli_sends_files_and_gets_them(gateway: RunningGateway, tmp_path: Path) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    document = tmp_path / "contrato.pdf"
    document.write_bytes(kit.pdf())
    photo = tmp_path / "foto.png"
    photo.write_bytes(kit.png())
    async with connect(gateway.url, token) as gw:
        await pair(gw, "alice", "+55 11 99999-0001")
        await pair(gw, "bob", BOB)

        sent = await cli("send", "alice", BOB, "--image", str(photo), "--caption", "do terminal", env=env)
        assert sent.code == 0, sent.err
        received = await next_event(gw, MessageReceived, lambda e: e.data.message_id == sent.out.strip())
        assert isinstance(received.data.content, Image) and received.data.content.caption == "do terminal"

        sent = await cli("send", "alice", BOB, "--file", str(document), "--filename", "c.pdf", env=env)
        assert sent.code == 0, sent.err
        received = await next_event(gw, MessageReceived, lambda e: e.data.message_id == sent.out.strip())
        content = received.data.content
        assert isinstance(content, Document) and content.filename == "c.pdf" and content.media.id is not None
        await next_event(gw, MediaReady, lambda e: e.data.media_id == content.media.id)

    out = tmp_path / "baixado.pdf"
    got = await cli("media", "get", content.media.id, "-o", str(out), env=env)
    assert got.code == 0, got.err
    assert out.read_bytes() == document.read_bytes()
    missing = await cli("media", "get", "med_" + "q" * 24, "-o", str(tmp_path / "x"), env=env)
    assert missing.code == 1 and "media_not_found" in missing.err
    uploaded = await cli("media", "upload", str(photo), env=env)
    assert uploaded.code == 0 and uploaded.out.startswith("med_") and "image/png" in uploaded.err
    wrong = await cli("send", "alice", BOB, "--image", str(tmp_path / "nope.png"), env=env)
    assert wrong.code == 2 and "no such file" in wrong.err
    mixed = await cli("send", "alice", BOB, "--image", str(photo), "--location", "1,2", env=env)
    assert mixed.code == 2 and "cannot be combined" in mixed.err


async def test_a_rate_limited_transfer_says_when_to_try_again(tmp_path: Path) -> None:
    # The gateway's REST rate is per token (docs/rest.md): the SDK's file transfers read its Retry-After.
    async with serve_gateway(fast_settings(tmp_path / "data", command_rate_per_s=0.5, command_burst=1)) as gateway:
        token = await gateway.token()
        async with connect(gateway.url, token) as gw:
            uploaded = await gw.upload(kit.png())
            with pytest.raises(RateLimited) as limited:
                await gw.download(uploaded.media_id)
            assert limited.value.retry_after is not None and limited.value.retry_after >= 1
