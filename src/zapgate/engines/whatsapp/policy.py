"""What the whatsapp engine does when things go wrong (pure: no I/O, no clock, no neonize).

- **Status mapping.** Each connection-state event of whatsmeow becomes zapgate engine events plus an
  :class:`Action` for the session's client. The functions take the event's fields as plain values (enum
  *names*, numbers) so they can be tested without neonize; :mod:`.translate` reads them off the protobufs.
- **Retries.** The initial connect, which whatsmeow does not retry, and a broken event stream are retried
  with capped exponential backoff and full jitter (:class:`RetryPolicy`); a worker process that keeps dying
  is restarted with the same backoff until :class:`CrashLoop` gives up.
- **Error classification.** neonize reports failures as free text; :func:`connect_error_reason`,
  :func:`send_error`, :func:`lookup_error`, :func:`upload_error`, :func:`download_error` and
  :func:`presence_error` turn them into stable codes, and :func:`connect_error_detail` into a short sentence for
  people (``connection refused by proxy 127.0.0.1:3128``). A worker reports a failed request as
  :class:`SendFailure` (code, message, retryable).

Reasons are stable snake_case codes, optionally followed by ``:`` and a detail code
(``temporary_ban:sent_too_many_same_message``); ``docs/engines.md`` lists them.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...backoff import full_jitter
from ..base import Disconnected, EngineEvent, Failed, LoggedOut

__all__ = [
    "BACKOFF_CAP_S",
    "PAIRING_CONNECT_ATTEMPTS",
    "Action",
    "CrashLoop",
    "Outcome",
    "RetryPolicy",
    "SendFailure",
    "connect_error_detail",
    "connect_error_reason",
    "download_error",
    "group_error",
    "lookup_error",
    "on_client_outdated",
    "on_connect_failure",
    "on_disconnected",
    "on_keepalive_timeout",
    "on_logged_out",
    "on_stream_error",
    "on_stream_replaced",
    "on_temporary_ban",
    "presence_error",
    "send_error",
    "to_seconds",
    "upload_error",
]

BACKOFF_CAP_S = 60.0
"""Longest wait between two connect attempts of a session, or two restarts of a worker."""

PAIRING_CONNECT_ATTEMPTS = 3
"""Connect attempts of a new pairing before it fails: someone is waiting for the QR code, so a pairing
that cannot reach WhatsApp says so within seconds instead of retrying for minutes."""

WHATSAPP_UNREACHABLE = "whatsapp_unreachable"
"""The reason of every failure that means the network path to WhatsApp is down."""

# Fragments of Go network errors (net, net/http, crypto/tls, coder/websocket) meaning "could not reach".
_UNREACHABLE_FRAGMENTS = (
    "failed to dial",
    "no such host",
    "connection refused",
    "network is unreachable",
    "no route to host",
    "i/o timeout",
    "tls handshake timeout",
    "context deadline exceeded",
    "connection reset",
    "temporary failure in name resolution",
    "server misbehaving",
    "eof",
)

_NOT_CONNECTED_FRAGMENTS = (
    "not connected",
    "client is nil",
    "not logged in",
    "websocket not connected",
    "websocket is closed",
    "use of closed network connection",
)

# WhatsApp answered but the outcome is unknown: resending would risk a duplicate.
_UNCONFIRMED_FRAGMENTS = ("timed out", "timeout", "context deadline exceeded", "context canceled")

# whatsmeow failed *before* the message left (looking up the recipient's LID or devices, encrypting): nothing was
# sent, so trying again later is safe. Texts of whatsmeow's send.go (SendMessage, sendDM, sendGroup).
_NOT_SENT_FRAGMENTS = (
    "failed to get lid for pn",
    "failed to get user info",
    "failed to get device list",
    "failed to get group members",
    "failed to get broadcast list members",
    "failed to fetch lid mappings",
    "failed to prefetch sessions",
    "failed to send usync query",
)

EVENT_STREAM_BROKEN = "event_stream_broken"
CONNECT_TIMEOUT = "connect_timeout"
"""A paired session that is not connected ``wa_connect_timeout_s`` after pairing or a connect."""
RECONNECT_TIMEOUT = "reconnect_timeout"
"""whatsmeow has been reconnecting for ``wa_reconnect_timeout_s``; zapgate reconnects afresh."""
ENGINE_MISMATCH = "engine_mismatch"
"""The session's device record was made by another engine (the simulator)."""


