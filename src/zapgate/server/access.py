"""Credentials on HTTP requests and WebSocket upgrades (shared by the socket and the REST routes)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["bearer_token"]


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; "" when it is empty; None without one, and
    with another scheme: a proxy's ``Basic`` credentials are not ours (on the WebSocket, the client then
    authenticates with the ``auth`` frame; an HTTP route answers 401 as without a header)."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
