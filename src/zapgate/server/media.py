"""Media over plain HTTP: ``POST /v1/media`` (upload) and ``GET /v1/media/{media_id}`` (download), with the
same Bearer tokens as the socket.

Files never travel through the WebSocket (its frames stay small). An upload is streamed to disk as it arrives
— a raw body, or a ``multipart/form-data`` body parsed as it streams — and never held whole in memory; past
``media_max_bytes`` it is answered 413 at once. A download streams the stored file with its type, honours
``Range`` (206 / 416), and answers 404 for another tenant's id exactly as for a missing one.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..auth import Caller
from ..errors import (
    Forbidden,
    InvalidRequest,
    MediaFetchFailed,
    MediaNotFound,
    MediaNotReady,
    MediaTooLarge,
    RateLimited,
    Unauthorized,
    ZapgateError,
)
from ..gateway import Gateway
from ..media.library import Declared, media_info
from ..media.policy import RangeNotSatisfiable, parse_range
from ..protocol import Scope, encode
from .access import authenticate_request
from .commands.media import may_see_media

__all__ = ["download_media", "upload_media"]

log = logging.getLogger("zapgate.server")

STATUS = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    MediaNotFound: 404,
    MediaNotReady: 409,
    MediaTooLarge: 413,
    MediaFetchFailed: 502,
}
"""HTTP status of each error these routes answer (anything else is a 500 ``internal``)."""
MULTIPART_SLACK = 64 * 1024
"""Bytes a multipart body may carry beyond the file itself (boundaries, headers, small fields)."""
MAX_FIELD_CHARS = 1024
OPAQUE_TYPES = {"", "application/octet-stream", "application/x-www-form-urlencoded"}


def _error(exc: ZapgateError) -> Response:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
    body = encode({"code": exc.code, "message": exc.message if status != 500 else "internal error"})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if isinstance(exc, RateLimited) and exc.retry_after_header is not None:
        headers["Retry-After"] = exc.retry_after_header
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _caller(request: Request, scope: Scope) -> Caller:
    caller = await authenticate_request(request)
    if not caller.allows(scope):
        raise Forbidden(f"this needs a token with the {scope.value!r} scope")
    return caller


# -- upload ------------------------------------------------------------------------------------------------


async def upload_media(request: Request) -> Response:
    """``POST /v1/media``: the file as the raw body (``Content-Type`` its type; ``?filename=`` or a
    ``Content-Disposition`` header its name) or as the ``file`` part of a ``multipart/form-data`` body (optional
    ``mimetype`` and ``filename`` fields). Answers 201 with the media's info."""
    gw: Gateway = request.app.state.gateway
    try:
        caller = await _caller(request, Scope.SEND)
        limit = gw.media.max_bytes
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        multipart = kind == b"multipart/form-data"
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit + (MULTIPART_SLACK if multipart else 0):
            raise MediaTooLarge(f"the file is larger than media_max_bytes ({limit} bytes)")
        if multipart:
            boundary = options.get(b"boundary")
            if not boundary:
                raise InvalidRequest("multipart/form-data needs a boundary")
            reader = MultipartFile(boundary)
            chunks: AsyncIterable[bytes] = reader.chunks(request.stream())
            declared = reader.declared
        else:
            declared = Declared(
                mimetype=None if kind.decode("latin-1") in OPAQUE_TYPES else kind.decode("latin-1"),
                filename=request.query_params.get("filename")
                or _disposition_filename(request.headers.get("content-disposition")),
            )
            chunks = request.stream()
        record = await gw.media.upload(caller.tenant, chunks, declared)
    except ZapgateError as exc:
        return _error(exc)
    info = media_info(record)
    log.info("tenant %s uploaded %s (%s, %s bytes)", caller.tenant, record.id, record.mimetype, record.size)
    return Response(
        encode(info),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/v1/media/{record.id}"},
    )


def _disposition_filename(header: str | None) -> str | None:
    if not header:
        return None
    _, options = parse_options_header(header)
    value = options.get(b"filename")
    return value.decode("utf-8", "replace") if value else None


