"""The probe of ``bench/statements.py``, loaded by a gateway whose ``PYTHONPATH`` starts with this directory.

With ``BENCH_STATEMENTS_OUT`` set, every SQLite connection the process opens times each ``execute`` and
``executemany`` with the calling thread's CPU clock (``time.thread_time``), counted by thread and statement. The
first ``SIGUSR2`` starts counting (from zero), the second writes what was counted to ``BENCH_STATEMENTS_OUT`` as
JSON and stops. The probe's own cost (a Python call and two clock reads per statement) is in the figures.
Without the variable it does nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time
from typing import Any

_OUT = os.environ.get("BENCH_STATEMENTS_OUT")

if _OUT:
    _counting = False
    _counts: dict[tuple[str, str], list[float]] = {}  # (thread, statement) -> [calls, rows, cpu seconds]
    _threads: dict[str, int] = {}  # thread name -> native thread id
    _spaces = re.compile(r"\s+")
    _row_lists = re.compile(r"(\(\?(?:, \?)*\))(?:, \(\?(?:, \?)*\))+")
    _in_lists = re.compile(r"IN \(\?(?:, ?\?)+\)")

    def _key(sql: str) -> str:
        text = _spaces.sub(" ", sql).strip()
        text = _row_lists.sub(r"\1, …", text)  # a multi-row statement counts as one, whatever its rows
        return _in_lists.sub("IN (?, …)", text)[:110]

    def _count(sql: str, rows: int, began: float) -> None:
        spent = time.thread_time() - began
        thread = threading.current_thread()
        _threads.setdefault(thread.name, threading.get_native_id())
        entry = _counts.setdefault((thread.name, _key(sql)), [0, 0, 0.0])
        entry[0] += 1
        entry[1] += rows
        entry[2] += spent

    class _Timed(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if not _counting:
                return super().execute(sql, *args)
            began = time.thread_time()
            try:
                return super().execute(sql, *args)
            finally:
                _count(sql, 1, began)

        def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if not _counting:
                return super().executemany(sql, rows)
            rows = list(rows)
            began = time.thread_time()
            try:
                return super().executemany(sql, rows)
            finally:
                _count(sql, len(rows), began)

    _connect = sqlite3.connect

    def _timed_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", _Timed)
        return _connect(*args, **kwargs)

    sqlite3.connect = _timed_connect  # type: ignore[assignment]

    def _toggle(_signum: int, _frame: Any) -> None:
        global _counting
        if not _counting:
            _counts.clear()
            _counting = True
            return
        _counting = False
        rows = [[thread, sql, *entry] for (thread, sql), entry in _counts.items()]
        with open(_OUT, "w") as out:
            json.dump({"threads": _threads, "statements": rows}, out)

    signal.signal(signal.SIGUSR2, _toggle)
