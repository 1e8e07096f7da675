"""The edge's policies, pure: connection counting, authentication backoff, the command bucket, the send buffer's
rules for events and replies, forwarded addresses and the settings that configure them."""

from __future__ import annotations

import pytest

from zapgate.config import ConfigError, Settings
from zapgate.errors import RateLimited, ServerBusy, TooManyConnections, error_from_wire
from zapgate.protocol import CloseCode
from zapgate.server import guard as guard_module
from zapgate.server.edge import http_error_response
from zapgate.server.guard import Admission, EdgeGuard, TokenBucket, address_key, forwarded_client
from zapgate.server.sendbuffer import SendBuffer, frame_size


def guard(**settings: object) -> EdgeGuard:
    return EdgeGuard(Settings(**settings))  # type: ignore[arg-type]


def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_64() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"


def test_connections_per_address_and_unauthenticated_ones_are_capped() -> None:
    g = guard(max_connections_per_ip=2, max_unauthenticated_connections=3, trusted_proxies=())
    first, second = g.admit("203.0.113.7"), g.admit("203.0.113.7")
    assert isinstance(first, Admission) and isinstance(second, Admission)
    assert isinstance(g.admit("203.0.113.7"), TooManyConnections)
    third = g.admit("198.51.100.1")
    assert isinstance(third, Admission) and g.unauthenticated == 3
    assert isinstance(g.admit("198.51.100.2"), ServerBusy)
    first.authenticated()
    assert g.unauthenticated == 2 and g.connections_from("203.0.113.7") == 2
    first.release()
    first.release()  # idempotent
    assert g.connections_from("203.0.113.7") == 1 and g.unauthenticated == 2
    assert isinstance(g.admit("203.0.113.7"), Admission)
    assert g.refused == {"too_many_connections": 1, "server_busy": 1}


def test_a_trusted_proxy_is_counted_per_forwarded_client() -> None:
    g = guard(max_connections_per_ip=1, trusted_proxies=("10.0.0.0/8",))
    via_proxy = [g.admit("10.1.2.3") for _ in range(3)]
    assert all(isinstance(a, Admission) for a in via_proxy)  # the proxy itself is not capped
    assert g.connections_from("10.1.2.3") == 0
    a, b, c = (x for x in via_proxy if isinstance(x, Admission))
    assert a.identify("203.0.113.7") is None and a.client == "203.0.113.7"
    assert isinstance(b.identify("203.0.113.7"), TooManyConnections)
    assert c.identify("203.0.113.8") is None


def test_zero_means_no_cap() -> None:
    g = guard(max_connections_per_ip=0, max_unauthenticated_connections=0, max_connections_per_token=0)
    assert all(isinstance(g.admit("203.0.113.7"), Admission) for _ in range(1000))
    assert all(g.open_token("t") is None for _ in range(1000))


def test_connections_per_token() -> None:
    g = guard(max_connections_per_token=2)
    assert g.open_token("a") is None and g.open_token("a") is None
    assert isinstance(g.open_token("a"), TooManyConnections)
    assert g.open_token("b") is None
    g.close_token("a")
    assert g.open_token("a") is None


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("127.0.0.1", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),  # the right-most hop the proxy added
        ("127.0.0.1", ["203.0.113.7", "10.0.0.2"], "203.0.113.7"),  # 10.0.0.2 is another trusted proxy
        ("127.0.0.1", ["nonsense"], "127.0.0.1"),
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # an untrusted peer's header is not believed
    ],
)
def test_forwarded_client(peer: str, forwarded: list[str], client: str) -> None:
    trusted = guard(trusted_proxies=("127.0.0.1", "10.0.0.0/8")).trusted
    assert forwarded_client(peer, forwarded, trusted) == client


def test_failed_authentications_wait_doubling_one_attempt_at_a_time() -> None:
    g = guard(auth_failure_delay_s=1.0, auth_failure_max_delay_s=4.0)
    assert g.auth_wait("203.0.113.7", 0.0) == 0.0
    failure = g.auth_failed("203.0.113.7", 0.0)
    assert failure.burst_started and failure.delay == 1.0
    assert g.auth_wait("203.0.113.7", 0.5) == 0.5
    assert g.auth_wait("198.51.100.1", 0.5) == 0.0  # another address is not affected
    assert g.auth_wait("203.0.113.7", 1.0) == 0.0  # this attempt is checked...
    assert g.auth_wait("203.0.113.7", 1.0) == 1.0  # ...and a parallel one waits for its outcome
    failure = g.auth_failed("203.0.113.7", 1.0)
    assert not failure.burst_started and failure.delay == 2.0
    assert g.auth_failed("203.0.113.7", 3.0).delay == 4.0
    assert g.auth_failed("203.0.113.7", 7.0).delay == 4.0  # capped
    g.auth_succeeded("203.0.113.7", 11.0)
    assert g.auth_wait("203.0.113.7", 11.0) == 0.0
    later = g.auth_failed("203.0.113.7", 100.0)  # after a quiet spell: a new burst, to be logged again
    assert later.burst_started and later.previous_burst == 4 and later.delay == 1.0


