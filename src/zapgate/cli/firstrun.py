"""The first run of ``zapgate serve``: on a data directory with no tokens at all, create one and show it once.

A new user then needs nothing but the serve command: it prints the token and the dashboard's address. This
happens once the port is open (so the address works, and a gateway that fails to start has made no token). The
token is written straight to stderr, never through logging (log handlers may ship lines elsewhere), and by
default only when stderr is a terminal: output of a container or a CI job is often kept and read by others,
and a printed token is a leak there. ``ZAPGATE_FIRST_RUN_TOKEN`` chooses (``tty``, ``always``, ``never``);
docs/security.md explains the trade-off. Only the token's hash is stored, as for every token, so it can never
be shown again; ``zapgate token create`` makes more.
"""

from __future__ import annotations

import logging
from typing import TextIO

from ..gateway import Gateway

__all__ = ["FIRST_RUN_LABEL", "FIRST_RUN_SCOPES", "FIRST_RUN_TENANT", "dashboard_url", "notice", "wanted", "welcome"]

log = logging.getLogger("zapgate.server")

FIRST_RUN_TENANT = "default"
FIRST_RUN_LABEL = "first run"
FIRST_RUN_SCOPES = ("tenant", "admin")


async def welcome(gateway: Gateway, port: int, stderr: TextIO) -> None:
    """Once the gateway listens on ``port``: if it has no token at all (revoked ones count: a gateway whose tokens
    were all revoked is not new), create one and print it when allowed, or log how to make one."""
    settings = gateway.settings
    if await gateway.storage.tenants.list_tokens():
        return
    data_dir = str(settings.data_dir.absolute())
    if not wanted(settings.first_run_token, stderr):
        log.warning(
            "no tokens yet: clients cannot connect until you create one with 'zapgate token create --tenant NAME "
            "--data-dir %s' (or start 'zapgate serve' in a terminal, or with ZAPGATE_FIRST_RUN_TOKEN=always, to "
            "have one created and printed)",
            data_dir,
        )
        return
    # Whoever started the gateway owns it: the first token also manages tenants and tokens.
    _, token = await gateway.tokens.create(FIRST_RUN_TENANT, FIRST_RUN_LABEL, scopes=FIRST_RUN_SCOPES)
    stderr.write(notice(token, dashboard_url(settings.host, port), data_dir))
    stderr.flush()


def wanted(mode: str, stderr: TextIO) -> bool:
    """Whether a first token may be created now: it must be shown, and shown only where ``mode`` allows."""
    if mode == "always":
        return True
    if mode == "tty":
        isatty = getattr(stderr, "isatty", None)
        return bool(isatty and isatty())
    return False


def dashboard_url(host: str, port: int) -> str:
    """Where a browser on this machine finds the dashboard of a gateway bound to ``host``."""
    every_interface = {"0.0.0.0", "::", ""}  # noqa: S104 - not a bind: loopback is one of those interfaces
    if host in every_interface:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def notice(token: str, url: str, data_dir: str) -> str:
    """What the first run prints (on stderr, once)."""
    rule = "-" * 72
    return "\n".join(
        [
            rule,
            f"zapgate: first run: created an access token for tenant '{FIRST_RUN_TENANT}'.",
            "It is shown only this once (only its hash is stored); keep it secret:",
            "",
            f"    {token}",
            "",
            f"Dashboard:     {url}  (sign in with the token above)",
            f"WebSocket API: {url.replace('http://', 'ws://', 1)}v1/ws",
            f"More tokens:   zapgate token create --tenant NAME --data-dir {data_dir}",
            rule,
            "",
        ]
    )
