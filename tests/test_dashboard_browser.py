"""The dashboard in a real browser (headless Chromium driven by Playwright) against a real gateway.

What a person does with it: sign in, create a session, see its QR code (checked module by module against an
independent encoder), scan it with a simulated phone, send to the echo contact and watch ``read``; watch the
event stream survive a dropped connection without a gap; be signed out when the token is revoked; do it all with
the keyboard only, and on a phone-sized screen. Every test fails on any console error or uncaught exception in
the page (:func:`tests.browser.open_page`).
"""

from __future__ import annotations

import asyncio
import random
import re
import string
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, expect
from segno import consts, encoder

from .browser import DroppingRelay, chromium, open_page, sign_in
from .conftest import fast_settings
from .support import TIMEOUT, TIMEOUT_SCALE, RawClient, RunningGateway, serve_gateway
from .test_cli import Running, cli_env

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ECHO = "+1 555 000 0000"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(fast_settings(tmp_path / "data")) as running:
        yield running


# -- helpers ------------------------------------------------------------------------------------------------


async def drawn_qr(picture: Locator) -> tuple[int, int, set[tuple[int, int]]]:
    """(version, mask, dark modules) of the QR code drawn in an <svg>, read back from its path."""
    version = int(await picture.get_attribute("data-version") or 0)
    mask = int(await picture.get_attribute("data-mask") or 0)
    path = await picture.locator("path").get_attribute("d") or ""
    dark = {(int(x) - 4, int(y) - 4) for x, y in re.findall(r"M(\d+) (\d+)", path)}  # 4 modules of quiet zone
    return version, mask, dark


def reference_modules(text: str, version: int, mask: int) -> set[tuple[int, int]]:
    """The dark modules of ``text`` in byte mode at level L, with that version and mask, built by segno's encoder
    (an independent implementation of the standard: bit stream, Reed-Solomon, interleaving, placement, masks,
    format and version information).

    One step differs from ``segno.make_qr``: segno 1.6 appends a whole zero byte after the terminator when the
    terminator already ends on a byte boundary (always, in byte mode), where the standard (and ZXing) add padding
    bits only up to the boundary; both decode the same, but the modules differ. This follows the standard."""
    buff = encoder.Buffer()
    for segment in encoder.prepare_data(text, consts.MODE_BYTE, None):
        encoder.write_segment(buff, segment, None, encoder.version_range(version), False)
    capacity = consts.SYMBOL_CAPACITY[version][consts.ERROR_LEVEL_L]
    encoder.write_terminator(buff, capacity, None, len(buff))
    if len(buff) % 8:
        encoder.write_padding_bits(buff, version, len(buff))
    encoder.write_pad_codewords(buff, version, capacity, len(buff))
    codewords = encoder.make_final_message(version, consts.ERROR_LEVEL_L, buff)
    width = encoder.calc_matrix_size(version)
    matrix = encoder.make_matrix(width, width)
    encoder.add_finder_patterns(matrix, width, width)
    encoder.add_alignment_patterns(matrix, width, width)
    encoder.add_codewords(matrix, codewords, version)
    _, matrix = encoder.find_and_apply_best_mask(matrix, width, width, mask)
    encoder.add_format_info(matrix, version, consts.ERROR_LEVEL_L, mask)
    encoder.add_version_info(matrix, version)
    return {(x, y) for y, row in enumerate(matrix) for x, bit in enumerate(row) if bit & 1}


BYTE_CAPACITY_L = [
    (consts.SYMBOL_CAPACITY[v][consts.ERROR_LEVEL_L] - 4 - (8 if v < 10 else 16)) // 8 for v in range(1, 41)
]
"""The longest text in bytes that each version holds in byte mode at level L (mode and length take 12 or 20 bits)."""


def smallest_version(text: str) -> int:
    return next(v for v, capacity in enumerate(BYTE_CAPACITY_L, start=1) if capacity >= len(text.encode()))


async def assert_shows_qr(page: Page, code: str, attempt: int, of: int, session: str) -> None:
    picture = page.get_by_role("img", name=f"QR code {attempt} of {of} to pair {session}")
    await expect(picture).to_be_visible()
    version, mask, dark = await drawn_qr(picture)
    assert dark == reference_modules(code, version, mask), "the QR code drawn is not the code of the event"
    assert version == smallest_version(code)
    await expect(page.get_by_text(re.compile(rf"Code {attempt} of {of}, expires in \d+ s"))).to_be_visible()


