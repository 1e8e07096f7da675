"""The whatsapp adapter's history sync and contacts, fed real ``neonize.proto`` objects.

- A ``HistorySync`` blob (``waHistorySync``: conversations with ``WebMessageInfo`` messages, settings, push
  names) translated into :class:`HistoryBatch` events, directly and through neonize's own dispatch from a
  foreign thread, as Go delivers it.
- The gateway side stores history after any live event waiting (a live message is not held up).
- Number checks, profiles, pictures and the blocklist through a session runner's real neonize client, with
  WhatsApp's answers (real protobufs) from a stand-in for the Go library; the picture file is served over HTTP
  on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import EngineEvent, HistoryBatch, HistoryChat, MessageIn, PhoneCheck
from zapgate.engines.whatsapp import WhatsAppEngine, nz
from zapgate.engines.whatsapp.history import BATCH_MESSAGES, history_batches, mute_end
from zapgate.engines.whatsapp.policy import SendFailure
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef
from zapgate.jid import Jid
from zapgate.protocol.content import Image, Text

from .conftest import fast_settings
from .neonize_kit import FakeGo, RecordingHost, deliver_like_go, fake_store, jid, neonize_loop  # noqa: F401 - a fixture

N = nz.N
# Imported after nz, which imports neonize the quiet way (see nz.py).
H: Any = importlib.import_module("neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2")
V: Any = importlib.import_module("neonize.proto.waVnameCert.WAWebProtobufsVnameCert_pb2")
W: Any = importlib.import_module("neonize.proto.waWeb.WAWebProtobufsWeb_pb2")

ALICE = "5511999990000@s.whatsapp.net"
BOB = "5521988880002@s.whatsapp.net"
BOB_LID = "20123456789012@lid"
GROUP = "120363000000000001@g.us"
DEVICE = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_h.db")


def web_message(chat: str, msg_id: str, ts: int, body: Any, *, from_me: bool = False, participant: str = "") -> Any:
    key = nz.MessageKey(remoteJID=chat, fromMe=from_me, ID=msg_id, participant=participant)
    return H.HistorySyncMsg(
        message=W.WebMessageInfo(key=key, message=body, messageTimestamp=ts, pushName="" if from_me else "Bob")
    )


def conversation(chat: str, messages: list[Any], **settings: Any) -> Any:
    return H.Conversation(ID=chat, messages=messages, **settings)


def blob(conversations: list[Any], progress: int | None = 100, **extra: Any) -> Any:
    data = H.HistorySync(syncType=H.HistorySync.INITIAL_BOOTSTRAP, conversations=conversations, **extra)
    if progress is not None:
        data.progress = progress
    return data


def test_a_blob_becomes_batches_with_settings_on_the_last() -> None:
    hello = nz.WAMessage(conversation="olá")
    photo = nz.WAMessage(imageMessage=nz.E2E.ImageMessage(caption="foto", mimetype="image/jpeg"))
    data = blob(
        [
            conversation(
                BOB_LID,
                [
                    web_message(BOB_LID, "3A02", 1_795_000_100, photo),
                    web_message(BOB_LID, "3A01", 1_795_000_000, hello),
                ],
                pnJID=BOB,
                unreadCount=1,
                archived=True,
                pinned=1_795_000_200,
                muteEndTime=1_895_000_000_000,
                name="Bob",
            ),
            conversation(
                GROUP,
                [
                    web_message(GROUP, "3A03", 1_795_000_050, hello, participant=BOB),
                    web_message(GROUP, "3EB0MINE", 1_795_000_060, hello, from_me=True),
                    H.HistorySyncMsg(
                        message=W.WebMessageInfo(
                            key=nz.MessageKey(remoteJID=GROUP, ID="3A04"), messageTimestamp=1, messageStubType=1
                        )
                    ),
                ],
                unreadCount=0,
                muteEndTime=0xFFFFFFFFFFFFFFFF,
            ),
            conversation("status@broadcast", [web_message("status@broadcast", "3A05", 1, hello)]),
        ],
        pushnames=[H.Pushname(ID=BOB, pushname="Bob B")],
    )
    [batch] = history_batches(data)
    assert batch.final and batch.progress == 100
    assert [(m.message_id, m.chat, m.sender, m.from_me) for m in batch.messages] == [
        ("3A01", BOB, BOB, False),
        ("3A03", GROUP, BOB, False),
        ("3EB0MINE", GROUP, "", True),
        ("3A02", BOB, BOB, False),
    ]
    first, *_, last = batch.messages
    assert first.content == Text(text="olá") and first.sender_lid == BOB_LID and first.push_name == "Bob"
    assert isinstance(last.content, Image) and last.content.caption == "foto"
    assert batch.chats == [
        HistoryChat(chat=BOB, name="Bob", unread=1, archived=True, pinned=True, muted_until=1_895_000_000),
        HistoryChat(chat=GROUP, name=None, unread=0, archived=False, pinned=False, muted_until=-1),
    ]
    assert mute_end(0) == 0 and mute_end(1_900_000_000) == 1_900_000_000


def test_a_large_blob_is_cut_into_batches() -> None:
    hello = nz.WAMessage(conversation="olá")
    messages = [web_message(BOB, f"3A{n:06d}", 1_795_000_000 + n, hello) for n in range(1200)]
    batches = history_batches(blob([conversation(BOB, messages)], progress=40))
    assert [len(b.messages) for b in batches] == [BATCH_MESSAGES, BATCH_MESSAGES, 200]
    assert not any(b.final for b in batches) and batches[-1].chats[0].chat == BOB
    assert [m.timestamp for b in batches for m in b.messages] == sorted(1_795_000_000 + n for n in range(1200))
    assert history_batches(blob([])) == []


@pytest.mark.usefixtures("neonize_loop")
async def test_a_runner_reports_the_history_neonize_dispatches(tmp_path: Path) -> None:
    host = RecordingHost(tmp_path)
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "99887766:7@lid")
    runner = SessionRunner(host, "ses_h", DEVICE)
    client = runner._client()
    deliver_like_go(client, N.Connected(status=True))
    await host.next_event(1)
    data = blob([conversation(BOB, [web_message(BOB, "3A01", 1_795_000_000, nz.WAMessage(conversation="oi"))])])
    deliver_like_go(client, N.HistorySync(Data=data))
    batch = await host.next_event(2)
    assert isinstance(batch, HistoryBatch) and batch.final
    assert [m.message_id for m in batch.messages] == ["3A01"] and batch.chats[0].chat == BOB


async def test_the_gateway_stores_history_after_live_events(tmp_path: Path) -> None:
    engine = WhatsAppEngine(fast_settings(tmp_path / "data", engine="whatsapp"))
    delivered: list[EngineEvent] = []
    first_stored = asyncio.Event()
    release = asyncio.Event()

    async def sink(session_id: str, event: EngineEvent) -> None:
        delivered.append(event)
        if len(delivered) == 1:
            first_stored.set()
            await release.wait()  # the first batch is being stored while more arrives

    await engine.start(sink)
    try:
        live = MessageIn(message_id="3ALIVE", chat=BOB, sender=BOB, content=Text(text="now"), timestamp=2)
        batches = [HistoryBatch(messages=[], progress=p) for p in (10, 20, 30)]
        engine._from_worker("ses_x", batches[0])
        await first_stored.wait()
        engine._from_worker("ses_x", batches[1])
        engine._from_worker("ses_x", live)
        engine._from_worker("ses_x", batches[2])
        release.set()
        async with asyncio.timeout(10):
            while len(delivered) < 4:
                await asyncio.sleep(0.001)
        assert delivered == [batches[0], live, batches[1], batches[2]]
    finally:
        await engine.close()


# -- contacts through a runner's real neonize client


class ContactsGo(FakeGo):
    """:class:`FakeGo` that also answers profile, picture and blocklist calls as WhatsApp would."""

    def __init__(self, picture_url: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.picture_url = picture_url
        self.blocked: list[Any] = []
        self.picture_error = ""

    async def GetUserInfo(self, uuid: bytes, jids: bytes, size: int) -> bytes:
        asked = list(N.JIDArray.FromString(jids).JIDS)
        self.calls.append(("GetUserInfo", [nz.Jid2String(j) for j in asked]))
        details = V.VerifiedNameCertificate.Details
        users = [
            N.GetUserInfoSingleReturnFunction(
                JID=j,
                UserInfo=N.UserInfo(
                    VerifiedName=N.VerifiedName(Details=details(verifiedName="Bob's Bakery")),
                    Status="Fresh bread",
                    PictureID="1795000123",
                ),
            )
            for j in asked
        ]
        return N.GetUserInfoReturnFunction(UsersInfo=users).SerializePartialToString()

    async def GetProfilePicture(self, uuid: bytes, jid_bytes: bytes, size: int, extra: bytes, extra_size: int) -> bytes:
        self.calls.append(("GetProfilePicture", nz.Jid2String(N.JID.FromString(jid_bytes))))
        if self.picture_error:
            return N.GetProfilePictureReturnFunction(Error=self.picture_error).SerializePartialToString()
        picture = N.ProfilePictureInfo(URL=self.picture_url, ID="1795000123", Type="image", DirectPath="/p")
        return N.GetProfilePictureReturnFunction(Picture=picture).SerializePartialToString()

    async def UpdateBlocklist(self, uuid: bytes, jid_bytes: bytes, size: int, action: bytes) -> bytes:
        target = N.JID.FromString(jid_bytes)
        self.calls.append(("UpdateBlocklist", (nz.Jid2String(target), action.decode())))
        if action == b"block":
            self.blocked.append(target)
        else:
            self.blocked = [j for j in self.blocked if j.User != target.User]
        return N.GetBlocklistReturnFunction(Blocklist=N.Blocklist(DHash="h", JIDs=self.blocked)).SerializeToString()

    async def GetBlocklist(self, uuid: bytes) -> bytes:
        return N.GetBlocklistReturnFunction(Blocklist=N.Blocklist(DHash="h", JIDs=self.blocked)).SerializeToString()


@contextlib.contextmanager
def picture_server(body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pp.jpg"
    finally:
        server.shutdown()
        server.server_close()


def online(tmp_path: Path, go: FakeGo) -> SessionRunner:
    runner = SessionRunner(RecordingHost(tmp_path, go=go), "ses_c", DEVICE)
    runner._client()
    runner.online = True
    return runner


@pytest.fixture
def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0" + b"\x00" * 2000 + b"\xff\xd9"


async def test_numbers_profiles_pictures_and_the_blocklist(tmp_path: Path, jpeg: bytes) -> None:
    with picture_server(jpeg) as url:
        go = ContactsGo(
            picture_url=url,
            answers={
                "+5511988887777": (jid("551188887777"), True),
                "+5521988880002": (jid("20123456789012", "lid"), True),
                "+4420794600000": (jid("4420794600000"), False),
            },
            lids={"20123456789012": jid("5521988880002")},
        )
        runner = online(tmp_path, go)
        checks = await runner.accounts.check(["5511988887777", "5521988880002", "4420794600000"])
        assert checks == [
            PhoneCheck(phone="5511988887777", on_whatsapp=True, jid="551188887777@s.whatsapp.net"),
            PhoneCheck(phone="5521988880002", on_whatsapp=True, jid=BOB, lid=BOB_LID),
            PhoneCheck(phone="4420794600000", on_whatsapp=False),
        ]
        assert go.named("IsOnWhatsApp") == [["+5511988887777", "+5521988880002", "+4420794600000"]]

        runner.accounts.saw_push_name(BOB, "Bob")
        profile = await runner.accounts.info(BOB)
        assert (profile.jid, profile.push_name, profile.business_name, profile.about, profile.picture_id) == (
            BOB,
            "Bob",
            "Bob's Bakery",
            "Fresh bread",
            "1795000123",
        )
        into = tmp_path / "picture.part"
        assert await runner.accounts.picture(BOB, str(into)) == "1795000123"
        assert into.read_bytes() == jpeg
        go.picture_error = "info query returned status 404: item-not-found"
        assert await runner.accounts.picture(BOB, str(tmp_path / "none.part")) is None

        assert await runner.accounts.block(BOB, True) == [BOB]
        assert await runner.accounts.blocklist() == [BOB]
        assert await runner.accounts.block(BOB, False) == []
        assert go.named("UpdateBlocklist") == [(BOB, "block"), (BOB, "unblock")]


async def test_contacts_need_a_connected_session(tmp_path: Path) -> None:
    runner = SessionRunner(RecordingHost(tmp_path, go=ContactsGo()), "ses_c", DEVICE)
    with pytest.raises(SendFailure) as refused:
        await runner.accounts.check(["5511988887777"])
    assert refused.value.code == "not_connected" and refused.value.retryable


async def test_the_engine_says_why_it_cannot_archive(tmp_path: Path) -> None:
    engine = WhatsAppEngine(fast_settings(tmp_path / "data", engine="whatsapp"))
    from zapgate.engines.base import SendError

    with pytest.raises(SendError) as refused:
        await engine.set_chat("ses_x", Jid("5521988880002"), archived=True)
    assert refused.value.code == "unsupported" and "SendAppState" in refused.value.message
