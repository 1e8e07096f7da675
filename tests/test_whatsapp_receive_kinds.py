"""What a session receives beyond messages, and asks for, through its real neonize client and neonize's own
dispatch against :class:`~tests.neonize_kit.FakeGo`: poll votes named from the remembered poll (in order with
the messages around them), downloads of received files, and presence both ways."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import Connected, IdentityIn, IdentityPair, MessageIn, PresenceIn
from zapgate.engines.whatsapp import nz, presence, translate
from zapgate.engines.whatsapp.polls import PollBook, PollRecord
from zapgate.engines.whatsapp.session import SendFailure, SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef
from zapgate.protocol import Me
from zapgate.protocol.content import Image, Poll, Text, Unsupported, Vote

from .neonize_kit import (
    ALICE,
    ALICE_LID,
    GROUP,
    NOW_MS,
    FakeGo,
    RecordingHost,
    deliver_like_go,
    fake_store,
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
ALICE_JID = "5511999990000@s.whatsapp.net"


def online(tmp_path: Path, go: FakeGo, polls: PollBook | None = None) -> SessionRunner:
    host = RecordingHost(tmp_path, go=go)
    if polls is not None:
        host.polls = polls
    runner = SessionRunner(host, "ses_s", DEVICE)
    runner._client()
    runner.online = True
    runner.me = ME
    return runner


def events(runner: SessionRunner) -> list[Any]:
    return runner.host.events  # type: ignore[attr-defined,no-any-return]


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


def poll_message(question: str, options: list[str], selectable: int = 1) -> Any:
    creation = E2E.PollCreationMessage(
        name=question,
        options=[E2E.PollCreationMessage.Option(optionName=o) for o in options],
        selectableOptionsCount=selectable,
    )
    return nz.WAMessage(
        pollCreationMessageV3=creation, messageContextInfo=E2E.MessageContextInfo(messageSecret=b"x" * 32)
    )


def vote_message(poll_id: str, chosen: list[str], *, poll_chat: str, from_me: bool = False) -> Any:
    """A vote as WhatsApp delivers it (here with a plain payload: FakeGo's DecryptPollVote reads it back)."""
    plain = E2E.PollVoteMessage(selectedOptions=[hashlib.sha256(n.encode()).digest() for n in chosen])
    key = nz.MessageKey(remoteJID=poll_chat, fromMe=from_me, ID=poll_id)
    update = E2E.PollUpdateMessage(
        pollCreationMessageKey=key,
        vote=E2E.PollEncValue(encPayload=plain.SerializeToString(), encIV=b"i" * 12),
        senderTimestampMS=NOW_MS,
    )
    return nz.WAMessage(pollUpdateMessage=update)


# -- poll votes


@pytest.mark.usefixtures("neonize_loop")
async def test_a_vote_in_a_received_poll_arrives_with_the_option_names(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    chat = source(ALICE_LID, ALICE_LID, sender_alt=ALICE)
    deliver_like_go(runner.client, message_ev(poll_message("Pizza?", ["sim", "não", "talvez"], 2), chat, msg_id="3A0P"))
    await wait_until(lambda: len(events(runner)) == 1)
    assert events(runner)[0].content == Poll(question="Pizza?", options=["sim", "não", "talvez"], selectable=2)
    # The poll is remembered as WhatsApp addressed it: in the @lid chat, by the @lid author.
    assert await runner.polls.find("ses_s", "3A0P") == PollRecord(
        poll_id="3A0P",
        chat="123456789012345@lid",
        sender="123456789012345@lid",
        from_me=False,
        options=("sim", "não", "talvez"),
        selectable=2,
    )
    vote = vote_message("3A0P", ["talvez", "sim"], poll_chat="123456789012345@lid")
    deliver_like_go(runner.client, message_ev(vote, chat, msg_id="3A0V"))
    await wait_until(lambda: len(events(runner)) == 2)
    voted = events(runner)[1]
    assert isinstance(voted, MessageIn) and voted.content == Vote(message_id="3A0P", options=["sim", "talvez"])
    assert (voted.message_id, voted.chat, voted.sender) == ("3A0V", ALICE_JID, ALICE_JID)


@pytest.mark.usefixtures("neonize_loop")
async def test_a_vote_in_a_poll_the_session_sent_is_named_too(tmp_path: Path) -> None:
    from zapgate.engines.whatsapp.ipc import Send

    go = FakeGo()
    runner = online(tmp_path, go)
    wa_id, _, _ = await runner.send(
        Send(id=0, session_id="ses_s", to=ALICE_JID, content=Poll(question="Hoje?", options=["sim", "não"]))
    )
    vote = vote_message(wa_id, ["não"], poll_chat="5511911112222@s.whatsapp.net")
    deliver_like_go(runner.client, message_ev(vote, source(ALICE, ALICE), msg_id="3A0V"))
    await wait_until(lambda: len(events(runner)) == 1)
    assert events(runner)[0].content == Vote(message_id=wa_id, options=["não"])


@pytest.mark.usefixtures("neonize_loop")
async def test_votes_that_cannot_be_read_arrive_unsupported_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "zapgate.engines.whatsapp")
    go = FakeGo()
    runner = online(tmp_path, go)
    chat = source(ALICE, ALICE)
    deliver_like_go(
        runner.client, message_ev(vote_message("3A0NEVER", ["sim"], poll_chat=ALICE_JID), chat, msg_id="3A1")
    )
    await wait_until(lambda: len(events(runner)) == 1)
    assert events(runner)[0].content == Unsupported(type="pollUpdateMessage")
    assert "poll 3A0NEVER, which this session does not know" in caplog.text

    deliver_like_go(runner.client, message_ev(poll_message("Q?", ["a", "b"]), chat, msg_id="3A0KNOWN"))
    go.decrypt_error = "failed to decrypt poll vote: original message secret key not found"
    deliver_like_go(runner.client, message_ev(vote_message("3A0KNOWN", ["a"], poll_chat=ALICE_JID), chat, msg_id="3A2"))
    await wait_until(lambda: len(events(runner)) == 3)
    assert events(runner)[2].content == Unsupported(type="pollUpdateMessage")
    assert "could not be decrypted: failed to decrypt poll vote" in caplog.text


@pytest.mark.usefixtures("neonize_loop")
async def test_messages_after_a_vote_wait_for_it(tmp_path: Path) -> None:
    go = FakeGo()
    go.decrypt_gate = asyncio.Event()
    runner = online(tmp_path, go)
    chat = source(ALICE, ALICE)
    deliver_like_go(runner.client, message_ev(poll_message("Q?", ["a", "b"]), chat, msg_id="3A0P"))
    deliver_like_go(runner.client, message_ev(vote_message("3A0P", ["b"], poll_chat=ALICE_JID), chat, msg_id="3A1"))
    deliver_like_go(runner.client, message_ev(text("depois do voto"), chat, msg_id="3A2"))
    deliver_like_go(runner.client, message_ev(poll_message("E agora?", ["x", "y"]), chat, msg_id="3A0Q"))
    deliver_like_go(runner.client, message_ev(vote_message("3A0Q", ["y"], poll_chat=ALICE_JID), chat, msg_id="3A4"))
    await asyncio.sleep(0.05)
    assert [e.message_id for e in events(runner)] == ["3A0P"]  # the vote is being decrypted: the rest waits
    go.decrypt_gate.set()
    await wait_until(lambda: len(events(runner)) == 5)
    assert [e.message_id for e in events(runner)] == ["3A0P", "3A1", "3A2", "3A0Q", "3A4"]
    assert events(runner)[1].content == Vote(message_id="3A0P", options=["b"])
    # The second poll arrived while the first vote waited: it is known by the time its own vote is read.
    assert events(runner)[4].content == Vote(message_id="3A0Q", options=["y"])


async def test_the_poll_book_persists_and_forgets(tmp_path: Path) -> None:
    path = tmp_path / "whatsapp" / "polls.db"
    poll = PollRecord(
        poll_id="3A0P",
        chat="1@s.whatsapp.net",
        sender="1@s.whatsapp.net",
        from_me=False,
        options=("a", "b"),
        selectable=0,
    )
    book = PollBook(path)
    await book.open()
    book.remember("ses_s", poll)
    await book.close()
    again = PollBook(path)  # another worker, or the same after a restart
    await again.open()
    assert await again.find("ses_s", "3A0P") == poll
    assert await again.find("ses_other", "3A0P") is None
    await again.forget("ses_s")
    assert await again.find("ses_s", "3A0P") is None
    await again.close()
    broken = PollBook(tmp_path / "not-a-dir.db" / "polls.db")
    (tmp_path / "not-a-dir.db").write_text("a file where a directory should be")
    await broken.open()  # logged; works from memory
    broken.remember("ses_s", poll)
    assert await broken.find("ses_s", "3A0P") == poll
    await broken.close()


# -- downloads


def image_ref() -> dict[str, Any]:
    image = E2E.ImageMessage(
        URL="https://mmg.whatsapp.net/o1/v/t62.7118-24/f1.enc",
        directPath="/o1/v/t62.7118-24/f1.enc",
        mediaKey=b"K" * 32,
        fileEncSHA256=b"E" * 32,
        fileSHA256=b"S" * 32,
        fileLength=11,
        mimetype="image/jpeg",
        caption="olha",
    )
    received = translate.message_in(message_ev(nz.WAMessage(imageMessage=image), source(ALICE, ALICE)))
    assert received is not None and isinstance(received.content, Image) and received.media_ref is not None
    return received.media_ref


async def test_a_received_file_is_downloaded_with_its_keys_into_the_given_path(tmp_path: Path) -> None:
    go = FakeGo()
    go.download_bytes = b"\xff\xd8\xff jpeg!"
    runner = online(tmp_path, go)
    into = tmp_path / "incoming.part"
    await runner.download(image_ref(), str(into))
    assert into.read_bytes() == b"\xff\xd8\xff jpeg!"
    (asked,) = go.downloads
    image = asked.imageMessage
    assert (image.directPath, image.mediaKey, image.fileEncSHA256, image.fileSHA256, image.fileLength) == (
        "/o1/v/t62.7118-24/f1.enc",
        b"K" * 32,
        b"E" * 32,
        b"S" * 32,
        11,
    )


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        ("failed to download media from last host: download failed with status code 410", "media_expired", False),
        ("download failed with status code 404", "media_expired", False),
        ("download failed with status code 403", "media_expired", False),
        ("invalid media hmac", "media_invalid", False),
        ("hash of media plaintext doesn't match", "media_invalid", False),
        ("failed to refresh media connections: websocket not connected", "not_connected", True),
        ("download failed with status code 503", "download_failed", True),
        ('Get "https://mmg.whatsapp.net/x": dial tcp: i/o timeout', "download_failed", True),
    ],
)
async def test_download_failures_say_whether_a_retry_can_help(
    tmp_path: Path, error: str, code: str, retryable: bool
) -> None:
    go = FakeGo()
    go.download_error = error
    runner = online(tmp_path, go)
    into = tmp_path / "incoming.part"
    with pytest.raises(SendFailure) as failed:
        await runner.download(image_ref(), str(into))
    assert (failed.value.code, failed.value.retryable) == (code, retryable)
    assert not into.exists()


