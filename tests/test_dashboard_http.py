"""The dashboard's files as the gateway serves them: what is served, its security headers, caching, and what the
files may contain (no build step, nothing from elsewhere, no inline code, no HTML from strings)."""

from __future__ import annotations

import asyncio
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from zapgate.server.dashboard import content_security_policy

from .browser import require_chromium
from .conftest import fast_settings
from .support import TIMEOUT, RunningGateway, serve_gateway

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "src" / "zapgate" / "dashboard"
PAGE_WEIGHT_LIMIT = 120 * 1024
"""Bytes of HTML, JS and CSS the dashboard may weigh (uncompressed): a budget, so that it stays small. 80 KiB until
the admin views (tenants, tokens, audit log) and the webhooks view came (about 108 KiB with them)."""


async def raw_get(port: int, path: str, host: str) -> bytes:
    """One HTTP/1.1 request with exactly this path and Host header (no client-side normalisation)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(TIMEOUT):
            return await reader.read()
    finally:
        writer.close()


async def test_the_page_and_its_files_come_with_a_strict_policy(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["img-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["base-uri"] == "'none'"
        host = f"127.0.0.1:{gateway.port}"
        assert directives["connect-src"] == f"'self' ws://{host} wss://{host}"
        assert "unsafe" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-cache"

        script = await http.get("/ui/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["content-security-policy"] == csp
        assert script.content == (FILES / "app.js").read_bytes()
        style = await http.get("/ui/style.css")
        assert style.headers["content-type"] == "text/css; charset=utf-8"
        icon = await http.get("/ui/icon.svg")
        assert icon.headers["content-type"] == "image/svg+xml"


async def test_a_browser_revalidates_with_the_etag(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        for path in ("/", "/ui/qr.js"):
            first = await http.get(path)
            etag = first.headers["etag"]
            again = await http.get(path, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == etag
            changed = await http.get(path, headers={"If-None-Match": '"something-else"'})
            assert changed.status_code == 200 and changed.content == first.content
        head = await http.head("/")
        assert head.status_code == 200 and head.content == b""


async def test_only_the_dashboards_files_are_served(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        for path in ("/ui/nope.js", "/ui/index.html", "/ui/", "/index.html", "/ui/style.css/x"):
            missing = await http.get(path)
            assert missing.status_code == 404, path
        assert (await http.get("/ui/nope.js")).headers["x-content-type-options"] == "nosniff"
        assert (await http.post("/")).status_code == 405
    for path in ("/ui/..%2F..%2Fconfig.py", "/ui/%2e%2e/%2e%2e/config.py", "/ui/../../pyproject.toml"):
        answer = await raw_get(gateway.port, path, f"127.0.0.1:{gateway.port}")
        assert answer.startswith(b"HTTP/1.1 404"), (path, answer[:80])


def test_a_strange_host_header_does_not_reach_the_policy() -> None:
    for host in ("evil.example; script-src *", "a b", "x'y", "[::1", "h:80:80", ""):
        assert content_security_policy(host).split("; ")[4] == "connect-src 'self'", host
    assert "connect-src 'self' ws://[::1]:8787 wss://[::1]:8787" in content_security_policy("[::1]:8787")


async def test_a_hostile_host_header_gets_no_injected_policy(tmp_path: Path) -> None:
    # By default such a Host is refused (421) before any route; a gateway that answers to any name still
    # keeps it out of its policy.
    async with serve_gateway(fast_settings(tmp_path / "data", allowed_hosts=("*",))) as gateway:
        answer = (await raw_get(gateway.port, "/", "evil.example;script-src *")).decode("latin-1")
    assert "\r\ncontent-security-policy: default-src 'none'; script-src 'self';" in answer.lower()
    assert "script-src *" not in answer


async def test_the_dashboard_can_be_turned_off(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", dashboard=False)
    async with serve_gateway(settings) as gateway, httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/ui/app.js")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


# -- what the files may contain -----------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(p for p in FILES.iterdir() if p.is_file())


def test_the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() -> None:
    html = (FILES / "index.html").read_text()
    references = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert references, "the pattern no longer finds references"
    for reference in references:
        assert reference.startswith(("/ui/", "#")), f"index.html refers to {reference}: only /ui/ files"
        if reference.startswith("/ui/"):
            assert (FILES / reference.removeprefix("/ui/")).is_file(), reference
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "no inline <script>"
    assert "<style" not in html and " style=" not in html and re.search(r"\son[a-z]+=", html) is None
    for script in FILES.glob("*.js"):
        source = script.read_text()
        for specifier in re.findall(r'^import .* from "([^"]+)";$', source, re.M):
            assert specifier.startswith("./") and (FILES / specifier[2:]).is_file(), f"{script.name}: {specifier}"
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source and "eval(" not in source
        assert ".style" not in source, f"{script.name}: styles belong in style.css (the policy refuses inline ones)"
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", source), f"{script.name} refers to a URL"


def test_the_dashboard_stays_small() -> None:
    weight = sum(p.stat().st_size for p in dashboard_files() if p.suffix in {".html", ".js", ".css"})
    assert weight <= PAGE_WEIGHT_LIMIT, f"the dashboard weighs {weight} bytes; the budget is {PAGE_WEIGHT_LIMIT}"


def test_every_dashboard_file_is_package_data() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["zapgate"]
    for path in dashboard_files():
        relative = path.relative_to(ROOT / "src" / "zapgate").as_posix()
        assert any(fnmatch(relative, pattern) for pattern in globs), f"{relative} would not be installed"


@pytest.mark.parametrize("name", ["index.html", "app.js", "gateway.js", "qr.js", "style.css", "icon.svg"])
def test_the_files_are_there(name: str) -> None:
    assert (FILES / name).is_file()


def test_without_chromium_the_browser_tests_skip_except_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "chromium"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install Debian's chromium package"):
        require_chromium(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install Debian's chromium package"):
        require_chromium(missing)
