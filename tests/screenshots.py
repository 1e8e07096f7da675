"""Screenshots of the dashboard's main screens for docs/dashboard.md: ``python3 tasks.py screenshots``.

A real gateway on the simulator, a few sessions in the states a person meets, and Debian's Chromium taking the
pictures (``tests/browser.py``). Writes ``docs/img/dashboard-*.png``.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from playwright.async_api import Page, expect

from zapgate.config import Settings

from .browser import chromium, open_page, sign_in
from .support import RawClient, serve_gateway
from .webhook_receiver import receiver

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
DESKTOP = {"viewport": {"width": 960, "height": 560}}
PHONE = {"viewport": {"width": 360, "height": 640}, "is_mobile": True, "has_touch": True}


async def shoot(page: Page, name: str) -> None:
    """Save a screenshot with a 64-colour palette: a third of the size, and the page's flat colours survive."""
    path = OUT / f"dashboard-{name}.png"
    await page.screenshot(path=str(path))
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=64, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    print(f"wrote {path.relative_to(OUT.parent.parent)} ({path.stat().st_size} bytes)")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zapgate-shots-") as scratch:
        # A token with tenant and admin (as the first-run token): the tenant's views and the admin's.
        settings = Settings(
            data_dir=Path(scratch) / "data",
            port=0,
            engine="simulator",
            sim_latency_s=0.05,
            outbound_allow=("127.0.0.1/32",),  # the webhook receivers below
        )
        async with (
            serve_gateway(settings) as gateway,
            gateway.connect("acme") as setup,
            chromium() as browser,
            receiver() as crm,
            receiver(lambda frame: 503) as broken,
        ):
            _, token = await gateway.gateway.tokens.create("acme", "first run", scopes=["tenant", "admin"])
            tokens = gateway.gateway.tokens
            await tokens.create("acme", "CRM", scopes=["send"], sessions=["sales-1"])
            await tokens.create("acme", "reports", scopes=["read"], expires_at=time.time() + 30 * 86400)
            admin = await RawClient.open(gateway.url)
            await admin.authenticate(token)
            await admin.call("tenant.create", tenant="bakery", max_sessions=3)
            await tokens.create("bakery", "bot")
            await admin.call("tenant.create", tenant="old-shop")
            await admin.call("tenant.disable", tenant="old-shop")
            revoked, _ = await tokens.create("acme", "laptop")
            await admin.call("token.revoke", token_id=revoked.id)
            await admin.close()
            await setup.pair("sales-1", "+55 11 99999-0001")
            await setup.pair("support", "+55 21 98888-0002")
            await setup.call("sim.restrict", session="support", seconds=3600)
            await setup.call("session.start", session="shop-new")
            await setup.call("session.stop", session="shop-new")
            await setup.call(
                "webhook.create", url=crm.url, events=["message.received", "message.status"], description="CRM"
            )
            await setup.call("webhook.create", url=broken.url, sessions=["support"], description="help desk (down)")
            await setup.call(
                "sim.receive", session="support", text="Meu pedido não chegou", **{"from": "+55 41 96666-0004"}
            )
            for text in ("Oi! Vocês abrem amanhã?", "Quero fazer um pedido"):
                await setup.call("sim.receive", session="sales-1", text=text, **{"from": "+55 31 97777-0003"})

            async with open_page(browser, **DESKTOP) as page:
                await page.goto(gateway.http + "/")
                await shoot(page, "sign-in")
                await sign_in(page, gateway.http, token)
                await expect(page.locator('tr[data-session="support"]')).to_contain_text("paused until")
                await shoot(page, "sessions")

                await page.get_by_label("Session name").fill("sales-2")
                await page.get_by_role("button", name="Create and pair").click()
                await expect(page.get_by_role("img", name="QR code 1 of 6 to pair sales-2")).to_be_visible()
                await shoot(page, "pairing")
                await page.get_by_role("button", name="Simulate scan").click()
                await expect(page.get_by_text("Paired: sales-2 is connected")).to_be_visible()
                await page.get_by_role("button", name="Close").click()

                await page.get_by_role("link", name="Send").click()
                await page.get_by_label("Message", exact=True).fill("Olá! Sim, abrimos às 9h.")
                await page.get_by_role("button", name="Send", exact=True).click()
                await expect(page.locator("ol.sent > li").first).to_contain_text("answered")
                await shoot(page, "send")

                await page.get_by_role("link", name="Events").click()
                await page.locator("ol.events > li").filter(has_text="abrimos").locator("summary").click()
                await shoot(page, "events")

                await page.get_by_role("link", name="Webhooks").click()
                await expect(page.locator("tr[data-webhook]").last).to_contain_text("failing")
                await page.get_by_role("button", name=f"Test {crm.url}").click()
                await page.get_by_role("button", name=f"Deliveries {crm.url}").click()
                await expect(page.locator("table.attempts tbody tr").first).to_be_visible()
                await shoot(page, "webhooks")

                await page.get_by_role("link", name="Tenants").click()
                await expect(page.locator('tr[data-tenant="old-shop"]')).to_contain_text("disabled")
                await shoot(page, "tenants")

                await page.get_by_role("link", name="Tokens").click()
                await page.get_by_label("Label").fill("help desk")
                await page.get_by_role("checkbox", name=re.compile("^send")).check()
                await page.get_by_role("checkbox", name=re.compile("^tenant")).uncheck()
                await page.get_by_role("button", name="Create token").click()
                await expect(page.get_by_role("textbox", name="New token")).to_have_value(re.compile("^zgt_"))
                await shoot(page, "tokens")

                await page.get_by_role("link", name="Audit log").click()
                await expect(page.locator("table.audit tbody tr").first).to_contain_text("token.create")
                await shoot(page, "audit")

            async with open_page(browser, **PHONE) as page:
                await sign_in(page, gateway.http, token)
                await expect(page.locator('tr[data-session="sales-2"]')).to_be_visible()
                await shoot(page, "phone")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(f"usage: {sys.argv[0]} (writes {OUT})")
    asyncio.run(main())