def session_row(page: Page, session: str) -> Locator:
    return page.locator(f'tr[data-session="{session}"]')


async def tab_to(page: Page, target: Locator, *, limit: int = 60) -> None:
    """Press Tab until ``target`` has the focus (it must be reachable by keyboard)."""
    for _ in range(limit):
        if await target.evaluate("el => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{target} cannot be reached with the Tab key")


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide on a {width[1]} px screen"


# -- the new user's journey ---------------------------------------------------------------------------------


async def test_a_new_user_runs_serve_signs_in_with_the_printed_token_pairs_and_sends(
    browser: Browser, tmp_path: Path
) -> None:
    """The README's path: ``zapgate serve`` on an empty data dir prints a token and the dashboard's address; that
    is all it takes to pair a phone (here the simulator's) and send a message that gets read."""
    env = cli_env(
        ZAPGATE_DATA_DIR=str(tmp_path / "data"),
        ZAPGATE_PORT="0",
        ZAPGATE_FIRST_RUN_TOKEN="always",
        ZAPGATE_SIM_LATENCY_S="0.05",
    )
    server = await Running.start("serve", "--engine", "simulator", env=env)
    try:
        assert server.proc.stderr is not None
        token = url = None
        async with asyncio.timeout(TIMEOUT):
            while url is None:
                line = (await server.proc.stderr.readline()).decode()
                assert line, "serve ended before printing the dashboard's address"
                if found := re.fullmatch(r"\s+(zgt_\S+)\s*", line):
                    token = found[1]
                if found := re.match(r"Dashboard:\s+(http://127\.0\.0\.1:\d+/)", line):
                    url = found[1]
        assert token is not None

        watcher = await RawClient.open(url.replace("http://", "ws://") + "v1/ws")
        await watcher.authenticate(token)
        async with open_page(browser) as page:
            await sign_in(page, url.rstrip("/"), token)
            await expect(page.get_by_text("No sessions yet")).to_be_visible()
            await page.get_by_label("Session name").fill("main")
            await page.get_by_role("button", name="Create and pair").click()

            qr = await watcher.event("session.qr", lambda e: e["session"] == "main")
            await assert_shows_qr(page, qr["data"]["qr"], 1, 6, "main")
            await page.get_by_label("Simulated phone number").fill("+55 11 99999-0000")
            await page.get_by_role("button", name="Simulate scan").click()
            await expect(page.get_by_text("Paired: main is connected as +5511999990000")).to_be_visible()
            await page.get_by_role("button", name="Close").click()
            row = session_row(page, "main")
            await expect(row.locator(".badge")).to_have_text("connected")
            await expect(row).to_contain_text("+5511999990000")

            await page.get_by_role("link", name="Send").click()
            await expect(page.get_by_label("From session")).to_have_value("main")
            await expect(page.get_by_role("textbox", name=re.compile("^To "))).to_have_value(ECHO)
            await page.get_by_label("Message", exact=True).fill("olá from the dashboard")
            await page.get_by_role("button", name="Send", exact=True).click()
            sent = page.locator("ol.sent > li").first
            await expect(sent).to_have_attribute("data-status", "read")
            await expect(sent.get_by_role("list", name="Status")).to_contain_text(re.compile("sent .*delivered .*read"))
            await expect(sent).to_contain_text("+15550000000 answered: olá from the dashboard")

            # A text whose frame the gateway would refuse (closing the connection) is refused in the page.
            await page.get_by_label("Message", exact=True).fill("ç" * 40_000)  # 80,000 bytes of UTF-8
            await page.get_by_role("button", name="Send", exact=True).click()
            await expect(page.get_by_role("status").filter(has_text="Not sent")).to_contain_text(
                "too large for one frame"
            )
            await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await watcher.close()
    finally:
        server.proc.terminate()
        async with asyncio.timeout(TIMEOUT):
            await server.proc.wait()


# -- live events --------------------------------------------------------------------------------------------


