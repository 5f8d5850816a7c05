"""What the call path reports about itself, as a Protocol the server's metrics fill in.

The call path counts calls, recordings, latencies and limits through this
narrow interface; :class:`ivr.server.metrics.ServerMetrics` implements it
with Prometheus. :class:`NoMetrics` counts nothing, for a switchboard that
nobody scrapes (a unit test, a simulation).
"""

from __future__ import annotations

from typing import Protocol


class CallMetrics(Protocol):
    """One method per fact the call path reports."""

    def call_started(self) -> None: ...

    def call_ended(self, reason: str) -> None: ...

    def recording_started(self) -> None: ...

    def recording_ended(self) -> None: ...

    def recording_truncated(self) -> None: ...

    def recording_gap(self, seconds: float) -> None: ...

    def observe_setup(self, seconds: float) -> None: ...

    def observe_dtmf_latency(self, seconds: float) -> None: ...

    def frames(self, late: int = 0, dropped: int = 0) -> None: ...

    def limit_close(self, limit: str) -> None: ...


class NoMetrics:
    """Counts nothing."""

    def call_started(self) -> None:
        pass

    def call_ended(self, reason: str) -> None:
        pass

    def recording_started(self) -> None:
        pass

    def recording_ended(self) -> None:
        pass

    def recording_truncated(self) -> None:
        pass

    def recording_gap(self, seconds: float) -> None:
        pass

    def observe_setup(self, seconds: float) -> None:
        pass

    def observe_dtmf_latency(self, seconds: float) -> None:
        pass

    def frames(self, late: int = 0, dropped: int = 0) -> None:
        pass

    def limit_close(self, limit: str) -> None:
        pass
