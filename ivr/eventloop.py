"""The event loop the server and the load runner run on: uvloop when installed.

uvloop's transports and timers are implemented in C (libuv): for the many
small reads and writes of a media path (a frame per call every 20 ms, each
way) it takes a good deal less CPU than the standard loop's selector and
Python transports (``bench/capacity.py --trial norec:N --trial
norec@asyncio:N`` measures the two side by side). uvloop is a
declared dependency; the standard loop is the fallback, and a choice
(``ivr serve --loop asyncio``), so that everything also works, and is
tested, without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopChoice = Literal["auto", "uvloop", "asyncio"]
CHOICES: tuple[LoopChoice, ...] = ("auto", "uvloop", "asyncio")
Factory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(RuntimeError):
    """``uvloop`` was asked for and is not installed."""


def loop_factory(choice: LoopChoice = "auto") -> Factory | None:
    """The loop to make for ``choice``: uvloop's ``new_event_loop``, or None (the standard loop).

    ``auto``: uvloop if it is installed; ``asyncio``: always the standard
    loop; ``uvloop``: uvloop, or :class:`LoopUnavailable`.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        if choice == "uvloop":
            raise LoopUnavailable("--loop uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def loop_name(choice: LoopChoice = "auto") -> str:
    return "uvloop" if loop_factory(choice) is not None else "asyncio"


def new_loop(choice: LoopChoice = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop of ``choice`` (not set as the current one)."""
    factory = loop_factory(choice)
    return asyncio.new_event_loop() if factory is None else factory()


def run(main: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names (by default the fastest installed)."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def cancelling() -> bool:
    """Whether the running task has been asked to stop (``Task.cancel``).

    A loop that catches ``Exception`` to keep going after a failure must ask
    this before going on: a driver may turn the ``CancelledError`` of a query
    cancelled mid-flight into an error of its own (psycopg raises
    ``QueryCanceled`` after cancelling the query on the server), and the task,
    cancelled but unaware, would then sleep on, and whoever awaits it (a
    server stopping) would wait for ever.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def sleep_or_stop(seconds: float) -> None:
    """``asyncio.sleep``, unless the running task was asked to stop: then CancelledError.

    For the loops of background tasks: a cancellation that a library swallowed
    (it cleaned up and returned as if nothing happened) still ends the loop at
    its next sleep, instead of leaving the task asleep and its stopper waiting.
    """
    if cancelling():
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)