class MultipartFile:
    """Reads the one file of a ``multipart/form-data`` body as it streams (never the whole body in memory).

    The file is the part named ``file`` (or the first part with a ``filename``); ``mimetype`` and ``filename``
    fields, before or after it, override what the part's headers say. Other fields are ignored."""

    def __init__(self, boundary: bytes) -> None:
        self.declared = Declared()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )
        self._out: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._field: bytes = b""
        self._value: bytes = b""
        self._target: str | None = None  # "file", "field" or None (ignored)
        self._name = ""
        self._field_value: list[bytes] = []
        self._files = 0
        self._part_type: str | None = None
        self._part_name: str | None = None
        self._fields: dict[str, str] = {}
        self._problem: str | None = None
        self._ended = False

    async def chunks(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for raw in stream:
            self._parser.write(raw)
            if self._problem:
                raise InvalidRequest(self._problem)
            if self._out:
                data, self._out = b"".join(self._out), []
                yield data
        self._parser.finalize()
        if self._out:
            data, self._out = b"".join(self._out), []
            yield data
        if self._problem:
            raise InvalidRequest(self._problem)
        if not self._ended:
            raise InvalidRequest("the multipart body ended before its closing boundary")
        if not self._files:
            raise InvalidRequest("no file in the multipart body: send it as the form field 'file'")
        self.declared.mimetype = self._fields.get("mimetype") or self._part_type
        self.declared.filename = self._fields.get("filename") or self._part_name

    def _part_begin(self) -> None:
        self._headers = {}
        self._target = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name == "file" or (filename is not None and self._files == 0):
            self._files += 1
            if self._files > 1:
                self._problem = "only one file per upload"
                return
            self._target = "file"
            kind = self._headers.get(b"content-type", b"").decode("latin-1").partition(";")[0].strip().lower()
            self._part_type = None if kind in OPAQUE_TYPES else kind
            self._part_name = filename.decode("utf-8", "replace") if filename else None
        elif name in ("mimetype", "filename"):
            self._target, self._name, self._field_value = "field", name, []
        else:
            self._target = None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "file":
            self._out.append(bytes(data[start:end]))
        elif self._target == "field":
            self._field_value.append(bytes(data[start:end]))
            if sum(map(len, self._field_value)) > MAX_FIELD_CHARS:
                self._problem = f"the field {self._name!r} is longer than {MAX_FIELD_CHARS} bytes"
                self._target = None

    def _part_end(self) -> None:
        if self._target == "field":
            self._fields[self._name] = b"".join(self._field_value).decode("utf-8", "replace").strip()
        self._target = None

    def _end(self) -> None:
        self._ended = True


# -- download ------------------------------------------------------------------------------------------------


async def download_media(request: Request) -> Response:
    """``GET``/``HEAD /v1/media/{media_id}``: the stored file (see the module documentation)."""
    gw: Gateway = request.app.state.gateway
    try:
        caller = await _caller(request, Scope.READ)
        record = await gw.media.readable(caller.tenant, request.path_params["media_id"])
        if not await may_see_media(gw, caller, record):
            raise MediaNotFound(f"no media {record.id}")
    except ZapgateError as exc:
        return _error(exc)
    assert record.sha256 is not None and record.size is not None
    size = record.size
    etag = f'"{record.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": content_disposition(record.filename or record.id),
        # The gateway's origin must never run a received file: no type guessing, no scripts, no plugins.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    try:
        wanted = parse_range(request.headers.get("range"), size) if if_range in (None, etag) else None
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, start, end = (200, 0, size) if wanted is None else (206, wanted.start, wanted.end)
    headers["Content-Length"] = str(end - start)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range(size)
    media_type = record.mimetype or "application/octet-stream"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    body = gw.media.read(record, start, end)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)


def content_disposition(filename: str) -> str:
    """``attachment`` with the name both as plain ASCII and, for any other character, RFC 5987-encoded."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        header += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return header
