"""The event loop of the server and the runner: uvloop when installed (a declared dependency)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from ivr import eventloop as loop


async def _running_loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop() -> None:
    assert loop.loop_factory() is uvloop.new_event_loop
    assert loop.loop_name() == "uvloop"
    assert loop.run(_running_loop_module()).startswith("uvloop")


def test_the_loop_is_closed_after_the_run() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    loop.run(main())
    assert seen[0].is_closed()


@pytest.mark.parametrize(("choice", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_a_loop_can_be_chosen(choice: loop.LoopChoice, module: str) -> None:
    assert loop.loop_name(choice) == module
    assert loop.run(_running_loop_module(), choice).startswith(module)
    made = loop.new_loop(choice)
    try:
        assert type(made).__module__.startswith(module)
    finally:
        made.close()


async def test_a_loop_whose_cancellation_a_library_swallowed_still_stops_at_its_next_sleep() -> (
    None
):
    """As psycopg may do with a query cancelled mid-flight: the task was cancelled, the
    CancelledError never reached it, and a plain sleep would then last for ever."""
    from ivr.eventloop import cancelling, sleep_or_stop

    started = asyncio.Event()
    seen: list[bool] = []

    async def background() -> None:
        while True:
            try:
                started.set()
                await asyncio.sleep(3600)  # the "query"
            except asyncio.CancelledError:
                pass  # swallowed, as by a driver cleaning up
            seen.append(cancelling())
            await sleep_or_stop(3600)

    task = asyncio.create_task(background())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert seen == [True]
