"""``webhook.*``: the tenant's HTTP endpoints (``docs/webhooks.md``)."""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...auth import Caller
from ...errors import Forbidden, InvalidRequest, TooManyWebhooks, WebhookNotFound
from ...gateway import Gateway
from ...protocol import (
    EVENTS,
    Empty,
    WebhookAttempt,
    WebhookAttempts,
    WebhookAttemptsResult,
    WebhookCreate,
    WebhookCreated,
    WebhookDeadLetter,
    WebhookDeadLetters,
    WebhookDeadLettersResult,
    WebhookDelete,
    WebhookGet,
    WebhookInfo,
    WebhookList,
    WebhookListResult,
    WebhookRedeliver,
    WebhookRedeliverResult,
    WebhookReplay,
    WebhookRotateSecret,
    WebhookSecretRotated,
    WebhookTest,
    WebhookTestResult,
    WebhookUpdate,
)
from ...storage import WebhookRecord
from ...webhooks import generate_secret
from ...webhooks.signing import secret_key
from .registry import handles

__all__: list[str] = []

NOT_DELIVERED = frozenset({"webhook.ping"})
"""Event names that are not in the log, so no filter can name them."""


def _info(record: WebhookRecord) -> dict[str, Any]:
    previous = (
        record.previous_secret_until
        if record.previous_secret_until and record.previous_secret_until > time.time()
        else None
    )
    return {
        "webhook": record.id,
        "url": record.url,
        "events": record.events,
        "sessions": record.sessions,
        "description": record.description,
        "enabled": record.enabled,
        "disabled_reason": record.disabled_reason,
        "cursor": record.cursor,
        "pending": record.pending,
        "failing_since": record.failing_since,
        "last_status": record.last_status,
        "last_error": record.last_error,
        "last_attempt_at": record.last_attempt_at,
        "previous_secret_expires_at": previous,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _check_url(gw: Gateway, url: str) -> str:
    try:
        parts = urlsplit(url)
        httpx.URL(url)  # what the sender will parse: a URL it cannot use is refused now, not at each attempt
        parts.port  # noqa: B018 - raises ValueError for a port out of range
        (parts.hostname or "").encode("idna")  # UnicodeError (a ValueError) for an empty label, one too long…
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidRequest(f"url: not a usable URL ({exc})") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequest(f"url must be an http:// or https:// URL with a host, not {url!r}")
    if parts.username or parts.password:
        raise InvalidRequest("url must not carry a user name or password; use the signature to authenticate")
    host = parts.hostname
    policy = gw.settings.outbound_policy
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1") if host == "localhost" or host.endswith(".localhost") else None
    # Names are checked again, after DNS resolution, on every connection (zapgate.netguard).
    if address is not None and not policy.permits(address):
        raise InvalidRequest(
            f"url: {host} is not a public address; webhooks may reach it only if ZAPGATE_OUTBOUND_ALLOW allows it"
        )
    return url


def _check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS or e in NOT_DELIVERED]
    if unknown:
        raise InvalidRequest(f"events: unknown event names {unknown} (see docs/protocol.md, Events)")
    return sorted(set(events))


def _check_secret(secret: str) -> str:
    try:
        secret_key(secret)
    except ValueError as exc:
        raise InvalidRequest(f"secret: {exc}") from None
    return secret


def _whole_tenant(caller: Caller) -> None:
    """Endpoints are the tenant's and receive every session's events: a token limited to some sessions could
    read other sessions' events through one, so it may not manage them."""
    if caller.sessions is not None:
        raise Forbidden("webhooks need a token that is not limited to some sessions")


async def _record(gw: Gateway, caller: Caller, webhook_id: str) -> WebhookRecord:
    _whole_tenant(caller)
    record = await gw.storage.webhooks.get(webhook_id, caller.tenant)
    if record is None:
        raise WebhookNotFound(f"no webhook {webhook_id!r}")
    return record


@handles(WebhookCreate)
async def webhook_create(gw: Gateway, caller: Caller, cmd: WebhookCreate) -> WebhookCreated:
    _whole_tenant(caller)
    now = time.time()
    record = WebhookRecord(
        id="wh_" + secrets.token_hex(8),
        tenant=caller.tenant,
        url=_check_url(gw, cmd.url),
        secret=_check_secret(cmd.secret) if cmd.secret else generate_secret(),
        created_at=now,
        updated_at=now,
        events=_check_events(cmd.events),
        sessions=sorted(set(cmd.sessions)),
        description=cmd.description,
    )
    limit = gw.settings.webhook_max_per_tenant
    stored = await gw.storage.webhooks.add(record, limit=limit, from_seq=cmd.from_seq)
    if stored is None:
        raise TooManyWebhooks(f"the tenant has {limit} webhooks already (webhook_max_per_tenant); delete one first")
    await gw.webhooks.changed(stored.id)
    return WebhookCreated(**_info(stored), secret=stored.secret)


@handles(WebhookList)
async def webhook_list(gw: Gateway, caller: Caller, cmd: WebhookList) -> WebhookListResult:
    _whole_tenant(caller)
    return WebhookListResult([WebhookInfo(**_info(r)) for r in await gw.storage.webhooks.of_tenant(caller.tenant)])


