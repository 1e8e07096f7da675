"""Outbound HTTP that cannot be turned against the gateway's own network (SSRF protection).

The gateway makes requests to addresses its clients choose: media URLs to fetch, webhook endpoints. Without a
guard, a tenant could make it read ``http://127.0.0.1:8787/metrics``, a cloud metadata service at
``169.254.169.254`` or anything on the private network. :func:`guarded_client` returns an ``httpx`` client whose
every TCP connection goes to an address checked *after* DNS resolution (so a name that resolves to a private
address, or re-resolves to one later, is refused too) and *per connection* (so redirects are checked as well).
TLS still verifies the certificate against the host name.

By default only globally routable addresses are allowed. ``ZAPGATE_OUTBOUND_ALLOW`` (networks in CIDR form)
opens specific ranges, e.g. ``127.0.0.1/32`` for a receiver on the same machine, or ``10.0.0.0/8``.
Environment proxies are not used (a proxy would connect on our behalf, past the check).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

__all__ = ["AddressPolicy", "BlockedAddress", "guarded_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(httpcore.ConnectError):
    """The destination resolved only to addresses the policy refuses."""


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which destination addresses outbound requests may connect to."""

    allowed: tuple[IPNetwork, ...] = ()
    """Networks allowed even though they are not globally routable (loopback, private, link-local…)."""

    @classmethod
    def parse(cls, networks: Iterable[str]) -> AddressPolicy:
        """From CIDR strings (``127.0.0.1/32``, ``10.0.0.0/8``); raises ``ValueError`` on a bad one."""
        return cls(tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()))

    def permits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed):
            return True
        return address.is_global and not address.is_multicast


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host, keeps the addresses the policy permits, connects to the first that answers."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        permitted = [a for a in addresses if self._policy.permits(a)]
        if not permitted:
            shown = ", ".join(sorted({str(a) for a in addresses})) or "nothing"
            raise BlockedAddress(
                f"{host} resolves to {shown}: not a public address (allow it with ZAPGATE_OUTBOUND_ALLOW)"
            )
        error: Exception | None = None
        for address in permitted:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: AddressPolicy, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy),
        )


def guarded_client(
    policy: AddressPolicy,
    *,
    timeout: float,
    max_redirects: int = 5,
    headers: Sequence[tuple[str, str]] = (),
    limits: httpx.Limits | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that connects only where ``policy`` permits (see the module documentation)."""
    return httpx.AsyncClient(
        transport=_GuardedTransport(policy, limits or httpx.Limits(max_connections=100)),
        timeout=httpx.Timeout(timeout),
        follow_redirects=max_redirects > 0,
        max_redirects=max_redirects,
        trust_env=False,
        headers=list(headers),
    )
