"""The whatsapp adapter's translation, fed real ``neonize.proto`` event objects.

Two levels: the pure translation functions (``translate``), and a session runner whose neonize client gets
the events through neonize's own dispatch (``Event.execute`` called from a foreign thread with serialised
protobuf bytes, exactly as the Go side does), asserting the exact zapgate engine events it reports. Only
the terminal-event tests let a runner connect (through a proxy on 127.0.0.1 that refuses, so the connect fails
within milliseconds on any machine) so that its whole life, up to deleting or keeping the keys, runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import (
    Connected,
    Disconnected,
    Failed,
    LoggedOut,
    MessageIn,
    PairCode,
    Paired,
    QrCode,
    ReceiptIn,
)
from zapgate.engines.whatsapp import nz, policy, translate
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef, store_path
from zapgate.protocol import Me
from zapgate.protocol.content import Image, Text

from .neonize_kit import (
    ALICE,
    ALICE_LID,
    GROUP,
    FakeGo,
    RecordingHost,
    deliver_like_go,
    extended,
    fake_store,
    jid,
    message_ev,
    neonize_loop,  # noqa: F401 - a fixture
    receipt_ev,
    show_qr_like_go,
    source,
    text,
)
from .offline_proxy import RefusingProxy

N = nz.N


@pytest.fixture
async def proxy() -> AsyncIterator[RefusingProxy]:
    async with RefusingProxy() as running:
        yield running


# -- pure translation


def test_a_conversation_message() -> None:
    event = message_ev(text("olá"), source(ALICE, ALICE))
    assert translate.message_in(event) == MessageIn(
        message_id="3A0000000000000001",
        chat="5511999990000@s.whatsapp.net",
        sender="5511999990000@s.whatsapp.net",
        content=Text(text="olá"),
        timestamp=1_795_909_751,  # milliseconds on the wire, seconds in zapgate
        push_name="Alice",
    )


def test_an_extended_text_reply_names_the_quoted_message() -> None:
    event = message_ev(extended("sim", quoting="3EB0AAAAAAAAAAAAAAAAAA"), source(ALICE, ALICE), msg_id="3A02")
    got = translate.message_in(event)
    assert got is not None and got.content == Text(text="sim") and got.reply_to == "3EB0AAAAAAAAAAAAAAAAAA"


def test_a_sender_known_by_lid_is_reported_by_phone_with_its_lid() -> None:
    event = message_ev(text("oi"), source(ALICE_LID, ALICE_LID, sender_alt=ALICE))
    assert translate.message_in(event) == MessageIn(
        message_id="3A0000000000000001",
        chat="5511999990000@s.whatsapp.net",
        sender="5511999990000@s.whatsapp.net",
        sender_lid="123456789012345@lid",
        chat_lid="123456789012345@lid",
        content=Text(text="oi"),
        timestamp=1_795_909_751,
        push_name="Alice",
    )


def test_a_phone_addressed_message_with_the_lid_beside_it_carries_both() -> None:
    got = translate.message_in(message_ev(text("oi"), source(ALICE, ALICE, sender_alt=ALICE_LID)))
    assert got is not None
    assert (got.chat, got.chat_lid, got.sender, got.sender_lid) == (
        "5511999990000@s.whatsapp.net",
        "123456789012345@lid",
        "5511999990000@s.whatsapp.net",
        "123456789012345@lid",
    )


def test_a_lid_only_sender_stays_a_lid() -> None:
    got = translate.message_in(message_ev(text("oi"), source(ALICE_LID, ALICE_LID)))
    assert got is not None
    assert (got.chat, got.sender, got.sender_lid, got.chat_lid) == (
        "123456789012345@lid",
        "123456789012345@lid",
        "123456789012345@lid",
        "123456789012345@lid",
    )


def test_a_group_message_names_the_group_and_the_participant_without_device() -> None:
    event = message_ev(text("bom dia"), source(GROUP, jid("5511988887777", device=3), sender_alt=jid("998877", "lid")))
    got = translate.message_in(event)
    assert got is not None
    assert (got.chat, got.sender, got.sender_lid, got.chat_lid) == (
        "120363000000000000@g.us",
        "5511988887777@s.whatsapp.net",
        "998877@lid",
        None,
    )


def test_a_message_sent_from_the_phone_is_from_me() -> None:
    me = jid("5511911112222", device=0)
    event = message_ev(text("sent from my phone"), source(ALICE, me, from_me=True), push_name="")
    got = translate.message_in(event)
    assert got is not None and got.from_me and got.sender == "5511911112222@s.whatsapp.net" and got.push_name is None
    assert got.chat == "5511999990000@s.whatsapp.net"


def test_an_image_is_relayed_with_its_caption_and_a_pending_file() -> None:
    image = nz.WAMessage(imageMessage={"caption": "a caption", "mimetype": "image/jpeg", "fileLength": 1234})
    got = translate.message_in(message_ev(image, source(ALICE, ALICE)))
    assert got is not None and isinstance(got.content, Image)
    assert got.content.caption == "a caption" and got.content.media.status == "pending"
    assert got.content.media.size == 1234 and got.media_ref is not None


@pytest.mark.parametrize(
    ("kind", "status"),
    [(N.Receipt.DELIVERED, "delivered"), (N.Receipt.READ, "read"), (N.Receipt.PLAYED, "played")],
)
def test_receipts_of_our_messages(kind: int, status: str) -> None:
    event = receipt_ev(["3EB0A", "3EB0B"], kind, ALICE, ALICE)
    assert translate.receipt_in(event) == ReceiptIn(
        message_ids=["3EB0A", "3EB0B"], chat="5511999990000@s.whatsapp.net", status=status, timestamp=1_795_909_760
    )


def test_a_receipt_from_a_lid_chat_is_reported_on_the_phone_chat() -> None:
    event = receipt_ev(["3EB0A"], N.Receipt.READ, ALICE_LID, ALICE_LID, sender_alt=ALICE)
    got = translate.receipt_in(event)
    assert got is not None and got.chat == "5511999990000@s.whatsapp.net" and got.chat_lid == "123456789012345@lid"


@pytest.mark.parametrize(
    "kind", [N.Receipt.READ_SELF, N.Receipt.RETRY, N.Receipt.SENDER, N.Receipt.SERVER_ERROR, N.Receipt.INACTIVE]
)
def test_other_receipts_are_ignored(kind: int) -> None:
    assert translate.receipt_in(receipt_ev(["3EB0A"], kind, ALICE, ALICE)) is None


def test_connection_events() -> None:
    def outcome(event: Any) -> policy.Outcome | None:
        return translate.connection_outcome(event, now=1000.0, retry_after=300.0)

    assert outcome(N.Disconnected(status=True)) == policy.Outcome((Disconnected(reason="network"),))
    assert outcome(N.KeepAliveTimeout(ErrorCount=2, LastSuccess=990)) == policy.Outcome(
        (Disconnected(reason="keepalive_timeout"),)
    )
    assert outcome(N.LoggedOut(OnConnect=False, Reason=N.ConnectFailureReason.LOGGED_OUT)) == policy.Outcome(
        (LoggedOut(reason="unlinked_from_phone"),), policy.Action.FORGET
    )
    assert outcome(N.LoggedOut(OnConnect=True, Reason=N.ConnectFailureReason.MAIN_DEVICE_GONE)) == policy.Outcome(
        (LoggedOut(reason="main_device_gone"),), policy.Action.FORGET
    )
    assert outcome(N.StreamReplaced()) == policy.Outcome((Failed(reason="stream_replaced"),), policy.Action.STOP)
    ban = N.TemporaryBan(Code=N.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=86400)
    assert outcome(ban) == policy.Outcome(
        (Failed(reason="temporary_ban:send_to_too_many_people", retry_at=1000.0 + 86400),), policy.Action.STOP
    )
    refused = N.ConnectFailure(Reason=N.ConnectFailureReason.CLIENT_OUTDATED, Message="", Raw=N.Node(Tag="failure"))
    assert outcome(refused) == policy.Outcome((Failed(reason="client_outdated", retry_at=1300.0),), policy.Action.STOP)
    assert outcome(N.ClientOutdated()) == policy.Outcome(
        (Failed(reason="client_outdated", retry_at=1300.0),), policy.Action.STOP
    )
    assert outcome(N.Connected(status=True)) is None


def test_pair_status() -> None:
    success = N.PairStatus(
        ID=jid("5511911112222", device=7), BusinessName="", Platform="android", Status=N.PairStatus.SUCCESS
    )
    assert translate.pair_result(success) == "5511911112222:7@s.whatsapp.net"
    failure = N.PairStatus(
        ID=nz.EMPTY_JID, BusinessName="", Platform="", Status=N.PairStatus.ERROR, Error="bad signature"
    )
    assert translate.pair_result(failure) is None


def test_me_names_the_linked_device_by_jid_and_the_account_by_lid() -> None:
    # whatsmeow stores the device's LID (99887766:7@lid); me.lid is the account's, like me.phone.
    assert translate.me_from("5511911112222:7@s.whatsapp.net", "99887766:7@lid", "Bob") == Me(
        phone="5511911112222", jid="5511911112222:7@s.whatsapp.net", lid="99887766@lid", name="Bob"
    )
    assert translate.me_from("5511911112222:7@s.whatsapp.net", None).lid is None


# -- a session runner driven through neonize's dispatch


@pytest.mark.usefixtures("neonize_loop")
async def test_pairing_by_qr_then_paired_and_connected_with_phone_jid_and_lid(tmp_path: Path) -> None:
    host = RecordingHost(tmp_path)
    runner = SessionRunner(host, "ses_pair", None)
    client = runner._client()
    before = time.time()
    show_qr_like_go(client, "https://wa.me/settings/linked_devices#ref1,noise,identity,adv,1")
    qr = await host.next_event(1)
    assert isinstance(qr, QrCode)
    assert (qr.code, qr.attempt, qr.max_attempts) == (
        "https://wa.me/settings/linked_devices#ref1,noise,identity,adv,1",
        1,
        6,
    )
    assert before + 60 <= qr.expires_at <= time.time() + 60  # the first code lives 60 s
    show_qr_like_go(client, "https://wa.me/settings/linked_devices#ref2,noise,identity,adv,1")
    second = await host.next_event(2)
    assert isinstance(second, QrCode) and second.attempt == 2 and second.expires_at - time.time() <= 20

    # The phone scanned: whatsmeow stored the device, then reports the pair status.
    fake_store(store_path(tmp_path, "ses_pair"), "5511911112222:7@s.whatsapp.net", "99887766:7@lid")
    deliver_like_go(
        client,
        N.PairStatus(
            ID=jid("5511911112222", device=7), BusinessName="", Platform="android", Status=N.PairStatus.SUCCESS
        ),
    )
    me = Me(phone="5511911112222", jid="5511911112222:7@s.whatsapp.net", lid="99887766@lid")
    assert await host.next_event(3) == Paired(
        me=me,
        device={"engine": "whatsapp", "jid": "5511911112222:7@s.whatsapp.net", "store": "whatsapp/ses_pair.db"},
    )
    # neonize sets client.me when its event pump starts, then the post-pairing reconnect reports Connected.
    deliver_like_go(
        client,
        N.Device(
            JID=jid("5511911112222", device=7),
            LID=jid("99887766", "lid", device=7),
            Platform="android",
            BussinessName="",
            PushName="Bob",
            Initialized=True,
        ),
    )
    deliver_like_go(client, N.Connected(status=True))
    assert await host.next_event(4) == Connected(me=Me(phone=me.phone, jid=me.jid, lid=me.lid, name="Bob"))
    assert runner.online


@pytest.mark.usefixtures("neonize_loop")
async def test_a_resumed_session_reports_messages_receipts_and_connection_events(tmp_path: Path) -> None:
    host = RecordingHost(tmp_path)
    device = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_r.db")
    fake_store(tmp_path / device.store, device.jid, "99887766:7@lid")
    runner = SessionRunner(host, "ses_r", device)
    client = runner._client()
    assert client.uuid == b"5511911112222:7"  # one Go client per linked device

    deliver_like_go(client, N.Connected(status=True))
    me = Me(phone="5511911112222", jid=device.jid, lid="99887766@lid")
    assert await host.next_event(1) == Connected(me=me)
    deliver_like_go(client, message_ev(text("olá"), source(ALICE, ALICE)))
    deliver_like_go(client, receipt_ev(["3EB0A"], N.Receipt.READ, ALICE, ALICE))
    deliver_like_go(client, N.KeepAliveTimeout(ErrorCount=1, LastSuccess=0))
    deliver_like_go(client, N.KeepAliveRestored())
    deliver_like_go(client, N.Disconnected(status=True))
    await host.next_event(6)
    assert host.events[1:] == [
        MessageIn(
            message_id="3A0000000000000001",
            chat="5511999990000@s.whatsapp.net",
            sender="5511999990000@s.whatsapp.net",
            content=Text(text="olá"),
            timestamp=1_795_909_751,
            push_name="Alice",
        ),
        ReceiptIn(message_ids=["3EB0A"], chat="5511999990000@s.whatsapp.net", status="read", timestamp=1_795_909_760),
        Disconnected(reason="keepalive_timeout"),
        Connected(me=me),
        Disconnected(reason="network"),
    ]
    assert not runner.online and not runner.stopping


@pytest.mark.usefixtures("neonize_loop")
@pytest.mark.parametrize(
    ("event", "expected", "keys_kept"),
    [
        (
            N.LoggedOut(OnConnect=False, Reason=N.ConnectFailureReason.LOGGED_OUT),
            LoggedOut(reason="unlinked_from_phone"),
            False,
        ),
        (N.StreamReplaced(), Failed(reason="stream_replaced"), True),
        (
            N.TemporaryBan(Code=N.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600),
            "temporary_ban:sent_too_many_same_message",
            True,
        ),
        (N.ClientOutdated(), "client_outdated", True),
    ],
)
async def test_terminal_events_end_the_session(
    tmp_path: Path, proxy: RefusingProxy, event: Any, expected: Any, keys_kept: bool
) -> None:
    host = RecordingHost(tmp_path, proxy=proxy.url)
    device = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_t.db")
    fake_store(tmp_path / device.store, device.jid, "")
    # Offline its connect fails and it waits to retry (long, with plenty of attempts); the event ends it.
    runner = SessionRunner(host, "ses_t", device, retry=policy.RetryPolicy(attempts=1000, base=100.0))
    runner.start()
    assert isinstance(await host.next_event(1), Disconnected)  # the store here is not a whole whatsmeow store
    client = runner.client
    before = time.time()
    deliver_like_go(client, event)
    async with asyncio.timeout(10):
        while not any(isinstance(e, (Failed, LoggedOut)) for e in host.events):
            await asyncio.sleep(0.001)
        await runner.done.wait()
    final = next(e for e in host.events if isinstance(e, (Failed, LoggedOut)))
    if isinstance(expected, str):
        assert isinstance(final, Failed) and final.reason == expected and final.retry_at is not None
        assert final.retry_at >= before + 300 if expected == "client_outdated" else final.retry_at >= before + 3600
    else:
        assert final == expected
    assert (tmp_path / device.store).exists() is keys_kept


@pytest.mark.usefixtures("neonize_loop")
async def test_a_pairing_code_is_asked_once_after_the_first_qr_code(tmp_path: Path) -> None:
    host = RecordingHost(tmp_path)
    runner = SessionRunner(host, "ses_code", None, pair_phone="5511911112222")
    client = runner._client()
    go = FakeGo()
    client._NewAClient__client = go
    show_qr_like_go(client, "https://wa.me/settings/linked_devices#ref1,noise,identity,adv,1")
    qr = await host.next_event(1)
    code = await host.next_event(2)
    assert isinstance(qr, QrCode) and qr.attempt == 1
    assert isinstance(code, PairCode) and code.code == "ABCD-EFGH"
    assert code.expires_at >= qr.expires_at + 100  # valid for the whole pairing window, not one QR code
    show_qr_like_go(client, "https://wa.me/settings/linked_devices#ref2,noise,identity,adv,1")
    await host.next_event(3)
    assert [p.phone for p in go.pair_requests] == ["5511911112222"]  # once, not at every QR code


@pytest.mark.usefixtures("neonize_loop")
async def test_without_a_pairing_code_the_qr_code_still_works(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    host = RecordingHost(tmp_path)
    runner = SessionRunner(host, "ses_nocode", None, pair_phone="5511911112222")
    client = runner._client()  # the real FFI: Go does not know this client, so PairPhone fails
    show_qr_like_go(client, "https://wa.me/settings/linked_devices#ref1,noise,identity,adv,1")
    assert isinstance(await host.next_event(1), QrCode)
    async with asyncio.timeout(10):
        while "gave no pairing code" not in caplog.text:
            await asyncio.sleep(0.01)
    assert len(host.events) == 1
