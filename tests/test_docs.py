"""The reference docs name everything the code has: settings, commands, events, error codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zapgate.config import Settings
from zapgate.docgen import stale
from zapgate.errors import ERRORS_BY_CODE, HTTP_STATUS
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


def test_every_error_code_has_its_http_status_in_the_rest_doc() -> None:
    text = (DOCS / "rest.md").read_text()
    table = text[text.index("## Errors and statuses") : text.index("## Events: pages")]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    missing = [
        f"{status} `{code}`"
        for code, status in HTTP_STATUS.items()
        if not any(line.startswith(f"| {status} ") and f"`{code}`" in line for line in rows)
        and f"`{code}`" not in table  # WebSocket-only codes are named below the table
    ]
    assert not missing, f"add to the status table of docs/rest.md: {missing}"


def test_every_event_and_close_code_is_in_the_protocol_doc() -> None:
    text = (DOCS / "protocol.md").read_text()
    missing = [f"`{name}`" for name in EVENTS if f"`{name}`" not in text]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    missing += [f"close code {int(c)}" for c in CloseCode if not any(f" {int(c)} " in row for row in rows)]
    assert not missing, f"add to docs/protocol.md: {missing}"


def test_every_emitted_event_is_declared() -> None:
    source = "\n".join(p.read_text() for p in (DOCS.parent / "src" / "zapgate").rglob("*.py"))
    names = r'"((?:session|message|group|contact|chat|poll|media|presence|webhook|call)\.[a-z_]+)"'
    emitted = set(re.findall(names, source)) - set(COMMANDS)
    assert "message.received" in emitted, "the pattern no longer finds event names"
    assert not emitted - set(EVENTS), f"declare with protocol.base.event(): {sorted(emitted - set(EVENTS))}"


def test_every_command_has_a_handler_and_a_reply_type() -> None:
    assert {spec.request for spec in COMMANDS.values()} == set(HANDLERS)
    assert all(spec.reply is not None for spec in COMMANDS.values())


# -- the user guides run as written ------------------------------------------------------------------------

GUIDES = [DOCS.parent / "README.md", DOCS / "cli.md", DOCS / "client.md"]
ACTIVATE = ". .venv/bin/activate"
_NEEDS_VENV = re.compile(r"(?:^|[|;&]\s*|\$\()(zapgate|python)\s")


def shell_lines(path: Path) -> list[str]:
    """Every command line of ``path``, in order, comments dropped: the lines of its ``sh`` blocks, and the
    ``$ ``-prompted lines of its other blocks (examples shown with their output)."""
    lines = []
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            if lang == "sh" and not line.startswith("$ "):
                command = line
            elif line.startswith("$ "):
                command = line[2:]
            else:
                continue
            if command.split("  #")[0].strip():
                lines.append(command.split("  #")[0].strip())
    return lines


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_guides_activate_the_environment_before_running_zapgate_or_python(guide: Path) -> None:
    """``zapgate`` and the SDK live in the checkout's .venv: a bare ``zapgate …`` or ``python …`` in a guide
    works only after the guide has activated it (``python3 tasks.py …`` and ``.venv/bin/…`` always do)."""
    activated = False
    premature = []
    for line in shell_lines(guide):
        if line.startswith(ACTIVATE):
            activated = True
        elif _NEEDS_VENV.search(line) and not activated:
            premature.append(line)
    assert not premature, f"{guide.name} runs these before '{ACTIVATE}': {premature}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_guides_never_split_a_phone_number_into_several_arguments(guide: Path) -> None:
    """``--phone +55 11 9…`` unquoted is three arguments: the shell line fails as written."""
    split = [line for line in shell_lines(guide) if re.search(r"(^|\s)\+\d+ \d", _unquoted(line))]
    assert not split, f"{guide.name}: quote these numbers or write them without spaces: {split}"


def _unquoted(line: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", line)


def test_each_guide_links_its_sandbox_session_to_a_phone_number_of_its_own() -> None:
    """A reader following several guides on one sandbox must not link two sessions to one number: each
    inbound message would then show up in both."""
    scanning: dict[str, set[str]] = {}
    for guide in GUIDES:
        text = guide.read_text()
        for number in re.findall(r"sim scan \S+ --phone (\+[\d ]+\d)", text):
            scanning.setdefault(re.sub(r"\D", "", number), set()).add(guide.name)
    assert scanning, "the guides show how a simulated phone scans"
    shared = {number: sorted(guides) for number, guides in scanning.items() if len(guides) > 1}
    assert not shared, f"one phone number links sessions in several guides: {shared}"
    for guide in GUIDES:
        numbers = [number for number, guides in scanning.items() if guide.name in guides]
        assert len(numbers) <= 1, f"{guide.name} links its sessions to several numbers: {numbers}"
