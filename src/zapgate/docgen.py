"""Generated parts of ``docs/``: ``python3 tasks.py docs`` (``python -m zapgate.docgen``) rewrites them, and
``tests/test_docs.py`` fails when they are stale.

Each generated block sits between ``<!-- NAME:start … -->`` and ``<!-- NAME:end -->`` markers.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from .config import Settings
from .server.rest import routes_table

__all__ = ["BLOCKS", "render", "stale"]

BLOCKS: dict[tuple[str, str], Callable[[], str]] = {
    ("configuration.md", "settings"): Settings.markdown_table,
    ("rest.md", "routes"): routes_table,
}
"""(file under docs/, block name) → the function producing the block's text."""


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start[^>]*-->\n)(.*?)(<!-- {name}:end -->)", re.S)


def render(text: str, name: str, body: str) -> str:
    """``text`` with block ``name`` replaced by ``body``."""
    pattern = _pattern(name)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {name}:start --> ... <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def stale(docs: Path) -> list[str]:
    """The generated blocks whose text differs from what the code produces now."""
    found = []
    for (file, name), make in BLOCKS.items():
        text = (docs / file).read_text()
        if render(text, name, make()) != text:
            found.append(f"{file}:{name}")
    return found


def main() -> None:
    docs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs")
    for (file, name), make in BLOCKS.items():
        path = docs / file
        text = path.read_text()
        updated = render(text, name, make())
        if updated != text:
            path.write_text(updated)
            print(f"updated {path} ({name})")


if __name__ == "__main__":
    main()
