"""The SDK's webhook methods (``webhook.*``), mixed into :class:`~zapgate.client.Client`.

Commands that would do something twice when sent again (creating an endpoint, rotating a secret, deleting) are
not resent after a dropped connection; the others are (``docs/client.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from ..protocol import (
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
from ..protocol.base import Command

__all__ = ["WebhookCommands"]

T = TypeVar("T")


class WebhookCommands:
    """Mixed into :class:`~zapgate.client.Client` (which provides the three methods below); every method needs a
    token with the ``tenant`` scope, not limited to some sessions."""

    def _new_id(self) -> str:
        raise NotImplementedError

    async def _request(self, command: Command, result: type[T], *, retry_safe: bool) -> T:
        raise NotImplementedError

    async def _call(self, command: Command, *, retry_safe: bool) -> Any:
        raise NotImplementedError
    async def create_webhook(
        self,
        url: str,
        *,
        events: Iterable[str] = (),
        sessions: Iterable[str] = (),
        secret: str | None = None,
        description: str = "",
        from_seq: int | None = None,
    ) -> WebhookCreated:
        """Add an endpoint that receives the tenant's events (filtered by ``events`` and ``sessions``; empty:
        all). The answer's ``secret`` is shown only here: keep it to verify the signatures."""
        cmd = WebhookCreate(
            id=self._new_id(),
            url=url,
            events=list(events),
            sessions=list(sessions),
            secret=secret,
            description=description,
            from_seq=from_seq,
        )
        return await self._request(cmd, WebhookCreated, retry_safe=False)

    async def webhooks(self) -> list[WebhookInfo]:
        """The tenant's endpoints, oldest first."""
        return (await self._request(WebhookList(id=self._new_id()), WebhookListResult, retry_safe=True)).webhooks

    async def webhook(self, webhook: str) -> WebhookInfo:
        """One endpoint and where its delivery stands; :class:`~zapgate.errors.WebhookNotFound` if none."""
        return await self._request(WebhookGet(id=self._new_id(), webhook=webhook), WebhookInfo, retry_safe=True)

    async def update_webhook(
        self,
        webhook: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        sessions: Iterable[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        secret: str | None = None,
    ) -> WebhookInfo:
        """Change what is given; ``enabled=True`` resumes an endpoint the gateway disabled, at its cursor."""
        cmd = WebhookUpdate(
            id=self._new_id(),
            webhook=webhook,
            url=url,
            events=list(events) if events is not None else None,
            sessions=list(sessions) if sessions is not None else None,
            description=description,
            enabled=enabled,
            secret=secret,
        )
        return await self._request(cmd, WebhookInfo, retry_safe=secret is None)

    async def delete_webhook(self, webhook: str) -> None:
        await self._call(WebhookDelete(id=self._new_id(), webhook=webhook), retry_safe=False)

    async def rotate_webhook_secret(self, webhook: str, secret: str | None = None) -> WebhookSecretRotated:
        """A new signing secret (given, or generated); the previous one keeps signing too for a while."""
        cmd = WebhookRotateSecret(id=self._new_id(), webhook=webhook, secret=secret)
        return await self._request(cmd, WebhookSecretRotated, retry_safe=False)

    async def test_webhook(self, webhook: str) -> WebhookTestResult:
        """Send a signed ``webhook.ping`` now and return what the receiver answered."""
        return await self._request(WebhookTest(id=self._new_id(), webhook=webhook), WebhookTestResult, retry_safe=True)

    async def replay_webhook(self, webhook: str, from_seq: int) -> WebhookInfo:
        """Deliver again the events from ``from_seq`` on (those the log still holds), with their original ids."""
        cmd = WebhookReplay(id=self._new_id(), webhook=webhook, from_seq=from_seq)
        return await self._request(cmd, WebhookInfo, retry_safe=True)

    async def webhook_attempts(self, webhook: str, limit: int = 100) -> list[WebhookAttempt]:
        """The newest delivery attempts, newest first."""
        cmd = WebhookAttempts(id=self._new_id(), webhook=webhook, limit=limit)
        return (await self._request(cmd, WebhookAttemptsResult, retry_safe=True)).attempts

    async def webhook_dead_letters(self, webhook: str, limit: int = 100) -> list[WebhookDeadLetter]:
        """Events the endpoint never accepted, oldest first."""
        cmd = WebhookDeadLetters(id=self._new_id(), webhook=webhook, limit=limit)
        return (await self._request(cmd, WebhookDeadLettersResult, retry_safe=True)).dead_letters

    async def redeliver_webhook(self, webhook: str, seq: int | None = None) -> int:
        """Send dead letters again (the one of ``seq``, or all); returns how many were queued."""
        cmd = WebhookRedeliver(id=self._new_id(), webhook=webhook, seq=seq)
        return (await self._request(cmd, WebhookRedeliverResult, retry_safe=True)).queued