class Action(enum.Enum):
    """What happens to the session's whatsmeow client after an event."""

    KEEP = "keep"
    """Nothing: whatsmeow stays connected or reconnects by itself."""
    STOP = "stop"
    """Stop the client and keep the device keys (temporary ban, replaced stream, refused connect)."""
    FORGET = "forget"
    """Stop the client and delete the device keys: WhatsApp unlinked the device."""


@dataclass(frozen=True, slots=True)
class Outcome:
    events: tuple[EngineEvent, ...]
    action: Action = Action.KEEP


def _code(name: str) -> str:
    return name.strip().lower().replace(" ", "_") or "unknown"


# -- status mapping


def on_disconnected() -> Outcome:
    """The websocket dropped; whatsmeow reconnects for ever with a growing delay."""
    return Outcome((Disconnected(reason="network"),))


def on_keepalive_timeout() -> Outcome:
    """WhatsApp stopped answering pings; whatsmeow forces a reconnect if it lasts."""
    return Outcome((Disconnected(reason="keepalive_timeout"),))


def on_logged_out(reason_name: str) -> Outcome:
    """WhatsApp unlinked the device (``LOGGED_OUT`` is the phone removing it; ``MAIN_DEVICE_GONE``,
    ``UNKNOWN_LOGOUT`` ... are WhatsApp's own reasons). The keys are void: forget them."""
    reason = "unlinked_from_phone" if reason_name == "LOGGED_OUT" else _code(reason_name)
    return Outcome((LoggedOut(reason=reason),), Action.FORGET)


def on_stream_replaced() -> Outcome:
    """The same device connected elsewhere. Terminal: reconnecting would kick the other one off, which would
    reconnect and kick this one, for ever."""
    return Outcome((Failed(reason="stream_replaced"),), Action.STOP)


def on_temporary_ban(code_name: str, expire_s: int, *, now: float) -> Outcome:
    """WhatsApp refuses the connection until the ban expires (``expire_s`` seconds from now)."""
    until = now + max(0, expire_s)
    return Outcome((Failed(reason=f"temporary_ban:{_code(code_name)}", retry_at=until),), Action.STOP)


def on_client_outdated(*, now: float, retry_after: float) -> Outcome:
    """405: WhatsApp no longer accepts this whatsmeow version; upgrading neonize is the fix. The session keeps
    probing rarely (``retry_after``) so that it comes back by itself once the gateway runs a newer build."""
    retry_at = now + retry_after if retry_after > 0 else None
    return Outcome((Failed(reason="client_outdated", retry_at=retry_at),), Action.STOP)


def on_connect_failure(reason_name: str, *, now: float, retry_after: float) -> Outcome:
    """WhatsApp refused the connection with ``reason_name`` (a ``ConnectFailureReason``)."""
    if reason_name in ("SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"):
        # 503/500: whatsmeow retries these by itself.
        return Outcome((Disconnected(reason=f"connect_failure:{_code(reason_name)}"),))
    if reason_name in ("LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"):
        return on_logged_out(reason_name)
    if reason_name == "TEMP_BANNED":
        # whatsmeow reports bans as TemporaryBan (with the expiry); this is the fallback without one.
        retry_at = now + retry_after if retry_after > 0 else None
        return Outcome((Failed(reason="temporary_ban:unknown", retry_at=retry_at),), Action.STOP)
    if reason_name == "CLIENT_OUTDATED":
        return on_client_outdated(now=now, retry_after=retry_after)
    retry_at = now + retry_after if retry_after > 0 else None
    return Outcome((Failed(reason=f"connect_failure:{_code(reason_name)}", retry_at=retry_at),), Action.STOP)


def on_stream_error(code: str) -> Outcome:
    """An unknown stream error; whatsmeow drops the socket and reconnects."""
    return Outcome((Disconnected(reason=f"stream_error:{_code(code)}"),))


# -- error classification


def connect_error_reason(message: str) -> str:
    """The reason code for a ``connect()`` that ended with neonize error text ``message``."""
    text = message.lower()
    if "required field" in text:
        # neonize could not encode an event (see docs/engines.md): the event pump is gone for good.
        return EVENT_STREAM_BROKEN
    if "database" in text or "sqlite" in text:
        return "device_store_error"
    if any(fragment in text for fragment in _UNREACHABLE_FRAGMENTS):
        return WHATSAPP_UNREACHABLE
    return "connect_error"


