"""Tenants and their tokens.

A token reads ``zgt_<id>_<secret>``: ``id`` is a public handle (shown by ``zapgate token list``, safe to
log) and ``secret`` is 256 random bits from the OS CSPRNG. The token is shown once at creation; only its
SHA-256 digest is stored (the secret is high-entropy, so a fast hash cannot be brute-forced). Checking a
token is one primary-key read by ``id`` and a constant-time comparison of digests, so the time taken does
not depend on how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from .errors import InvalidRequest, Unauthorized
from .protocol import Scope
from .storage import Storage, TokenRecord

__all__ = ["TENANT_PATTERN", "Caller", "TokenIssuer", "expand_scopes", "hash_token", "valid_tenant"]

_IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.SEND: frozenset({Scope.SEND, Scope.READ}),
    Scope.TENANT: frozenset({Scope.TENANT, Scope.SEND, Scope.READ}),
    Scope.ADMIN: frozenset({Scope.ADMIN}),
}


def expand_scopes(scopes: frozenset[Scope] | set[Scope]) -> frozenset[Scope]:
    """Every scope the given ones grant: ``tenant`` includes ``send`` and ``read``; ``send`` includes ``read``."""
    granted: set[Scope] = set()
    for scope in scopes:
        granted |= _IMPLIED[scope]
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who runs a command: the tenant it acts for, the token it used, and what that token may do."""

    tenant: str
    token_id: str | None
    scopes: frozenset[Scope] = frozenset({Scope.TENANT, Scope.SEND, Scope.READ})
    """Already expanded (see :func:`expand_scopes`)."""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    @classmethod
    def of(cls, record: TokenRecord) -> Caller:
        return cls(tenant=record.tenant, token_id=record.id)


TOKEN_PREFIX = "zgt_"
_TOKEN_ID = re.compile(r"[0-9a-f]{12}")
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _token_id(token: str) -> str | None:
    body = token.removeprefix(TOKEN_PREFIX)
    token_id, sep, _ = body.partition("_")
    return token_id if sep and token.startswith(TOKEN_PREFIX) and _TOKEN_ID.fullmatch(token_id) else None


def valid_tenant(name: str) -> bool:
    return TENANT_PATTERN.fullmatch(name) is not None


class TokenIssuer:
    """Creates, checks and revokes tenant tokens."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def create(self, tenant: str, label: str = "") -> tuple[TokenRecord, str]:
        """Create a token for ``tenant`` and return it with its record; the token is not kept anywhere.

        Raises :class:`~zapgate.errors.InvalidRequest` for a tenant name that is not valid."""
        if not valid_tenant(tenant):
            raise InvalidRequest(
                f"invalid tenant name {tenant!r}: use 1-63 lower-case letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(id=token_id, tenant=tenant, label=label, created_at=time.time())
        await self._storage.add_token(record, hash_token(token))
        return record, token

    async def authenticate(self, token: str) -> TokenRecord:
        """The record of a live token, or :class:`Unauthorized`."""
        token_id = _token_id(token)
        found = await self._storage.find_token(token_id) if token_id else None
        if found is None or not hmac.compare_digest(found[1], hash_token(token)):
            raise Unauthorized("invalid or revoked token")
        return found[0]

    async def revoke(self, token_id: str) -> bool:
        return await self._storage.revoke_token(token_id, time.time())