async def test_the_event_stream_resumes_after_the_connection_drops_without_a_gap(
    browser: Browser, gateway: RunningGateway
) -> None:
    token = await gateway.token("acme")
    async with DroppingRelay(gateway.port) as relay, gateway.connect("acme") as client, open_page(browser) as page:
        await client.pair("main", "+55 11 99999-0001")  # events 1-4, before the page opens: its history

        async def receive(text: str) -> None:
            await client.call("sim.receive", session="main", text=text, **{"from": "+55 11 98888-0000"})

        await sign_in(page, relay.http, token)
        await page.get_by_role("link", name="Events").click()
        events = page.locator("ol.events > li")
        await expect(events).to_have_count(4)
        await receive("before the drop")
        await expect(events.first).to_contain_text("before the drop")

        relay.hold()  # the network stays down: reconnection attempts wait
        relay.drop()
        connection = page.locator("#connection")
        await expect(connection).to_have_attribute("data-state", "reconnecting")
        for i in range(5):
            await receive(f"while offline {i}")
        relay.release()
        await expect(connection).to_contain_text("reconnected, 5 missed events replayed")
        await receive("after the drop")
        await expect(events.first).to_contain_text("after the drop")

        seqs = await events.evaluate_all("items => items.map(item => Number(item.dataset.seq))")
        assert seqs == list(range(11, 0, -1)), seqs  # newest first: every event once, none missing
        texts = await events.locator(".what").all_inner_texts()
        offline = [f"from +5511988880000: while offline {i}" for i in range(4, -1, -1)]
        assert [t for t in texts if "offline" in t] == offline

        await page.get_by_label("Event", exact=True).select_option("session.status")
        await expect(events).to_have_count(3)  # starting, qr, connected
        await page.get_by_label("Event", exact=True).select_option("")
        await events.filter(has_text="while offline 2").locator("summary").click()
        details = events.filter(has_text="while offline 2").locator("pre")
        await expect(details).to_contain_text('"text": "while offline 2"')
        await expect(details).to_contain_text('"from_me": false')


async def test_a_gap_too_old_to_replay_is_said_and_the_session_list_read_again(
    browser: Browser, tmp_path: Path
) -> None:
    """Events missed while offline that the gateway no longer keeps: the page says so and reads the list again,
    so a session deleted meanwhile is gone from it."""
    settings = fast_settings(tmp_path / "data", event_retention_s=0.0, event_retention_count=1)
    async with serve_gateway(settings) as gateway, DroppingRelay(gateway.port) as relay:
        token = await gateway.token("acme")
        async with gateway.connect("acme") as client, open_page(browser) as page:
            await client.call("session.start", session="doomed")
            await sign_in(page, relay.http, token)
            await expect(session_row(page, "doomed")).to_have_count(1)

            relay.hold()
            relay.drop()
            await expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
            await client.call("session.delete", session="doomed")
            await client.call("session.start", session="newcomer")
            await client.call("session.stop", session="newcomer")
            assert await gateway.gateway.prune() > 0  # what the gateway does every 10 min, with these settings
            relay.release()
            await expect(page.locator("#connection")).to_contain_text("missed events were too old to replay")
            await expect(session_row(page, "doomed")).to_have_count(0)
            await expect(session_row(page, "newcomer").locator(".badge")).to_have_text("stopped")


# -- tokens -------------------------------------------------------------------------------------------------


