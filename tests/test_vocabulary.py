"""One vocabulary and imports that flow one way: a name means one thing and is defined in one place."""

from __future__ import annotations

import ast
import collections
import re
from pathlib import Path

import pytest

from zapgate.auth import TokenIssuer
from zapgate.config import ENGINES
from zapgate.engines import ENGINE_FACTORIES
from zapgate.errors import InvalidRequest
from zapgate.storage import open_storage

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "zapgate"

SHARED_ON_PURPOSE = {
    "T": "a type variable per module",
    "MIGRATIONS": "each database has its own schema",
    # Left to the work that owns these modules: the engine worker and the gateway side each bound their own
    # logout; the text limit is stated by the protocol's message and content modules.
    "LOGOUT_TIMEOUT_S": "engines/whatsapp/worker.py and engine.py",
    "MAX_TEXT_CHARS": "protocol/content.py and protocol/messages.py",
}


def module_constants() -> dict[str, list[str]]:
    """UPPER_CASE names assigned at module level → the modules that assign them."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = [e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    found[target.id].append(str(path.relative_to(SRC)))
    return found


def test_every_constant_is_defined_in_one_module() -> None:
    twice = {name: where for name, where in module_constants().items() if len(where) > 1}
    assert set(twice) <= set(SHARED_ON_PURPOSE), {k: v for k, v in twice.items() if k not in SHARED_ON_PURPOSE}


def test_engine_names_are_the_settings_names() -> None:
    assert sorted(ENGINE_FACTORIES) == sorted(ENGINES)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the zapgate modules ``path`` imports."""
    package = ".".join(("zapgate", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            names.add(name)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("zapgate")}


DATABASE_LAYER = {"zapgate.storage.sqlite", "zapgate.storage.database", "zapgate.storage.by_url"}
"""What engines may use of the storage package: a database (group commits), not the gateway's Storage."""


@pytest.mark.parametrize("layer", ["engines", "datadir.py", "background.py"])
def test_engines_and_shared_infrastructure_use_only_the_database_layer_of_storage(layer: str) -> None:
    paths = sorted((SRC / layer).rglob("*.py")) if (SRC / layer).is_dir() else [SRC / layer]
    beyond = {
        str(p.relative_to(SRC)): [n for n in sorted(imports_of(p)) if n.startswith("zapgate.storage")] for p in paths
    }
    beyond = {p: [n for n in names if n not in DATABASE_LAYER] for p, names in beyond.items()}
    assert not {p: names for p, names in beyond.items() if names}


def test_the_sdk_object_is_not_called_gw_anywhere_users_read() -> None:
    """``gw`` is the server's Gateway; the SDK's object is a client (``async with connect(...) as client``)."""
    places = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    places += sorted((SRC / "client").rglob("*.py")) + sorted((SRC / "cli").rglob("*.py"))
    found = [str(p.relative_to(ROOT)) for p in places if re.search(r"\bgw\b", p.read_text())]
    assert not found


async def test_an_invalid_tenant_is_an_invalid_request(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "zapgate.db", synchronous="normal")
    await storage.open()
    try:
        with pytest.raises(InvalidRequest, match="invalid tenant name 'Acme Inc'") as refused:
            await TokenIssuer(storage).create("Acme Inc")
        assert refused.value.code == "invalid_request"
        assert await storage.tenants.list_tokens() == []
    finally:
        await storage.close()
