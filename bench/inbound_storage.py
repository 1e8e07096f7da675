"""The storage cost of a received message, measured alone: what the writer thread of an inbound burst does.

N received messages spread over S sessions are written in transactions of B messages, as a group commit of the
gateway writes them (``Storage.submit_inbound``'s batch function, then ``COMMIT``), on one SQLite connection with
the gateway's schema and settings, in one thread, with no event loop. Two variants, in turn in the same run:

- ``full``: each message as the gateway stores it: its ``inbound`` row, its contact, its entry in the chat
  history (``messages`` and ``chats``) and its ``message.received`` event;
- ``no-history``: the same without the chat-history entry (what a received message cost before the history
  existed), which isolates that entry's share.

For each: CPU and wall time per message (the statements, then the ``COMMIT``), and the WAL bytes written per
message (automatic checkpoints off during the run, so the WAL holds every frame): SQLite writes each page a
transaction changed once per commit, so WAL bytes per message say how many B-tree pages a message dirties.

    .venv/bin/python bench/inbound_storage.py --messages 20000 --batch 200 --sessions 100 --dir zapgate-data
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import emit
from zapgate.storage import NewEvent, StoredMessage, open_database
from zapgate.storage.store import InboundRequest, _record_inbound_batch

CHAT = "5511977776666@s.whatsapp.net"
VARIANTS = ("full", "no-history")


def _requests(count: int, sessions: list[str], *, history: bool) -> list[InboundRequest]:
    """``count`` received messages with WhatsApp-like random ids, round robin over ``sessions``."""
    requests = []
    for i in range(count):
        message_id = "3EB0" + secrets.token_hex(8).upper()
        data = b'{"message_id":"%s","chat":"%s","from":"+5511977776666","text":"burst message %d"}' % (
            message_id.encode(),
            CHAT.encode(),
            i,
        )
        message = StoredMessage(
            chat=CHAT,
            message_id=message_id,
            from_me=False,
            timestamp=1_764_770_000 + i,
            kind="text",
            content=b'{"kind":"text","text":"burst message %d"}' % i,
            sender=CHAT,
            text=f"burst message {i}",
            push_name="Ana",
            read=False,
        )
        session = sessions[i % len(sessions)]
        event = NewEvent("tenant", session, "message.received", data)
        entry = message if history else None
        now = time.time()
        requests.append(InboundRequest(session, message_id, CHAT, (event,), now, CHAT, "text", None, None, entry))
    return requests


def measure(variant: str, args: argparse.Namespace, where: Path) -> dict[str, Any]:
    db = open_database(where / f"{variant}.db", synchronous=args.sync)
    conn = db._connect(writer=True)
    try:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        sessions = [f"ses_{secrets.token_hex(16)}" for _ in range(args.sessions)]
        requests = _requests(args.messages, sessions, history=variant == "full")
        wal = where / f"{variant}.db-wal"
        wal_before = wal.stat().st_size if wal.exists() else 0
        apply_s = commit_s = 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, len(requests), args.batch):
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            _record_inbound_batch(conn, requests[start : start + args.batch])
            applied = time.perf_counter()
            conn.execute("COMMIT")
            apply_s += applied - began
            commit_s += time.perf_counter() - applied
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = len(requests)
        return {
            "cpu_us": 1e6 * cpu / n,
            "wall_us": 1e6 * wall / n,
            "statements_us": 1e6 * apply_s / n,
            "commit_us": 1e6 * commit_s / n,
            "wal_bytes": (wal.stat().st_size - wal_before) / n,
        }
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200, help="messages per transaction")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--sync", default="full", choices=("full", "normal"), help="sqlite_synchronous")
    parser.add_argument("--dir", help="where the database is written (default: a temporary directory)")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result: dict[str, Any] = {
            "messages": args.messages,
            "batch": args.batch,
            "sessions": args.sessions,
            "sync": args.sync,
            "variants": {},
        }
        for variant in VARIANTS:
            row = result["variants"][variant] = measure(variant, args, Path(tmp))
            print(
                f"  {variant:<10} {row['cpu_us']:6.1f} us CPU/msg  {row['wall_us']:6.1f} us wall/msg "
                f"(statements {row['statements_us']:.1f}, commit {row['commit_us']:.1f})  "
                f"WAL {row['wal_bytes']:,.0f} bytes/msg",
                flush=True,
            )
    emit(result, args.out)


if __name__ == "__main__":
    main()
