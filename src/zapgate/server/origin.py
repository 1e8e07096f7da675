"""The ``Origin`` check on WebSocket upgrades: a page from another site gets HTTP 403 before the upgrade.

Tokens are not cookies, so a hostile page cannot ride a signed-in user's credentials; the check still keeps
every other site a user visits from opening (unauthenticated) connections to a gateway on their machine or
network, and it keeps holding if ambient credentials are ever added. The policy itself is
:class:`zapgate.origins.OriginPolicy`.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from ..origins import OriginPolicy

__all__ = ["ORIGIN_NOT_ALLOWED", "refuse_foreign_origin"]

log = logging.getLogger("zapgate.server")

ORIGIN_NOT_ALLOWED = "origin_not_allowed"
"""The ``code`` of the 403 body."""


async def refuse_foreign_origin(websocket: WebSocket) -> bool:
    """Refuse the upgrade with 403 when its ``Origin`` is not allowed; True when it was refused."""
    policy: OriginPolicy = websocket.app.state.origin_policy
    origin = websocket.headers.get("origin")
    if policy.allows(origin, scheme=websocket.url.scheme, host=websocket.headers.get("host")):
        return False
    client = websocket.client
    peer = f"{client.host}:{client.port}" if client else "?"
    shown = (origin or "")[:200]
    log.info("WebSocket upgrade from %s refused: origin %r is not allowed", peer, shown)
    body = {
        "code": ORIGIN_NOT_ALLOWED,
        "message": f"pages from {shown!r} may not open this WebSocket; the gateway's own origin and "
        "those in ZAPGATE_ALLOWED_ORIGINS may",
    }
    await websocket.send_denial_response(JSONResponse(body, status_code=403))
    return True