def send_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a failed send with neonize error text ``message``.

    Retryable only when the message certainly did not leave: the session is not connected, or whatsmeow failed
    while looking up the recipient (its LID, its devices), before anything was sent, even when that lookup timed
    out. A timeout *after* sending is not retryable because WhatsApp may have taken the message, and a resend
    would carry a new id (neonize cannot send with a chosen id), so the recipient could see it twice.
    """
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS):
        return "not_connected", True
    if any(fragment in text for fragment in _NOT_SENT_FRAGMENTS):
        return "lookup_failed", True
    if "no lid found" in text:
        # WhatsApp knows no hidden-user id for the number: it has no account.
        return "not_on_whatsapp", False
    if any(fragment in text for fragment in _UNCONFIRMED_FRAGMENTS):
        return "send_unconfirmed", False
    return "whatsapp_refused", False


class SendFailure(Exception):
    """A request a worker could not carry out (a send, a read receipt, a download, a presence); carries the
    :class:`~zapgate.engines.base.SendError` fields."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


_HTTP_STATUS = re.compile(r"status code (\d{3})")
# whatsmeow's download.go: the CDN no longer has the file (WhatsApp keeps media for a limited time).
_EXPIRED_STATUSES = frozenset({403, 404, 410})
# whatsmeow's download.go: the bytes do not decrypt or do not match the message's hashes; a retry gets the same.
_INVALID_MEDIA_FRAGMENTS = (
    "invalid media hmac",
    "hash of media",
    "hash of unencrypted media",
    "file length does not match",
    "too short",
    "unknown media type",
    "does not start with slash",
    "invalid checksum length",
    "didn't find any attachments",
    "no url present",
)


def upload_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a failed media upload. Nothing was sent, so it is retryable, unless WhatsApp's media
    server refused the file itself (a 4xx status other than 408 and 429: the same file would be refused again)."""
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS):
        return "not_connected", True
    status = _HTTP_STATUS.search(text)
    if status is not None and 400 <= int(status.group(1)) < 500 and int(status.group(1)) not in (408, 429):
        return "upload_refused", False
    return "upload_failed", True


def download_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a failed download of a received file: ``media_expired`` (WhatsApp's CDN answered 403,
    404 or 410: the file is gone; the sender's phone could upload it again, which neonize cannot ask for) and
    ``media_invalid`` are final; being offline and network trouble are not."""
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS):
        return "not_connected", True
    status = _HTTP_STATUS.search(text)
    if status is not None and int(status.group(1)) in _EXPIRED_STATUSES:
        return "media_expired", False
    if any(fragment in text for fragment in _INVALID_MEDIA_FRAGMENTS):
        return "media_invalid", False
    return "download_failed", True


def group_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a group's members that could not be fetched (to mention ``all``): nothing was sent;
    a timeout may pass, but WhatsApp refusing (the session is not in the group) will not."""
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS):
        return "not_connected", True
    if any(fragment in text for fragment in _UNCONFIRMED_FRAGMENTS):
        return "group_unavailable", True
    return "group_unavailable", False


_GROUP_GONE = ("not participating", "group not found", "item-not-found", "status 404", "error 404")
_INVITE_BAD = ("invite link is not valid", "invite link has been revoked", "invite link")
_NOT_ADMIN = ("forbidden", "status 403", "error 403", "permission", "not-authorized", "status 401", "error 401")


def group_call_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a group call whatsmeow failed (``group.*``), from whatsmeow's error texts: the
    session is not in the group (or it does not exist), an invite link WhatsApp refuses, a change only admins may
    make; a timeout may pass."""
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS):
        return "not_connected", True
    if any(fragment in text for fragment in _UNCONFIRMED_FRAGMENTS):
        return "group_unavailable", True
    if any(fragment in text for fragment in _INVITE_BAD):
        return "invite_invalid", False
    if any(fragment in text for fragment in _GROUP_GONE):
        return "group_not_found", False
    if any(fragment in text for fragment in _NOT_ADMIN):
        return "not_group_admin", False
    return "group_failed", False


