"""``/v1/openapi.json``: the OpenAPI 3.1 description of the REST API, generated from the command registry.

Each :class:`~zapgate.server.rest.Operation` becomes an operation: its summary and description are the
command's, its parameters and body come from the command struct (without ``type``, ``id`` and the path's fields),
its 200 response is the reply struct, and its errors are ``{"code", "message"}`` with the statuses of
:data:`zapgate.errors.HTTP_STATUS`. Nothing here names a particular command except the extras of
``GET /v1/events`` (long-poll and Server-Sent Events), which are REST's own.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..config import Settings
from ..errors import HTTP_STATUS
from ..protocol import ErrorBody
from .rest import IDEMPOTENCY_FIELD, Operation, operations
from .rest_events import EVENT_STREAM, WAIT_PARAM
from .schemas import ProtocolSchemas

__all__ = ["openapi_document"]

_OPENAPI_DESCRIPTION = """Every command of the WebSocket protocol (`/v1/ws`, described in `/v1/asyncapi.json`) \
as an HTTP route: same structs, same handlers, same error codes. Authenticate with `Authorization: Bearer <token>` \
(`zapgate token create --tenant NAME`). Errors are `{"code", "message"}`; the status follows the code \
(see `docs/rest.md`). `GET /v1/events` pages the event log, long-polls with `wait`, and streams Server-Sent \
Events with `Accept: text/event-stream`."""

_ERROR_STATUSES = sorted(set(HTTP_STATUS.values()))
_REASONS = {
    400: "The request is invalid (`invalid_request`, `invalid_json`, `invalid_recipient`…).",
    401: "Missing, invalid or revoked token (`unauthorized`).",
    403: "The token's scopes do not allow this (`forbidden`).",
    404: "No such session, route, QR code, or command on this engine.",
    405: "Method not allowed.",
    409: "The state does not allow it (`session_not_paired`, `idempotency_conflict`, `qr_used`).",
    410: "Expired (`qr_expired`).",
    413: "The body is larger than `rest_max_body_bytes`.",
    415: "The body is not JSON.",
    422: "Valid, but WhatsApp will not do it (`not_on_whatsapp`, `send_failed`).",
    429: "More requests with this token than `command_rate_per_s` allows (`rate_limited`): send it again after "
    "`Retry-After` seconds; or a tenant's quota (`quota_exceeded`).",
    500: "A bug (`internal`); details are in the server log.",
    503: "The engine cannot do it right now (`engine_unavailable`), or the session is moving to another node "
    "(`session_unavailable`): retry.",
}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _REASONS.get(status, "An error."),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="zapgate"…'}
        }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait (`rate_limited`)."}
        }
    return response


def _parameter(name: str, where: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    if "description" in schema:
        param["description"] = schema["description"]
    return param


def _operation(op: Operation, schemas: ProtocolSchemas, settings: Settings) -> dict[str, Any]:
    spec = op.spec
    request = schemas.components[spec.request.__name__]
    properties: dict[str, Any] = request.get("properties", {})
    required = set(request.get("required", []))
    parameters = [_parameter(name, "path", properties[name], True) for name in op.path_fields]
    if op.in_query:
        parameters += [_parameter(name, "query", properties[name], name in required) for name in op.fields]
    if op.idempotent_header:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": f"Same as the body's `{IDEMPOTENCY_FIELD}` (give one, or the same value in both).",
                "schema": properties[IDEMPOTENCY_FIELD]["anyOf"][0],
            }
        )
    responses: dict[str, Any] = {
        "200": {
            "description": "The command's reply.",
            "content": {"application/json": {"schema": schemas.of(spec.reply)}},
        }
    }
    statuses = [s for s in _ERROR_STATUSES if op.in_query is False or s not in (413, 415)]
    responses.update({str(status): _error_response(status) for status in statuses if status != 405})
    scope = f"scope `{spec.scope.value}`" if spec.scope else "any valid token"
    description = spec.description + f"\n\nThe `{spec.name}` command ({scope})."
    if spec.simulator_only:
        description += " Exists only with `--engine simulator` (`command_unavailable`, 404, otherwise)."
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary,
        "description": description,
        "tags": [spec.name.split(".")[0]],
        "parameters": parameters,
        "responses": responses,
    }
    if not op.in_query:
        body = schemas.request_body(spec.request, {"type", "id", *op.path_fields})
        body["title"] = f"{spec.request.__name__}Body"
        operation["requestBody"] = {
            "required": bool(body["required"]),
            "content": {"application/json": {"schema": body}},
        }
    if spec.name == "events.fetch":
        _events_extras(operation, settings)
    return operation


def _events_extras(operation: dict[str, Any], settings: Settings) -> None:
    """``GET /v1/events``: ``wait`` (long-poll), ``Last-Event-ID`` and the ``text/event-stream`` response."""
    operation["parameters"] += [
        {
            "name": WAIT_PARAM,
            "in": "query",
            "required": False,
            "description": "Long-poll: when no event is newer than `after`, wait up to this many seconds for one.",
            "schema": {"type": "number", "minimum": 0, "maximum": settings.rest_max_wait_s, "default": 0},
        },
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "Server-Sent Events only: resume after this seq (replaces `after`).",
            "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
        },
    ]
    operation["description"] += (
        "\n\nWith `Accept: text/event-stream` the answer is a Server-Sent Events stream: a `ready` message, then "
        "each event with `id:` its seq, `event:` its name and `data:` its frame, replayed then live; comments "
        f"every {settings.sse_heartbeat_s:g} s keep it alive."
    )
    operation["responses"]["200"]["content"][EVENT_STREAM] = {"schema": {"type": "string"}}


def _qr_png() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "qr.png",
            "summary": "The session's current QR code as a PNG image",
            "description": "While the session's status is `qr`; 404 `qr_not_available` otherwise.",
            "tags": ["session"],
            "parameters": [
                {"name": "session", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The QR code.", "content": {"image/png": {"schema": {}}}},
                "401": _error_response(401),
                "404": _error_response(404),
            },
        }
    }


def _healthz() -> dict[str, Any]:
    reason = {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": {"type": "string", "description": "A stable code, e.g. `whatsapp_unreachable`."},
            "detail": {"type": ["string", "null"], "description": "In words, for people; do not parse it."},
            "sessions": {"type": "integer", "minimum": 0, "description": "How many sessions it affects."},
        },
    }
    health = {
        "type": "object",
        "required": ["status", "engine", "uptime_s", "connections", "sessions"],
        "properties": {
            "status": {"enum": ["ok", "degraded"], "description": "Alert on `degraded`, not only on the HTTP status."},
            "engine": {"type": "string", "description": "`whatsapp` or `simulator`."},
            "uptime_s": {"type": "number", "minimum": 0},
            "connections": {
                "type": "integer",
                "minimum": 0,
                "description": "WebSocket connections and open event streams on this node.",
            },
            "sessions": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "How many sessions of every tenant are in each status.",
            },
            "reasons": {"type": "array", "items": reason, "description": "Only while `degraded`: why."},
            "cluster": {
                "type": "object",
                "description": "Several nodes only: this node's leases, the nodes it sees, its bus and forwarding "
                "(docs/scaling.md).",
            },
        },
    }
    return {
        "get": {
            "operationId": "healthz",
            "parameters": [],
            "summary": "Whether the gateway runs, and whether its engine can do its work",
            "description": "No token needed. HTTP 200 while the gateway runs, `degraded` or not (docs/protocol.md, "
            '"Health"). Counts only: no session names, tenants or tokens.',
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {"description": "The gateway's health.", "content": {"application/json": {"schema": health}}}
            },
        }
    }


def _metrics(settings: Settings) -> dict[str, Any]:
    """``/metrics`` on this port: open, or behind ``metrics_token`` (not a zapgate token) when it is set."""
    guarded = bool(settings.metrics_token)
    responses: dict[str, Any] = {
        "200": {
            "description": "The metrics, in the Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
    if guarded:
        responses["401"] = _error_response(401)
    return {
        "get": {
            "operationId": "metrics",
            "parameters": [],
            "summary": "Prometheus metrics",
            "description": (
                "With `Authorization: Bearer <ZAPGATE_METRICS_TOKEN>` (not a zapgate token). "
                if guarded
                else "No token needed (set `ZAPGATE_METRICS_TOKEN` to require one). "
            )
            + "The Prometheus text exposition format: sessions by status, connections, queued messages, events by "
            "type and status, uptime; with several nodes also leases, nodes and forwarding. Counts only: no "
            "session names, tenants or tokens.",
            "tags": ["health"],
            "security": [{"metricsToken": []}] if guarded else [],
            "responses": responses,
        }
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this gateway's REST API (limits taken from ``settings``)."""
    schemas = ProtocolSchemas("#/components/schemas/")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations():
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas, settings)
    paths["/v1/sessions/{session}/qr.png"] = _qr_png()
    paths["/healthz"] = _healthz()
    if not settings.metrics_port:  # else /metrics has a listener of its own, and this port answers 404
        paths["/metrics"] = _metrics(settings)
    used = _referenced(paths, schemas.components)
    components = {name: schema for name, schema in schemas.components.items() if name in used}
    components[ErrorBody.__name__]["description"] = (
        "An error: `code` is stable (see docs/rest.md for its HTTP status), `message` says what to do."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zapgate REST API",
            "version": __version__,
            "description": _OPENAPI_DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A zapgate token."},
                **(
                    {"metricsToken": {"type": "http", "scheme": "bearer", "description": "ZAPGATE_METRICS_TOKEN."}}
                    if settings.metrics_token and not settings.metrics_port
                    else {}
                ),
            },
        },
        "security": [{"bearer": []}],
    }


def _referenced(root: Any, components: dict[str, Any], prefix: str = "#/components/schemas/") -> set[str]:
    """Names of the schema components reachable from ``root``."""
    found: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in found:
                name = ref[len(prefix) :]
                found.add(name)
                stack.append(components[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
