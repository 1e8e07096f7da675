"""The reference docs name everything the code has: settings, commands, events, error codes."""

from __future__ import annotations

from pathlib import Path

from zapgate.config import Settings
from zapgate.docgen import stale
from zapgate.errors import ERRORS_BY_CODE
from zapgate.protocol import COMMANDS, EVENTS, CloseCode
from zapgate.server.commands import HANDLERS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [var for var, _, _ in Settings.describe() if f"`{var}`" not in text]
    assert not missing, f"add to docs/configuration.md: {missing}"


def test_generated_docs_are_current() -> None:
    assert not stale(DOCS), f"run 'python3 tasks.py docs' to regenerate: {stale(DOCS)}"


def test_every_command_and_error_code_is_in_the_protocol_doc() -> None:
    text = (DOCS / "protocol.md").read_text()
    missing = [f"`{c}`" for c in COMMANDS if f"`{c}`" not in text]
    missing += [
        f"`{code}`" for code in sorted(ERRORS_BY_CODE) if code != "connection_closed" and f"`{code}`" not in text
    ]
    assert not missing, f"add to docs/protocol.md: {missing}"


def test_every_event_and_close_code_is_in_the_protocol_doc() -> None:
    text = (DOCS / "protocol.md").read_text()
    missing = [f"`{name}`" for name in EVENTS if f"`{name}`" not in text]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    missing += [f"close code {int(c)}" for c in CloseCode if not any(f" {int(c)} " in row for row in rows)]
    assert not missing, f"add to docs/protocol.md: {missing}"


def test_every_emitted_event_is_declared() -> None:
    import re

    source = "\n".join(p.read_text() for p in (DOCS.parent / "src" / "zapgate").rglob("*.py"))
    names = r'"((?:session|message|group|contact|chat|poll|media|presence|webhook|call)\.[a-z_]+)"'
    emitted = set(re.findall(names, source)) - set(COMMANDS)
    assert "message.received" in emitted, "the pattern no longer finds event names"
    assert not emitted - set(EVENTS), f"declare with protocol.base.event(): {sorted(emitted - set(EVENTS))}"


def test_every_command_has_a_handler_and_a_reply_type() -> None:
    assert {spec.request for spec in COMMANDS.values()} == set(HANDLERS)
    assert all(spec.reply is not None for spec in COMMANDS.values())
