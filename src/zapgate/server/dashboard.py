"""The web dashboard: ``GET /`` and its static files under ``/ui/``, with a strict Content-Security-Policy.

The files live in ``src/zapgate/dashboard/`` (plain HTML, CSS and ES modules: no build step, nothing from a
CDN) and are read once when the app is built; only those files exist under ``/ui/``, so no request path ever
reaches the file system. The page talks to the gateway over the WebSocket API like any other client.

Caching: every response carries a strong ``ETag`` and ``Cache-Control: no-cache``, so a browser revalidates
(a 304 costs one small round trip) and never runs a stale script after an upgrade.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["Dashboard", "content_security_policy"]

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
INDEX = "index.html"

# A Host header that can go into the policy as it is (a name or an address, and a port); anything else is left out.
_SAFE_HOST = re.compile(r"\A(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z")


def content_security_policy(host: str | None) -> str:
    """Scripts, styles and images from the gateway only (no inline code); connections to it over HTTP and
    WebSocket; no frames, plugins, forms elsewhere or ``<base>``. ``'self'`` covers ``ws:`` in current
    browsers; the explicit ``ws://``/``wss://`` sources are for older ones."""
    connect = "'self'"
    if host and _SAFE_HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",  # the QR code is SVG built in the page: no data: or blob: images
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


class Dashboard:
    """The dashboard's files, loaded once, and the two routes that serve them."""

    def __init__(self) -> None:
        self.files: dict[str, StaticFile] = {}
        root = resources.files("zapgate").joinpath("dashboard")
        for entry in root.iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if entry.is_file() and suffix in MEDIA_TYPES:
                body = entry.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                self.files[entry.name] = StaticFile(body, MEDIA_TYPES[suffix], etag)
        if INDEX not in self.files:
            raise RuntimeError(f"the dashboard's {INDEX} is missing from the installed package")

    def routes(self) -> list[Route]:
        return [Route("/", self.index, methods=["GET"]), Route("/ui/{name}", self.asset, methods=["GET"])]

    async def index(self, request: Request) -> Response:
        return self._serve(request, self.files[INDEX])

    async def asset(self, request: Request) -> Response:
        found = self.files.get(request.path_params["name"])
        if found is None or request.path_params["name"] == INDEX:
            return Response("not found\n", status_code=404, media_type="text/plain", headers=self._headers(request))
        return self._serve(request, found)

    def _serve(self, request: Request, file: StaticFile) -> Response:
        headers = {**self._headers(request), "ETag": file.etag, "Cache-Control": "no-cache"}
        if file.etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(file.body, media_type=file.media_type, headers=headers)

    @staticmethod
    def _headers(request: Request) -> dict[str, str]:
        return {
            "Content-Security-Policy": content_security_policy(request.headers.get("host")),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        }


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
