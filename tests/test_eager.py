"""``start_eagerly``: a task whose first step runs in the caller's turn, as that task; what waits goes on in the task,
with results, exceptions, cancellation, timeouts and context as in any task (``src/zapgate/eager.py``)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from zapgate.eager import start_eagerly

where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="caller")


async def test_a_coroutine_that_waits_for_nothing_finishes_in_the_callers_turn() -> None:
    seen: list[str] = []

    async def ping() -> None:
        seen.append("answered")

    task = start_eagerly(ping(), name="ping")
    assert seen == ["answered"]  # before the loop turned once
    await asyncio.wait_for(task, 5)
    assert task.done() and task.result() is None


async def test_the_first_step_runs_as_the_new_task_and_the_caller_is_itself_again_after() -> None:
    caller = asyncio.current_task()
    during: list[asyncio.Task[object] | None] = []

    async def command() -> None:
        during.append(asyncio.current_task())

    task = start_eagerly(command(), name="cmd")
    assert during == [task]  # an anyio cancel scope or an asyncio.timeout entered there belongs to the task
    assert asyncio.current_task() is caller
    await task


async def test_a_timeout_entered_in_the_first_step_cancels_the_task_not_the_caller() -> None:
    outcome: list[str] = []

    async def download() -> None:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            outcome.append("timed out")

    task = start_eagerly(download(), name="download")
    await asyncio.sleep(0.2)  # the caller sleeps through the timeout, uncancelled
    assert task.done() and outcome == ["timed out"]


async def test_what_waits_goes_on_in_the_task_with_the_awaited_result() -> None:
    seen: list[object] = []
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def command() -> None:
        seen.append("started")
        seen.append(await gate)
        await asyncio.sleep(0)  # a bare yield, and another wait after the first
        seen.append(await asyncio.sleep(0.01, "later"))

    task = start_eagerly(command(), name="cmd-1")
    assert task.get_name() == "cmd-1"
    assert seen == ["started"]
    await asyncio.sleep(0.01)
    assert seen == ["started"] and not task.done()  # it waits for the future, not for a turn
    gate.set_result(42)
    await asyncio.wait_for(task, 5)
    assert seen == ["started", 42, "later"]


async def test_a_first_step_that_yields_bare_goes_on_in_the_next_turn() -> None:
    seen: list[str] = []

    async def command() -> None:
        await asyncio.sleep(0)
        seen.append("resumed")

    task = start_eagerly(command(), name="cmd")
    assert seen == []
    await asyncio.wait_for(task, 5)
    assert seen == ["resumed"]


@pytest.mark.parametrize("where_it_fails", ["first step", "later"])
async def test_an_exception_ends_the_task_with_it(where_it_fails: str) -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    caught: list[BaseException] = []

    async def command() -> None:
        if where_it_fails == "first step":
            raise LookupError("at once")
        try:
            await gate
        except ValueError as exc:
            caught.append(exc)
            raise LookupError("after") from exc

    task = start_eagerly(command(), name="cmd")
    if where_it_fails == "later":
        gate.set_exception(ValueError("refused"))
    with pytest.raises(LookupError):
        await task
    assert [str(e) for e in caught] == ([] if where_it_fails == "first step" else ["refused"])


@pytest.mark.parametrize("waits_on", ["a future", "a bare yield"])
@pytest.mark.parametrize("cancelled", ["at once", "after a turn"])
async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits(waits_on: str, cancelled: str) -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    events: list[str] = []

    async def command() -> None:
        try:
            if waits_on == "a future":
                await gate
            else:
                while True:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("released")

    task = start_eagerly(command(), name="cmd")
    if cancelled == "after a turn":
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert events == ["cancelled", "released"]


@pytest.mark.parametrize("ended", ["returned", "raised"])
async def test_a_task_whose_coroutine_ended_in_its_first_step_ends_as_it_did_even_if_cancelled(ended: str) -> None:
    done: list[str] = []

    async def ping() -> None:
        done.append("answered")
        if ended == "raised":
            raise LookupError("refused")

    task = start_eagerly(ping(), name="ping")
    task.cancel()  # as a closing connection cancels its commands' tasks: too late, as for a 3.12 eager task
    if ended == "raised":
        with pytest.raises(LookupError):
            await task
    else:
        assert await task is None
    assert not task.cancelled() and done == ["answered"]


async def test_a_coroutine_cancelled_in_its_first_step_ends_the_task_cancelled() -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.cancel()
    released: list[bool] = []

    async def command() -> None:
        try:
            await done  # already cancelled: raises at once, without waiting
        finally:
            released.append(True)

    task = start_eagerly(command(), name="cmd")
    assert released == [True]
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_coroutine_keeps_its_own_context() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def command() -> None:
        where.set("command")
        await gate
        seen.append(where.get())

    task = start_eagerly(command(), name="cmd")
    assert where.get() == "caller"  # what the first step set stays with the task
    gate.set_result(None)
    await task
    assert seen == ["command"]
