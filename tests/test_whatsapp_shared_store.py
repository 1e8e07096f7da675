"""whatsmeow's device store in the cluster's PostgreSQL database (docs/scaling.md), with the real library.

whatsmeow (through neonize, in a subprocess) creates its tables in a fresh schema while a pairing attempt
fails offline (no network is needed: the tables come first). A device row is then written the way whatsmeow
would keep a paired device, and zapgate's :class:`~zapgate.engines.whatsapp.store.DeviceStore` reads it and
deletes it with everything whatsmeow keeps for it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from zapgate.engines.whatsapp import ipc
from zapgate.engines.whatsapp.store import SHARED_STORE, DeviceRef, DeviceStores, whatsmeow_url
from zapgate.engines.whatsapp.supervisor import worker_environment

from .conftest import fast_settings
from .services import postgres_schema
from .support import TIMEOUT_SCALE

JID = "5511911112222:7@s.whatsapp.net"

CREATE_TABLES = """
import asyncio, logging, sys
logging.disable(logging.CRITICAL)
from neonize.aioze.client import NewAClient

async def main():
    client = NewAClient(sys.argv[1], uuid="shared-store-probe", new_device=True)
    task = await client.connect()
    try:
        await asyncio.wait_for(task, 30)
    except Exception as exc:  # offline: the connect fails once the store is ready
        print(type(exc).__name__)

asyncio.run(main())
"""


@pytest.fixture
def url() -> Iterator[str]:
    yield from postgres_schema()


def fill(conn: psycopg.Connection, table: str, values: dict[str, object]) -> None:
    """A row of whatsmeow's ``table`` with ``values`` and a placeholder in every other required column."""
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    ).fetchall()
    checks = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
        (table,),
    ).fetchall()
    lengths = {name: int(n) for (text,) in checks for name, n in re.findall(r"length\((\w+)\) = (\d+)", text)}
    row = dict(values)
    for name, kind in columns:
        if name not in row:
            size = lengths.get(name, 32)
            row[name] = {"bytea": b"\x01" * size, "integer": 1, "bigint": 1, "boolean": False}.get(kind, "x")
    names = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))


@pytest.mark.slow
def test_keys_in_postgresql_are_read_and_deleted_with_everything_whatsmeow_keeps(tmp_path: Path, url: str) -> None:
    stores = DeviceStores(tmp_path, url)
    new = stores.new("ses_a")
    assert new.ref == SHARED_STORE and "sslmode=prefer" in new.name
    assert new.read(JID) is None  # whatsmeow made no tables yet: nothing paired here
    out = subprocess.run(
        [sys.executable, "-c", CREATE_TABLES, new.name], capture_output=True, timeout=120 * TIMEOUT_SCALE, text=True
    )
    assert "NeonizeError" in out.stdout, out.stdout + out.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        fill(conn, "whatsmeow_device", {"jid": JID, "lid": "99887766:7@lid"})
        fill(conn, "whatsmeow_identity_keys", {"our_jid": JID, "their_id": "someone"})

    ref = DeviceRef(engine="whatsapp", jid=JID, store=new.ref)
    assert DeviceRef.from_record(ref.to_record()) == ref
    store = stores.of(ref)  # any node: the keys are in the shared database
    stored = store.read(JID)
    assert stored is not None and stored.lid == "99887766:7@lid"
    assert store.read() is None  # the shared store holds every node's devices: only a JID names one
    assert store.delete(JID) and not store.delete(JID)
    assert store.read(JID) is None
    with psycopg.connect(url, autocommit=True) as conn:
        (left,) = conn.execute("SELECT count(*) FROM whatsmeow_identity_keys").fetchone()
    assert left == 0
    with pytest.raises(ValueError, match="cluster"):
        DeviceStores(tmp_path).of(ref)  # a single gateway cannot use a cluster's device


def test_the_url_whatsmeow_gets_and_the_worker_environment(tmp_path: Path) -> None:
    assert whatsmeow_url("postgresql://u@h/db") == "postgresql://u@h/db?sslmode=prefer"
    assert whatsmeow_url("postgresql://u@h/db?options=x") == "postgresql://u@h/db?options=x&sslmode=prefer"
    assert whatsmeow_url("postgresql://u@h/db?sslmode=require") == "postgresql://u@h/db?sslmode=require"
    secret = "postgresql://zapgate:s3cret@db.internal/zapgate"
    clustered = fast_settings(tmp_path, engine="whatsapp", database_url=secret)
    env = worker_environment({ipc.DEVICE_DATABASE_ENV: "stale"}, clustered)
    assert env[ipc.DEVICE_DATABASE_ENV] == secret  # the environment, not the command line: it holds a password
    single = fast_settings(tmp_path, engine="whatsapp")
    assert ipc.DEVICE_DATABASE_ENV not in worker_environment({ipc.DEVICE_DATABASE_ENV: "stale"}, single)