@handles(WebhookGet)
async def webhook_get(gw: Gateway, caller: Caller, cmd: WebhookGet) -> WebhookInfo:
    return WebhookInfo(**_info(await _record(gw, caller, cmd.webhook)))


async def _update(gw: Gateway, caller: Caller, webhook_id: str, changes: dict[str, Any]) -> WebhookRecord:
    _whole_tenant(caller)
    record = await gw.storage.webhooks.update(caller.tenant, webhook_id, changes)
    if record is None:
        raise WebhookNotFound(f"no webhook {webhook_id!r}")
    await gw.webhooks.changed(webhook_id)
    return record


def _rotation(gw: Gateway, record: WebhookRecord, secret: str) -> dict[str, Any]:
    return {
        "secret": _check_secret(secret),
        "previous_secret": record.secret,
        "previous_secret_until": time.time() + gw.settings.webhook_secret_grace_s,
    }


@handles(WebhookUpdate)
async def webhook_update(gw: Gateway, caller: Caller, cmd: WebhookUpdate) -> WebhookInfo:
    changes: dict[str, Any] = {}
    if cmd.url is not None:
        changes["url"] = _check_url(gw, cmd.url)
    if cmd.events is not None:
        changes["events"] = _check_events(cmd.events)
    if cmd.sessions is not None:
        changes["sessions"] = sorted(set(cmd.sessions))
    if cmd.description is not None:
        changes["description"] = cmd.description
    if cmd.enabled is not None:
        changes["enabled"] = int(cmd.enabled)
        if not cmd.enabled:
            changes["disabled_reason"] = None
    if cmd.secret is not None:
        changes.update(_rotation(gw, await _record(gw, caller, cmd.webhook), cmd.secret))
    return WebhookInfo(**_info(await _update(gw, caller, cmd.webhook, changes)))


@handles(WebhookRotateSecret)
async def webhook_rotate_secret(gw: Gateway, caller: Caller, cmd: WebhookRotateSecret) -> WebhookSecretRotated:
    changes = _rotation(gw, await _record(gw, caller, cmd.webhook), cmd.secret or generate_secret())
    await _update(gw, caller, cmd.webhook, changes)
    return WebhookSecretRotated(secret=changes["secret"], previous_secret_expires_at=changes["previous_secret_until"])


@handles(WebhookDelete)
async def webhook_delete(gw: Gateway, caller: Caller, cmd: WebhookDelete) -> Empty:
    _whole_tenant(caller)
    if not await gw.storage.webhooks.delete(caller.tenant, cmd.webhook):
        raise WebhookNotFound(f"no webhook {cmd.webhook!r}")
    await gw.webhooks.changed(cmd.webhook)
    return Empty()


@handles(WebhookTest)
async def webhook_test(gw: Gateway, caller: Caller, cmd: WebhookTest) -> WebhookTestResult:
    answer = await gw.webhooks.ping(await _record(gw, caller, cmd.webhook))
    ok = answer.status is not None and 200 <= answer.status < 300
    return WebhookTestResult(ok=ok, status=answer.status, latency_ms=answer.latency_ms, error=answer.error)


@handles(WebhookReplay)
async def webhook_replay(gw: Gateway, caller: Caller, cmd: WebhookReplay) -> WebhookInfo:
    newest = (await gw.storage.tenant_seqs([caller.tenant])).get(caller.tenant, 0)
    cursor = min(newest, max(0, cmd.from_seq - 1))
    return WebhookInfo(**_info(await _update(gw, caller, cmd.webhook, {"cursor_seq": cursor})))


@handles(WebhookAttempts)
async def webhook_attempts(gw: Gateway, caller: Caller, cmd: WebhookAttempts) -> WebhookAttemptsResult:
    record = await _record(gw, caller, cmd.webhook)
    rows = await gw.storage.webhooks.attempts(record.id, cmd.limit)
    return WebhookAttemptsResult(
        [
            WebhookAttempt(
                seq=a.seq,
                event=a.event,
                attempt=a.attempt,
                outcome=a.outcome,  # type: ignore[arg-type]  # the store keeps only these four
                status=a.status,
                latency_ms=a.latency_ms,
                error=a.error,
                at=a.at,
            )
            for a in rows
        ]
    )


@handles(WebhookDeadLetters)
async def webhook_dead_letters(gw: Gateway, caller: Caller, cmd: WebhookDeadLetters) -> WebhookDeadLettersResult:
    record = await _record(gw, caller, cmd.webhook)
    rows = await gw.storage.webhooks.dead_letters(record.id, cmd.limit)
    return WebhookDeadLettersResult(
        [
            WebhookDeadLetter(
                seq=d.event.seq,
                event=d.event.event,
                session=d.event.session,
                attempts=d.attempts,
                status=d.status,
                error=d.error,
                dead_at=d.dead_at,
                redeliver=d.redeliver,
            )
            for d in rows
        ]
    )


@handles(WebhookRedeliver)
async def webhook_redeliver(gw: Gateway, caller: Caller, cmd: WebhookRedeliver) -> WebhookRedeliverResult:
    record = await _record(gw, caller, cmd.webhook)
    queued = await gw.storage.webhooks.queue_redelivery(record.id, cmd.seq)
    gw.webhooks.redeliver(record.id)
    return WebhookRedeliverResult(queued)
