"""Webhooks: HTTP endpoints of a tenant that receive its events, signed per Standard Webhooks (pure).

Each endpoint has a cursor in the tenant's event log: the gateway POSTs every event after it (filtered by
event type and session) in ``seq`` order, and moves the cursor only when the receiver answered 2xx
(``docs/webhooks.md``). The body is the very event frame the socket sends.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Command, Empty, Scope, Seq, SessionName, command, event

__all__ = [
    "WebhookAttempt",
    "WebhookAttempts",
    "WebhookAttemptsResult",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookDeadLetter",
    "WebhookDeadLetters",
    "WebhookDeadLettersResult",
    "WebhookDelete",
    "WebhookDisabledData",
    "WebhookGet",
    "WebhookInfo",
    "WebhookList",
    "WebhookListResult",
    "WebhookPingData",
    "WebhookRedeliver",
    "WebhookRedeliverResult",
    "WebhookReplay",
    "WebhookRotateSecret",
    "WebhookSecretRotated",
    "WebhookTest",
    "WebhookTestResult",
    "WebhookUpdate",
]

WebhookId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, description="the endpoint's id, as webhook.create answered")
]
WebhookUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[Hh][Tt][Tt][Pp][Ss]?://\S+\Z",
        max_length=2048,
        description="an http:// or https:// URL the gateway POSTs to",
    ),
]
WebhookSecret = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\Awhsec_[A-Za-z0-9+/]+={0,2}\Z",
        max_length=200,
        description="whsec_ followed by the base64 of 24 to 64 random bytes",
    ),
]
EventName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="an event name (message.received)")]
Description = Annotated[str, msgspec.Meta(max_length=200)]
MAX_FILTER_ITEMS = 100
"""Most event names, and most session names, in one endpoint's filter."""


class WebhookInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    """An endpoint of the tenant and where its delivery stands (never its secret)."""

    webhook: str
    url: str
    events: list[str] = []
    """Event names delivered; empty: every event."""
    sessions: list[str] = []
    """Session names whose events are delivered; empty: every session (and tenant-wide events)."""
    description: str = ""
    enabled: bool
    disabled_reason: str | None = None
    """Why the gateway disabled it: ``failing`` (every attempt failed for ``webhook_disable_after_s``) or
    ``gone`` (the receiver answered 410); absent when enabled or disabled by ``webhook.update``."""
    cursor: int
    """Every event up to this ``seq`` was delivered (or skipped by the filter, or dead-lettered)."""
    pending: int
    """Events of the tenant after the cursor (filtered or not): how far delivery is behind."""
    failing_since: float | None = None
    """Since when every attempt failed (absent while deliveries succeed)."""
    last_status: int | None = None
    """HTTP status of the newest attempt (absent: none yet, or no answer)."""
    last_error: str | None = None
    last_attempt_at: float | None = None
    previous_secret_expires_at: float | None = None
    """After a rotation: until when the previous secret still signs too."""
    created_at: float
    updated_at: float


class WebhookCreated(WebhookInfo, kw_only=True):
    secret: str
    """The signing secret: shown here only (and by ``webhook.rotate_secret``)."""


@command(reply=WebhookCreated, scope=Scope.TENANT, http=("POST", "/v1/webhooks"))
class WebhookCreate(Command, tag="webhook.create"):
    """Add an endpoint: the tenant's events from now on are POSTed to ``url``, signed with ``secret`` (one is
    generated when absent). ``events`` and ``sessions`` filter what is sent (empty: everything)."""

    url: WebhookUrl
    events: Annotated[list[EventName], msgspec.Meta(max_length=MAX_FILTER_ITEMS)] = []
    sessions: Annotated[list[SessionName], msgspec.Meta(max_length=MAX_FILTER_ITEMS)] = []
    secret: WebhookSecret | None = None
    description: Description = ""
    from_seq: Seq | None = None
    """Deliver the events from this ``seq`` on that are still in the log too (default: only new ones)."""


class WebhookListResult(msgspec.Struct):
    webhooks: list[WebhookInfo]


@command(reply=WebhookListResult, scope=Scope.TENANT, http=("GET", "/v1/webhooks"))
class WebhookList(Command, tag="webhook.list"):
    """The tenant's endpoints, oldest first."""


@command(reply=WebhookInfo, scope=Scope.TENANT, http=("GET", "/v1/webhooks/{webhook}"))
class WebhookGet(Command, tag="webhook.get"):
    """One endpoint and where its delivery stands."""

    webhook: WebhookId


@command(reply=WebhookInfo, scope=Scope.TENANT, http=("PATCH", "/v1/webhooks/{webhook}"))
class WebhookUpdate(Command, tag="webhook.update"):
    """Change an endpoint; absent fields stay. ``enabled: true`` re-enables an endpoint the gateway disabled
    (delivery resumes at its cursor). A new ``secret`` is a rotation: the previous one keeps signing too for
    ``webhook_secret_grace_s``."""

    webhook: WebhookId
    url: WebhookUrl | None = None
    events: Annotated[list[EventName], msgspec.Meta(max_length=MAX_FILTER_ITEMS)] | None = None
    sessions: Annotated[list[SessionName], msgspec.Meta(max_length=MAX_FILTER_ITEMS)] | None = None
    description: Description | None = None
    enabled: bool | None = None
    secret: WebhookSecret | None = None


