"""REST routes, generated from the command registry: one route per command that declares ``http=(method, path)``.

A REST call is the same command as on the socket, run by the same handler (:func:`run_command`) for the same
:class:`~zapgate.auth.Caller`, with the same structs and error codes:

- path parameters fill the request fields of the same name;
- for GET, query parameters fill the other fields (converted to the field types: ``?limit=5``, ``?flag=true``,
  a list field by repeating the parameter); for the other methods a JSON object body fills them (unknown
  fields refused, like on the socket; an empty body is ``{}``), and no query parameter is accepted;
- the command ``id`` is a WebSocket thing: REST fills it in;
- ``Idempotency-Key`` fills ``idempotency_key`` for commands that have one (a body value must agree with it);
- ``Authorization: Bearer <token>``; errors answer ``{"code", "message"}`` with the status of
  :data:`zapgate.errors.HTTP_STATUS`; success answers 200 with the reply struct as JSON.

``docs/rest.md`` is the user's reference; ``/v1/openapi.json`` is generated from the same :class:`Operation` list.
"""

from __future__ import annotations

import itertools
import logging
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from ..auth import Caller
from ..errors import (
    HTTPError,
    IdempotencyConflict,
    InvalidJSON,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    ZapgateError,
    http_status,
)
from ..gateway import Gateway
from ..protocol import COMMANDS, Command, CommandSpec, encode
from .access import authenticate_request, bearer_token
from .commands import run_command

__all__ = [
    "IDEMPOTENCY_FIELD",
    "Operation",
    "error_response",
    "json_response",
    "not_found",
    "operations",
    "parse_command",
    "read_body",
    "rest_routes",
    "routes_table",
]

log = logging.getLogger("zapgate.server")

IDEMPOTENCY_FIELD = "idempotency_key"
_TRANSPORT_FIELDS = frozenset({"id", "type"})
"""Request fields REST never takes from the caller: ``type`` is the route, ``id`` is filled in."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One REST route of a command: where each request field comes from."""

    spec: CommandSpec
    method: str
    path: str
    path_fields: tuple[str, ...]
    """Wire names of the fields given by the path, in path order."""
    fields: dict[str, msgspec.structs.FieldInfo]
    """Every other field the caller gives (query for GET, body otherwise), by wire name."""
    path_types: dict[str, msgspec.structs.FieldInfo]
    """The fields given by the path, by wire name."""

    @property
    def in_query(self) -> bool:
        return self.method == "GET"

    @property
    def idempotent_header(self) -> bool:
        """The command takes ``Idempotency-Key``."""
        return IDEMPOTENCY_FIELD in self.fields


def operations(commands: Iterable[CommandSpec] | None = None) -> list[Operation]:
    """The REST operation of every registered command that declares a route, in registry order."""
    found = []
    for spec in COMMANDS.values() if commands is None else commands:
        if spec.http is None:
            continue
        method, path = spec.http
        all_fields = {f.encode_name: f for f in msgspec.structs.fields(spec.request)}
        path_fields = tuple(part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}"))
        unknown = [name for name in path_fields if name not in all_fields]
        if unknown:
            raise ValueError(f"{spec.name}: path parameters {unknown} are not fields of {spec.request.__name__}")
        rest = {name: f for name, f in all_fields.items() if name not in _TRANSPORT_FIELDS and name not in path_fields}
        in_path = {name: all_fields[name] for name in path_fields}
        found.append(Operation(spec, method.upper(), path, path_fields, rest, in_path))
    return found


def routes_table() -> str:
    """The routes table of ``docs/rest.md`` (``python3 tasks.py docs`` writes it there)."""
    lines = ["| route | body | command | scope |", "| --- | --- | --- | --- |"]
    for op in operations():
        if op.in_query:
            query = "&".join(f"{name}=" for name in op.fields)
            route, body = f"`{op.method} {op.path}{'?' + query if query else ''}`", "—"
        else:
            route = f"`{op.method} {op.path}`"
            required = {f.encode_name for f in op.fields.values() if f.required}
            body = ", ".join(f"`{name}`" if name in required else f"`{name}?`" for name in op.fields) or "—"
        scope = (op.spec.scope.value if op.spec.scope else "any") + (
            " (simulator only)" if op.spec.simulator_only else ""
        )
        lines.append(f"| {route} | {body} | `{op.spec.name}` | {scope} |")
    return "\n".join(lines) + "\n"


# -- requests


_request_ids = itertools.count(1)


def _lax(name: str, where: str, value: Any, field: msgspec.structs.FieldInfo) -> Any:
    """A path or query string converted to the field's type (``"5"`` → 5, ``"true"`` → True)."""
    try:
        return msgspec.to_builtins(msgspec.convert(value, field.type, strict=False))
    except msgspec.ValidationError as exc:
        problem = str(exc).replace(", got `str`", f", got {value!r}")
        raise InvalidRequest(f"invalid {where} parameter {name!r}: {problem}") from None


def _is_list(field: msgspec.structs.FieldInfo) -> bool:
    """A list field (``list[...]``, also ``Annotated`` or ``| None``): its query parameter may be repeated."""

    def unwrap(kind: Any) -> Any:
        while typing.get_origin(kind) is typing.Annotated:
            kind = typing.get_args(kind)[0]
        return kind

    kind = unwrap(field.type)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kinds = [unwrap(k) for k in typing.get_args(kind) if k is not type(None)]
        kind = kinds[0] if len(kinds) == 1 else kind
    return typing.get_origin(kind) in (list, tuple, set, frozenset)


