"""The SDK's admin methods (a token with the ``admin`` scope): tenants, tokens and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from ..protocol import (
    AuditEntryInfo,
    AuditList,
    AuditPage,
    Command,
    Scope,
    TenantCreate,
    TenantDisable,
    TenantEnable,
    TenantInfo,
    TenantList,
    TenantListResult,
    TenantUpdate,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    TokenList,
    TokenListResult,
    TokenRevoke,
)

__all__ = ["AdminCommands"]

T = TypeVar("T")

_UNSET: Any = msgspec.UNSET


class AdminCommands:
    """Mixed into :class:`~zapgate.client.Client`; every method raises :class:`~zapgate.errors.Forbidden` for a
    token without the ``admin`` scope."""

    def _new_id(self) -> str:
        raise NotImplementedError

    async def _request(self, command: Command, result: type[T], *, retry_safe: bool) -> T:
        raise NotImplementedError

    async def create_tenant(
        self,
        tenant: str,
        *,
        max_sessions: int | None = None,
        max_queued_messages: int | None = None,
        max_queued_bytes: int | None = None,
    ) -> TenantInfo:
        """Create a tenant, with quotas of its own where given (0: no limit)."""
        cmd = TenantCreate(
            id=self._new_id(),
            tenant=tenant,
            max_sessions=max_sessions,
            max_queued_messages=max_queued_messages,
            max_queued_bytes=max_queued_bytes,
        )
        return await self._request(cmd, TenantInfo, retry_safe=False)

    async def tenants(self) -> list[TenantInfo]:
        result = await self._request(TenantList(id=self._new_id()), TenantListResult, retry_safe=True)
        return result.tenants

    async def update_tenant(
        self,
        tenant: str,
        *,
        max_sessions: int | None = _UNSET,
        max_queued_messages: int | None = _UNSET,
        max_queued_bytes: int | None = _UNSET,
    ) -> TenantInfo:
        """Change a tenant's quotas: a number sets one, None returns it to the gateway's default, a quota not
        passed is left as it is."""
        cmd = TenantUpdate(
            id=self._new_id(),
            tenant=tenant,
            max_sessions=max_sessions,
            max_queued_messages=max_queued_messages,
            max_queued_bytes=max_queued_bytes,
        )
        return await self._request(cmd, TenantInfo, retry_safe=True)

    async def disable_tenant(self, tenant: str) -> TenantInfo:
        """Refuse the tenant's tokens, close its connections and stop its sessions (idempotent)."""
        return await self._request(TenantDisable(id=self._new_id(), tenant=tenant), TenantInfo, retry_safe=True)

    async def enable_tenant(self, tenant: str) -> TenantInfo:
        return await self._request(TenantEnable(id=self._new_id(), tenant=tenant), TenantInfo, retry_safe=True)

    async def create_token(
        self,
        tenant: str,
        *,
        scopes: Sequence[Scope | str] = (Scope.TENANT,),
        sessions: Sequence[str] | None = None,
        expires_in: float | None = None,
        label: str = "",
    ) -> TokenCreated:
        """Create a token; ``result.token`` is the token itself, shown this once."""
        cmd = TokenCreate(
            id=self._new_id(),
            tenant=tenant,
            scopes=[Scope(s) for s in scopes],
            sessions=list(sessions) if sessions is not None else None,
            expires_in=expires_in,
            label=label,
        )
        return await self._request(cmd, TokenCreated, retry_safe=False)

    async def tokens(self, tenant: str | None = None) -> list[TokenInfo]:
        result = await self._request(TokenList(id=self._new_id(), tenant=tenant), TokenListResult, retry_safe=True)
        return result.tokens

    async def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token and close its connections; :class:`~zapgate.errors.TokenNotFound` if it is not active."""
        return await self._request(TokenRevoke(id=self._new_id(), token_id=token_id), TokenInfo, retry_safe=False)

    async def audit(
        self, *, tenant: str | None = None, after: int | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditEntryInfo]:
        """Audit entries, oldest first: those after the entry ``after``, or the newest ``limit``; ``before`` keeps
        those before that entry (the page before)."""
        cmd = AuditList(id=self._new_id(), tenant=tenant, after=after, before=before, limit=limit)
        return (await self._request(cmd, AuditPage, retry_safe=True)).entries