@command(reply=Empty, scope=Scope.TENANT, http=("DELETE", "/v1/webhooks/{webhook}"))
class WebhookDelete(Command, tag="webhook.delete"):
    """Remove an endpoint, its attempts and its dead letters; nothing more is sent to it."""

    webhook: WebhookId


class WebhookSecretRotated(msgspec.Struct, kw_only=True):
    secret: str
    """The new signing secret (shown only here)."""
    previous_secret_expires_at: float
    """Until then requests carry two signatures, one per secret."""


@command(reply=WebhookSecretRotated, scope=Scope.TENANT, http=("POST", "/v1/webhooks/{webhook}/rotate-secret"))
class WebhookRotateSecret(Command, tag="webhook.rotate_secret"):
    """Replace the signing secret (with ``secret``, or a generated one). The previous secret keeps signing,
    next to the new one, for ``webhook_secret_grace_s``, so receivers can switch without losing a request."""

    webhook: WebhookId
    secret: WebhookSecret | None = None


class WebhookTestResult(msgspec.Struct, omit_defaults=True, kw_only=True):
    ok: bool
    """True when the receiver answered 2xx."""
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None


@command(reply=WebhookTestResult, scope=Scope.TENANT, http=("POST", "/v1/webhooks/{webhook}/test"))
class WebhookTest(Command, tag="webhook.test"):
    """Send a signed ``webhook.ping`` event to the endpoint now (once, outside the log) and answer what
    the receiver said."""

    webhook: WebhookId


@command(reply=WebhookInfo, scope=Scope.TENANT, http=("POST", "/v1/webhooks/{webhook}/replay"))
class WebhookReplay(Command, tag="webhook.replay"):
    """Move the endpoint's cursor back (or forward): delivery goes on with the events from ``from_seq`` on that
    are still in the log. Events delivered before are delivered again, with the same ``webhook-id``."""

    webhook: WebhookId
    from_seq: Seq


class WebhookAttempt(msgspec.Struct, omit_defaults=True, kw_only=True):
    seq: int
    """The event (0: a ``webhook.test`` ping)."""
    event: str
    attempt: int
    """1 for the first try of this event since the gateway started, then 2, 3…"""
    outcome: Literal["delivered", "retry", "dead", "ping"]
    status: int | None = None
    """The receiver's HTTP status (absent: no answer — refused, timed out, connection failed)."""
    latency_ms: float
    error: str | None = None
    at: float


class WebhookAttemptsResult(msgspec.Struct):
    attempts: list[WebhookAttempt]
    """Newest first."""


@command(reply=WebhookAttemptsResult, scope=Scope.TENANT, http=("GET", "/v1/webhooks/{webhook}/attempts"))
class WebhookAttempts(Command, tag="webhook.attempts"):
    """The endpoint's newest delivery attempts (the gateway keeps its last 1000)."""

    webhook: WebhookId
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class WebhookDeadLetter(msgspec.Struct, omit_defaults=True, kw_only=True):
    seq: int
    event: str
    session: str
    attempts: int
    status: int | None = None
    """The last answer's HTTP status."""
    error: str | None = None
    dead_at: float
    redeliver: bool = False
    """True while a ``webhook.redeliver`` of it is waiting to be sent."""


class WebhookDeadLettersResult(msgspec.Struct):
    dead_letters: list[WebhookDeadLetter]
    """Oldest first."""


@command(reply=WebhookDeadLettersResult, scope=Scope.TENANT, http=("GET", "/v1/webhooks/{webhook}/dead-letters"))
class WebhookDeadLetters(Command, tag="webhook.dead_letters"):
    """Events the endpoint never accepted: refused for good (400, 401, 403, 404, 410, 422) or still failing at
    the end of the retry schedule. Each keeps a copy of its event, so it can be redelivered after the log
    dropped it."""

    webhook: WebhookId
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class WebhookRedeliverResult(msgspec.Struct):
    queued: int
    """Dead letters queued for delivery."""


@command(reply=WebhookRedeliverResult, scope=Scope.TENANT, http=("POST", "/v1/webhooks/{webhook}/redeliver"))
class WebhookRedeliver(Command, tag="webhook.redeliver"):
    """Send dead letters again (the one of ``seq``, or all): they go before the next event of the log, with
    their original ``webhook-id``; one that fails again goes back to the dead letters."""

    webhook: WebhookId
    seq: Seq | None = None


class WebhookDisabledData(msgspec.Struct, kw_only=True):
    webhook: str
    url: str
    reason: Literal["failing", "gone"]
    """``failing``: every attempt failed for ``webhook_disable_after_s``; ``gone``: the receiver answered 410."""
    failing_since: float


class WebhookPingData(msgspec.Struct, kw_only=True):
    webhook: str


event(
    "webhook.disabled",
    WebhookDisabledData,
    "the gateway disabled an endpoint that kept failing (webhook.update enabled=true resumes it at its cursor)",
)
event("webhook.ping", WebhookPingData, "sent to an endpoint by webhook.test only; never in the event log")
