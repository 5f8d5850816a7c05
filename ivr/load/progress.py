"""The live view of a run: calls started, active, done and failed, and the current p99s.

Workers report every half second (:mod:`ivr.load.worker`); :class:`Tally`
keeps each worker's latest counters and the last few seconds of samples, so
the p99s shown are *current* ones, not since the start. On a terminal the
line is redrawn in place (rich); otherwise a plain line is printed every few
seconds, fit for CI logs.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, TextIO

from ivr.load.metrics import Histogram, percentile

WINDOW_S = 5.0
PLAIN_EVERY_S = 5.0


class Tally:
    """The sum of the workers' latest progress reports."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.workers: dict[int, dict[str, Any]] = {}
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._lateness: deque[tuple[float, Histogram]] = deque()

    def update(self, report: dict[str, Any]) -> None:
        self.workers[int(report["worker"])] = report
        now = time.monotonic()
        for metric, values in report.get("samples", {}).items():
            q = self._samples.setdefault(metric, deque())
            q.extend((now, v) for v in values)
        late = report.get("lateness")
        if late and late.get("n"):
            self._lateness.append((now, Histogram.from_dict(late)))

    def _trim(self, now: float) -> None:
        for q in self._samples.values():
            while q and q[0][0] < now - WINDOW_S:
                q.popleft()
        while self._lateness and self._lateness[0][0] < now - WINDOW_S:
            self._lateness.popleft()

    def figures(self) -> dict[str, float]:
        """Counters summed over workers, and p99s over the last few seconds."""
        now = time.monotonic()
        self._trim(now)
        out: dict[str, float] = {
            k: float(sum(int(w.get(k, 0)) for w in self.workers.values()))
            for k in ("started", "active", "done", "failed")
        }
        out["t"] = max((float(w.get("t", 0.0)) for w in self.workers.values()), default=0.0)
        for metric, q in self._samples.items():
            out[metric] = percentile([v for _, v in q], 99.0)
        late = Histogram()
        for _, h in self._lateness:
            late.merge(h)
        out["frame_lateness_ms"] = late.percentile(99.0)
        return out

    def line(self) -> str:
        f = self.figures()

        def ms(name: str) -> str:
            v = f.get(name, math.nan)
            return "-" if math.isnan(v) else f"{v:.1f}"

        return (
            f"t={f['t']:5.1f}s  started {int(f['started'])}/{self.total}"
            f"  active {int(f['active'])}  done {int(f['done'])}  failed {int(f['failed'])}"
            f"  |  p99 set-up {ms('setup_answered_ms')} ms  dtmf {ms('dtmf_response_ms')} ms"
            f"  lateness {ms('frame_lateness_ms')} ms"
        )


class Display:
    """Shows a :class:`Tally` while the run goes on."""

    def __init__(self, tally: Tally, stream: TextIO | None, tty: bool | None = None) -> None:
        self.tally = tally
        self.stream = stream
        self.tty = bool(stream is not None and (tty if tty is not None else stream.isatty()))
        self._live: Any = None
        self._last_plain = 0.0
        if self.tty and stream is not None:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(
                Text(tally.line()),
                console=Console(file=stream),
                refresh_per_second=4,
                transient=False,
            )
            self._live.start()

    def refresh(self) -> None:
        if self.stream is None or not self.tally.workers:
            return
        if self._live is not None:
            self._live.update(self._text(self.tally.line()))
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            print(self.tally.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._text(self.tally.line()))
            self._live.stop()
            self._live = None
        elif self.stream is not None:
            print(self.tally.line(), file=self.stream, flush=True)
