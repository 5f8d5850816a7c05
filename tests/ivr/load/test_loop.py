"""The runner's event loop: uvloop when installed (it is a declared dependency)."""

from __future__ import annotations

import asyncio

import uvloop

from ivr.load import loop


def test_the_runner_runs_on_uvloop() -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert loop.loop_factory() is uvloop.new_event_loop
    assert loop.loop_name() == "uvloop"
    assert loop.run(main()).startswith("uvloop")


def test_the_loop_is_closed_after_the_run() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    loop.run(main())
    assert seen[0].is_closed()
