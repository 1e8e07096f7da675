"""Groups: sending to a large simulated group (issue 12), against a one-to-one send measured in the same run.

Two sessions are paired (``owner`` and ``member``); the owner creates groups of each size, whose other members
are simulated accounts (``ZAPGATE_SIM_CONTACTS``), with ``member`` in each. For every size, and for the baseline
(one-to-one, owner → member), the script sends ``--repeats`` texts one after the other and times:

- ``reply``: ``message.send`` until its reply (``sent``: the simulated server stored one delivery and mailed the
  message to every member's linked devices, in one transaction);
- ``delivered``: ``message.send`` until the member session's ``message.received`` event;
- with ``--mention-all``, the group sends mention ``all`` (every member's JID in the message).

It also times ``group.create`` and ``group.info`` at each size. whatsmeow's own cost of a large group (the
participant device lists it fetches and encrypts for, whatsmeow#1077) is not in the simulator: these figures are
the gateway's and the simulated server's share.

    .venv/bin/python bench/groups.py --sizes 10,100,1000 --repeats 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from procs import Client, create_tokens, emit, start_gateway

OWNER, MEMBER = "5511900000001", "5511900000002"


def contact(i: int) -> str:
    return f"1555{i:07d}"


async def timed_sends(client: Client, to: str, repeats: int, mentions: list[str] | None) -> dict[str, float]:
    replies, delivered = [], []
    for n in range(repeats):
        text = f"bench {to} {n}"
        arrived = client.wait_event(
            lambda f, text=text: f.event == "message.received" and f.session == "member" and f.data["text"] == text
        )
        began = time.perf_counter()
        fields: dict[str, Any] = {"session": "owner", "to": to, "text": text}
        if mentions:
            fields["mentions"] = mentions
        sent = await client.call("message.send", **fields)
        replied = time.perf_counter()
        if sent["status"] != "sent":
            raise RuntimeError(f"not sent: {sent}")
        await asyncio.wait_for(arrived, 60)
        done = time.perf_counter()
        replies.append((replied - began) * 1000)
        delivered.append((done - began) * 1000)
    return {
        "reply_ms_median": statistics.median(replies),
        "delivered_ms_median": statistics.median(delivered),
        "delivered_ms_max": max(delivered),
    }


async def run(url: str, token: str, sizes: list[int], repeats: int, mention_all: bool) -> dict[str, Any]:
    client = await Client.open(url, token)
    try:
        await client.pair("owner", OWNER)
        await client.pair("member", MEMBER)
        await timed_sends(client, f"+{MEMBER}", 3, None)  # warm-up
        baseline = await timed_sends(client, f"+{MEMBER}", repeats, None)
        reply, delivered = baseline["reply_ms_median"], baseline["delivered_ms_median"]
        print(f"  one-to-one: reply {reply:.2f} ms, delivered {delivered:.2f} ms")
        rows = []
        for size in sizes:
            others = [f"+{contact(i)}" for i in range(1, size - 1)]
            began = time.perf_counter()
            created = await client.call(
                "group.create", session="owner", subject=f"bench {size}", participants=[f"+{MEMBER}", *others]
            )
            create_ms = (time.perf_counter() - began) * 1000
            group = created["group"]["group"]
            if created["group"]["size"] != size:
                raise RuntimeError(f"group of {created['group']['size']} members, not {size}")
            began = time.perf_counter()
            info = await client.call("group.info", session="member", group=group)
            info_ms = (time.perf_counter() - began) * 1000
            assert len(info["participants"]) == size
            figures = await timed_sends(client, group, repeats, ["all"] if mention_all else None)
            row = {"members": size, "create_ms": create_ms, "info_ms": info_ms, **figures}
            row["delivered_ratio"] = figures["delivered_ms_median"] / baseline["delivered_ms_median"]
            print(
                f"  {size:>5} members: create {create_ms:7.1f} ms, info {info_ms:6.1f} ms, send reply "
                f"{figures['reply_ms_median']:6.2f} ms, delivered {figures['delivered_ms_median']:6.2f} ms "
                f"({row['delivered_ratio']:.1f} x one-to-one)",
                flush=True,
            )
            rows.append(row)
        return {"baseline": baseline, "rows": rows}
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--mention-all", action="store_true", help="group sends mention every member")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    largest = max(args.sizes)
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        data_dir = Path(tmp) / "gateway"
        (token,) = create_tokens(data_dir, ["acme"])
        contacts = ",".join(contact(i) for i in range(1, largest))
        server = start_gateway(data_dir, sim_contacts=contacts)
        try:
            result = uvloop.run(run(server.url, token, args.sizes, args.repeats, args.mention_all))
        finally:
            server.stop()
    emit({"scenario": "groups", "mention_all": args.mention_all, **result}, args.out)


if __name__ == "__main__":
    main()
