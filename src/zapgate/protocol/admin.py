"""The admin API: tenants (with their quotas), tokens and the audit log. Every command needs the ``admin`` scope
and acts across tenants (``docs/security.md``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Command, Scope, SessionName, command

__all__ = [
    "AuditEntryInfo",
    "AuditList",
    "AuditPage",
    "QuotaOverrides",
    "Quotas",
    "TenantCreate",
    "TenantDisable",
    "TenantEnable",
    "TenantInfo",
    "TenantList",
    "TenantListResult",
    "TenantName",
    "TenantUpdate",
    "TenantUsage",
    "TokenCreate",
    "TokenCreated",
    "TokenInfo",
    "TokenList",
    "TokenListResult",
    "TokenRevoke",
]

TenantName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[a-z0-9][a-z0-9_-]{0,62}\Z",
        description="1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit",
    ),
]
TokenId = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{12}\Z", description="a token's public id (12 hex digits)")]
Quota = Annotated[int, msgspec.Meta(ge=0, description="0: no limit")]


class Quotas(msgspec.Struct, kw_only=True):
    """The limits that apply to a tenant (its own where set, else the gateway's defaults); 0 is no limit."""

    max_sessions: int
    max_queued_messages: int
    """Messages accepted and not yet sent, over all the tenant's sessions."""
    max_queued_bytes: int
    """Their stored size (content and send options; a media file counts by its reference, not its bytes)."""


class QuotaOverrides(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The tenant's own quotas; a missing one is the gateway's default."""

    max_sessions: int | None = None
    max_queued_messages: int | None = None
    max_queued_bytes: int | None = None


class TenantUsage(msgspec.Struct, kw_only=True):
    sessions: int
    queued_messages: int
    queued_bytes: int


class TenantInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    tenant: str
    created_at: float
    disabled: bool
    disabled_at: float | None = None
    quotas: Quotas
    own_quotas: QuotaOverrides
    usage: TenantUsage


class TenantListResult(msgspec.Struct, kw_only=True):
    tenants: list[TenantInfo]


class TokenInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A token as ``token.list`` shows it: never its secret."""

    token_id: str
    tenant: str
    label: str
    scopes: list[Scope]
    sessions: list[str] | None = None
    """The sessions it is limited to; absent for every session of the tenant."""
    state: Literal["active", "expired", "revoked"]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


class TokenCreated(msgspec.Struct, kw_only=True):
    token: str
    """The token itself: shown this once, only its hash is stored."""
    info: TokenInfo


class TokenListResult(msgspec.Struct, kw_only=True):
    tokens: list[TokenInfo]


class AuditEntryInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: int
    """Increasing; page on with ``after`` = the last one seen."""
    ts: float
    command: str
    outcome: str
    """``ok``, or the error code the command answered."""
    token_id: str | None = None
    """Who: the token's id (``admin`` for the admin token given at start-up, ``cli`` for ``zapgate`` commands run
    on the gateway's machine)."""
    tenant: str | None = None
    session: str | None = None
    detail: str | None = None


class AuditPage(msgspec.Struct, kw_only=True):
    entries: list[AuditEntryInfo]
    """Oldest first."""


# -- tenants


@command(reply=TenantInfo, scope=Scope.ADMIN, http=("POST", "/v1/tenants"))
class TenantCreate(Command, tag="tenant.create"):
    """Create a tenant, optionally with quotas of its own (the gateway's defaults otherwise)."""

    tenant: TenantName
    max_sessions: Quota | None = None
    max_queued_messages: Quota | None = None
    max_queued_bytes: Quota | None = None


@command(reply=TenantListResult, scope=Scope.ADMIN, http=("GET", "/v1/tenants"))
class TenantList(Command, tag="tenant.list"):
    """Every tenant, with its quotas and what it uses of them."""


@command(reply=TenantInfo, scope=Scope.ADMIN, http=("PATCH", "/v1/tenants/{tenant}"))
class TenantUpdate(Command, tag="tenant.update"):
    """Change a tenant's own quotas: a number sets one, ``null`` returns it to the gateway's default, a field not
    given is left as it is."""

    tenant: TenantName
    max_sessions: Quota | msgspec.UnsetType | None = msgspec.UNSET
    max_queued_messages: Quota | msgspec.UnsetType | None = msgspec.UNSET
    max_queued_bytes: Quota | msgspec.UnsetType | None = msgspec.UNSET


@command(reply=TenantInfo, scope=Scope.ADMIN, http=("POST", "/v1/tenants/{tenant}/disable"))
class TenantDisable(Command, tag="tenant.disable"):
    """Disable a tenant: its tokens are refused, its open connections closed (4401) and its sessions stopped
    (their pairing kept). Idempotent."""

    tenant: TenantName


@command(reply=TenantInfo, scope=Scope.ADMIN, http=("POST", "/v1/tenants/{tenant}/enable"))
class TenantEnable(Command, tag="tenant.enable"):
    """Enable a disabled tenant again: its tokens work again; its sessions stay stopped until started. Idempotent."""

    tenant: TenantName


# -- tokens


@command(reply=TokenCreated, scope=Scope.ADMIN, http=("POST", "/v1/tokens"))
class TokenCreate(Command, tag="token.create"):
    """Create a token for a tenant; the reply carries it, once."""

    tenant: TenantName
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: [Scope.TENANT]
    )
    sessions: Annotated[list[SessionName], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    """Limit the token to these sessions (which need not exist yet); absent: every session of the tenant."""
    expires_in: Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)] | None = None
    """Seconds until the token expires; absent: it does not."""
    label: Annotated[str, msgspec.Meta(max_length=200)] = ""


@command(reply=TokenListResult, scope=Scope.ADMIN, http=("GET", "/v1/tokens"))
class TokenList(Command, tag="token.list"):
    """Tokens, of one tenant or of all: ids, scopes and states, never secrets."""

    tenant: TenantName | None = None


@command(reply=TokenInfo, scope=Scope.ADMIN, http=("DELETE", "/v1/tokens/{token_id}"))
class TokenRevoke(Command, tag="token.revoke"):
    """Revoke a token: it is refused from now on and its open connections are closed (4401)."""

    token_id: TokenId


# -- audit log


@command(reply=AuditPage, scope=Scope.ADMIN, http=("GET", "/v1/audit"))
class AuditList(Command, tag="audit.list"):
    """Read the audit log, oldest first: the entries with ``id > after`` (the first ``limit`` of them); without
    ``after``, the newest ``limit``. ``before`` keeps only entries with ``id < before``: the page before one."""

    tenant: TenantName | None = None
    after: Annotated[int, msgspec.Meta(ge=0)] | None = None
    before: Annotated[int, msgspec.Meta(ge=1)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