async def test_revoking_the_token_signs_the_page_out(browser: Browser, gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme")
    async with open_page(browser) as page:
        await page.goto(gateway.http + "/")
        await page.get_by_label("Access token").fill("zgt_000000000000_wrong")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("That token is not valid, or it was revoked.")

        await sign_in(page, gateway.http, token)
        await page.reload()  # the tab keeps the token: still signed in
        await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()

        assert await gateway.gateway.tokens.revoke(record.id)
        assert await gateway.gateway.check_tokens() == 1  # what the gateway does every 30 s
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(page.get_by_role("alert")).to_contain_text("the token of this connection was revoked")
        assert await page.evaluate("() => sessionStorage.length") == 0
        await page.reload()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


# -- sessions -----------------------------------------------------------------------------------------------


async def test_session_actions_ask_before_destroying_and_the_list_stays_live(
    browser: Browser, gateway: RunningGateway
) -> None:
    token = await gateway.token("acme")
    async with gateway.connect("acme") as client, open_page(browser) as page:
        await client.pair("ops", "+55 11 96666-0000")
        await sign_in(page, gateway.http, token)
        row = session_row(page, "ops")
        status = row.locator(".badge")
        await expect(status).to_have_text("connected")
        await expect(row.locator("td[data-label=Since]")).to_contain_text(re.compile(r"\d+ s ago"))

        await page.get_by_role("button", name="Stop ops").click()
        await expect(status).to_have_text("stopped")
        await expect(row).to_contain_text("stopped from here")
        await client.call("message.send", session="ops", to=ECHO, text="waits in the queue")
        await expect(row.locator("td[data-label=Queued]")).to_have_text("1")
        await page.get_by_role("button", name="Start ops").click()
        await expect(status).to_have_text("connected")
        await expect(row.locator("td[data-label=Queued]")).to_have_text("0")

        await client.call("sim.restrict", session="ops", seconds=600)
        await expect(row.locator("td[data-label=Pacing]")).to_contain_text("paused until")

        await page.get_by_role("button", name="Log out ops").click()
        dialog = page.get_by_role("dialog", name=re.compile("Log out ops"))
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        await expect(status).to_have_text("connected")
        await page.get_by_role("button", name="Log out ops").click()
        await dialog.get_by_role("button", name="Log out").click()
        await expect(status).to_have_text("logged_out")
        await expect(page.get_by_role("button", name="Pair ops")).to_be_visible()

        await page.get_by_role("button", name="Delete ops").click()
        await page.get_by_role("dialog", name=re.compile("Delete ops")).get_by_role("button", name="Delete").click()
        await expect(row).to_have_count(0)
        await client.event("session.deleted", lambda e: e["session"] == "ops")
        assert (await client.call("session.list"))["sessions"] == []


async def test_pairing_redraws_each_code_and_ends_clearly(browser: Browser, tmp_path: Path) -> None:
    # Two codes, short enough to watch them rotate and run out, long enough to check each on a loaded machine.
    life = 3.0 * TIMEOUT_SCALE
    settings = fast_settings(tmp_path / "data", sim_qr_schedule=(life, life))
    async with serve_gateway(settings) as gateway, gateway.connect("acme") as watcher, open_page(browser) as page:
        await sign_in(page, gateway.http, await gateway.token("acme"))
        await page.get_by_label("Session name").fill("rot")
        await page.get_by_role("button", name="Create and pair").click()
        first = await watcher.event("session.qr", lambda e: e["data"]["attempt"] == 1)
        await assert_shows_qr(page, first["data"]["qr"], 1, 2, "rot")
        second = await watcher.event("session.qr", lambda e: e["data"]["attempt"] == 2)
        await assert_shows_qr(page, second["data"]["qr"], 2, 2, "rot")
        assert first["data"]["qr"] != second["data"]["qr"]

        await expect(page.get_by_text("Pairing ended: no phone scanned the QR codes in time")).to_be_visible()
        await expect(page.get_by_role("img", name=re.compile("QR code"))).to_have_count(0)
        retry = page.get_by_role("button", name="Try again")
        await expect(retry).to_be_focused()
        await page.get_by_role("button", name="Close").click()
        row = session_row(page, "rot")
        await expect(row.locator(".badge")).to_have_text("failed")
        await expect(row).to_contain_text("no phone scanned the QR codes in time")

        await page.get_by_role("button", name="Pair rot").click()  # a new pairing, from the first code
        again = await watcher.event("session.qr", lambda e: e["data"]["attempt"] == 1)
        await assert_shows_qr(page, again["data"]["qr"], 1, 2, "rot")


async def test_pairing_by_phone_number_shows_the_code_to_type(browser: Browser, gateway: RunningGateway) -> None:
    async with gateway.connect("acme") as watcher, open_page(browser) as page:
        await sign_in(page, gateway.http, await gateway.token("acme"))
        await page.get_by_label("Session name").fill("bynumber")
        await page.get_by_role("button", name="Create and pair").click()
        await expect(page.get_by_role("img", name="QR code 1 of 3 to pair bynumber")).to_be_visible()
        await page.get_by_text("Link with a phone number instead").click()
        await page.get_by_label("Phone number (international format)").fill("+55 11 97777-0000")
        await page.get_by_role("button", name="Get pairing code").click()
        code = await watcher.event("session.pair_code", lambda e: e["session"] == "bynumber")
        shown = page.locator(".pair-code")
        await expect(shown).to_have_text(code["data"]["code"])
        assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code["data"]["code"])
        await expect(page.get_by_text(re.compile(r"Pairing code, expires in \d+ s"))).to_be_visible()
        await expect(page.get_by_label("Simulated phone number")).to_have_value("+55 11 97777-0000")
        await page.get_by_role("button", name="Simulate scan").click()
        await expect(page.get_by_text("Paired: bynumber is connected as +5511977770000")).to_be_visible()


# -- keyboard, phone screens, the QR encoder ----------------------------------------------------------------


