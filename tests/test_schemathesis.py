"""Schemathesis against a live gateway: real uvicorn on 127.0.0.1, the simulator engine, a real token.

``st run`` (the schemathesis CLI, as a user would run it) reads ``/v1/openapi.json`` from the gateway and sends a
few hundred generated requests, valid and invalid, to every operation; every check it has must pass: no 5xx,
every status, content type, header and body as documented, invalid requests refused, valid ones not refused
for their shape, and requests without the token refused. Bounded by ``--max-examples`` and a fixed seed.

One adjustment, written down: the schema says a recipient is a string; only the server knows a phone number from
a JID from nonsense, and it answers ``invalid_recipient`` with 422 ("the request has the documented shape, but a
value cannot be used"). So 422 is an expected answer to a schema-valid request.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from .conftest import fast_settings
from .support import TIMEOUT_SCALE, serve_gateway

ST = Path(sys.executable).with_name("st")
MAX_EXAMPLES = 10
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "410", "422", "503"]
"""

pytestmark = pytest.mark.slow


async def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    # Long-polls are bounded by the spec's own maximum: keep it short so that generated waits stay short.
    settings = fast_settings(tmp_path / "data", rest_max_wait_s=0.5)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        process = await asyncio.create_subprocess_exec(
            str(ST),
            "--config-file",
            str(config),
            "run",
            f"{gateway.http}/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261202",
            # One worker: one run with two ended in an AssertionError inside hypothesis (6.170) while it described
            # a lambda of schemathesis's own source, an error of the tools, not a finding; one worker is steadier.
            "--workers",
            "1",
            "--request-timeout",
            str(10 * TIMEOUT_SCALE),
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp_path,  # its cache (.schemathesis/) goes there, not into the checkout
        )
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    generated = re.search(r"(\d+) generated", text)
    assert generated and int(generated.group(1)) >= 300, text[-3000:]  # it really ran a few hundred cases
