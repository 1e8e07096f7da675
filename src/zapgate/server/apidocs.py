"""The API's self-description: ``/v1/openapi.json``, ``/v1/asyncapi.json`` and the reference page ``/v1/docs``.

None of them needs a token: they describe the API, they do not use it. The documents are generated once per
application (they depend only on the registries and the settings). The page is three static files shipped in
the package (no CDN, nothing fetched from elsewhere) under a strict Content-Security-Policy: it loads the
OpenAPI document, lists every operation with its parameters and schemas, and can try one with a token the
user types, kept in the page's memory only (never stored, never put in a URL).
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from ..protocol import encode
from .asyncapi import asyncapi_document
from .openapi import openapi_document

__all__ = ["CSP", "asyncapi_json", "docs_asset", "docs_page", "openapi_json"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}


def _cached(request: Request, name: str) -> bytes:
    cache: dict[str, bytes] = request.app.state.api_documents
    if name not in cache:
        settings = request.app.state.gateway.settings
        document = (
            openapi_document(settings) if name == "openapi" else asyncapi_document(f"{settings.host}:{settings.port}")
        )
        cache[name] = encode(document)
    return cache[name]


async def openapi_json(request: Request) -> Response:
    return Response(_cached(request, "openapi"), media_type="application/json")


async def asyncapi_json(request: Request) -> Response:
    return Response(_cached(request, "asyncapi"), media_type="application/json")


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


async def docs_page(request: Request) -> Response:
    return Response(_static("docs.html"), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


async def docs_asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if name not in _ASSETS:
        return Response(b'{"code":"not_found","message":"no such file"}', 404, media_type="application/json")
    return Response(_static(name), media_type=_ASSETS[name], headers=_PAGE_HEADERS)
