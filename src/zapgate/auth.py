"""Tenants and their tokens.

A token reads ``zgt_<id>_<secret>``: ``id`` is a public handle (shown by ``zapgate token list``, safe to
log) and ``secret`` is 256 random bits from the OS CSPRNG. The token is shown once at creation; only its
SHA-256 digest is stored (the secret is high-entropy, so a fast hash cannot be brute-forced). Checking a
token is one primary-key read by ``id`` and a constant-time comparison of digests, so the time taken does
not depend on how much of a guess was right.

A token has **scopes** (``admin``, ``tenant``, ``send``, ``read``; see :class:`~zapgate.protocol.Scope`), may be
limited to some sessions of its tenant, and may expire. The **admin token** given at start-up
(:func:`load_admin_token`) is not in the database: the gateway keeps only its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, Settings
from .errors import InvalidRequest, TenantNotFound, Unauthorized
from .protocol import EventFilter, Scope
from .storage import Storage, TokenRecord

__all__ = [
    "ADMIN_TOKEN_ID",
    "ADMIN_TOKEN_MIN_BITS",
    "ADMIN_TOKEN_MIN_LENGTH",
    "TENANT_PATTERN",
    "Caller",
    "TokenIssuer",
    "estimate_entropy_bits",
    "expand_scopes",
    "hash_token",
    "load_admin_token",
    "parse_scopes",
    "valid_tenant",
]

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


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Scopes by name; :class:`InvalidRequest` for an unknown one or none at all."""
    scopes: set[Scope] = set()
    for name in names:
        try:
            scopes.add(Scope(name.strip()))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidRequest(f"unknown scope {name!r}; scopes are: {known}") from None
    if not scopes:
        raise InvalidRequest("a token needs at least one scope")
    return frozenset(scopes)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who runs a command: the tenant it acts for, the token it used, and what that token may do."""

    tenant: str
    token_id: str | None
    scopes: frozenset[Scope] = frozenset({Scope.TENANT, Scope.SEND, Scope.READ})
    """Already expanded (see :func:`expand_scopes`)."""
    sessions: frozenset[str] | None = None
    """The only sessions of the tenant this caller may name or see events of; None for all."""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def grants(self) -> dict[str, Any]:
        """What the ``ready`` frame tells the client about its token: ``scopes`` (expanded) and ``sessions``."""
        return {
            "scopes": [s for s in Scope if s in self.scopes],
            "sessions": sorted(self.sessions) if self.sessions is not None else None,
        }

    def may_use(self, session: str) -> bool:
        """May this caller name ``session`` in a command, or see its events?"""
        return self.sessions is None or session in self.sessions

    def narrow(self, only: EventFilter) -> EventFilter:
        """``only`` (the events a client asks for) narrowed to the sessions this caller may see."""
        if self.sessions is None:
            return only
        sessions = self.sessions if only.sessions is None else only.sessions & self.sessions
        return EventFilter(sessions, only.events)

    @classmethod
    def of(cls, record: TokenRecord) -> Caller:
        return cls(
            tenant=record.tenant,
            token_id=record.id,
            scopes=expand_scopes(parse_scopes(record.scopes)),
            sessions=frozenset(record.sessions) if record.sessions is not None else None,
        )


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


def check_tenant_name(name: str) -> None:
    if not valid_tenant(name):
        raise InvalidRequest(
            f"invalid tenant name {name!r}: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )


ADMIN_TOKEN_ID = "admin"
"""The token id the start-up admin token acts as (in the audit log); never a database token's id (12 hex digits)."""


class TokenIssuer:
    """Creates, checks and revokes tokens."""

    def __init__(self, storage: Storage, admin_digest: bytes | None = None) -> None:
        self._storage = storage
        self._admin_digest = admin_digest
        self._started_at = time.time()

    @property
    def has_admin_token(self) -> bool:
        return self._admin_digest is not None

    async def create(
        self,
        tenant: str,
        label: str = "",
        *,
        scopes: Iterable[str] = (Scope.TENANT.value,),
        sessions: Iterable[str] | None = None,
        expires_at: float | None = None,
        tenant_must_exist: bool = False,
    ) -> tuple[TokenRecord, str]:
        """Create a token for ``tenant`` and return it with its record; the token is not kept anywhere. The tenant
        is created if it does not exist, unless ``tenant_must_exist`` (then :class:`TenantNotFound`).

        Raises :class:`~zapgate.errors.InvalidRequest` for a tenant name, scope or session name that is not
        valid, or an expiry in the past."""
        check_tenant_name(tenant)
        granted = parse_scopes(scopes)
        limited = None
        if sessions is not None:
            limited = tuple(dict.fromkeys(sessions))
            for name in limited:
                if not _SESSION_NAME.fullmatch(name):
                    raise InvalidRequest(
                        f"invalid session name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting with a "
                        "letter or digit"
                    )
        now = time.time()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest("the token would have expired already: give a time in the future")
        if tenant_must_exist and await self._storage.tenants.get_tenant(tenant) is None:
            raise TenantNotFound(f"no tenant {tenant!r}; create it first (tenant.create)")
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=token_id,
            tenant=tenant,
            label=label,
            created_at=now,
            scopes=tuple(s.value for s in Scope if s in granted),
            sessions=limited,
            expires_at=expires_at,
        )
        await self._storage.tenants.add_token(record, hash_token(token))
        return record, token

    async def authenticate(self, token: str) -> TokenRecord:
        """The record of a token that may be used now, or :class:`Unauthorized` saying why not (a token whose
        secret is wrong is "invalid", whatever its id)."""
        token_id = _token_id(token)
        if token_id is None:
            if self._admin_digest is not None and hmac.compare_digest(self._admin_digest, hash_token(token)):
                return TokenRecord(
                    id=ADMIN_TOKEN_ID,
                    tenant="",
                    label="admin token (given at start-up)",
                    created_at=self._started_at,
                    scopes=(Scope.ADMIN.value,),
                )
            raise Unauthorized("invalid or revoked token")
        found = await self._storage.tenants.find_token(token_id)
        if found is None or not hmac.compare_digest(found[1], hash_token(token)):
            raise Unauthorized("invalid or revoked token")
        record, _, tenant_disabled = found
        if record.revoked_at is not None:
            raise Unauthorized("invalid or revoked token")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise Unauthorized(f"token {record.id} expired; ask for a new one")
        if tenant_disabled:
            raise Unauthorized(f"tenant {record.tenant!r} is disabled")
        return record

    async def revoke(self, token_id: str) -> TokenRecord | None:
        """Revoke a live token: its record, or None if there is no such live token."""
        return await self._storage.tenants.revoke_token(token_id, time.time())


