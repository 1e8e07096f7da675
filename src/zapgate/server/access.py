"""Credentials on HTTP requests and WebSocket upgrades (shared by the socket and the REST routes)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["bearer_token"]


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without one; "" when it is malformed."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
