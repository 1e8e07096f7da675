"""The echo bot of docs/client.md, run as written against a real gateway, stopped and started again."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from zapgate.client import connect
from zapgate.config import Settings

from .conftest import fast_settings
from .support import RunningGateway
from .test_cli import Running

DOCS = Path(__file__).resolve().parent.parent / "docs" / "client.md"
BOT_PHONE, CONTACT = "5511933330003", "5521988887777"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data")


def echo_bot_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    bots = [b for b in blocks if b.startswith('"""An echo bot')]
    assert len(bots) == 1, "docs/client.md should hold one echo bot example"
    return bots[0]


async def start_bot(script: Path, env: dict[str, str]) -> Running:
    return await Running.start_command(sys.executable, str(script), env=env)


@pytest.mark.slow
async def test_the_documented_echo_bot_answers_once_and_resumes_after_a_restart(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    script = tmp_path / "echo_bot.py"
    script.write_text(echo_bot_source())
    token = await gateway.token("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAPGATE_", "BOT_"))}
    env.update(
        ZAPGATE_URL=gateway.url,
        ZAPGATE_TOKEN=token,
        BOT_STATE=str(tmp_path / "echo-bot.seq"),
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="error",
    )
    engine: Any = gateway.gateway.engine

    async def echoes(text: str) -> list[dict[str, Any]]:
        return [d for d in await engine.deliveries() if d["sender"] == BOT_PHONE and d["text"] == text]

    async with connect(gateway.url, token) as client:
        bot = await start_bot(script, env)
        try:
            scan = await bot.expect(rf"^QR 1 of 3: zapgate sim scan '(2@[^']+)' --phone \+{BOT_PHONE}$")
            await client.sim_scan(scan[1], f"+{BOT_PHONE}")
            await bot.expect(r"^session echo is connected")
            await client.sim_receive("echo", f"+{CONTACT}", "olá, bot")
            await bot.expect(r"^echoed 5521988887777@s.whatsapp.net: olá, bot$")
        finally:
            await bot.kill()

        # While the bot is down, a contact writes again: the restarted bot answers that, and only that.
        await client.sim_receive("echo", f"+{CONTACT}", "are you there?")
        bot = await start_bot(script, env)
        try:
            await bot.expect(r"^echoed 5521988887777@s.whatsapp.net: are you there\?$")
            bot.proc.send_signal(signal.SIGINT)  # Ctrl-C
            stopped = await bot.finish()
            assert stopped.code == 0 and "Traceback" not in stopped.err, stopped.err
        finally:
            await bot.kill()
        # Killed right after its first answer, the bot may handle "olá, bot" again: its key keeps it to one send.

    first, second = await echoes("olá, bot"), await echoes("are you there?")
    assert [(d["recipient"], d["attempts"]) for d in first] == [(CONTACT, 1)]
    assert [(d["recipient"], d["attempts"]) for d in second] == [(CONTACT, 1)]
