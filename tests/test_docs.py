"""The reference docs name everything the code has: settings, commands, events, error codes."""

from __future__ import annotations

from pathlib import Path

from zapgate.config import Settings
from zapgate.errors import ERRORS_BY_CODE
from zapgate.protocol import COMMAND_TYPES

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [var for var, _, _ in Settings.describe() if f"`{var}`" not in text]
    assert not missing, f"add to docs/configuration.md: {missing}"


def test_every_command_and_error_code_is_in_the_protocol_doc() -> None:
    text = (DOCS / "protocol.md").read_text()
    missing = [f"`{c}`" for c in sorted(COMMAND_TYPES) if f"`{c}`" not in text]
    missing += [
        f"`{code}`" for code in sorted(ERRORS_BY_CODE) if code != "connection_closed" and f"`{code}`" not in text
    ]
    assert not missing, f"add to docs/protocol.md: {missing}"


def test_every_event_name_is_in_the_protocol_doc() -> None:
    text = (DOCS / "protocol.md").read_text()
    source = "\n".join(p.read_text() for p in (DOCS.parent / "src" / "zapgate").rglob("*.py"))
    import re

    emitted = set(re.findall(r'"((?:session|message)\.[a-z_]+)"', source)) - COMMAND_TYPES
    missing = [name for name in sorted(emitted) if f"`{name}`" not in text]
    assert not missing, f"add to docs/protocol.md: {missing}"
