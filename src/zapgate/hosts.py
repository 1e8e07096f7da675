"""Which names the gateway answers to: the ``Host`` allow-list (pure, no I/O).

DNS rebinding lets a web page reach a gateway on the visitor's machine: the page's own name (``evil.example``)
is made to resolve to 127.0.0.1, so the browser sends the page's requests there, with ``Host: evil.example``.
Refusing every request whose ``Host`` is not a name the gateway is known by defeats it, whatever the request.

The allow-list is ``allowed_hosts``. Its entries are host names or addresses (``gw.example.com``, ``10.0.0.5``,
``[::1]``), optionally with a port (``gw.example.com:8443``: that port only; without one: any port), or
``*.example.com`` (any name under example.com, not example.com itself), or ``*`` (any name). When it is empty,
the default depends on the address the gateway listens on (:meth:`HostPolicy.default_for`): a loopback
address answers to ``localhost``, ``127.0.0.1`` and ``[::1]`` on any port, any other address answers to any
name (a gateway reachable from other machines is known by names zapgate cannot guess; ``zapgate serve`` warns).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ANY_HOST", "LOOPBACK_HOSTS", "HostPolicy", "parse_host"]

ANY_HOST = "*"
"""In ``allowed_hosts``: requests with any ``Host`` are answered."""
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names a gateway that listens on a loopback address answers to by default (any port)."""
_MAX_HOST_CHARS = 255

Host = tuple[str, int | None]
"""(lower-case name without a trailing dot, IPv6 addresses in brackets; port or None)."""


def parse_host(text: str) -> Host | None:
    """A ``Host`` header value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``) as a :data:`Host`; None when it
    is not one (empty, spaces, a path, a bad port...)."""
    if not text or len(text) > _MAX_HOST_CHARS or not text.isascii() or not text.isprintable():
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        try:
            address = ipaddress.IPv6Address(text[1:end])
        except ValueError:
            return None
        name, rest = f"[{address.compressed}]", text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        name = name.lower().removesuffix(".")
        if not name or any(not (c.isalnum() or c in "-._") for c in name):
            return None
    if port_text is None:
        return name, None
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return name, int(port_text)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The ``Host`` values a gateway answers to; ``any_host`` answers them all."""

    exact: frozenset[Host]
    suffixes: tuple[str, ...] = ()
    any_host: bool = False

    @classmethod
    def of(cls, entries: Iterable[str]) -> HostPolicy:
        """The policy for the entries of ``allowed_hosts``; :class:`ValueError` names a malformed one."""
        exact: set[Host] = set()
        suffixes: list[str] = []
        any_host = False
        for entry in entries:
            if entry == ANY_HOST:
                any_host = True
                continue
            if entry.startswith("*."):
                parsed = parse_host(entry[2:])
                if parsed is None or parsed[1] is not None or parsed[0].startswith("["):
                    raise ValueError(f"{entry!r} is not a host pattern: write *.example.com (no port)")
                suffixes.append("." + parsed[0])
                continue
            parsed = parse_host(entry)
            if parsed is None:
                raise ValueError(f"{entry!r} is not a host: write name[:port], address[:port] or [v6][:port]")
            exact.add(parsed)
        return cls(frozenset(exact), tuple(suffixes), any_host)

    @classmethod
    def default_for(cls, bind_loopback: bool) -> HostPolicy:
        """The policy when ``allowed_hosts`` is empty: loopback names only on a loopback address, else any."""
        return cls.of(LOOPBACK_HOSTS) if bind_loopback else cls(frozenset(), (), any_host=True)

    def allows(self, host: str | None) -> bool:
        """Is a request with this ``Host`` header (None: none) answered?"""
        if self.any_host:
            return True
        parsed = parse_host(host) if host is not None else None
        if parsed is None:
            return False
        name, port = parsed
        if (name, None) in self.exact or (port is not None and parsed in self.exact):
            return True
        return any(name.endswith(suffix) for suffix in self.suffixes)
