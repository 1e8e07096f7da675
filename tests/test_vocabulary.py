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
    # Left for the work that owns these modules: the protocol split gives close codes one home, and the
    # engine worker and the gateway side each bound their own logout.
    "CLOSE_UNAUTHORIZED": "server/websocket.py and client/connection.py",
    "LOGOUT_TIMEOUT_S": "engines/whatsapp/worker.py and engine.py",
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


@pytest.mark.parametrize("layer", ["engines", "sqlitedb.py", "datadir.py", "background.py"])
def test_shared_infrastructure_and_engines_do_not_import_the_gateways_storage(layer: str) -> None:
    paths = sorted((SRC / layer).rglob("*.py")) if (SRC / layer).is_dir() else [SRC / layer]
    offending = {str(p.relative_to(SRC)): sorted(imports_of(p)) for p in paths}
    offending = {p: [n for n in names if n.startswith("zapgate.storage")] for p, names in offending.items()}
    assert not {p: n for p, n in offending.items() if n}


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
        assert await storage.list_tokens() == []
    finally:
        await storage.close()