def presence_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a presence whatsmeow did not send."""
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS) or "pushname" in text.replace(" ", ""):
        return "not_connected", True  # also: no push name yet, right after connecting
    return "presence_failed", False


def lookup_error(message: str) -> tuple[str, bool]:
    """(code, retryable) for a failed look-up made before sending (``is_on_whatsapp``). Nothing was sent, so it
    is always retryable, timeouts included."""
    text = message.lower()
    if any(fragment in text for fragment in _NOT_CONNECTED_FRAGMENTS):
        return "not_connected", True
    return "lookup_failed", True


_GO_PREFIXES = re.compile(
    r"^(?:failed to dial whatsapp web websocket: |failed to WebSocket dial: |failed to send handshake request: "
    r'|Get "[^"]*": )+'
)
_DNS = re.compile(r"lookup (?P<host>[^\s:]+)(?: on [^ ]+)?: (?P<why>.+)$")
_PROXY_DIAL = re.compile(r"proxyconnect tcp: dial tcp (?P<addr>[^ ]+): (?:connect: )?(?P<why>.+)$")
_DIAL = re.compile(r"dial tcp (?P<addr>[^ ]+): (?:connect: )?(?P<why>.+)$")


def connect_error_detail(message: str, *, proxy: str | None = None) -> str | None:
    """A short sentence for people about a failed connect, from neonize's error text ``message``.

    ``proxy`` is the proxy the connect went through (zapgate's ``wa_proxy``, or ``HTTPS_PROXY``); only its
    host and port are ever shown. None when there is nothing to say."""
    text = _GO_PREFIXES.sub("", message.strip())
    if not text:
        return None
    via = _proxy_address(proxy)
    if match := _PROXY_DIAL.search(text):
        inner = match["why"]
        return f"{_plain(inner)} by proxy {match['addr']}" if "refused" in inner else f"proxy {match['addr']}: {inner}"
    if match := _DNS.search(text):
        why = match["why"]
        what = "the proxy " if "proxyconnect" in text else ""
        return f"cannot resolve {what}{match['host']}" + ("" if why == "no such host" else f" ({why})")
    if match := _DIAL.search(text):
        why = match["why"]
        return f"{_plain(why)} by {match['addr']}" if "refused" in why else f"cannot connect to {match['addr']}: {why}"
    lowered = text.lower()
    if "tls handshake timeout" in lowered:
        return "the TLS handshake with web.whatsapp.com timed out" + (f" (through proxy {via})" if via else "")
    if "context deadline exceeded" in lowered:
        return "no answer within the connect timeout" + (f" (through proxy {via})" if via else "")
    if via and ":" not in text and len(text) < 60:
        # An HTTP proxy that refused the CONNECT: Go reports its status text alone ("Forbidden"), or that the
        # proxy hung up ("unexpected EOF").
        return f"proxy {via} did not open a tunnel to web.whatsapp.com ({text})"
    return text


def _plain(why: str) -> str:
    return "connection refused" if "refused" in why else why


def _proxy_address(proxy: str | None) -> str | None:
    if not proxy:
        return None
    try:
        parsed = urlsplit(proxy)
        port = parsed.port
    except ValueError:
        return None
    if not parsed.hostname:
        return None
    return f"{parsed.hostname}:{port}" if port else parsed.hostname


def to_seconds(timestamp: int) -> int:
    """Unix seconds from a neonize timestamp: ``MessageInfo.Timestamp`` is in milliseconds while receipts
    and send responses are in seconds. Anything past year 5138 in seconds is taken as milliseconds."""
    return timestamp // 1000 if timestamp > 100_000_000_000 else timestamp


# -- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter over a fixed number of attempts."""

    attempts: int
    base: float
    cap: float = BACKOFF_CAP_S

    def delay(self, failures: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``failures`` consecutive failed attempts (1-based) before the next one, or
        None when every attempt is used up."""
        if failures < 1:
            raise ValueError("failures starts at 1")
        if failures >= self.attempts:
            return None
        return full_jitter(failures, base=self.base, cap=self.cap, rng=rng)


def connect_policy(*, attempts: int, base: float, paired: bool) -> RetryPolicy:
    """The connect retry policy of a session: ``attempts`` for a paired one, at most
    :data:`PAIRING_CONNECT_ATTEMPTS` for a new pairing."""
    return RetryPolicy(attempts if paired else min(attempts, PAIRING_CONNECT_ATTEMPTS), base)


@dataclass(slots=True)
class CrashLoop:
    """Restart decisions for one worker slot.

    A worker that lived at least ``healthy_after`` seconds resets the count; otherwise each exit counts as one
    more consecutive crash. After ``max_restarts`` consecutive crashes it gives up.
    """

    max_restarts: int
    base: float
    healthy_after: float
    cap: float = BACKOFF_CAP_S
    crashes: int = 0

    def record_exit(self, lived_s: float, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before restarting a worker that died after ``lived_s`` seconds, or None to give up."""
        if lived_s >= self.healthy_after:
            self.crashes = 0
        self.crashes += 1
        if self.crashes > self.max_restarts:
            return None
        return full_jitter(self.crashes, base=self.base, cap=self.cap, rng=rng)