async def test_the_main_flow_works_with_the_keyboard_only(browser: Browser, gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    async with open_page(browser) as page:
        await page.goto(gateway.http + "/")
        await expect(page.get_by_label("Access token")).to_be_focused()
        await page.keyboard.type(token)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()

        await tab_to(page, page.get_by_label("Session name"))
        await page.keyboard.type("kb")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("img", name="QR code 1 of 3 to pair kb")).to_be_visible()
        await tab_to(page, page.get_by_role("button", name="Simulate scan"))
        await page.keyboard.press("Enter")
        await expect(page.get_by_text("Paired: kb is connected")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("dialog")).to_have_count(0)
        await expect(session_row(page, "kb").locator(".badge")).to_have_text("connected")

        await tab_to(page, page.get_by_role("link", name="Send"))
        await page.keyboard.press("Enter")
        await tab_to(page, page.get_by_label("Message", exact=True))
        await page.keyboard.type("typed, not clicked")
        await tab_to(page, page.get_by_role("button", name="Send", exact=True))
        await page.keyboard.press("Enter")
        await expect(page.locator("ol.sent > li").first).to_have_attribute("data-status", "read")

        await tab_to(page, page.get_by_role("link", name="Sessions"))
        await page.keyboard.press("Enter")
        await tab_to(page, page.get_by_role("button", name="Delete kb"))
        await page.keyboard.press("Enter")
        confirm = page.get_by_role("dialog", name=re.compile("Delete kb"))
        await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice first
        await page.keyboard.press("Tab")
        await expect(confirm.get_by_role("button", name="Delete")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(session_row(page, "kb")).to_have_count(0)


async def test_the_dashboard_fits_a_phone_screen(browser: Browser, gateway: RunningGateway) -> None:
    phone = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    token = await gateway.token("acme")
    async with gateway.connect("acme") as client, open_page(browser, **phone) as page:
        await client.pair("a-rather-long-session-name-for-a-small-screen", "+55 11 95555-0000")
        await sign_in(page, gateway.http, token)
        await no_horizontal_scroll(page)
        stop = page.get_by_role("button", name="Stop a-rather-long-session-name-for-a-small-screen")
        await expect(stop).to_be_in_viewport()

        await page.get_by_label("Session name").fill("mobile")
        await page.get_by_role("button", name="Create and pair").tap()
        picture = page.get_by_role("img", name="QR code 1 of 3 to pair mobile")
        await expect(picture).to_be_in_viewport()
        box = await picture.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["width"] >= 200
        await no_horizontal_scroll(page)
        await page.get_by_role("button", name="Simulate scan").tap()
        await expect(page.get_by_text("Paired: mobile is connected")).to_be_visible()
        await page.get_by_role("button", name="Close").tap()

        for view in ("Events", "Send"):
            await page.get_by_role("link", name=view).tap()
            await expect(page.get_by_role("heading", level=1)).to_be_in_viewport()
            await no_horizontal_scroll(page)

        await page.get_by_role("button", name="Sign out").tap()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_in_viewport()
        assert await page.evaluate("() => sessionStorage.length") == 0


async def test_the_qr_encoder_matches_an_independent_one_in_every_version(
    browser: Browser, gateway: RunningGateway
) -> None:
    """``qr.js`` against segno's encoder, module for module, in every version (1-40)."""
    rng = random.Random(15)
    assert BYTE_CAPACITY_L[0] == 17 and BYTE_CAPACITY_L[-1] == 2953  # the standard's figures for versions 1 and 40
    # The fullest text of every version, and one byte more where the length field grows (version 9 to 10).
    lengths = [*BYTE_CAPACITY_L, BYTE_CAPACITY_L[0] + 1, BYTE_CAPACITY_L[8] + 1]
    texts = ["".join(rng.choice(string.ascii_letters + string.digits + "@,+/=") for _ in range(n)) for n in lengths]
    async with open_page(browser) as page:
        await page.goto(gateway.http + "/")
        encoded = await page.evaluate(
            """async (texts) => {
                const { encode } = await import("/ui/qr.js");
                return texts.map((text) => {
                    const code = encode(text);
                    const rows = [];
                    for (let y = 0; y < code.size; y++) {
                        let row = "";
                        for (let x = 0; x < code.size; x++) row += code.dark(x, y) ? "1" : "0";
                        rows.push(row);
                    }
                    return { version: code.version, mask: code.mask, rows };
                });
            }""",
            texts,
        )
    for text, code in zip(texts, encoded, strict=True):
        assert code["version"] == smallest_version(text), len(text)
        dark = {(x, y) for y, row in enumerate(code["rows"]) for x, bit in enumerate(row) if bit == "1"}
        assert dark == reference_modules(text, code["version"], code["mask"]), f"{len(text)} bytes"
