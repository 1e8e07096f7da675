"""Every kind of message a session sends, through its real neonize client against
:class:`~tests.neonize_kit.FakeGo`: the ``waE2E.Message`` that reaches ``SendMessage`` field by field, the file
bytes that reach ``Upload``, the addresses a reaction, an edit, a revoke or a vote names, and the refusals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PillowImage

from zapgate.engines.base import MediaFile, MessageIn
from zapgate.engines.whatsapp import nz
from zapgate.engines.whatsapp.ipc import QuoteRef, Send, TargetRef
from zapgate.engines.whatsapp.media import ogg_opus_seconds
from zapgate.engines.whatsapp.polls import PollRecord
from zapgate.engines.whatsapp.session import SendFailure, SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef
from zapgate.protocol import Me
from zapgate.protocol.content import (
    Audio,
    ContactCard,
    Contacts,
    Content,
    Document,
    Edit,
    Image,
    Location,
    Media,
    Poll,
    Reaction,
    Revoke,
    Sticker,
    Text,
    Unsupported,
    Video,
    Vote,
)

from .neonize_kit import (
    ALICE,
    GROUP,
    FakeGo,
    RecordingHost,
    deliver_like_go,
    group_info_ev,
    jid,
    message_ev,
    neonize_loop,  # noqa: F401 - a fixture
    source,
    text,
)

N = nz.N
E2E = nz.E2E
DEVICE = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_s.db")
ME = Me(phone="5511911112222", jid=DEVICE.jid, lid="99887766@lid")
BOB = "5521988880002@s.whatsapp.net"
GROUP_JID = "120363000000000000@g.us"
UPLOADED = {
    "URL": "https://mmg.whatsapp.net/v/t62.7118-24/upload.enc",
    "directPath": "/v/t62.7118-24/upload.enc",
    "mediaKey": b"k" * 32,
    "fileEncSHA256": b"e" * 32,
    "fileSHA256": b"s" * 32,
}


def online(tmp_path: Path, go: FakeGo) -> SessionRunner:
    runner = SessionRunner(RecordingHost(tmp_path, go=go), "ses_s", DEVICE)
    runner._client()
    runner.online = True
    runner.me = ME
    return runner


async def send(runner: SessionRunner, to: str, content: Content, **extra: Any) -> tuple[str, int, str | None]:
    return await runner.send(Send(id=0, session_id="ses_s", to=to, content=content, **extra))


def stored(tmp_path: Path, name: str, data: bytes, mimetype: str) -> MediaFile:
    path = tmp_path / name
    path.write_bytes(data)
    return MediaFile(
        path=str(path), mimetype=mimetype, size=len(data), sha256=hashlib.sha256(data).hexdigest(), filename=name
    )


def upload_ref() -> Media:
    return Media(id="med_0123456789ab")


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    PillowImage.new("RGB", (width, height), "orange").save(out, format="PNG")
    return out.getvalue()


def ogg_page(granule: int, payload: bytes, header_type: int = 0) -> bytes:
    return b"OggS" + struct.pack("<BBqIII", 0, header_type, granule, 1, 0, 0) + bytes([1, len(payload)]) + payload


def ogg_opus(seconds: float, pre_skip: int = 312) -> bytes:
    """A minimal Ogg/Opus stream: the OpusHead page, a tags page and a last page at ``seconds``."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    return (
        ogg_page(0, head, header_type=2)
        + ogg_page(0, b"OpusTags" + bytes(8))
        + ogg_page(pre_skip + int(seconds * 48000), b"\x00" * 40, header_type=4)
    )


def fields(message: Any) -> list[str]:
    return [descriptor.name for descriptor, _ in message.ListFields()]


# -- texts, locations, contacts, polls


