"""Credentials on HTTP requests and WebSocket upgrades (shared by the socket and the REST routes)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping

from starlette.requests import Request

from ..auth import Caller, TokenIssuer
from ..errors import RateLimited, Unauthorized
from ..storage import TokenRecord
from .edge import log_refusal
from .guard import EdgeGuard

__all__ = ["authenticate_request", "bearer_token", "check_token"]

log = logging.getLogger("zapgate.server")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; "" when it is empty; None without one, and
    with another scheme: a proxy's ``Basic`` credentials are not ours (on the WebSocket, the client then
    authenticates with the ``auth`` frame; an HTTP route answers 401 as without a header)."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def check_token(
    tokens: TokenIssuer, guard: EdgeGuard, address: str, token: str, *, wait_first: bool = True
) -> TokenRecord:
    """The token's record, or :class:`Unauthorized`, with the address's penalty for failed attempts.

    ``wait_first`` (the socket, which authenticates once per connection): an address whose attempts keep failing
    waits before its token is checked, one attempt at a time (:meth:`EdgeGuard.auth_wait`). Otherwise (REST, where
    every request authenticates): a valid token never waits, and a failing attempt is answered only after the
    wait its address's earlier failures earned (:meth:`EdgeGuard.failure_delay`). Both count in the same
    per-address burst, so guesses made both ways slow down together."""
    loop = asyncio.get_running_loop()
    while wait_first and (wait := guard.auth_wait(address, loop.time())) > 0:
        log.debug("authentication from %s waits %.3f s (earlier failures)", address, wait)
        await asyncio.sleep(wait)
    try:
        record = await tokens.authenticate(token)
    except Unauthorized:
        held = 0.0 if wait_first else guard.failure_delay(address, loop.time())
        failure = guard.auth_failed(address, loop.time())
        if failure.burst_started:
            previous = f" (its previous burst: {failure.previous_burst} failures)" if failure.previous_burst else ""
            log.warning(
                "authentication failed from %s: invalid or revoked token%s; further attempts from this address "
                "wait, doubling up to %g s, and their failures are logged at DEBUG until none for %g s",
                address,
                previous,
                guard.settings.auth_failure_max_delay_s,
                2 * guard.settings.auth_failure_max_delay_s,
            )
        else:
            log.debug("authentication failed from %s; its next attempt waits %.3f s", address, failure.delay)
        if held:
            await asyncio.sleep(held)
        raise
    if wait_first:
        guard.auth_succeeded(address, loop.time())
    return record


async def authenticate_request(request: Request) -> Caller:
    """The caller of an HTTP request with ``Authorization: Bearer <token>``: :class:`Unauthorized` without a
    valid token (answered after the address's penalty for earlier failures, see :func:`check_token`),
    :class:`RateLimited` past the token's request rate (``command_rate_per_s``, ``command_burst``)."""
    token = bearer_token(request.headers)
    if not token:
        raise Unauthorized("send the header Authorization: Bearer <token>")
    guard: EdgeGuard = request.app.state.edge
    address = request.client.host if request.client else ""  # behind a trusted proxy: the forwarded client
    record = await check_token(request.app.state.gateway.tokens, guard, address, token, wait_first=False)
    now = asyncio.get_running_loop().time()
    wait = guard.take_request(record.id, now)
    if wait:
        log_refusal(guard, address, RateLimited("REST request rate limit"), now)
        retry_after = math.ceil(wait * 1000) / 1000
        raise RateLimited(
            f"more than {guard.settings.command_rate_per_s:g} requests per second with this token: "
            f"send it again in {retry_after:g} s",
            retry_after,
        )
    return Caller.of(record)