def test_the_wait_a_burst_of_failures_earned_holds_a_failing_rest_request() -> None:
    g = guard(auth_failure_delay_s=1.0, auth_failure_max_delay_s=4.0)
    assert g.failure_delay("203.0.113.7", 0.0) == 0.0  # no failure yet: answered at once
    g.auth_failed("203.0.113.7", 0.0)
    assert g.failure_delay("203.0.113.7", 0.1) == 1.0
    assert g.failure_delay("198.51.100.1", 0.1) == 0.0  # another address is not affected
    g.auth_failed("203.0.113.7", 1.1)
    g.auth_failed("203.0.113.7", 3.1)
    g.auth_failed("203.0.113.7", 7.1)
    assert g.failure_delay("203.0.113.7", 7.2) == 4.0  # capped
    assert g.failure_delay("203.0.113.7", 100.0) == 0.0  # a quiet spell ends the burst


def test_rest_requests_take_from_a_bucket_per_token() -> None:
    g = guard(command_rate_per_s=10.0, command_burst=2)
    assert [g.take_request("tok-a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert g.take_request("tok-a", 0.0) == pytest.approx(0.1)
    assert g.take_request("tok-b", 0.0) == 0.0  # another token has its own
    assert g.take_request("tok-a", 0.1) == 0.0
    assert guard(command_rate_per_s=0.0).take_request("tok-a", 0.0) == 0.0  # 0: no limit


def test_rest_buckets_are_bounded_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module, "MAX_TRACKED_TOKENS", 2)
    g = guard(command_rate_per_s=1.0, command_burst=1)
    assert g.take_request("tok-a", 0.0) == 0.0
    assert g.take_request("tok-b", 0.0) == 0.0
    assert g.take_request("tok-a", 0.0) > 0  # a is the most recently used now
    assert g.take_request("tok-c", 0.0) == 0.0  # b, the least recently used, is forgotten
    assert g.take_request("tok-a", 0.0) > 0  # a was kept: still empty
    assert g.take_request("tok-b", 0.0) == 0.0  # b starts again with a full burst


def test_refusals_are_warned_about_at_most_once_a_minute_per_kind() -> None:
    g = guard()
    assert g.note_refusal("server_busy", 0.0) == 0
    assert g.note_refusal("server_busy", 1.0) is None
    assert g.note_refusal("too_many_connections", 1.0) == 0
    assert g.note_refusal("server_busy", 2.0) is None
    assert g.note_refusal("server_busy", 61.0) == 2


def test_the_command_bucket() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
    assert [bucket.take(100.0) for _ in range(4)][-1] > 0  # refills up to the burst, no more


def test_events_use_half_the_send_buffer_and_replies_all_of_it() -> None:
    buffer = SendBuffer(max_frames=10, max_bytes=1000)
    assert buffer.fits_event(5000)  # an empty buffer takes anything
    for _ in range(5):
        assert buffer.fits_event(10)
        buffer.push("x" * 10, 10)
    assert not buffer.fits_event(10) and not buffer.has_room_for_events()  # 5 frames: the events' half
    assert buffer.fits_reply(10) and buffer.accepts_commands()
    buffer.push("r" * 400, 400)
    assert buffer.accepts_commands()  # 450 bytes, 6 frames: below three quarters
    buffer.push("s" * 300, 300)
    assert not buffer.accepts_commands()  # 750 bytes: the reader stops taking commands
    assert buffer.fits_reply(250) and not buffer.fits_reply(251)  # replies may fill the whole buffer
    assert [buffer.pop() for _ in range(7)][-1] == "s" * 300 and buffer.bytes == 0 and not buffer


def test_frame_size_counts_utf8_bytes() -> None:
    assert frame_size('{"text":"ola"}') == 14
    assert frame_size('{"text":"olá"}') == 15


def test_http_error_responses_carry_the_code() -> None:
    response = http_error_response(TooManyConnections("close one first"))
    head, body = response.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n") and b"connection: close" in head
    assert body == b'{"code":"too_many_connections","message":"close one first"}'
    assert b"retry-after: 2" in http_error_response(RateLimited("slow down", 1.2))


def test_rate_limited_keeps_its_retry_after_across_the_wire() -> None:
    error = error_from_wire("rate_limited", "slow down", 0.25)
    assert isinstance(error, RateLimited) and error.retry_after == 0.25


def test_close_codes_have_one_home() -> None:
    assert (CloseCode.UNAUTHORIZED, CloseCode.AUTH_TIMEOUT, CloseCode.SLOW_CONSUMER) == (4401, 4408, 4429)
    assert CloseCode.TOO_MANY_CONNECTIONS == 4409 and CloseCode.INVALID_UTF8 == 1007


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ZAPGATE_TRUSTED_PROXIES", "127.0.0.1,proxy.local", "trusted_proxies"),
        ("ZAPGATE_MAX_HEADER_BYTES", "100", "max_header_bytes"),
        ("ZAPGATE_MAX_HEADERS", "3", "max_headers"),
        ("ZAPGATE_SEND_BUFFER_BYTES", "1000", "send_buffer_bytes"),
        ("ZAPGATE_HANDSHAKE_TIMEOUT_S", "0", "handshake_timeout_s"),
        ("ZAPGATE_MAX_CONNECTIONS_PER_IP", "-1", "max_connections_per_ip"),
        ("ZAPGATE_COMMAND_BURST", "0", "command_burst"),
        ("ZAPGATE_AUTH_FAILURE_MAX_DELAY_S", "0.1", "auth_failure_max_delay_s"),
    ],
)
def test_edge_settings_are_validated(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings.load({variable: value})


def test_trusted_proxies_accept_addresses_and_networks() -> None:
    settings = Settings.load({"ZAPGATE_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1,::1"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1", "::1")
    assert Settings.load({"ZAPGATE_TRUSTED_PROXIES": ""}).trusted_proxies == ()
