"""Limits at the network edge: who may hold a connection, how fast a client may fail to authenticate or send
commands (pure: no I/O; the caller passes the time).

One :class:`EdgeGuard` per application counts open connections per client address and per token, and those
not authenticated yet. A connection is admitted by :meth:`EdgeGuard.admit`, which returns an
:class:`Admission` (counted until :meth:`Admission.release`) or a :class:`~zapgate.errors.ZapgateError` that
says why not. Addresses are counted per IPv4 address and per IPv6 /64 (one host usually owns a whole /64).
"""

from __future__ import annotations

import collections
import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..config import Settings
from ..errors import HostNotAllowed, ServerBusy, TooManyConnections, ZapgateError

__all__ = ["Admission", "EdgeGuard", "TokenBucket", "address_key", "forwarded_client"]

REFUSAL_WARNING_INTERVAL_S = 60.0
"""Refusals of one kind (too many connections, headers too large, ...) are logged at WARNING at most this often."""
MAX_TRACKED_ADDRESSES = 10_000
"""Addresses whose authentication failures are remembered; the oldest are forgotten beyond this."""
MAX_TRACKED_TOKENS = 10_000
"""Tokens whose REST request rate is tracked; the least recently used are forgotten beyond this (a forgotten
token starts again with a full burst)."""

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_key(host: str) -> str:
    """The key an address is counted under: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _networks(entries: Iterable[str]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_in(host: str, networks: tuple[_Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: Iterable[str], trusted: tuple[_Network, ...]) -> str:
    """The client behind trusted proxies: the right-most ``X-Forwarded-For`` hop that is not a trusted proxy.

    Only a trusted ``peer`` is believed; a hop that is not an IP address ends the walk at the last good one."""
    if not _is_in(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not _is_in(hop, trusted):
            break
    return client


class TokenBucket:
    """``rate`` per second on average, ``burst`` at once."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float:
        """Take one token: 0 when there was one, else the seconds until there will be (nothing is taken)."""
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass
class _Failures:
    count: int
    last_at: float
    blocked_until: float


@dataclass
class AuthFailure:
    """What :meth:`EdgeGuard.auth_failed` tells the caller to log."""

    burst_started: bool
    """This is the first failure from the address after a quiet spell: log it (once per burst)."""
    previous_burst: int
    """How many failures the address's previous burst had (0 if none is remembered)."""
    delay: float
    """How long the address's next attempt waits."""


class Admission:
    """One admitted connection, counted until :meth:`release`; the ASGI app reaches it through the scope
    (``scope["extensions"]["zapgate.edge"]``) to report authentication and to have a closing connection cut."""

    __slots__ = ("_counted_ip", "_guard", "_unauthenticated", "client", "on_close")

    def __init__(self, guard: EdgeGuard, client: str, counted_ip: str | None) -> None:
        self._guard = guard
        self.client = client
        """The client's address (behind a trusted proxy: the forwarded one, once :meth:`identify` ran)."""
        self._counted_ip = counted_ip
        self._unauthenticated = True
        self.on_close: Callable[[], None] | None = None
        """Set by the transport: makes sure a closing connection really goes (see :meth:`closing`)."""

    @property
    def unauthenticated(self) -> bool:
        return self._unauthenticated

    def identify(self, client: str) -> ZapgateError | None:
        """Count the connection against ``client``, its address behind a trusted proxy; an error if over the cap."""
        self.client = client
        if self._counted_ip is not None:
            return None
        refusal = self._guard._count_ip(client)
        if refusal is None:
            self._counted_ip = address_key(client)
        return refusal

    def authenticated(self) -> None:
        if self._unauthenticated:
            self._unauthenticated = False
            self._guard._unauthenticated -= 1

    def closing(self) -> None:
        """The app is closing the connection: the transport cuts it if it has not gone within its grace."""
        if self.on_close is not None:
            self.on_close()

    def release(self) -> None:
        """The connection is gone (idempotent)."""
        self.authenticated()
        if self._counted_ip is not None:
            self._guard._uncount_ip(self._counted_ip)
            self._counted_ip = None


