"""A database connection's thread (storage/threads.py): in order, in its own thread, errors to the caller, and a
caller that gives up does not stop it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from zapgate.storage.threads import ConnectionThread


async def test_functions_run_in_one_thread_in_the_order_they_were_handed() -> None:
    thread = ConnectionThread("t-order")
    seen: list[tuple[int, str]] = []

    def note(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    results = await asyncio.gather(*(thread.run(note, i) for i in range(50)))
    thread.stop()
    assert results == [i * 2 for i in range(50)]
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"t-order"}


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    thread = ConnectionThread("t-error")

    def fail() -> None:
        raise ValueError("no such row")

    with pytest.raises(ValueError, match="no such row"):
        await thread.run(fail)
    assert await thread.run(lambda: "still here") == "still here"
    thread.stop()


async def test_a_cancelled_caller_does_not_stop_the_function() -> None:
    thread = ConnectionThread("t-cancel")
    started, finished = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        time.sleep(0.05)
        finished.set()

    pending = thread.run(slow)
    await asyncio.to_thread(started.wait, 2)
    pending.cancel()
    assert await thread.run(lambda: finished.is_set())  # the next function ran after it, in order
    thread.stop()


async def test_stop_ends_the_thread_after_the_work_already_handed_to_it() -> None:
    thread = ConnectionThread("t-stop")
    last = thread.run(time.sleep, 0.02)
    thread.stop()
    await last
    for _ in range(200):
        if not any(t.name == "t-stop" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.01)
    assert not any(t.name == "t-stop" for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="t-stop was stopped"):
        thread.run(time.sleep, 0)  # never a second thread on the same queue (and connection)
