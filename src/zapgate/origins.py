"""Which web pages may open the WebSocket: the ``Origin`` allow-list (pure, no I/O).

A browser sends ``Origin`` with every WebSocket upgrade; other clients usually send none. A page may connect when
its origin is the gateway's own (the scheme and ``Host`` the request came to: the dashboard) or is listed in
``ZAPGATE_ALLOWED_ORIGINS``. ``Origin: null`` (sandboxed frames, ``file:`` pages) is always refused, since any
page can produce it. Origins compare as (scheme, host, port) with the scheme's default port filled in, so
``http://Example.com`` and ``http://example.com:80`` are the same origin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["ANY_ORIGIN", "Origin", "OriginPolicy", "parse_origin"]

ANY_ORIGIN = "*"
"""In ``allowed_origins``: pages from any origin may connect (except ``null``)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_SCHEME_OF = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

Origin = tuple[str, str, int]
"""(scheme, lower-case host, port)."""


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` (http or https, nothing else) as an :data:`Origin`; None when it is not one."""
    if not text or text != text.strip():
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a bad port, or brackets that do not close
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or parts.username is not None or parts.password is not None:
        return None
    return parts.scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[parts.scheme]


def own_origin(scheme: str, host: str | None) -> Origin | None:
    """The origin of a request that came to ``host`` (its ``Host`` header) over ``scheme`` (ws, wss, http…)."""
    http_scheme = _HTTP_SCHEME_OF.get(scheme)
    if http_scheme is None or not host:
        return None
    return parse_origin(f"{http_scheme}://{host}")


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The origins allowed besides the gateway's own; ``any_origin`` when ``*`` was listed."""

    allowed: frozenset[Origin]
    any_origin: bool = False

    @classmethod
    def of(cls, entries: Iterable[str]) -> OriginPolicy:
        """The policy for the entries of ``allowed_origins``; :class:`ValueError` names a malformed one."""
        allowed: set[Origin] = set()
        any_origin = False
        for entry in entries:
            if entry == ANY_ORIGIN:
                any_origin = True
                continue
            parsed = parse_origin(entry)
            if parsed is None:
                raise ValueError(f"{entry!r} is not an origin: write scheme://host[:port] (http or https, no path)")
            allowed.add(parsed)
        return cls(frozenset(allowed), any_origin)

    def allows(self, origin: str | None, *, scheme: str, host: str | None) -> bool:
        """May a request with this ``Origin`` header (None: no header), arriving over ``scheme`` at ``host``,
        open the WebSocket?"""
        if origin is None:
            return True  # not a browser: browsers always send Origin on WebSocket upgrades
        parsed = parse_origin(origin)
        if parsed is None:  # "null", or garbage
            return False
        return self.any_origin or parsed == own_origin(scheme, host) or parsed in self.allowed
