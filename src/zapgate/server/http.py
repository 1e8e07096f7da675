"""Plain HTTP routes: health and the current QR code as an image."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import msgspec
import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..auth import Caller
from ..cluster.node import ClusterNode
from ..errors import Forbidden, QRNotAvailable, SessionNotFound, Unauthorized
from ..gateway import Gateway
from ..protocol import Scope, SessionQrData
from ..sessions.state import Status
from .access import bearer_token

__all__ = ["cluster_health", "healthz", "render_qr_png", "session_qr_png"]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def healthz(request: Request) -> Response:
    gateway = _gateway(request)
    sessions = gateway.sessions.all()
    by_status: dict[str, int] = {}
    for session in sessions:
        by_status[session.state.status.value] = by_status.get(session.state.status.value, 0) + 1
    # The gateway answers either way (HTTP 200); "degraded" says the engine cannot do its work right now, or (with
    # several nodes) that this node could not renew its leases lately and runs nothing.
    issues = [msgspec.to_builtins(issue) for issue in gateway.engine.health()]
    body: dict[str, Any] = {
        "engine": gateway.engine.name,
        "uptime_s": round(time.time() - gateway.started_at, 3),
        "connections": gateway.hub.connection_count(),
        "sessions": by_status,
    }
    if gateway.cluster is not None:
        body["cluster"] = cluster = cluster_health(gateway.cluster, gateway)
        if not cluster["leases"]["current"]:
            issues.append({"reason": "leases_not_renewed", "detail": "the database did not answer in time"})
    body = {"status": "degraded" if issues else "ok", **body}
    if issues:
        body["reasons"] = issues
    return JSONResponse(body)


def cluster_health(node: ClusterNode, gw: Gateway) -> dict[str, Any]:
    """This node's part of the cluster, for ``/healthz`` (counts only: no session names or ids)."""
    stats = node.keeper.stats
    held = node.keeper.held()
    fwd = node.forwarder
    p50, p99 = fwd.latencies.percentile(50), fwd.latencies.percentile(99)
    age = time.time() - stats.last_round_at if stats.last_round_at else None
    return {
        "node": node.node,
        "name": node.name,
        "leases": {
            "held": len(held),
            "valid": sum(1 for s in held if node.keeper.valid(s)),
            "current": age is not None and age < node.settings.lease_ttl_s,
            "last_renewal_age_s": round(age, 3) if age is not None else None,
            "draining": node.keeper.draining,
            "claimed": stats.claimed,
            "lost": stats.lost,
            "self_fenced": stats.self_fenced,
            "handed_over": stats.handed_over,
            "rounds": stats.rounds,
            "failed_rounds": stats.failed_rounds,
        },
        "sessions_in_cluster": stats.sessions,
        "sessions_without_node": stats.free,
        "nodes": [{"name": n.name, "node": n.node, "alive": n.alive, "draining": n.draining} for n in stats.nodes],
        "bus": {"kind": node.bus.name if node.bus else None, "connected": bool(node.bus and node.bus.connected)},
        "forwarding": {
            "sent": fwd.forwarded,
            "served": fwd.served,
            "timeouts": fwd.timeouts,
            "p50_ms": round(p50 * 1000, 3) if p50 is not None else None,
            "p99_ms": round(p99 * 1000, 3) if p99 is not None else None,
        },
        "fenced_writes": gw.sessions.fenced_writes,
        "events_read_back": gw.hub.caught_up,
    }


def _error(status: int, exc: Exception, code: str) -> Response:
    return JSONResponse({"code": code, "message": str(exc)}, status_code=status)


async def session_qr_png(request: Request) -> Response:
    """``GET /v1/sessions/{session}/qr.png`` with ``Authorization: Bearer <token>``."""
    gateway = _gateway(request)
    token = bearer_token(request.headers)
    if not token:
        return _error(401, Unauthorized("send Authorization: Bearer <token>"), "unauthorized")
    name = request.path_params["session"]
    try:
        record = await gateway.tokens.authenticate(token)
        caller = Caller.of(record)
        if not caller.allows(Scope.READ) or not caller.may_use(name):
            raise Forbidden("this token may not read this session")
        if gateway.cluster is not None and gateway.sessions.runs(record.tenant, name) is None:
            shown = await _shown_elsewhere(gateway, record.tenant, name)
        else:
            session = gateway.sessions.get(record.tenant, name)
            shown = (
                SessionQrData(qr=session.qr_code, **msgspec.structs.asdict(session.qr))
                if session.state.status is Status.QR and session.qr_code is not None and session.qr is not None
                else None
            )
    except Unauthorized as exc:
        return _error(401, exc, exc.code)
    except Forbidden as exc:
        return _error(403, exc, exc.code)
    except SessionNotFound as exc:
        return _error(404, exc, exc.code)
    if shown is None:
        unavailable = QRNotAvailable("the session is not showing a QR code now (it is not pairing, or is paired)")
        return _error(404, unavailable, unavailable.code)
    png = await asyncio.to_thread(render_qr_png, shown.qr)  # a few ms of CPU: not on the event loop
    headers = {
        "Cache-Control": "no-store",
        "X-QR-Attempt": f"{shown.attempt}/{shown.max_attempts}",
        "X-QR-Expires-At": f"{shown.expires_at:.3f}",
    }
    return Response(png, media_type="image/png", headers=headers)


async def _shown_elsewhere(gateway: Gateway, tenant: str, name: str) -> SessionQrData | None:
    """With several nodes, the code a session run by another node shows: its newest ``session.qr`` event, while the
    session's stored status is ``qr`` and that code has not expired (every node reads the same log)."""
    located = await gateway.storage.leases.locate(tenant, name)
    if located is None:
        raise SessionNotFound(f"no session named {name!r}")
    stored = await gateway.storage.load_session(located.session_id)
    if stored is None or stored.status != Status.QR.value:
        return None  # (not looked up in the log: for a session that is not pairing, that reads the tenant's whole log)
    raw = await gateway.storage.newest_event(tenant, name, "session.qr")
    if raw is None:
        return None
    shown = msgspec.json.decode(raw, type=SessionQrData)
    return shown if shown.expires_at > time.time() else None


def render_qr_png(code: str) -> bytes:
    """The QR code ``code`` as a PNG, 8 pixels a module with the standard quiet zone."""
    image = io.BytesIO()
    segno.make_qr(code, error="l").save(image, kind="png", scale=8, border=4)
    return image.getvalue()
