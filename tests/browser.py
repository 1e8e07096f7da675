"""Test support for the dashboard: Debian's Chromium driven by Playwright, and a TCP relay that drops connections.

The browser is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it), never a browser
downloaded by Playwright. Without it the browser tests skip, except under ``CI=true`` where they fail.
Every page records console errors and uncaught exceptions; :func:`page_errors` is checked after each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

from .support import TIMEOUT_SCALE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 15_000 * TIMEOUT_SCALE
"""How long an expectation waits for the page (Playwright retries until then): generous for a loaded machine."""


def require_chromium(path: Path = CHROMIUM) -> None:
    """Skip the calling test when there is no Chromium, or fail it under ``CI=true``."""
    if path.exists():
        return
    reason = f"{path} is missing: install Debian's chromium package (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium. Playwright starts it with a fresh user-data-dir of its own (a new temporary directory,
    removed on close), and every :func:`open_page` opens a new context: nothing carries over between tests."""
    require_chromium()
    expect.set_options(timeout=UI_TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, timeout=UI_TIMEOUT_MS * 2
        )
        try:
            yield browser
        finally:
            await browser.close()


class RecordedPage:
    """A page in its own browser context that records what would be a console error for a user."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.set_default_timeout(UI_TIMEOUT_MS)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in {"error", "assert"}:
            self.errors.append(f"console {message.type}: {message.text} ({message.location})")


@contextlib.asynccontextmanager
async def open_page(browser: Browser, **context_options: Any) -> AsyncIterator[Page]:
    """A new context and page; fails the test if the page logged a console error or threw."""
    context = await browser.new_context(**context_options)
    recorded = RecordedPage(await context.new_page())
    try:
        yield recorded.page
    finally:
        with contextlib.suppress(Error):
            await context.close()
    assert not recorded.errors, "the page logged errors:\n" + "\n".join(recorded.errors)


async def sign_in(page: Page, base_url: str, token: str) -> None:
    await page.goto(base_url + "/")
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()


class DroppingRelay:
    """A TCP relay on 127.0.0.1 in front of the gateway that can drop every connection at once (as a network
    does: no close handshake) and hold new ones unanswered until released (as a network still down does)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._pipes: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, list[asyncio.Task[None]]]] = []
        self._waiting: set[asyncio.Task[None]] = set()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> DroppingRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open.set()
        self.drop()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await self._open.wait()
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        tasks = [
            asyncio.create_task(self._copy(client_r, server_w)),
            asyncio.create_task(self._copy(server_r, client_w)),
        ]
        self._pipes.append((client_w, server_w, tasks))

    @staticmethod
    async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

    def drop(self) -> None:
        """Reset every relayed connection, with no close handshake."""
        for client_w, server_w, tasks in self._pipes:
            client_w.transport.abort()
            server_w.transport.abort()
            for task in tasks:
                task.cancel()
        self._pipes.clear()

    def hold(self) -> None:
        """Accept new connections but pass nothing until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()
