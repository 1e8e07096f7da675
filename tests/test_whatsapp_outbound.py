"""A session runner's real neonize client against :class:`~tests.neonize_kit.FakeGo` (WhatsApp behind the FFI):
what it sends, to whom, and what it asks of Go: recipients resolved to WhatsApp's JID, look-up failures that
stay retryable, read receipts to the address a message came from, presence, the device name, the registration
probe, the pairing outcome, one client object per connect, and the lock around Go's maps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import Connected, Failed, IdentityIn, IdentityPair, MessageIn, QrCode
from zapgate.engines.whatsapp import nz, presence, session
from zapgate.engines.whatsapp.ipc import QuoteRef, Send
from zapgate.engines.whatsapp.session import SendFailure, SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef, store_path
from zapgate.protocol.content import Text

from .neonize_kit import (
    ALICE,
    ALICE_LID,
    GROUP,
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
from .offline_proxy import dead_port

N = nz.N
DEVICE = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_s.db")
TYPED = "5511988887777@s.whatsapp.net"
"""A Brazilian mobile number as people type it: with the ninth digit."""
CANONICAL = "551188887777@s.whatsapp.net"
"""The same account as WhatsApp knows it: registered before the ninth digit."""


@pytest.fixture
def dead_proxy() -> Any:
    with dead_port() as port:
        yield f"http://127.0.0.1:{port}"


def online(tmp_path: Path, go: FakeGo, **config: Any) -> SessionRunner:
    """A runner of a paired session whose client is connected (as after a ``Connected`` event)."""
    runner = SessionRunner(RecordingHost(tmp_path, go=go, **config), "ses_s", DEVICE)
    runner._client()
    runner.online = True
    return runner


async def send_text(
    runner: SessionRunner, to: str, text: str, quote: QuoteRef | None = None
) -> tuple[str, int, str | None]:
    return await runner.send(Send(id=0, session_id=runner.session_id, to=to, content=Text(text=text), quote=quote))


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


# -- sending


async def test_send_text_and_a_quoted_reply(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    assert await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None) == (
        "3EB0000000000000000001",
        1_795_909_999,
        None,  # WhatsApp knows the number as typed
    )
    to, message = go.sent[0]
    assert to == "5511999990000@s.whatsapp.net" and message.conversation == "olá"
    quote = QuoteRef(message_id="3A0000000000000001", participant="5511999990000@s.whatsapp.net", text="pergunta")
    await send_text(runner, "5511999990000@s.whatsapp.net", "resposta", quote)
    _, reply = go.sent[1]
    context = reply.extendedTextMessage.contextInfo
    assert reply.extendedTextMessage.text == "resposta"
    assert (context.stanzaID, context.participant, context.quotedMessage.conversation) == (
        "3A0000000000000001",
        "5511999990000@s.whatsapp.net",
        "pergunta",
    )


async def test_a_message_goes_to_the_jid_whatsapp_answers_and_reports_that_chat(tmp_path: Path) -> None:
    go = FakeGo(answers={"+5511988887777": (jid("551188887777"), True)})
    runner = online(tmp_path, go)
    _, _, chat = await send_text(runner, TYPED, "olá", None)
    assert chat == CANONICAL
    assert go.sent[0][0] == CANONICAL  # not to the number as typed
    await send_text(runner, TYPED, "de novo", None)
    assert [to for to, _ in go.sent] == [CANONICAL, CANONICAL]
    assert go.named("IsOnWhatsApp") == [["+5511988887777"]]  # looked up once per session


async def test_an_answer_by_lid_is_sent_there_and_reported_by_phone_number(tmp_path: Path) -> None:
    go = FakeGo(
        answers={"+5511988887777": (jid("111222333444", "lid"), True)}, lids={"111222333444": jid("551188887777")}
    )
    runner = online(tmp_path, go)
    _, _, chat = await send_text(runner, TYPED, "olá", None)
    assert go.sent[0][0] == "111222333444@lid" and chat == CANONICAL
    # ... and the gateway learns the pair (issue 12: its identity map).
    learned = [e for e in runner.host.events if isinstance(e, IdentityIn)]  # type: ignore[attr-defined]
    assert learned == [IdentityIn(pairs=[IdentityPair(phone=CANONICAL, lid="111222333444@lid")])]


async def test_sending_to_a_number_without_whatsapp_is_refused_for_good(tmp_path: Path) -> None:
    runner = online(tmp_path, FakeGo(answers={"+5511999990000": (jid("5511999990000"), False)}))
    with pytest.raises(SendFailure) as refused:
        await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None)
    assert (refused.value.code, refused.value.retryable) == ("not_on_whatsapp", False)


@pytest.mark.parametrize(
    "error", ["info query timed out", "failed to send usync query: context deadline exceeded", "something else"]
)
async def test_a_failed_look_up_sent_nothing_and_is_retryable(tmp_path: Path, error: str) -> None:
    go = FakeGo(lookup_error=error)
    runner = online(tmp_path, go)
    with pytest.raises(SendFailure) as failed:
        await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None)
    assert (failed.value.code, failed.value.retryable) == ("lookup_failed", True)
    assert go.sent == []


async def test_whatsmeows_own_recipient_look_up_failing_is_retryable(tmp_path: Path) -> None:
    error = "failed to get user info for 5511999990000@s.whatsapp.net to fill LID cache: info query timed out"
    runner = online(tmp_path, FakeGo(send_error=error))
    with pytest.raises(SendFailure) as failed:
        await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None)
    assert (failed.value.code, failed.value.retryable) == ("lookup_failed", True)


async def test_an_unconfirmed_send_is_not_retried(tmp_path: Path) -> None:
    runner = online(tmp_path, FakeGo(send_error="timed out waiting for message send response"))
    with pytest.raises(SendFailure) as failed:
        await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None)
    assert (failed.value.code, failed.value.retryable) == ("send_unconfirmed", False)


async def test_a_client_go_does_not_know_fails_sends_as_retryable(tmp_path: Path) -> None:
    runner = SessionRunner(RecordingHost(tmp_path), "ses_s", DEVICE)
    runner._client()  # the real FFI: this client never connected
    runner.online = True
    with pytest.raises(SendFailure) as failed:
        await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None)
    assert (failed.value.code, failed.value.retryable) == ("not_connected", True)
    runner.online = False
    with pytest.raises(SendFailure, match="not connected"):
        await send_text(runner, "5511999990000@s.whatsapp.net", "olá", None)


# -- read receipts


@pytest.mark.usefixtures("neonize_loop")
async def test_read_receipts_go_to_the_address_the_message_came_from(tmp_path: Path) -> None:
    go = FakeGo()
    runner = online(tmp_path, go)
    client = runner.client
    deliver_like_go(client, message_ev(text("oi"), source(ALICE_LID, ALICE_LID, sender_alt=ALICE), msg_id="3A01"))
    author = jid("5511988887777", device=2)
    deliver_like_go(client, message_ev(text("bom dia"), source(GROUP, author), msg_id="3A02"))
    events = runner.host.events  # type: ignore[attr-defined]
    await wait_until(lambda: len(events) == 2)
    assert [(e.message_id, e.chat) for e in events if isinstance(e, MessageIn)] == [
        ("3A01", "5511999990000@s.whatsapp.net"),  # a chat addressed by LID is reported by phone number
        ("3A02", "120363000000000000@g.us"),
    ]
    await runner.mark_read("5511999990000@s.whatsapp.net", None, ["3A01", "3A0UNKNOWN"])
    await runner.mark_read("120363000000000000@g.us", None, ["3A02"])
    reads = [(r["chat"], r["sender"], r["ids"]) for r in go.named("MarkRead")]
    assert reads == [
        ("123456789012345@lid", "123456789012345@lid", ["3A01"]),  # where it came from
        ("5511999990000@s.whatsapp.net", "5511999990000@s.whatsapp.net", ["3A0UNKNOWN"]),  # not seen: as given
        ("120363000000000000@g.us", "5511988887777@s.whatsapp.net", ["3A02"]),  # a group names the author
    ]
    assert {r["receipt"] for r in go.named("MarkRead")} == {b"read"}


# -- connecting


@pytest.mark.usefixtures("neonize_loop")
async def test_connect_passes_the_device_name_and_the_proxy_to_neonize(tmp_path: Path) -> None:
    go = FakeGo()
    host = RecordingHost(tmp_path, go=go, proxy="http://127.0.0.1:3128", device_name="Loja Centro")
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(host, "ses_s", DEVICE, retry=session.RetryPolicy(attempts=1, base=0.01))
    runner.start()
    await runner.done.wait()
    (connect,) = go.named("Neonize")
    assert connect["props"].os == "Loja Centro"  # what the phone lists under "Linked devices"
    assert connect["props"].platformType == nz.DeviceProps.SAFARI
    assert connect["proxy"] == "http://127.0.0.1:3128"
    assert host.events[-1] == Failed(reason="connect_error", retry_at=host.events[-1].retry_at, detail=go.connect_error)  # type: ignore[union-attr]


@pytest.mark.usefixtures("neonize_loop")
async def test_the_registration_probe_changes_no_proxy_setting(tmp_path: Path) -> None:
    go = FakeGo()
    hold = asyncio.Event()

    async def live(_go: FakeGo, _call: dict[str, Any]) -> str:
        await hold.wait()  # a connect that stays up, like a live session's
        return ""

    go.connect_script = live
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(RecordingHost(tmp_path, go=go), "ses_s", DEVICE)
    runner.start()
    await wait_until(lambda: go.named("SetProxyAddress"))
    # An empty address alone would *remove* whatsmeow's proxy (also one from HTTPS_PROXY) for every later
    # reconnect of this client; with no_websocket and no_media, SetProxyAddress touches no transport.
    assert go.named("SetProxyAddress")[0] == {
        "address": "",
        "no_websocket": True,
        "only_login": False,
        "no_media": True,
    }
    stopping = asyncio.ensure_future(runner.stop())
    await wait_until(lambda: go.named("Stop"))
    hold.set()
    await stopping


@pytest.mark.usefixtures("neonize_loop")
@pytest.mark.parametrize(
    ("said", "reason"),
    [("error", "pair_error"), ("err-scanned-without-multidevice", "pair_error"), ("timeout", "qr_timeout")],
)
async def test_a_pairing_that_ends_badly_fails_at_once_with_its_cause(tmp_path: Path, said: str, reason: str) -> None:
    go = FakeGo()
    host = RecordingHost(tmp_path, go=go)

    async def pairing(_go: FakeGo, call: dict[str, Any]) -> str:
        FakeGo.show(call["qr"], "https://wa.me/settings/linked_devices#ref1,noise,identity,adv,1")
        await host.next_event(1)
        FakeGo.show(call["login"], said)  # whatsmeow's QR channel ends with this
        await asyncio.Event().wait()  # neonize then spins in FetchMe for ever
        return ""

    go.connect_script = pairing
    runner = SessionRunner(host, "ses_new", None)
    runner.start()
    async with asyncio.timeout(10):  # not the 165 s of the QR codes
        await runner.done.wait()
    assert isinstance(host.events[0], QrCode)
    failed = host.events[-1]
    assert isinstance(failed, Failed) and failed.reason == reason and failed.detail
    assert not store_path(tmp_path, "ses_new").exists()


@pytest.mark.usefixtures("neonize_loop")
async def test_a_confirmed_pairing_does_not_fail(tmp_path: Path) -> None:
    go = FakeGo()
    host = RecordingHost(tmp_path, go=go)

    async def pairing(_go: FakeGo, call: dict[str, Any]) -> str:
        FakeGo.show(call["qr"], "https://wa.me/settings/linked_devices#ref1,noise,identity,adv,1")
        await host.next_event(1)
        FakeGo.show(call["login"], "success")
        await asyncio.Event().wait()
        return ""

    go.connect_script = pairing
    runner = SessionRunner(host, "ses_new", None)
    runner.start()
    await wait_until(lambda: runner._pairing is not None and runner._pairing.succeeded)
    assert [type(e) for e in host.events] == [QrCode]
    await runner.stop()


@pytest.mark.usefixtures("neonize_loop")
async def test_every_connect_uses_a_new_client_object_and_events_of_old_ones_are_ignored(
    tmp_path: Path, dead_proxy: str
) -> None:
    host = RecordingHost(tmp_path, proxy=dead_proxy)
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(host, "ses_s", DEVICE, retry=session.RetryPolicy(attempts=2, base=0.01))
    runner.start()
    await runner.done.wait()
    first, second = host.clients  # real neonize clients, real (failing) connects
    assert first is not second and first.uuid == second.uuid
    # neonize keeps a connect's ctypes callbacks on the client object; the first connect's are still there,
    # not replaced by the second connect's (a goroutine of the first may still call them).
    assert first._connect_refs is not second._connect_refs and first._connect_refs[2] is not None
    deliver_like_go(first, N.Connected(status=True))
    await asyncio.sleep(0.05)
    assert not any(isinstance(e, Connected) for e in host.events)


@pytest.mark.usefixtures("neonize_loop")
async def test_presence_available_is_announced_once_connected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presence, "ANNOUNCE_RETRIES_S", (0.0, 0.01, 0.01))
    go = FakeGo(presence_errors=["can't send presence without PushName set"])
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    host = RecordingHost(tmp_path, go=go)
    runner = SessionRunner(host, "ses_s", DEVICE)
    client = runner._client()
    assert go.named("SendPresence") == []
    deliver_like_go(client, N.Connected(status=True))
    await wait_until(lambda: len(go.named("SendPresence")) == 2)  # refused once (no push name yet), then sent
    assert go.named("SendPresence") == ["available", "available"]
    await asyncio.sleep(0.05)
    assert len(go.named("SendPresence")) == 2


# -- the lock around Go's maps


async def test_sends_run_side_by_side_but_never_inside_a_connect_or_stop(tmp_path: Path) -> None:
    go = FakeGo()
    go.send_gate = asyncio.Event()
    host = RecordingHost(tmp_path, go=go)
    runners = []
    for name in ("ses_a", "ses_b"):
        runner = SessionRunner(host, name, DEVICE)
        runner._client()
        runner.online = True
        runners.append(runner)
    sends = [
        asyncio.ensure_future(send_text(runner, f"55119999900{i:02}@s.whatsapp.net", "olá", None))
        for i in range(10)
        for runner in runners
    ]
    await wait_until(lambda: go.in_flight == 20)  # all twenty sends are inside Go at once
    # A connect (or stop) waits for the calls in flight, and the calls that come meanwhile wait for it.
    writer_in = asyncio.Event()

    async def connect_section() -> None:
        async with host.ffi.exclusive():
            writer_in.set()
            assert go.in_flight == 0

    writer = asyncio.ensure_future(connect_section())
    late = asyncio.ensure_future(send_text(runners[0], "5511999990099@s.whatsapp.net", "late", None))
    await asyncio.sleep(0.05)
    assert not writer_in.is_set() and len(go.named("IsOnWhatsApp")) == 20
    go.send_gate.set()
    await asyncio.gather(*sends, writer, late)
    assert go.max_in_flight == 20 and len(go.sent) == 21
    assert host.ffi.stats["exclusive"] == 1 and host.ffi.stats["max_shared"] >= 20
