"""The dashboard's Webhooks view in a real browser (headless Chromium driven by Playwright) against a real gateway
POSTing to a real receiver on 127.0.0.1 (``tests/webhook_receiver.py``, which checks signatures with the
``standardwebhooks`` library).

Create an endpoint (its secret shown once and copied), ping it, see a delivered event in its attempts, see an
event the receiver refused become a dead letter and redeliver it, replay from a seq, disable, enable and delete.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from .browser import chromium, open_page, sign_in
from .support import RunningGateway, eventually, serve_gateway
from .test_webhooks import hook_settings
from .webhook_receiver import receiver

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CONTACT = "+55 31 97777-0003"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(hook_settings(tmp_path / "data")) as running:
        yield running


async def test_an_endpoint_is_created_pinged_delivers_redelivers_replays_and_is_deleted(
    browser: Browser, gateway: RunningGateway
) -> None:
    refuse = {"yes": False}

    def answer(frame: dict[str, object]) -> int:
        return 404 if refuse["yes"] and frame.get("event") == "message.received" else 200

    clipboard = {"permissions": ["clipboard-read", "clipboard-write"]}
    async with (
        receiver(answer) as rx,
        gateway.connect("acme") as client,
        open_page(browser, **clipboard) as page,
    ):
        await client.pair("main", "+55 11 99999-0401")
        await sign_in(page, gateway.http, await gateway.token("acme"))
        await page.get_by_role("link", name="Webhooks").click()
        view = page.locator("#view-webhooks")
        await expect(view.get_by_text("No endpoints yet")).to_be_visible()

        # Created, with a filter: the secret shown once, copied with the button.
        await view.get_by_label("URL").fill(rx.url)
        await view.get_by_label("Events").fill("message.received, webhook.disabled")
        await view.get_by_label("Description").fill("CRM")
        await view.get_by_role("button", name="Create endpoint").click()
        shown = view.get_by_role("textbox", name="Signing secret")
        await expect(shown).to_have_value(re.compile(r"^whsec_\S+$"))
        secret = await shown.input_value()
        await view.get_by_role("button", name="Copy secret").click()
        await expect(view.get_by_text("Copied to the clipboard.")).to_be_visible()
        assert await page.evaluate("() => navigator.clipboard.readText()") == secret
        await view.get_by_role("button", name="Done").click()
        await expect(shown).to_be_hidden()
        row = view.locator("tr[data-webhook]")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text(rx.url)
        await expect(row.locator("td[data-label=Events]")).to_have_text("message.received, webhook.disabled")
        await expect(row.locator("td[data-label=Sessions]")).to_have_text("all")
        await expect(row.locator(".badge")).to_have_text("enabled")
        assert secret not in await view.locator("table").first.inner_text()
        hook = await row.get_attribute("data-webhook")
        assert hook is not None

        # A ping, answered by the receiver, signed with that secret.
        await row.get_by_role("button", name=f"Test {rx.url}").click()
        await expect(view.get_by_role("status").filter(has_text="Ping to")).to_contain_text(
            re.compile(r"HTTP 200 in \d+ ms")
        )
        assert rx.requests[-1].verify(secret)["event"] == "webhook.ping"

        # An event delivered: in the receiver, and in the endpoint's attempts.
        await client.call("sim.receive", session="main", text="oi", **{"from": CONTACT})
        await eventually(lambda: any(r.frame.get("event") == "message.received" for r in rx.accepted), "delivered")
        await row.get_by_role("button", name=f"Deliveries {rx.url}").click()
        detail = view.get_by_role("region", name=f"Deliveries to {rx.url}")
        await expect(detail).to_be_visible()
        attempts = detail.locator("table.attempts tbody tr")
        await expect(attempts.filter(has_text="message.received")).to_contain_text("delivered")
        await expect(attempts.filter(has_text="webhook.ping")).to_contain_text("ping")
        await expect(detail.get_by_text("No dead letters.")).to_be_visible()
        first_seq = next(r.frame["seq"] for r in rx.accepted if r.frame.get("event") == "message.received")

        # The receiver answers 404 (never): a dead letter at once; redelivered once it accepts again.
        refuse["yes"] = True
        await client.call("sim.receive", session="main", text="refused", **{"from": CONTACT})
        dead = detail.locator("table.dead tbody tr")
        await expect(dead).to_have_count(1)  # the list and the details are read again every 5 s
        await expect(dead).to_contain_text("message.received")
        await expect(dead.locator("td[data-label=Status]")).to_have_text("404")
        dead_seq = int(await dead.get_attribute("data-seq") or 0)
        refuse["yes"] = False
        await dead.get_by_role("button", name=f"Redeliver {dead_seq}").click()
        await expect(view.get_by_text("1 dead letter queued to send again.")).to_be_visible()
        await eventually(lambda: dead_seq in rx.accepted_seqs(), "the dead letter redelivered")
        await expect(detail.get_by_text("No dead letters.")).to_be_visible()

        # Replay from the first event: both message events again, in order.
        before = len(rx.accepted)
        await detail.get_by_label("From seq").fill(str(first_seq))
        await detail.get_by_role("button", name="Replay").click()
        await expect(view.get_by_role("status").filter(has_text="Replaying from seq")).to_be_visible()
        await eventually(lambda: len(rx.accepted) >= before + 2, "the replay delivered")
        replayed = [r.frame["seq"] for r in rx.accepted[before:] if r.frame.get("event") == "message.received"]
        assert replayed[:2] == [first_seq, dead_seq], replayed

        # Disabled and enabled from the page; deleted after confirming.
        await row.get_by_role("button", name=f"Disable {rx.url}").click()
        await expect(row.locator(".badge")).to_have_text("disabled")
        await expect(row).to_contain_text("disabled from here")
        await row.get_by_role("button", name=f"Enable {rx.url}").click()
        await expect(row.locator(".badge")).to_have_text("enabled")
        await row.get_by_role("button", name=f"Delete {rx.url}").click()
        dialog = page.get_by_role("dialog", name=re.compile("Delete the endpoint"))
        await dialog.get_by_role("button", name="Delete").click()
        await expect(view.locator("tr[data-webhook]")).to_have_count(0)
        await expect(detail).to_be_hidden()
        assert (await client.call("webhook.list"))["webhooks"] == []