_SESSION_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")

# -- the admin token given at start-up

ADMIN_TOKEN_MIN_LENGTH = 32
ADMIN_TOKEN_MIN_BITS = 128


def estimate_entropy_bits(secret: str) -> float:
    """A pessimistic estimate of a secret's entropy: its length times log2 of the alphabet it seems drawn from
    (the character classes it uses), but no more than length times log2 of its count of distinct characters, and
    no more than what a run of one repeated pattern gives. ``openssl rand -hex 32`` (64 hex digits) gives 256."""
    if not secret:
        return 0.0
    alphabet = 0
    if any(c.islower() and c.isascii() for c in secret):
        alphabet += 26
    if any(c.isupper() and c.isascii() for c in secret):
        alphabet += 26
    if any(c.isdigit() and c.isascii() for c in secret):
        alphabet += 10
    if any(not c.isalnum() and c.isascii() for c in secret):
        alphabet += 33
    if any(not c.isascii() for c in secret):
        alphabet += 100
    if all(c in "0123456789abcdef" for c in secret) or all(c in "0123456789ABCDEF" for c in secret):
        alphabet = 16
    distinct = len(set(secret))
    per_char = min(math.log2(max(alphabet, 2)), math.log2(max(distinct, 2)))
    return len(_shortest_period(secret)) * per_char if distinct > 1 else 0.0


def _shortest_period(text: str) -> str:
    """The shortest string that, repeated, makes ``text`` (``abcabcabc`` → ``abc``)."""
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return text[:size]
    return text


def load_admin_token(settings: Settings, env: Mapping[str, str] | None = None) -> bytes | None:
    """The SHA-256 digest of the admin token given at start-up, or None when there is none.

    It comes from the file ``admin_token_file`` (``ZAPGATE_ADMIN_TOKEN_FILE``, first line, surrounding blanks
    removed) or the variable ``ZAPGATE_ADMIN_TOKEN`` (not both). Raises :class:`ConfigError` when the token is
    weak (shorter than :data:`ADMIN_TOKEN_MIN_LENGTH` or under :data:`ADMIN_TOKEN_MIN_BITS` bits by
    :func:`estimate_entropy_bits`), or the file cannot be read or may be read by other users."""
    env = os.environ if env is None else env
    from_env = env.get("ZAPGATE_ADMIN_TOKEN")
    path = settings.admin_token_file
    if path is not None and from_env is not None:
        raise ConfigError("give the admin token in ZAPGATE_ADMIN_TOKEN or ZAPGATE_ADMIN_TOKEN_FILE, not both")
    if path is not None:
        secret = _read_secret_file(Path(path))
        where = f"the admin token in {path}"
    elif from_env is not None:
        secret = from_env.strip()
        where = "ZAPGATE_ADMIN_TOKEN"
    else:
        return None
    _check_strength(secret, where)
    return hash_token(secret)


def _read_secret_file(path: Path) -> str:
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the admin token file {path}: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the admin token file {path} is not a regular file")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the admin token file {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
            f"run 'chmod 600 {path}'"
        )
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def _check_strength(secret: str, where: str) -> None:
    hint = "generate one with: openssl rand -hex 32"
    if secret.startswith(TOKEN_PREFIX):
        raise ConfigError(f"{where} looks like a tenant token (zgt_…); the admin token is a secret of your own: {hint}")
    if len(secret) < ADMIN_TOKEN_MIN_LENGTH:
        raise ConfigError(f"{where} is too short ({len(secret)} characters; at least {ADMIN_TOKEN_MIN_LENGTH}): {hint}")
    bits = estimate_entropy_bits(secret)
    if bits < ADMIN_TOKEN_MIN_BITS:
        raise ConfigError(
            f"{where} is too weak (about {bits:.0f} bits of entropy by its characters; at least "
            f"{ADMIN_TOKEN_MIN_BITS}): {hint}"
        )