async def test_bad_media_references_and_an_offline_session(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    for ref, code in (
        ({**image_ref(), "media_type": "hologram"}, "media_invalid"),
        ({**image_ref(), "media_key": "not base64!"}, "media_invalid"),
        ({**image_ref(), "direct_path": "", "url": ""}, "media_invalid"),
        ({**image_ref(), "file_length": 10**10}, "media_too_large"),
    ):
        with pytest.raises(SendFailure) as refused:
            await runner.download(ref, str(tmp_path / "x"))
        assert (refused.value.code, refused.value.retryable) == (code, False)
    assert go.downloads == []
    runner.online = False
    with pytest.raises(SendFailure) as offline:
        await runner.download(image_ref(), str(tmp_path / "x"))
    assert (offline.value.code, offline.value.retryable) == ("not_connected", True)


# -- presence


async def test_typing_recording_online_and_subscriptions_go_to_whatsmeow(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    await runner.chat_presence(ALICE_JID, "typing")
    await runner.chat_presence(ALICE_JID, "recording")
    await runner.chat_presence("120363000000000000@g.us", "paused")
    composing, paused = nz.ChatPresence.CHAT_PRESENCE_COMPOSING.value, nz.ChatPresence.CHAT_PRESENCE_PAUSED.value
    text_media, audio = (
        nz.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT.value,
        nz.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO.value,
    )
    assert go.named("SendChatPresence") == [
        (ALICE_JID, composing, text_media),
        (ALICE_JID, composing, audio),
        ("120363000000000000@g.us", paused, text_media),
    ]
    await runner.set_presence("unavailable")
    await runner.subscribe_presence(ALICE_JID)
    assert go.named("SendPresence") == ["unavailable"]
    assert go.named("SubscribePresence") == [ALICE_JID]
    runner.online = False
    with pytest.raises(SendFailure) as offline:
        await runner.chat_presence(ALICE_JID, "typing")
    assert (offline.value.code, offline.value.retryable) == ("not_connected", True)


@pytest.mark.usefixtures("neonize_loop")
async def test_after_connecting_the_chosen_presence_is_announced_and_subscriptions_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "ANNOUNCE_RETRIES_S", (0.0, 0.01))
    go = FakeGo()
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(RecordingHost(tmp_path, go=go), "ses_s", DEVICE)
    client = runner._client()
    runner.online = True
    await runner.set_presence("unavailable")
    await runner.subscribe_presence(ALICE_JID)
    await runner.subscribe_presence("5521988880002@s.whatsapp.net")
    runner.online = False
    deliver_like_go(client, N.Connected(status=True))  # a reconnect
    await wait_until(lambda: len(go.named("SubscribePresence")) == 4)
    assert go.named("SendPresence") == ["unavailable", "unavailable"]  # the choice survives the reconnect
    assert go.named("SubscribePresence")[2:] == [ALICE_JID, "5521988880002@s.whatsapp.net"]
    assert any(isinstance(e, Connected) for e in events(runner))


@pytest.mark.usefixtures("neonize_loop")
async def test_presence_goes_where_messages_go_and_comes_back_named_as_subscribed(tmp_path: Path) -> None:
    lid = jid("111222333444", "lid")
    go = FakeGo(answers={"+5511988887777": (lid, True)}, lids={"111222333444": jid("551188887777")})
    runner = online(tmp_path, go)
    typed = "5511988887777@s.whatsapp.net"  # with the ninth digit; WhatsApp knows the account by its LID
    await runner.subscribe_presence(typed)
    await runner.chat_presence(typed, "typing")
    assert go.named("SubscribePresence") == ["111222333444@lid"]
    assert go.named("SendChatPresence")[0][0] == "111222333444@lid"
    deliver_like_go(runner.client, N.Presence(From=lid, Unavailable=False, LastSeen=0))
    await wait_until(lambda: any(isinstance(e, PresenceIn) for e in events(runner)))
    canonical = "551188887777@s.whatsapp.net"
    assert events(runner) == [
        IdentityIn(pairs=[IdentityPair(phone=canonical, lid="111222333444@lid")]),  # learned by the look-up
        PresenceIn(chat=canonical, sender=canonical, state="available"),
    ]


def chat_presence_ev(chat: Any, sender: Any, state: int, media: int, **alts: Any) -> Any:
    return N.ChatPresence(MessageSource=source(chat, sender, **alts), State=state, Media=media)


LID = "123456789012345@lid"


@pytest.mark.usefixtures("neonize_loop")
async def test_presence_events_are_reported_by_phone_number(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    cp = N.ChatPresence
    member = jid("5521988880002", device=4)
    for event in (
        chat_presence_ev(ALICE_LID, ALICE_LID, cp.COMPOSING, cp.TEXT, sender_alt=ALICE),
        chat_presence_ev(ALICE, ALICE, cp.COMPOSING, cp.AUDIO),
        chat_presence_ev(GROUP, member, cp.PAUSED, cp.TEXT),
        N.Presence(From=ALICE, Unavailable=False, LastSeen=0),
        N.Presence(From=ALICE, Unavailable=True, LastSeen=1_795_909_000),
        N.Presence(From=ALICE_LID, Unavailable=True, LastSeen=-62135596800),  # Go's zero time: not known
    ):
        deliver_like_go(runner.client, event)
    await wait_until(lambda: len(events(runner)) == 6)
    assert events(runner) == [
        PresenceIn(chat=ALICE_JID, sender=ALICE_JID, state="typing", sender_lid=LID, chat_lid=LID),
        PresenceIn(chat=ALICE_JID, sender=ALICE_JID, state="recording"),
        PresenceIn(chat="120363000000000000@g.us", sender="5521988880002@s.whatsapp.net", state="paused"),
        PresenceIn(chat=ALICE_JID, sender=ALICE_JID, state="available"),
        PresenceIn(chat=ALICE_JID, sender=ALICE_JID, state="unavailable", last_seen=1_795_909_000),
        PresenceIn(chat=LID, sender=LID, state="unavailable", sender_lid=LID, chat_lid=LID),
    ]


def test_a_waveform_that_is_not_base64_is_left_out() -> None:
    from zapgate.engines.whatsapp.compose import _waveform

    assert _waveform(base64.b64encode(bytes(100)).decode()) == bytes(64)
    assert _waveform("not base64!") is None
    assert _waveform(None) is None


def test_text_content_is_unchanged_by_the_vote_path() -> None:
    assert Text(text="x") == Text(text="x")
