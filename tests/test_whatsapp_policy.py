"""The whatsapp engine's pure parts: status mapping, retry and crash-loop policies, error codes, device
records and the IPC framing. None of these import neonize."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import pytest

from zapgate.engines.base import Disconnected, Failed, LoggedOut, MediaFile, MessageIn, PresenceIn
from zapgate.engines.whatsapp import ipc, policy
from zapgate.engines.whatsapp.policy import Action, CrashLoop, RetryPolicy
from zapgate.engines.whatsapp.store import DeviceRef, delete_store, read_device, store_path
from zapgate.protocol.content import Image, Media, Text

NOW = 1_800_000_000.0

# -- status mapping


def test_socket_loss_and_keepalive_timeout_keep_the_client_for_whatsmeow_to_reconnect() -> None:
    assert policy.on_disconnected() == policy.Outcome((Disconnected(reason="network"),), Action.KEEP)
    assert policy.on_keepalive_timeout() == policy.Outcome((Disconnected(reason="keepalive_timeout"),), Action.KEEP)
    assert policy.on_stream_error("515") == policy.Outcome((Disconnected(reason="stream_error:515"),), Action.KEEP)


@pytest.mark.parametrize(
    ("whatsapp_reason", "reason"),
    [
        ("LOGGED_OUT", "unlinked_from_phone"),
        ("MAIN_DEVICE_GONE", "main_device_gone"),
        ("UNKNOWN_LOGOUT", "unknown_logout"),
    ],
)
def test_logged_out_forgets_the_keys_with_whatsapps_reason(whatsapp_reason: str, reason: str) -> None:
    assert policy.on_logged_out(whatsapp_reason) == policy.Outcome((LoggedOut(reason=reason),), Action.FORGET)


def test_stream_replaced_is_terminal_without_retry() -> None:
    outcome = policy.on_stream_replaced()
    assert outcome == policy.Outcome((Failed(reason="stream_replaced", retry_at=None),), Action.STOP)


def test_temporary_ban_fails_until_it_expires() -> None:
    outcome = policy.on_temporary_ban("SENT_TOO_MANY_SAME_MESSAGE", 3600, now=NOW)
    assert outcome == policy.Outcome(
        (Failed(reason="temporary_ban:sent_too_many_same_message", retry_at=NOW + 3600),), Action.STOP
    )


def test_client_outdated_fails_and_probes_rarely() -> None:
    assert policy.on_client_outdated(now=NOW, retry_after=300) == policy.Outcome(
        (Failed(reason="client_outdated", retry_at=NOW + 300),), Action.STOP
    )
    assert policy.on_client_outdated(now=NOW, retry_after=0).events == (Failed(reason="client_outdated"),)


@pytest.mark.parametrize(
    ("whatsapp_reason", "expected"),
    [
        ("SERVICE_UNAVAILABLE", policy.Outcome((Disconnected(reason="connect_failure:service_unavailable"),))),
        (
            "INTERNAL_SERVER_ERROR",
            policy.Outcome((Disconnected(reason="connect_failure:internal_server_error"),)),
        ),
        ("CLIENT_OUTDATED", policy.Outcome((Failed(reason="client_outdated", retry_at=NOW + 60),), Action.STOP)),
        ("MAIN_DEVICE_GONE", policy.Outcome((LoggedOut(reason="main_device_gone"),), Action.FORGET)),
        ("TEMP_BANNED", policy.Outcome((Failed(reason="temporary_ban:unknown", retry_at=NOW + 60),), Action.STOP)),
        (
            "BAD_USER_AGENT",
            policy.Outcome((Failed(reason="connect_failure:bad_user_agent", retry_at=NOW + 60),), Action.STOP),
        ),
        ("GENERIC", policy.Outcome((Failed(reason="connect_failure:generic", retry_at=NOW + 60),), Action.STOP)),
    ],
)
def test_connect_failures(whatsapp_reason: str, expected: policy.Outcome) -> None:
    assert policy.on_connect_failure(whatsapp_reason, now=NOW, retry_after=60) == expected


# -- error codes


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            "failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "
            '"https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com on 10.0.0.53:53: no such host',
            "whatsapp_unreachable",
        ),
        (
            "failed to dial whatsapp web websocket: dial tcp 127.0.0.1:443: connect: connection refused",
            "whatsapp_unreachable",
        ),
        ("net/http: TLS handshake timeout", "whatsapp_unreachable"),
        (
            "failed to upgrade database: failed to check if version table is up to date: dial tcp 127.0.0.1:5999: "
            "connect: connection refused",
            "device_store_error",
        ),
        ("proto: required field neonize.Receipt.Type not set", "event_stream_broken"),
        (
            "failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "
            '"https://web.whatsapp.com/ws/chat": proxyconnect tcp: dial tcp 127.0.0.1:9: connect: connection refused',
            "whatsapp_unreachable",
        ),
        (
            "failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "
            '"https://web.whatsapp.com/ws/chat": Forbidden',
            "whatsapp_unreachable",
        ),
        ("something new", "connect_error"),
    ],
)
def test_connect_errors_get_stable_reasons(error: str, reason: str) -> None:
    assert policy.connect_error_reason(error) == reason


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        ("client is nil", "not_connected", True),
        ("failed to send usync query: websocket not connected", "not_connected", True),
        ("failed to send message: context deadline exceeded", "send_unconfirmed", False),
        ("timed out waiting for message send response", "send_unconfirmed", False),
        ("server returned error 479", "whatsapp_refused", False),
        # whatsmeow failed before anything left (looking up the recipient's LID or devices): nothing was sent.
        (
            "failed to get user info for 5511999990000@s.whatsapp.net to fill LID cache: info query timed out",
            "lookup_failed",
            True,
        ),
        ("failed to get device list: failed to send usync query: info query timed out", "lookup_failed", True),
        ("failed to get LID for PN 5511999990000@s.whatsapp.net: database is locked", "lookup_failed", True),
        ("no LID found for 5511999990000@s.whatsapp.net from server", "not_on_whatsapp", False),
    ],
)
def test_send_errors(error: str, code: str, retryable: bool) -> None:
    assert policy.send_error(error) == (code, retryable)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("info query timed out", "lookup_failed"),
        ("failed to send usync query: context deadline exceeded", "lookup_failed"),
        ("failed to send usync query: websocket not connected", "not_connected"),
    ],
)
def test_a_failed_look_up_before_sending_is_always_retryable(error: str, code: str) -> None:
    assert policy.lookup_error(error) == (code, True)


_DIAL = (
    "failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: "
    'Get "https://web.whatsapp.com/ws/chat": '
)


@pytest.mark.parametrize(
    ("error", "proxy", "detail"),
    [
        (
            _DIAL + "dial tcp: lookup web.whatsapp.com on 10.0.0.53:53: no such host",
            None,
            "cannot resolve web.whatsapp.com",
        ),
        (
            _DIAL + "dial tcp: lookup web.whatsapp.com: Temporary failure in name resolution",
            None,
            "cannot resolve web.whatsapp.com (Temporary failure in name resolution)",
        ),
        (
            _DIAL + "proxyconnect tcp: dial tcp 127.0.0.1:9: connect: connection refused",
            "http://127.0.0.1:9",
            "connection refused by proxy 127.0.0.1:9",
        ),
        (
            _DIAL + "proxyconnect tcp: dial tcp: lookup proxy.corp on 10.0.0.53:53: no such host",
            "http://proxy.corp:3128",
            "cannot resolve the proxy proxy.corp",
        ),
        (
            _DIAL + "Forbidden",
            "http://user:secret@127.0.0.1:3128",  # the password is never shown
            "proxy 127.0.0.1:3128 did not open a tunnel to web.whatsapp.com (Forbidden)",
        ),
        (
            "failed to dial whatsapp web websocket: dial tcp 157.240.1.1:443: connect: connection refused",
            None,
            "connection refused by 157.240.1.1:443",
        ),
        (_DIAL + "dial tcp 157.240.1.1:443: i/o timeout", None, "cannot connect to 157.240.1.1:443: i/o timeout"),
        ("net/http: TLS handshake timeout", None, "the TLS handshake with web.whatsapp.com timed out"),
        (_DIAL + "context deadline exceeded", None, "no answer within the connect timeout"),
        ("", None, None),
    ],
)
def test_connect_errors_are_explained_in_words(error: str, proxy: str | None, detail: str | None) -> None:
    assert policy.connect_error_detail(error, proxy=proxy) == detail


def test_timestamps_are_normalised_to_seconds() -> None:
    assert policy.to_seconds(1_795_909_751) == 1_795_909_751  # receipts, send responses
    assert policy.to_seconds(1_795_909_751_123) == 1_795_909_751  # MessageInfo.Timestamp is in ms


# -- retries


def test_connect_retries_back_off_exponentially_with_full_jitter_and_a_cap() -> None:
    retry = RetryPolicy(attempts=10, base=2.0, cap=60.0)
    for failures in range(1, 10):
        ceiling = min(60.0, 2.0 * 2 ** (failures - 1))
        draws = [retry.delay(failures, random.Random(seed)) for seed in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in draws)
        assert max(d for d in draws if d is not None) > ceiling * 0.9  # the whole range is used: full jitter
    assert retry.delay(10) is None  # the tenth failure was the last attempt


def test_a_pairing_gives_up_sooner_than_a_paired_session() -> None:
    paired = policy.connect_policy(attempts=8, base=2.0, paired=True)
    pairing = policy.connect_policy(attempts=8, base=2.0, paired=False)
    assert paired.attempts == 8 and pairing.attempts == policy.PAIRING_CONNECT_ATTEMPTS
    assert policy.connect_policy(attempts=2, base=2.0, paired=False).attempts == 2
    with pytest.raises(ValueError):
        paired.delay(0)


def test_crash_loop_backs_off_then_gives_up_and_forgives_a_healthy_run() -> None:
    loop = CrashLoop(max_restarts=3, base=1.0, healthy_after=60.0)
    rng = random.Random(1)
    delays = [loop.record_exit(2.0, rng) for _ in range(3)]
    assert all(d is not None and 0 <= d <= 2**i for i, d in enumerate(delays))
    assert loop.record_exit(2.0, rng) is None  # fourth quick crash in a row
    fresh = CrashLoop(max_restarts=3, base=1.0, healthy_after=60.0)
    fresh.record_exit(1.0)
    fresh.record_exit(1.0)
    fresh.record_exit(3600.0)  # it ran an hour before dying: not a crash loop
    assert fresh.crashes == 1


# -- device records and stores


def test_device_records_are_validated(tmp_path: Path) -> None:
    good = {"engine": "whatsapp", "jid": "15550001111:7@s.whatsapp.net", "store": "whatsapp/ses_1.db"}
    assert DeviceRef.from_record(good).to_record() == good
    for bad in (
        {"jid": "x", "phone": "1", "lid": None},  # a simulator device
        {**good, "engine": "simulator"},
        {**good, "store": "../../etc/passwd"},
        {**good, "store": "whatsapp/../x.db"},
    ):
        with pytest.raises(ValueError):
            DeviceRef.from_record(bad)
    with pytest.raises(ValueError):
        store_path(tmp_path, "../escape")


def test_missing_stores_and_rows_read_as_no_device(tmp_path: Path) -> None:
    path = store_path(tmp_path, "ses_1")
    assert read_device(path) is None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database")
    assert read_device(path) is None
    assert delete_store(path) and not path.exists() and not delete_store(path)


# -- IPC


async def test_messages_cross_the_channel_typed_and_in_order() -> None:
    left, right = socket.socketpair()
    a = await ipc.Channel.over_socket(left)
    b = await ipc.Channel.over_socket(right)
    event = MessageIn(
        message_id="3A1", chat="1@s.whatsapp.net", sender="1@s.whatsapp.net", content=Text(text="olá"), timestamp=1
    )
    sent: list[ipc.Message] = [
        ipc.OpenSession(id=1, session_id="s", device={"engine": "whatsapp", "jid": "j", "store": "whatsapp/s.db"}),
        ipc.SessionEvent(session_id="s", event=event),
        ipc.Reply(id=1, ok=False, error_code="not_connected", retryable=True),
        ipc.Send(
            id=2,
            session_id="s",
            to="1@s.whatsapp.net",
            content=Text(text="x"),
            quote=ipc.QuoteRef(message_id="m", participant="p"),
        ),
        ipc.Send(
            id=3,
            session_id="s",
            to="1@s.whatsapp.net",
            content=Image(media=Media(id="med_0123456789ab"), caption="c"),
            target=ipc.TargetRef(message_id="3A1", from_me=False, participant="2@s.whatsapp.net"),
            mentions=["all"],
            forwarded=True,
            media=MediaFile(path="/data/media/ab/cd/abcd", mimetype="image/png", size=3, sha256="ab" * 32),
        ),
        ipc.Download(id=4, session_id="s", media_ref={"media_type": "image", "file_length": 3}, into="/tmp/x"),
        ipc.ChatPresence(id=5, session_id="s", chat="1@s.whatsapp.net", state="recording"),
        ipc.SetPresence(id=6, session_id="s", state="unavailable"),
        ipc.SubscribePresence(id=7, session_id="s", chat="1@s.whatsapp.net"),
        ipc.SessionEvent(
            session_id="s", event=PresenceIn(chat="1@s.whatsapp.net", sender="1@s.whatsapp.net", state="typing")
        ),
    ]
    for message in sent:
        a.send(message)
    await a.drain()
    assert [await b.receive() for _ in sent] == sent
    await a.close()
    with pytest.raises(ipc.ChannelClosed):
        await b.receive()
    await b.close()


async def test_a_corrupt_frame_closes_the_channel() -> None:
    left, right = socket.socketpair()
    b = await ipc.Channel.over_socket(right)
    await asyncio.to_thread(left.sendall, b"\x00\x00\x00\x03abc")
    with pytest.raises(ipc.ChannelClosed, match="malformed"):
        await b.receive()
    await asyncio.to_thread(left.sendall, b"\xff\xff\xff\xff")
    with pytest.raises(ipc.ChannelClosed, match="exceeds"):
        await b.receive()
    left.close()
    await b.close()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("failed to refresh media connections: websocket not connected", ("not_connected", True)),
        ("failed to execute request: Post \"https://mmg.whatsapp.net/x\": i/o timeout", ("upload_failed", True)),
        ("upload failed with status code 500", ("upload_failed", True)),
        ("upload failed with status code 429", ("upload_failed", True)),
        ("upload failed with status code 413", ("upload_refused", False)),
    ],
)
def test_upload_errors(message: str, expected: tuple[str, bool]) -> None:
    assert policy.upload_error(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("client is nil", ("not_connected", True)),
        ("can't send presence without PushName set", ("not_connected", True)),
        ("something WhatsApp refused", ("presence_failed", False)),
    ],
)
def test_presence_errors(message: str, expected: tuple[str, bool]) -> None:
    assert policy.presence_error(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("websocket not connected", ("not_connected", True)),
        ("info query timed out", ("group_unavailable", True)),
        ("info query returned status 403: forbidden", ("group_unavailable", False)),
    ],
)
def test_group_errors(message: str, expected: tuple[str, bool]) -> None:
    assert policy.group_error(message) == expected
