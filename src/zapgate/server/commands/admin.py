"""``tenant.*``, ``token.*``, ``audit.list``: the admin API (``admin`` scope, across tenants)."""

from __future__ import annotations

import time

import msgspec

from ...auth import Caller
from ...errors import TenantNotFound, TokenNotFound
from ...gateway import Gateway
from ...protocol import (
    AuditEntryInfo,
    AuditList,
    AuditPage,
    QuotaOverrides,
    Quotas,
    Scope,
    SessionStop,
    TenantCreate,
    TenantDisable,
    TenantEnable,
    TenantInfo,
    TenantList,
    TenantListResult,
    TenantUpdate,
    TenantUsage,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    TokenList,
    TokenListResult,
    TokenRevoke,
)
from ...storage import TenantQuotas, TenantRecord, TokenRecord
from ...storage.tenants import QUOTA_FIELDS, effective_quotas
from .registry import handles, run_command

__all__ = ["token_info"]


async def _tenant_info(gw: Gateway, record: TenantRecord) -> TenantInfo:
    applied = effective_quotas(record.quotas, gw.settings.tenant_quotas)
    sessions, queued, queued_bytes = await gw.storage.tenants.usage(record.name)
    own = record.quotas
    return TenantInfo(
        tenant=record.name,
        created_at=record.created_at,
        disabled=record.disabled_at is not None,
        disabled_at=record.disabled_at,
        quotas=Quotas(
            max_sessions=applied.max_sessions or 0,
            max_queued_messages=applied.max_queued_messages or 0,
            max_queued_bytes=applied.max_queued_bytes or 0,
        ),
        own_quotas=QuotaOverrides(
            max_sessions=own.max_sessions,
            max_queued_messages=own.max_queued_messages,
            max_queued_bytes=own.max_queued_bytes,
        ),
        usage=TenantUsage(sessions=sessions, queued_messages=queued, queued_bytes=queued_bytes),
    )


def token_info(record: TokenRecord, now: float) -> TokenInfo:
    if record.revoked_at is not None:
        state = "revoked"
    elif record.expires_at is not None and record.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return TokenInfo(
        token_id=record.id,
        tenant=record.tenant,
        label=record.label,
        scopes=[Scope(s) for s in record.scopes],
        sessions=list(record.sessions) if record.sessions is not None else None,
        state=state,  # type: ignore[arg-type]
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


async def _existing(gw: Gateway, tenant: str) -> TenantRecord:
    record = await gw.storage.tenants.get_tenant(tenant)
    if record is None:
        raise TenantNotFound(f"no tenant {tenant!r}")
    return record


@handles(TenantCreate)
async def tenant_create(gw: Gateway, caller: Caller, cmd: TenantCreate) -> TenantInfo:
    quotas = TenantQuotas(cmd.max_sessions, cmd.max_queued_messages, cmd.max_queued_bytes)
    return await _tenant_info(gw, await gw.storage.tenants.create_tenant(cmd.tenant, time.time(), quotas))


@handles(TenantList)
async def tenant_list(gw: Gateway, caller: Caller, cmd: TenantList) -> TenantListResult:
    return TenantListResult(tenants=[await _tenant_info(gw, t) for t in await gw.storage.tenants.list_tenants()])


@handles(TenantUpdate)
async def tenant_update(gw: Gateway, caller: Caller, cmd: TenantUpdate) -> TenantInfo:
    changes = {f: getattr(cmd, f) for f in QUOTA_FIELDS if getattr(cmd, f) is not msgspec.UNSET}
    record = await gw.storage.tenants.update_tenant(cmd.tenant, quotas=changes)
    if record is None:
        raise TenantNotFound(f"no tenant {cmd.tenant!r}")
    return await _tenant_info(gw, record)


@handles(TenantDisable)
async def tenant_disable(gw: Gateway, caller: Caller, cmd: TenantDisable) -> TenantInfo:
    record = await _existing(gw, cmd.tenant)
    if record.disabled_at is None:
        updated = await gw.storage.tenants.update_tenant(cmd.tenant, disabled_at=time.time())
        assert updated is not None
        record = updated
    gw.close_connections(tenant=cmd.tenant, why=f"tenant {cmd.tenant!r} was disabled")
    # Through the command path, so that each session is stopped by the node that runs it.
    acting = Caller(tenant=cmd.tenant, token_id=caller.token_id)
    for session in await gw.storage.list_sessions():
        if session.tenant == cmd.tenant and session.want_running:
            await run_command(gw, acting, SessionStop(id="tenant.disable", session=session.name))
    return await _tenant_info(gw, record)


@handles(TenantEnable)
async def tenant_enable(gw: Gateway, caller: Caller, cmd: TenantEnable) -> TenantInfo:
    record = await _existing(gw, cmd.tenant)
    if record.disabled_at is not None:
        updated = await gw.storage.tenants.update_tenant(cmd.tenant, disabled_at=None)
        assert updated is not None
        record = updated
    return await _tenant_info(gw, record)


@handles(TokenCreate)
async def token_create(gw: Gateway, caller: Caller, cmd: TokenCreate) -> TokenCreated:
    now = time.time()
    record, token = await gw.tokens.create(
        cmd.tenant,
        cmd.label,
        scopes=[s.value for s in cmd.scopes],
        sessions=cmd.sessions,
        expires_at=now + cmd.expires_in if cmd.expires_in is not None else None,
        tenant_must_exist=True,
    )
    return TokenCreated(token=token, info=token_info(record, now))


@handles(TokenList)
async def token_list(gw: Gateway, caller: Caller, cmd: TokenList) -> TokenListResult:
    now = time.time()
    return TokenListResult(tokens=[token_info(r, now) for r in await gw.storage.tenants.list_tokens(cmd.tenant)])


@handles(TokenRevoke)
async def token_revoke(gw: Gateway, caller: Caller, cmd: TokenRevoke) -> TokenInfo:
    record = await gw.tokens.revoke(cmd.token_id)
    if record is None:
        raise TokenNotFound(f"no active token with id {cmd.token_id}")
    gw.close_connections(token_id=record.id, why="the token of this connection was revoked")
    return token_info(record, time.time())


@handles(AuditList)
async def audit_list(gw: Gateway, caller: Caller, cmd: AuditList) -> AuditPage:
    entries = await gw.storage.tenants.list_audit(
        tenant=cmd.tenant, after=cmd.after, before=cmd.before, limit=cmd.limit
    )
    return AuditPage(
        entries=[
            AuditEntryInfo(
                id=e.id,
                ts=e.ts,
                command=e.command,
                outcome=e.outcome,
                token_id=e.token_id,
                tenant=e.tenant,
                session=e.session,
                detail=e.detail,
            )
            for e in entries
        ]
    )
