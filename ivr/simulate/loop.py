"""An asyncio event loop on virtual time: when nothing can run, the clock jumps to the next timer.

:class:`VirtualClockLoop` is asyncio's own selector loop with two changes:
``time()`` returns a virtual clock, and the selector, where asyncio would
block until the next timer, moves that clock forward to it instead and
returns at once. Everything scheduled by time (``asyncio.sleep``,
``call_later``, the media clock's 20 ms ticks, timeouts) runs in the same
order as it would in real time, but as fast as the CPU allows, and the same
way on every run: nothing depends on how fast the machine is.

Two things would break that, and both are kept out of the simulation:
sockets (its calls use in-memory transports) and threads. Work handed to
an executor (``asyncio.to_thread``) is waited for in real time before the
virtual clock moves on; the store and the recorder run inline in a
simulation (``Store(inline=True)``, ``RecorderPool(inline=True)``).

If nothing is scheduled and nothing is waited for, the simulation could
never go on: :class:`Stalled` says so, where a real loop would hang.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

_REAL_WAIT_S = 1.0  # between checks while an executor's job is running
_POLL_EVERY = 256  # loop turns between real polls while no executor job runs


class Stalled(RuntimeError):
    """Nothing is due and nothing is running: the simulated world would wait forever."""


class _Selector(selectors.DefaultSelector):
    """A selector that does not wait: it advances the loop's virtual clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualClockLoop | None = None
        self._polls = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self.loop
        events: list[tuple[selectors.SelectorKey, int]] = []
        self._polls += 1
        if loop is None or loop.threads or self._polls % _POLL_EVERY == 0:
            # Only a thread (or a signal) writes to the loop's self-pipe; with no
            # executor job running, the real poll is needed only to drain it now and then.
            events = super().select(0)
        if events or timeout == 0 or loop is None:
            return events
        if loop.threads:
            # An executor's job (a real thread) is running: wait for it in real
            # time; its result comes through the loop's self-pipe.
            real = _REAL_WAIT_S if timeout is None else min(timeout, _REAL_WAIT_S)
            return list(super().select(real))
        if timeout is None:
            raise Stalled("nothing is scheduled and nothing is running: the simulation is stuck")
        loop.advance(timeout)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """asyncio's loop on a virtual clock that starts at ``start`` seconds."""

    def __init__(self, start: float = 0.0) -> None:
        selector = _Selector()
        super().__init__(selector)
        selector.loop = self
        self._virtual = start
        self.threads = 0
        """Executor jobs not yet finished: the clock waits for them."""

    def time(self) -> float:
        return self._virtual

    def advance(self, seconds: float) -> None:
        """Move the virtual clock ``seconds`` on (never back)."""
        if seconds > 0:
            self._virtual += seconds

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.threads += 1

        def done(_: asyncio.Future[T]) -> None:
            self.threads -= 1

        future.add_done_callback(done)
        return future