class EdgeGuard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trusted = _networks(settings.trusted_proxies)
        self.hosts = settings.host_policy
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._per_token: collections.Counter[str] = collections.Counter()
        self._unauthenticated = 0
        self._failures: dict[str, _Failures] = {}
        self._requests: dict[str, TokenBucket] = {}
        self.refused: collections.Counter[str] = collections.Counter()
        """Connections refused so far, by error code."""
        self._warned_at: dict[str, float] = {}
        self._unwarned: collections.Counter[str] = collections.Counter()

    # -- connections

    def check_host(self, hosts: list[str]) -> ZapgateError | None:
        """The refusal of a request whose ``Host`` headers (all of them; one is expected) are not a name this
        gateway answers to, else None."""
        if self.hosts.any_host or (len(hosts) == 1 and self.hosts.allows(hosts[0])):
            return None
        self.refused[HostNotAllowed.code] += 1
        shown = repr(hosts[0][:100]) if len(hosts) == 1 else f"{len(hosts)} Host headers"
        return HostNotAllowed(
            f"this gateway does not answer to {shown}; the names it answers to are set by ZAPGATE_ALLOWED_HOSTS"
        )

    @property
    def unauthenticated(self) -> int:
        return self._unauthenticated

    def connections_from(self, client: str) -> int:
        return self._per_ip.get(address_key(client), 0)

    def is_trusted_proxy(self, peer: str) -> bool:
        return _is_in(peer, self.trusted)

    def admit(self, peer: str) -> Admission | ZapgateError:
        """A new TCP connection from ``peer``. A trusted proxy's connection is counted against its client's
        address later, by :meth:`Admission.identify`, once the request headers name it."""
        cap = self.settings.max_unauthenticated_connections
        if cap and self._unauthenticated >= cap:
            self.refused[ServerBusy.code] += 1
            return ServerBusy(f"{cap} connections are authenticating already; retry in a few seconds")
        counted: str | None = None
        if not self.is_trusted_proxy(peer):
            refusal = self._count_ip(peer)
            if refusal is not None:
                return refusal
            counted = address_key(peer)
        self._unauthenticated += 1
        return Admission(self, peer, counted)

    def _count_ip(self, client: str) -> ZapgateError | None:
        key = address_key(client)
        cap = self.settings.max_connections_per_ip
        if cap and self._per_ip[key] >= cap:
            self.refused[TooManyConnections.code] += 1
            return TooManyConnections(f"{cap} connections from your address are open already; close one first")
        self._per_ip[key] += 1
        return None

    def _uncount_ip(self, key: str) -> None:
        self._per_ip[key] -= 1
        if self._per_ip[key] <= 0:
            del self._per_ip[key]

    def open_token(self, token_id: str) -> TooManyConnections | None:
        """Count a connection authenticated with ``token_id``; an error (nothing counted) if over the cap."""
        cap = self.settings.max_connections_per_token
        if cap and self._per_token[token_id] >= cap:
            self.refused[TooManyConnections.code] += 1
            return TooManyConnections(f"{cap} connections with this token are open already; close one first")
        self._per_token[token_id] += 1
        return None

    def close_token(self, token_id: str) -> None:
        self._per_token[token_id] -= 1
        if self._per_token[token_id] <= 0:
            del self._per_token[token_id]

    def take_request(self, token_id: str, now: float) -> float:
        """Count a REST request made with ``token_id`` against its bucket (``command_rate_per_s`` on average,
        ``command_burst`` at once, as a WebSocket connection's commands): 0 when it may run, else the seconds until
        it may (nothing is counted)."""
        rate = self.settings.command_rate_per_s
        if not rate:
            return 0.0
        bucket = self._requests.pop(token_id, None)
        if bucket is None:
            bucket = TokenBucket(rate, self.settings.command_burst, now)
        self._requests[token_id] = bucket  # re-inserted last: the dict is least recently used first
        while len(self._requests) > MAX_TRACKED_TOKENS:
            del self._requests[next(iter(self._requests))]
        return bucket.take(now)

    def note_refusal(self, code: str, now: float) -> int | None:
        """Whether to log a refusal at WARNING: the first of its kind, then at most one per
        :data:`REFUSAL_WARNING_INTERVAL_S`. Returns how many went unlogged since the last warning, or None."""
        last = self._warned_at.get(code)
        if last is not None and now - last < REFUSAL_WARNING_INTERVAL_S:
            self._unwarned[code] += 1
            return None
        self._warned_at[code] = now
        return self._unwarned.pop(code, 0)

    # -- authentication failures

    def _quiet_s(self) -> float:
        """A burst of failures ends after this long without one."""
        return 2 * self.settings.auth_failure_max_delay_s

    def auth_wait(self, client: str, now: float) -> float:
        """Seconds an authentication attempt from ``client`` must wait before its token is checked.

        While an address is penalised, one attempt at a time is checked: the attempt that gets 0 reserves the
        address until it succeeds (:meth:`auth_succeeded`) or fails (:meth:`auth_failed`, which sets the next
        wait), so parallel connections do not multiply the guesses."""
        key = address_key(client)
        failures = self._failures.get(key)
        if failures is None:
            return 0.0
        if now - failures.last_at > self._quiet_s() and failures.blocked_until <= now:
            del self._failures[key]
            return 0.0
        if failures.blocked_until > now:
            return failures.blocked_until - now
        failures.blocked_until = now + self._delay(failures.count)  # reserved for this attempt
        return 0.0

    def failure_delay(self, client: str, now: float) -> float:
        """The wait that ``client``'s current burst of failures has earned (0 without one): over REST, where a
        valid token never waits, a failing request is answered only after it."""
        failures = self._failures.get(address_key(client))
        if failures is None or now - failures.last_at > self._quiet_s():
            return 0.0
        return self._delay(failures.count)

    def auth_succeeded(self, client: str, now: float) -> None:
        """Lift the reservation of a penalised address; its failure count stays until a quiet spell."""
        failures = self._failures.get(address_key(client))
        if failures is not None:
            failures.blocked_until = now

    def auth_failed(self, client: str, now: float) -> AuthFailure:
        key = address_key(client)
        failures = self._failures.pop(key, None)
        previous = 0
        started = failures is None or now - failures.last_at > self._quiet_s()
        if failures is None or started:
            previous = failures.count if failures is not None else 0
            failures = _Failures(0, now, now)
        failures.count += 1
        failures.last_at = now
        delay = self._delay(failures.count)
        failures.blocked_until = now + delay
        self._failures[key] = failures  # re-inserted last: the dict is oldest-first
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            del self._failures[next(iter(self._failures))]
        return AuthFailure(started, previous, delay)

    def _delay(self, count: int) -> float:
        s = self.settings
        if count <= 0:
            return 0.0
        exponent = min(count - 1, 64)
        return min(s.auth_failure_max_delay_s, s.auth_failure_delay_s * math.ldexp(1.0, exponent))