def parse_command(
    op: Operation,
    path_params: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    headers: Mapping[str, str],
) -> Command:
    """The command a REST request stands for, or :class:`InvalidRequest` / :class:`InvalidJSON` saying what is wrong."""
    values: dict[str, Any] = {}
    given: dict[str, list[str]] = {}
    for key, value in query:
        given.setdefault(key, []).append(value)
    if given and not op.in_query:
        raise InvalidRequest(
            f"{op.method} {op.path} takes no query parameters (got {', '.join(map(repr, given))}); send a JSON body"
        )
    for key, items in given.items():
        field = op.fields.get(key)
        if field is None:
            accepted = ", ".join(op.fields) or "none"
            raise InvalidRequest(f"unknown query parameter {key!r}; {op.spec.name} takes: {accepted}")
        if _is_list(field):
            values[key] = _lax(key, "query", items, field)
        elif len(items) > 1:
            raise InvalidRequest(f"query parameter {key!r} is given {len(items)} times; give it once")
        else:
            values[key] = _lax(key, "query", items[0], field)
    if not op.in_query and body.strip():
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidJSON(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidJSON("body is not valid JSON: nested too deeply") from None
        if not isinstance(decoded, dict):
            raise InvalidRequest(f"the body of {op.spec.name} must be a JSON object")
        for key in decoded:
            if key not in op.fields:
                where = "is given by the path" if key in op.path_fields else "is not a field of this operation"
                raise InvalidRequest(
                    f"invalid {op.spec.name!r} request: Object contains unknown field `{key}` ({where})"
                )
        values.update(decoded)
    header_key = headers.get("idempotency-key")
    if header_key is not None:
        if not op.idempotent_header:
            raise InvalidRequest(f"{op.spec.name} does not take an Idempotency-Key")
        if values.get(IDEMPOTENCY_FIELD) not in (None, header_key):
            raise IdempotencyConflict("the Idempotency-Key header and the body's idempotency_key differ; give one")
        values[IDEMPOTENCY_FIELD] = header_key
    for name in op.path_fields:
        values[name] = _lax(name, "path", path_params[name], op.path_types[name])
    values["type"] = op.spec.name
    values["id"] = f"rest-{next(_request_ids)}"
    try:
        return msgspec.convert(values, op.spec.request)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid {op.spec.name!r} request: {exc}") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk and refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; the limit is {limit} (rest_max_body_bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes (rest_max_body_bytes)")
    if body.strip():
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise UnsupportedMediaType(f"send the body as application/json, not {kind or 'no content type'}")
    return bytes(body)


# -- responses


def json_response(data: Any, status: int = 200) -> Response:
    return Response(encode(data if data is not None else {}), status_code=status, media_type="application/json")


def error_response(exc: ZapgateError, request: Request | None = None) -> Response:
    """The REST answer to an error: ``{"code", "message"}`` with the status of its code.

    A 401 carries ``WWW-Authenticate: Bearer`` (RFC 6750), with ``error="invalid_token"`` when a token was sent."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, QuotaExceeded) and exc.quota is not None:
        body.update(quota=exc.quota, limit=exc.limit)
    response = json_response(body, http_status(exc.code))
    if isinstance(exc, Unauthorized):
        sent = request is not None and bool(bearer_token(request.headers))
        response.headers["WWW-Authenticate"] = 'Bearer realm="zapgate"' + (', error="invalid_token"' if sent else "")
    if isinstance(exc, RateLimited) and exc.retry_after_header is not None:
        response.headers["Retry-After"] = exc.retry_after_header
    return response


Endpoint = Callable[[Request], Awaitable[Response]]
Extension = Callable[[Operation, Request, Caller], Awaitable[Response]]
"""A route that does more than run its command once (``GET /v1/events``: long-poll and Server-Sent Events)."""


def _endpoint(op: Operation, extension: Extension | None) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        try:
            caller = await authenticate_request(request)
            if extension is not None:
                return await extension(op, request, caller)
            body = b"" if op.in_query else await read_body(request, gateway.settings.rest_max_body_bytes)
            command = parse_command(op, request.path_params, request.query_params.multi_items(), body, request.headers)
            return json_response(await run_command(gateway, caller, command))
        except ZapgateError as exc:
            return error_response(exc, request)
        except Exception:
            log.exception("REST %s %s failed", op.method, op.path)
            return error_response(ZapgateError("internal error; see server log"))

    endpoint.__name__ = op.spec.name.replace(".", "_")
    return endpoint


def rest_routes(extensions: Mapping[str, Extension] | None = None) -> list[Route]:
    """A Starlette route for every REST operation; ``extensions`` replace the plain endpoint of some commands."""
    extensions = extensions or {}
    return [Route(op.path, _endpoint(op, extensions.get(op.spec.name)), methods=[op.method]) for op in operations()]


async def not_found(request: Request, exc: Exception) -> Response:
    """JSON for Starlette's own 404 and 405 (no route, or not this method)."""
    error: HTTPError
    if getattr(exc, "status_code", 404) == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        allowed: set[str] = set()
        for route in request.app.routes:  # Starlette's Allow names only the first route of the path
            if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
                allowed |= route.methods or set()
        response = error_response(error)
        response.headers["Allow"] = ", ".join(sorted(allowed))
        return response
    error = NotFound(f"no route {request.method} {request.url.path}; see /v1/openapi.json")
    return error_response(error)
