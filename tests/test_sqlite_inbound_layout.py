"""How SQLite lays out the received messages' rows (migration 12): a burst's cost is in the pages each commit
writes, and the ``inbound`` rows were the largest part of them (bench/findings.md, round 21)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def test_received_rows_are_appended_and_found_through_their_key_alone(tmp_path: Path) -> None:
    """``inbound`` is a table with row ids (rows appended in the order they arrive), not one clustered by its random
    key; looking up which ids a session received before reads the unique index alone."""
    from zapgate.storage.schema import migrations_for

    conn = sqlite3.connect(tmp_path / "layout.db")
    try:
        for script in migrations_for("sqlite"):
            conn.executescript(script)
        (without_rowid,) = conn.execute("SELECT wr FROM pragma_table_list WHERE name = 'inbound'").fetchone()
        assert without_rowid == 0
        sql = "SELECT message_id FROM inbound WHERE session_id = ? AND message_id IN (?, ?)"
        plan = " ".join(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("s", "a", "b")))
        assert "COVERING INDEX" in plan, plan
    finally:
        conn.close()
