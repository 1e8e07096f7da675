"""The pure parts of webhooks: the retry schedule, what an answer means, signatures (checked against the
official ``standardwebhooks`` library), filters."""

from __future__ import annotations

import base64
import json
import random
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from zapgate.config import Settings
from zapgate.webhooks import NEVER_RETRY, generate_secret, retry_delay, retry_table, sign
from zapgate.webhooks.filters import accepts
from zapgate.webhooks.schedule import JITTER, verdict
from zapgate.webhooks.signing import secret_key

DAY = 86400.0


def test_the_default_schedule_retries_for_more_than_a_day_even_with_the_shortest_jitter() -> None:
    schedule = Settings().webhook_retry_schedule
    assert sum(schedule) * (1 - JITTER) >= DAY
    assert list(schedule) == sorted(schedule), "delays never shrink"
    assert schedule[0] <= 10, "the first retry comes quickly"


def test_each_delay_stays_within_the_jitter_and_the_schedule_ends() -> None:
    schedule = (10.0, 100.0, 1000.0)
    rng = random.Random(7)
    for retry, nominal in enumerate(schedule, start=1):
        delays = [retry_delay(retry, schedule, rng) for _ in range(200)]
        assert all(d is not None and nominal * (1 - JITTER) <= d <= nominal * (1 + JITTER) for d in delays)
        assert len({round(d or 0, 6) for d in delays}) > 100, "jittered, not constant"
    assert retry_delay(len(schedule) + 1, schedule, rng) is None
    with pytest.raises(ValueError):
        retry_delay(0, schedule)


def test_retry_table_adds_up() -> None:
    assert retry_table((5.0, 30.0, 120.0)) == [(2, 5.0, 5.0), (3, 30.0, 35.0), (4, 120.0, 155.0)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (None, "retry"),
        (301, "retry"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        *((code, "never") for code in (400, 401, 403, 404, 410, 422)),
    ],
)
def test_verdicts(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


def test_never_retry_is_the_documented_set() -> None:
    assert frozenset({400, 401, 403, 404, 410, 422}) == NEVER_RETRY


def test_signatures_verify_with_the_official_library() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    body = json.dumps({"type": "event", "event": "message.received", "seq": 7}).encode()

    ts = int(time.time())
    headers = {
        "webhook-id": "wh_1_7",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign([secret], "wh_1_7", ts, body),
    }
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    # Another secret, a changed body, another id: refused.
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "wh_1_8"})


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = generate_secret(), generate_secret()

    ts = int(time.time())
    body = b'{"seq":1}'
    header = sign([new, old], "m", ts, body)
    assert len(header.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, {"webhook-id": "m", "webhook-timestamp": str(ts), "webhook-signature": header})


@pytest.mark.parametrize(
    "bad",
    ["", "whsec_", "secret", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()],
)
def test_bad_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        secret_key(bad)


def test_filters() -> None:
    assert accepts([], [], "message.received", "s1")
    assert accepts([], [], "webhook.disabled", "")
    assert accepts(["message.received"], [], "message.received", "s1")
    assert not accepts(["message.received"], [], "message.status", "s1")
    assert accepts([], ["s1"], "message.status", "s1")
    assert not accepts([], ["s1"], "message.status", "s2")
    assert not accepts([], ["s1"], "webhook.disabled", ""), "tenant-wide events only reach unfiltered sessions"
    assert not accepts(["session.status"], ["s1"], "message.status", "s1")