async def test_a_plain_text_is_a_conversation_and_one_with_context_an_extended_text(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    await send(runner, BOB, Text(text="olá"))
    assert fields(go.sent[-1][1]) == ["conversation"]
    quote = QuoteRef(message_id="3A01", participant=BOB, text="pergunta")
    await send(runner, BOB, Text(text="oi @5511977776666"), quote=quote, mentions=["5511977776666@s.whatsapp.net"])
    ext = go.sent[-1][1].extendedTextMessage
    assert ext.text == "oi @5511977776666"
    assert list(ext.contextInfo.mentionedJID) == ["5511977776666@s.whatsapp.net"]
    assert (ext.contextInfo.stanzaID, ext.contextInfo.participant) == ("3A01", BOB)
    assert ext.contextInfo.quotedMessage.conversation == "pergunta"
    assert not ext.contextInfo.isForwarded
    await send(runner, BOB, Text(text="repassando"), forwarded=True)
    context = go.sent[-1][1].extendedTextMessage.contextInfo
    assert context.isForwarded and context.forwardingScore == 1


async def test_location_contacts_and_a_poll(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    await send(runner, BOB, Location(latitude=-23.5613, longitude=-46.6565, name="MASP", address="Av. Paulista, 1578"))
    pin = go.sent[-1][1].locationMessage
    assert (pin.degreesLatitude, pin.degreesLongitude, pin.name, pin.address) == (
        -23.5613,
        -46.6565,
        "MASP",
        "Av. Paulista, 1578",
    )

    await send(runner, BOB, Contacts(contacts=[ContactCard(name="Carla; Silva", phones=["+5511988887777"])]))
    card = go.sent[-1][1].contactMessage
    assert card.displayName == "Carla; Silva"
    assert card.vcard.splitlines() == [
        "BEGIN:VCARD",
        "VERSION:3.0",
        "FN:Carla\\; Silva",
        "N:;Carla\\; Silva;;;",
        "item1.TEL;waid=5511988887777:+55 11 98888-7777",
        "item1.X-ABLabel:Mobile",
        "END:VCARD",
    ]
    given = "BEGIN:VCARD\nVERSION:3.0\nFN:Davi\nTEL;waid=5521977776666:+55 21 97777-6666\nEND:VCARD"
    await send(
        runner, BOB, Contacts(contacts=[ContactCard(vcard=given), ContactCard(name="Eva", phones=["+15550001"])])
    )
    array = go.sent[-1][1].contactsArrayMessage
    assert array.displayName == "2 contacts"
    assert [(c.displayName, c.vcard == given) for c in array.contacts] == [("Davi", True), ("Eva", False)]

    wa_id, _, _ = await send(runner, BOB, Poll(question="Pizza?", options=["sim", "não"], selectable=1))
    message = go.sent[-1][1]
    poll = message.pollCreationMessage
    assert (poll.name, [o.optionName for o in poll.options], poll.selectableOptionsCount) == (
        "Pizza?",
        ["sim", "não"],
        1,
    )
    assert len(message.messageContextInfo.messageSecret) == 32  # whatsmeow stores it; votes are encrypted with it
    remembered = await runner.polls.find("ses_s", wa_id)
    assert remembered == PollRecord(
        poll_id=wa_id,
        chat=BOB,
        sender="5511911112222@s.whatsapp.net",
        from_me=True,
        options=("sim", "não"),
        selectable=1,
    )


# -- media


async def test_an_image_is_uploaded_with_its_bytes_and_sent_with_size_thumbnail_and_caption(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    data = png(640, 480)
    file = stored(tmp_path, "foto.png", data, "image/png")
    quote = QuoteRef(message_id="3A01", participant=BOB, text="manda a foto")
    await send(runner, BOB, Image(media=upload_ref(), caption="aqui", view_once=True), media=file, quote=quote)
    assert go.uploads == [(data, nz.MediaType.MediaImage.value)]
    image = go.sent[-1][1].imageMessage
    for name, value in UPLOADED.items():
        assert getattr(image, name) == value
    assert (image.fileLength, image.mimetype, image.caption, image.viewOnce) == (len(data), "image/png", "aqui", True)
    assert (image.width, image.height) == (640, 480)
    with PillowImage.open(io.BytesIO(image.JPEGThumbnail)) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 96
    assert image.contextInfo.stanzaID == "3A01"


async def test_video_document_and_audio_are_sent_as_given_without_ffmpeg(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    video = stored(tmp_path, "clip.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video/mp4")
    await send(runner, BOB, Video(media=upload_ref(), caption="olha", seconds=12, gif=True), media=video)
    sent = go.sent[-1][1].videoMessage
    assert (sent.mimetype, sent.caption, sent.seconds, sent.gifPlayback, sent.JPEGThumbnail) == (
        "video/mp4",
        "olha",
        12,
        True,
        b"",
    )
    assert go.uploads[-1][1] == nz.MediaType.MediaVideo.value

    pdf = stored(tmp_path, "contrato.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")
    await send(runner, BOB, Document(media=upload_ref(), caption="assine", pages=3), media=pdf)
    doc = go.sent[-1][1].documentMessage
    assert (doc.fileName, doc.title, doc.caption, doc.pageCount, doc.mimetype) == (
        "contrato.pdf",
        "contrato.pdf",
        "assine",
        3,
        "application/pdf",
    )
    assert go.uploads[-1] == (b"%PDF-1.4\n%%EOF\n", nz.MediaType.MediaDocument.value)

    mp3 = stored(tmp_path, "musica.mp3", b"ID3" + bytes(200), "audio/mpeg")
    await send(runner, BOB, Audio(media=upload_ref(), seconds=95), media=mp3)
    audio = go.sent[-1][1].audioMessage
    assert (audio.mimetype, audio.seconds, audio.PTT) == ("audio/mpeg", 95, False)
    assert go.uploads[-1][1] == nz.MediaType.MediaAudio.value


async def test_a_voice_note_in_ogg_opus_gets_its_duration_and_waveform(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    voice = stored(tmp_path, "nota.ogg", ogg_opus(3.4), "audio/ogg")
    waveform = bytes(range(0, 128, 2))
    await send(
        runner, BOB, Audio(media=upload_ref(), voice=True, waveform=base64.b64encode(waveform).decode()), media=voice
    )
    audio = go.sent[-1][1].audioMessage
    assert (audio.mimetype, audio.PTT, audio.seconds, audio.waveform) == ("audio/ogg; codecs=opus", True, 3, waveform)


def test_ogg_opus_durations() -> None:
    assert ogg_opus_seconds(ogg_opus(3.4)) == pytest.approx(3.4, abs=0.001)
    assert ogg_opus_seconds(ogg_opus(0.0)) == 0.0
    assert ogg_opus_seconds(b"ID3" + bytes(100)) is None  # not Ogg
    assert ogg_opus_seconds(ogg_page(0, b"\x01vorbis" + bytes(20), header_type=2)) is None  # Ogg, not Opus


async def test_stickers_are_webp_and_still_images_are_converted(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    out = io.BytesIO()
    PillowImage.new("RGBA", (512, 512), (0, 0, 0, 0)).save(out, format="WEBP")
    webp = stored(tmp_path, "s.webp", out.getvalue(), "image/webp")
    await send(runner, BOB, Sticker(media=upload_ref()), media=webp)
    assert go.uploads[-1] == (out.getvalue(), nz.MediaType.MediaImage.value)
    sticker = go.sent[-1][1].stickerMessage
    assert (sticker.mimetype, sticker.width, sticker.height, sticker.isAnimated) == ("image/webp", 512, 512, False)

    await send(runner, BOB, Sticker(media=upload_ref()), media=stored(tmp_path, "s.png", png(300, 150), "image/png"))
    converted, _ = go.uploads[-1]
    assert converted[:4] == b"RIFF" and converted[8:12] == b"WEBP"
    with PillowImage.open(io.BytesIO(converted)) as picture:
        assert picture.size == (512, 512)
    assert go.sent[-1][1].stickerMessage.mimetype == "image/webp"

    gif = stored(tmp_path, "a.gif", b"GIF89a" + bytes(40), "image/gif")
    with pytest.raises(SendFailure) as refused:
        await send(runner, BOB, Sticker(media=upload_ref(), animated=True), media=gif)
    assert (refused.value.code, refused.value.retryable) == ("media_unsupported", False)


async def test_media_that_cannot_be_sent(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    image = Image(media=upload_ref())
    with pytest.raises(SendFailure) as missing:
        await send(runner, BOB, image)  # no file given
    assert (missing.value.code, missing.value.retryable) == ("media_missing", False)
    file = stored(tmp_path, "x.png", png(10, 10), "image/png")
    Path(file.path).write_bytes(png(11, 11))  # changed on disk since it was stored
    with pytest.raises(SendFailure) as corrupt:
        await send(runner, BOB, image, media=file)
    assert corrupt.value.code == "media_corrupt"
    Path(file.path).unlink()
    with pytest.raises(SendFailure) as gone:
        await send(runner, BOB, image, media=file)
    assert (gone.value.code, gone.value.retryable) == ("media_missing", False)
    go.upload_error = "failed to refresh media connections: failed to query media connections: info query timed out"
    with pytest.raises(SendFailure) as offline:
        await send(runner, BOB, image, media=stored(tmp_path, "y.png", png(10, 10), "image/png"))
    assert (offline.value.code, offline.value.retryable) == ("upload_failed", True)
    go.upload_error = "upload failed with status code 413"
    with pytest.raises(SendFailure) as refused:
        await send(runner, BOB, image, media=stored(tmp_path, "z.png", png(10, 10), "image/png"))
    assert (refused.value.code, refused.value.retryable) == ("upload_refused", False)
    assert go.sent == []  # nothing reached WhatsApp
    with pytest.raises(SendFailure) as unsupported:
        await send(runner, BOB, Unsupported(type="buttonsMessage"))
    assert unsupported.value.code == "unsupported_content"


# -- reactions, edits, revokes


@pytest.mark.usefixtures("neonize_loop")
async def test_a_reaction_names_its_target_as_whatsapp_addressed_it(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    author = jid("111222333444", "lid", device=3)
    deliver_like_go(runner.client, message_ev(text("bom dia"), source(GROUP, author, sender_alt=ALICE), msg_id="3A09"))
    events = runner.host.events  # type: ignore[attr-defined]
    await wait_until(lambda: any(isinstance(e, MessageIn) for e in events))
    # The gateway knows the author by phone number; WhatsApp addressed the message with the LID.
    target = TargetRef(message_id="3A09", from_me=False, participant="5511999990000@s.whatsapp.net")
    await send(runner, GROUP_JID, Reaction(message_id="3A09", emoji="👍"), target=target)
    reaction = go.sent[-1][1].reactionMessage
    assert reaction.text == "👍" and reaction.senderTimestampMS > 0
    assert (reaction.key.remoteJID, reaction.key.fromMe, reaction.key.ID, reaction.key.participant) == (
        GROUP_JID,
        False,
        "3A09",
        "111222333444@lid",
    )
    await send(runner, BOB, Reaction(message_id="3EB0X", emoji=""), target=TargetRef(message_id="3EB0X", from_me=True))
    key = go.sent[-1][1].reactionMessage.key
    assert (key.remoteJID, key.fromMe, key.ID, key.participant) == (BOB, True, "3EB0X", "")
    assert go.sent[-1][1].reactionMessage.text == ""  # removes the reaction


async def test_an_edit_and_a_revoke_of_the_sessions_own_message(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    ours = TargetRef(message_id="3EB0OURS", from_me=True)
    await send(runner, BOB, Edit(message_id="3EB0GATEWAY", text="reunião às 11h"), target=ours)
    protocol = go.sent[-1][1].editedMessage.message.protocolMessage
    assert protocol.type == nz.E2E.ProtocolMessage.MESSAGE_EDIT
    assert (protocol.key.remoteJID, protocol.key.fromMe, protocol.key.ID) == (BOB, True, "3EB0OURS")
    assert protocol.editedMessage.conversation == "reunião às 11h"

    await send(runner, BOB, Revoke(message_id="3EB0GATEWAY"), target=ours)
    revoke = go.sent[-1][1].protocolMessage
    assert revoke.type == nz.E2E.ProtocolMessage.REVOKE
    assert (revoke.key.remoteJID, revoke.key.fromMe, revoke.key.ID, revoke.key.participant) == (
        BOB,
        True,
        "3EB0OURS",
        "",
    )

    theirs = TargetRef(message_id="3A07", from_me=False, participant="5511999990000@s.whatsapp.net")
    await send(runner, GROUP_JID, Revoke(message_id="3A07"), target=theirs)  # a group admin deletes a member's
    revoke = go.sent[-1][1].protocolMessage
    assert (revoke.key.remoteJID, revoke.key.fromMe, revoke.key.participant) == (
        GROUP_JID,
        False,
        "5511999990000@s.whatsapp.net",
    )
    with pytest.raises(SendFailure) as refused:
        await send(runner, BOB, Edit(message_id="3A07", text="x"), target=theirs)
    assert refused.value.code == "edit_refused"
    with pytest.raises(SendFailure) as no_target:
        await send(runner, BOB, Reaction(message_id="3A07", emoji="👍"))
    assert no_target.value.code == "target_unknown"


# -- votes


async def test_a_vote_is_built_by_whatsmeow_for_the_remembered_poll(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    poll = PollRecord(
        poll_id="3A0POLL",
        chat="111222333444@lid",
        sender="111222333444@lid",
        from_me=False,
        options=("sim", "não", "talvez"),
        selectable=2,
    )
    runner.polls.remember("ses_s", poll)
    target = TargetRef(message_id="3A0POLL", from_me=False, participant=BOB)
    await send(runner, BOB, Vote(message_id="3A0POLL", options=["talvez", "sim"]), target=target)
    info, names = go.vote_builds[-1]
    assert (nz.Jid2String(info.MessageSource.Chat), nz.Jid2String(info.MessageSource.Sender)) == (
        poll.chat,
        poll.sender,
    )
    assert (info.ID, info.MessageSource.IsFromMe, info.MessageSource.IsGroup) == ("3A0POLL", False, False)
    assert names == ["sim", "talvez"]  # in the poll's order
    update = go.sent[-1][1].pollUpdateMessage
    assert update.pollCreationMessageKey.ID == "3A0POLL"

    for options, code in ((["talvez", "sim", "não"], "vote_refused"), (["pizza"], "vote_refused")):
        with pytest.raises(SendFailure) as refused:
            await send(runner, BOB, Vote(message_id="3A0POLL", options=options), target=target)
        assert (refused.value.code, refused.value.retryable) == (code, False)
    unknown = TargetRef(message_id="3A0OTHER", from_me=False)
    with pytest.raises(SendFailure) as never_seen:
        await send(runner, BOB, Vote(message_id="3A0OTHER", options=["sim"]), target=unknown)
    assert (never_seen.value.code, never_seen.value.retryable) == ("poll_unknown", False)
    await send(runner, BOB, Vote(message_id="3A0POLL", options=[]), target=target)  # withdraws the vote
    assert go.vote_builds[-1][1] == []


# -- mentions of everyone


@pytest.mark.usefixtures("neonize_loop")
async def test_mentioning_all_mentions_every_member_but_the_session(tmp_path: Path) -> None:
    go = FakeGo()
    go.groups[GROUP_JID] = [jid("5511911112222"), jid("5511999990000"), jid("111222333444", "lid")]
    runner = online(tmp_path, go)
    await send(runner, GROUP_JID, Text(text="atenção, pessoal"), mentions=["all", "5521988880002@s.whatsapp.net"])
    mentioned = list(go.sent[-1][1].extendedTextMessage.contextInfo.mentionedJID)
    assert mentioned == ["5521988880002@s.whatsapp.net", "5511999990000@s.whatsapp.net", "111222333444@lid"]
    # The members are cached: the next "all" asks WhatsApp nothing, until WhatsApp reports a change.
    await send(runner, GROUP_JID, Text(text="outra vez"), mentions=["all"])
    assert go.named("GetGroupInfo") == [GROUP_JID]
    deliver_like_go(runner.client, group_info_ev(GROUP_JID, Leave=[jid("5511999990000")], Sender=jid("5511999990000")))
    await wait_until(lambda: runner.groups.cache.get(GROUP_JID) is None)
    go.group_error = "info query returned status 403: forbidden"
    with pytest.raises(SendFailure) as refused:
        await send(runner, GROUP_JID, Text(text="de novo"), mentions=["all"])
    assert (refused.value.code, refused.value.retryable) == ("group_unavailable", False)
    go.group_error = "info query timed out"
    with pytest.raises(SendFailure) as later:
        await send(runner, GROUP_JID, Text(text="de novo"), mentions=["all"])
    assert (later.value.code, later.value.retryable) == ("group_unavailable", True)


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)
