"""One signed POST to an endpoint: timeouts, a cap on what is read back, the SSRF guard, no redirects.

Each deliverer has its own :class:`Sender` (its own connection pool), so a receiver that hangs holds only its
own connections. A 3xx is not followed (it counts as a failed attempt): the URL is the one the tenant
registered, and following a redirect would let a receiver point the gateway elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from .. import __version__
from ..netguard import AddressPolicy, BlockedAddress, guarded_client
from .signing import sign

__all__ = ["Answer", "Sender"]

USER_AGENT = f"zapgate-webhooks/{__version__}"
ERROR_CHARS = 300
"""Longest error text kept for an attempt."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt came to: the receiver's status (None: no answer) and why it failed, if it did."""

    status: int | None
    latency_ms: float
    error: str | None = None


class Sender:
    def __init__(
        self, policy: AddressPolicy, *, timeout: float, connect_timeout: float, max_response_bytes: int
    ) -> None:
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes
        self._client = guarded_client(
            policy,
            timeout=timeout,
            max_redirects=0,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        )
        self._client.timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))

    async def close(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, msg_id: str, secrets: Sequence[str], body: bytes) -> Answer:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secrets, msg_id, timestamp, body),
        }
        started = time.perf_counter()

        def answer(status: int | None, error: str | None = None) -> Answer:
            latency = (time.perf_counter() - started) * 1000
            return Answer(status, round(latency, 3), error[:ERROR_CHARS] if error else None)

        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream("POST", url, content=body, headers=headers) as response:
                    status, read = response.status_code, 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read > self._max_response_bytes:
                            # The status is what counts; the rest of a long answer is not read.
                            break
            error = None if 200 <= status < 300 else f"HTTP {status}"
            return answer(status, error)
        except TimeoutError:
            return answer(None, f"timed out after {self._timeout:g} s")
        except httpx.TimeoutException:
            return answer(None, f"timed out after {self._timeout:g} s")
        except httpx.HTTPError as exc:
            if isinstance(exc.__cause__, BlockedAddress) or isinstance(exc.__context__, BlockedAddress):
                return answer(None, f"refused: {exc}")
            return answer(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except (httpx.InvalidURL, ValueError) as exc:
            # A URL httpx cannot use (a host IDNA refuses, a bad port…): the attempt fails like any other.
            return answer(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
