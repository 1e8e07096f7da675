"""Webhooks from the Python SDK and from the ``zapgate webhook`` command line (real subprocesses), against a real
gateway and a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zapgate.client import WebhookDisabled, connect
from zapgate.config import Settings
from zapgate.errors import InvalidRequest, WebhookNotFound

from .support import RunningGateway, eventually
from .test_cli import cli, cli_env
from .test_webhooks import emit, hook_settings
from .webhook_receiver import receiver


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return hook_settings(tmp_path / "data")


async def test_the_sdk_manages_endpoints_and_sees_them_disabled(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with receiver() as rx, connect(gateway.url, token) as client:
        created = await client.create_webhook(rx.url, events=["presence"], description="crm")
        assert created.secret.startswith("whsec_") and created.events == ["presence"]
        assert [w.webhook for w in await client.webhooks()] == [created.webhook]
        result = await client.test_webhook(created.webhook)
        assert result.ok and result.status == 200
        seqs = await emit(gateway, 3)
        await eventually(lambda: rx.accepted_seqs()[1:] == seqs, "delivered after the ping")

        async def recorded() -> bool:  # the receiver gets a request before the gateway has recorded its answer
            return (await client.webhook(created.webhook)).cursor == seqs[-1]

        await eventually(recorded, "cursor moved")
        info = await client.webhook(created.webhook)
        assert info.cursor == seqs[-1] and info.pending == 0
        attempts = await client.webhook_attempts(created.webhook)
        assert [a.outcome for a in attempts] == ["delivered"] * 3 + ["ping"]
        replayed = await client.replay_webhook(created.webhook, seqs[1])
        assert replayed.cursor == seqs[0]
        await eventually(lambda: rx.accepted_seqs()[-2:] == seqs[1:] and len(rx.accepted) == 6, "replayed")
        rotated = await client.rotate_webhook_secret(created.webhook)
        assert rotated.secret != created.secret
        info = await client.update_webhook(created.webhook, sessions=["s1"], description="desk")
        assert info.sessions == ["s1"] and info.description == "desk"
        assert await client.webhook_dead_letters(created.webhook) == []
        assert await client.redeliver_webhook(created.webhook) == 0
        with pytest.raises(InvalidRequest):
            await client.create_webhook("ftp://x.example/")

        # The gateway disables an endpoint that answers 410; the SDK types the event.
        async with receiver(lambda frame: 410) as gone:
            other = await client.create_webhook(gone.url)
            await emit(gateway, 1)
            async for event in client.events():
                if isinstance(event, WebhookDisabled):
                    assert event.data.webhook == other.webhook and event.data.reason == "gone"
                    break
        await client.delete_webhook(other.webhook)
        with pytest.raises(WebhookNotFound):
            await client.webhook(other.webhook)


@pytest.mark.slow
async def test_the_cli(gateway: RunningGateway) -> None:
    env = cli_env(gateway.url, await gateway.token())
    async with receiver() as rx:
        created = await cli("webhook", "create", rx.url, "--events", "presence", "--description", "crm", env=env)
        assert created.code == 0, created.err
        hook, secret = created.out.split()
        assert hook.startswith("wh_") and secret.startswith("whsec_") and "not shown again" in created.err

        listed = await cli("webhook", "list", env=env)
        assert listed.code == 0 and hook in listed.out and rx.url in listed.out and "enabled" in listed.out

        tested = await cli("webhook", "test", hook, env=env)
        assert tested.code == 0 and tested.out.startswith("HTTP 200")
        rx.requests[0].verify(secret)

        seqs = await emit(gateway, 2)
        await eventually(lambda: rx.accepted_seqs()[1:] == seqs, "delivered")
        replayed = await cli("webhook", "replay", hook, "--from-seq", str(seqs[0]), env=env)
        assert replayed.code == 0, replayed.err
        await eventually(lambda: rx.accepted_seqs()[1:] == seqs * 2, "replayed")

        attempts = await cli("webhook", "attempts", hook, "--json", env=env)
        assert [a["outcome"] for a in json.loads(attempts.out)][:2] == ["delivered", "delivered"]
        dead = await cli("webhook", "dead-letters", hook, env=env)
        assert dead.code == 0 and dead.out.startswith("SEQ")
        assert (await cli("webhook", "redeliver", hook, env=env)).out.strip() == "0 dead letters queued"
        rotated = await cli("webhook", "rotate-secret", hook, env=env)
        assert rotated.code == 0 and rotated.out.strip().startswith("whsec_") and rotated.out.strip() != secret

        disabled = await cli("webhook", "update", hook, "--disable", env=env)
        assert disabled.code == 0 and "disabled" in disabled.out
        shown = json.loads((await cli("webhook", "get", hook, env=env)).out)
        assert shown["enabled"] is False and shown["description"] == "crm"

        rx.answer = lambda frame: 500
        failing = await cli("webhook", "test", hook, env=env)
        assert failing.code == 1 and "HTTP 500" in failing.out

        assert (await cli("webhook", "delete", hook, env=env)).code == 0
        missing = await cli("webhook", "get", hook, env=env)
        assert missing.code == 1 and "webhook_not_found" in missing.err
