"""The dashboard's admin views (Tenants, Tokens, Audit log) and what a token's scopes show, in a real browser
(headless Chromium driven by Playwright) against a real gateway.

An admin signs in with the admin token given at start-up, creates a tenant and a token for it (shown once, copied
with the button), the token works, the admin revokes it and it stops working; disables and enables the tenant;
reads the audit log a page at a time. A tenant token sees no admin view; a read-only token sees the sessions
without the buttons that would change them, and no Send view. Every test fails on any console error in the page.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import ANY

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from .browser import chromium, open_page, sign_in
from .conftest import fast_settings
from .support import RawClient, RunningGateway, serve_gateway
from .test_dashboard_browser import no_horizontal_scroll, tab_to
from .test_security import closed_with

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ADMIN_SECRET = "7d1e9a4c2f6b0e8d3a5c7f1b9e2d4a6c8f0b3e5d7a9c1f2e4b6d8a0c3e5f7b9d"  # 64 hex digits: 256 bits
VIEWS = ["Sessions", "Events", "Send", "Webhooks", "Tenants", "Tokens", "Audit log"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    secret_file = tmp_path / "admin-token"
    secret_file.write_text(ADMIN_SECRET + "\n")
    secret_file.chmod(0o600)
    async with serve_gateway(fast_settings(tmp_path / "data", admin_token_file=secret_file)) as running:
        yield running


async def menu(page: Page) -> list[str]:
    return await page.locator("#nav a").all_inner_texts()


async def confirm(page: Page, question: str, action: str) -> None:
    dialog = page.get_by_role("dialog", name=re.compile(question))
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=action).click()
    await expect(dialog).to_be_hidden()


async def test_an_admin_creates_a_tenant_and_a_token_that_works_then_revokes_it(
    browser: Browser, gateway: RunningGateway
) -> None:
    clipboard = {"permissions": ["clipboard-read", "clipboard-write"]}
    async with open_page(browser, **clipboard) as page:
        await sign_in(page, gateway.http, ADMIN_SECRET)
        # The admin token given at start-up acts on no tenant: only the admin views.
        assert await menu(page) == ["Tenants", "Tokens", "Audit log"]
        await expect(page.locator("#tenant")).to_have_text(re.compile(r"^all tenants · simulator · admin$"))
        await expect(page.get_by_role("heading", name="Tenants", level=1)).to_be_visible()
        await expect(page.get_by_text("No tenants yet: create one below.")).to_be_visible()

        # A tenant with a quota of its own.
        await page.get_by_label("Tenant name").fill("acme")
        await page.get_by_label("Max sessions").fill("2")
        await page.get_by_role("button", name="Create tenant").click()
        row = page.locator('tr[data-tenant="acme"]')
        await expect(row.locator('[data-quota="max_sessions"]')).to_have_text("0 / 2")
        await expect(row.locator('[data-quota="max_queued_messages"]')).to_contain_text("(default)")
        await expect(row.locator(".badge")).to_have_text("active")
        await page.get_by_label("Tenant name").fill("Not A Name")
        await page.get_by_role("button", name="Create tenant").click()  # the browser refuses the pattern
        assert await page.get_by_label("Tenant name").evaluate("el => !el.validity.valid")

        # Its quotas changed: 5 sessions; the queued-bytes one back to the gateway's default.
        await page.get_by_role("button", name="Quotas acme").click()
        quotas = page.get_by_role("dialog", name="Quotas of acme")
        await expect(quotas.get_by_label("Max sessions")).to_have_value("2")
        await quotas.get_by_label("Max sessions").fill("5")
        await quotas.get_by_role("button", name="Save quotas").click()
        await expect(row.locator('[data-quota="max_sessions"]')).to_have_text("0 / 5")
        assert (await gateway.gateway.storage.tenants.get_tenant("acme")).quotas.max_sessions == 5  # type: ignore[union-attr]

        # A token for it, limited to one session, expiring in a day: shown once, copied with the button.
        await row.get_by_role("button", name="Tokens acme").click()
        await expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()
        await expect(page.locator("#view-tokens").get_by_label("Tenant", exact=True)).to_have_value("acme")
        await expect(page.get_by_text("No tokens for this tenant yet")).to_be_visible()
        await expect(page.get_by_role("heading", name="New token for acme")).to_be_visible()
        await page.get_by_label("Label").fill("crm bot")
        await expect(page.get_by_role("checkbox", name=re.compile("^tenant"))).to_be_checked()
        await page.get_by_label("Limit to sessions").fill("main")
        await page.get_by_label("Expires").select_option(label="In 1 day")
        await page.get_by_role("button", name="Create token").click()
        shown = page.get_by_role("textbox", name="New token")
        await expect(shown).to_have_value(re.compile(r"^zgt_[0-9a-f]{12}_\S+$"))
        token = await shown.input_value()
        await expect(page.get_by_text("it is shown only this once")).to_be_visible()
        await page.get_by_role("button", name="Copy").click()
        await expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
        assert await page.evaluate("() => navigator.clipboard.readText()") == token

        token_id = token.split("_")[1]
        listed = page.locator(f'tr[data-token="{token_id}"]')
        await expect(listed).to_contain_text("crm bot")
        await expect(listed.locator("td[data-label=Scopes]")).to_have_text("tenant")
        await expect(listed.locator("td[data-label=Sessions]")).to_have_text("main")
        await expect(listed.locator(".badge")).to_have_text("active")
        await expect(listed.locator("td[data-label=Expires]")).not_to_have_text("never")
        assert token not in await page.locator("#view-tokens table").inner_text()  # the list never shows a secret
        await page.get_by_role("button", name="Done").click()
        await expect(shown).to_be_hidden()

        # The token works, for its session only.
        client = await RawClient.open(gateway.url)
        ready = await client.authenticate(token)
        assert ready["tenant"] == "acme" and ready["scopes"] == ["read", "send", "tenant"]
        assert ready["sessions"] == ["main"]
        await client.call("session.start", session="main")
        assert (await client.request("session.start", session="other"))["error"]["code"] == "forbidden"
        await expect(page.locator('tr[data-tenant="acme"] [data-quota="max_sessions"]')).to_have_text("1 / 5")

        # Revoked from the page: its connection closes and it is refused from then on.
        await listed.get_by_role("button", name=f"Revoke {token_id}").click()
        await confirm(page, f"Revoke {token_id}", "Revoke")
        await expect(listed.locator(".badge")).to_have_text("revoked")
        await expect(listed.get_by_role("button", name=f"Revoke {token_id}")).to_have_count(0)
        assert (await closed_with(client))[0] == 4401
        again = await RawClient.open(gateway.url)
        await again.send({"type": "auth", "token": token})
        assert await closed_with(again) == (4401, [{"type": "error", "code": "unauthorized", "message": ANY}])

        # Disabled and enabled: a token of the tenant is refused while it is disabled.
        _, other = await gateway.gateway.tokens.create("acme")
        await page.get_by_role("link", name="Tenants").click()
        await page.get_by_role("button", name="Disable acme").click()
        await confirm(page, "Disable acme", "Disable")
        await expect(row.locator(".badge")).to_have_text("disabled")
        refused = await RawClient.open(gateway.url)
        await refused.send({"type": "auth", "token": other})
        code, frames = await closed_with(refused)
        assert code == 4401 and "disabled" in str(frames[0]["message"]), frames
        await page.get_by_role("button", name="Enable acme").click()
        await expect(row.locator(".badge")).to_have_text("active")
        accepted = await RawClient.open(gateway.url)
        await accepted.authenticate(other)
        await accepted.close()

        # The audit log says who did all that, newest first, and filters by tenant.
        await gateway.gateway.storage.tenants.audit(
            ts=time.time(), token_id=None, tenant="beta", session=None, command="tenant.create", outcome="ok"
        )
        await page.get_by_role("link", name="Audit log").click()
        entries = page.locator("table.audit tbody tr")
        await expect(entries.first.locator("td[data-label=Tenant]")).to_have_text("beta")
        await page.locator("#view-audit").get_by_label("Tenant", exact=True).select_option("acme")
        await expect(entries.first.locator("td[data-label=Command]")).to_have_text("tenant.enable")
        texts = await entries.locator("td[data-label=Command]").all_inner_texts()
        done = [
            "tenant.enable",
            "tenant.disable",
            "token.revoke",
            "session.start",
            "session.start",
            "token.create",
            "tenant.update",
            "tenant.create",
        ]  # newest first; the disable's session.stop comes in between
        remaining = iter(texts)
        assert all(command in remaining for command in done), f"{done} is not in order in {texts}"
        forbidden = entries.filter(has=page.locator("td[data-label=Outcome]", has_text="forbidden"))
        await expect(forbidden.locator("td[data-label=Command]")).to_have_text("session.start")  # "other"
        admin_rows = entries.filter(has=page.locator("td[data-label=Command]", has_text="tenant.disable"))
        await expect(admin_rows.locator("td[data-label=Token]")).to_have_text("admin")


async def test_the_audit_log_is_read_a_page_at_a_time(browser: Browser, gateway: RunningGateway) -> None:
    tenants = gateway.gateway.storage.tenants
    for tenant in ("acme", "beta"):
        await gateway.gateway.tokens.create(tenant)  # creates the tenant, for the filter's list
    already = await tenants.list_audit(tenant=None, after=None, limit=1)  # the start-up's own entries
    base = already[-1].id if already else 0
    for n in range(120):  # entries base+1 to base+120
        await tenants.audit(
            ts=1_764_000_000.0 + n,
            token_id="0123456789ab",
            tenant="acme" if n % 2 else "beta",
            session=f"s{n}",
            command="session.start",
            outcome="ok",
        )
    async with open_page(browser) as page:
        await sign_in(page, gateway.http, ADMIN_SECRET)
        await page.get_by_role("link", name="Audit log").click()
        count = page.locator(".count")
        first_id = page.locator("table.audit tbody tr").first.locator("td[data-label='#']")
        await expect(count).to_have_text(f"Entries {base + 71} to {base + 120} (the newest)")
        await expect(first_id).to_have_text(str(base + 120))
        newer = page.get_by_role("button", name="Newer")
        older = page.get_by_role("button", name="Older")
        await expect(newer).to_be_disabled()
        await older.click()
        await expect(count).to_have_text(f"Entries {base + 21} to {base + 70}")
        await older.click()
        await expect(count).to_have_text(f"Entries 1 to {base + 20}")
        await expect(older).to_be_disabled()
        await newer.click()
        await expect(count).to_have_text(f"Entries {base + 21} to {base + 70}")
        await newer.click()
        await expect(count).to_have_text(f"Entries {base + 71} to {base + 120} (the newest)")
        await expect(newer).to_be_disabled()
        await page.locator("#view-audit").get_by_label("Tenant", exact=True).select_option("acme")  # every other one
        await expect(count).to_have_text(f"Entries {base + 22} to {base + 120} (the newest)")
        await expect(page.locator("table.audit tbody tr")).to_have_count(50)
        await page.get_by_role("button", name="Older").click()
        await expect(count).to_have_text(f"Entries {base + 2} to {base + 20}")


async def test_a_token_sees_only_what_its_scopes_allow(browser: Browser, gateway: RunningGateway) -> None:
    """A tenant token: no admin view (not even by its address). A read-only token: the sessions and events, none
    of the buttons that change them, no Send view. A send token limited to one session: Send, no Webhooks (an
    endpoint would see every session). A token with tenant and admin (the first-run token): all."""
    async with gateway.connect("acme") as client:
        await client.pair("main", "+55 11 99999-0301")
    _, tenant_token = await gateway.gateway.tokens.create("acme")
    _, read_token = await gateway.gateway.tokens.create("acme", scopes=["read"])
    _, both_token = await gateway.gateway.tokens.create("acme", scopes=["tenant", "admin"])
    _, limited_token = await gateway.gateway.tokens.create("acme", scopes=["send"], sessions=["main"])
    async with open_page(browser) as page:
        await sign_in(page, gateway.http, tenant_token)
        assert await menu(page) == VIEWS[:4]
        await page.goto(gateway.http + "/#tenants")
        await expect(page.get_by_role("heading", name="Sessions", level=1)).to_be_visible()
        await expect(page.get_by_role("heading", name="Tenants")).to_have_count(0)
        await expect(page.get_by_role("button", name="Stop main")).to_be_visible()
        await page.get_by_role("button", name="Sign out").click()

        await sign_in(page, gateway.http, read_token)
        assert await menu(page) == ["Sessions", "Events"]
        await expect(page.locator("#tenant")).to_have_text("acme · simulator · read only")
        row = page.locator('tr[data-session="main"]')
        await expect(row.locator(".badge")).to_have_text("connected")
        await expect(row.get_by_role("button")).to_have_count(0)
        await expect(page.get_by_role("button", name="Create and pair")).to_have_count(0)
        await expect(
            page.get_by_text("creating, pairing, starting, stopping, logging out and deleting sessions need")
        ).to_be_visible()
        await page.get_by_role("link", name="Events").click()
        await expect(page.locator("ol.events > li")).to_have_count(4)  # the pairing's events, readable
        await page.get_by_role("button", name="Sign out").click()

        await sign_in(page, gateway.http, limited_token)
        assert await menu(page) == ["Sessions", "Events", "Send"]
        await expect(page.locator("#tenant")).to_have_text("acme · simulator · send and read only · session main only")
        await expect(page.get_by_text("This token is limited to main.")).to_be_visible()
        await expect(page.get_by_text("This token may send messages and read:")).to_be_visible()
        await page.get_by_role("link", name="Send").click()
        await expect(page.get_by_label("From session")).to_have_value("main")
        await page.get_by_role("button", name="Sign out").click()

        await sign_in(page, gateway.http, both_token)
        assert await menu(page) == VIEWS
        await expect(page.get_by_role("button", name="Stop main")).to_be_visible()
        await page.get_by_role("link", name="Tenants").click()
        await expect(page.locator('tr[data-tenant="acme"] [data-quota="max_sessions"]')).to_contain_text("1 /")


async def test_the_admin_and_webhooks_views_fit_a_phone_screen(browser: Browser, tmp_path: Path) -> None:
    phone = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    settings = fast_settings(tmp_path / "data", outbound_allow=("127.0.0.1/32",))
    async with serve_gateway(settings) as gateway, open_page(browser, **phone) as page:
        _, token = await gateway.gateway.tokens.create("a-tenant-with-a-long-name", scopes=["tenant", "admin"])
        await gateway.gateway.tokens.create("a-tenant-with-a-long-name", "a label", sessions=["one", "two"])
        async with gateway.connect("a-tenant-with-a-long-name") as client:
            # Port 9 on loopback refuses: the endpoint shows as failing, with its error.
            url = "http://127.0.0.1:9/a/rather/long/path/for/a/webhook/endpoint/on/a/small/screen"
            await client.call("webhook.create", url=url, events=["message.received"], description="CRM")
        await sign_in(page, gateway.http, token)
        for view in ("Webhooks", "Tenants", "Tokens", "Audit log"):
            await page.get_by_role("link", name=view).tap()
            await expect(page.get_by_role("heading", name=view, level=1)).to_be_in_viewport()
            await expect(page.locator(f"#view-{view.split()[0].lower()} tbody tr").first).to_be_visible()
            await no_horizontal_scroll(page)
        await page.get_by_role("link", name="Webhooks").tap()
        await page.get_by_role("button", name=f"Deliveries {url}").tap()
        await expect(page.get_by_role("region", name=f"Deliveries to {url}")).to_be_visible()
        await no_horizontal_scroll(page)


async def test_a_token_is_created_copied_and_revoked_with_the_keyboard_only(
    browser: Browser, gateway: RunningGateway
) -> None:
    await gateway.gateway.tokens.create("acme")  # the tenant
    async with open_page(browser, permissions=["clipboard-read", "clipboard-write"]) as page:
        await page.goto(gateway.http + "/")
        await page.keyboard.type(ADMIN_SECRET)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
        await tab_to(page, page.get_by_role("link", name="Tokens"))
        await page.keyboard.press("Enter")
        view = page.locator("#view-tokens")
        await tab_to(page, view.get_by_label("Label"))
        await page.keyboard.type("typed")
        await tab_to(page, view.get_by_role("button", name="Create token"))
        await page.keyboard.press("Enter")
        secret = view.get_by_role("textbox", name="New token")
        await expect(secret).to_be_focused()  # selected, ready for Ctrl+C
        await page.keyboard.press("Tab")
        await expect(view.get_by_role("button", name="Copy")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(view.get_by_text("Copied to the clipboard.")).to_be_visible()
        token_id = (await secret.input_value()).split("_")[1]

        await tab_to(page, view.get_by_role("button", name=f"Revoke {token_id}"))
        await page.keyboard.press("Enter")
        confirm = page.get_by_role("dialog", name=re.compile(f"Revoke {token_id}"))
        await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice first
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(view.locator(f'tr[data-token="{token_id}"] .badge')).to_have_text("revoked")
