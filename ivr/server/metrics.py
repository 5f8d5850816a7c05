"""Prometheus metrics of the server, served as text at ``/metrics``.

:class:`ServerMetrics` owns one :class:`prometheus_client.CollectorRegistry`
(never the process-global one, so several apps, and tests, can live in one
process) and gives the server one method per fact it reports: a call started
or ended (by hangup reason), a recording started or ended, a set-up time, a
DTMF-to-response time, a media clock tick's lateness, caller frames late or
dropped. :func:`metrics_handler` makes the aiohttp handler for ``/metrics``.

Metric names follow Prometheus conventions: base units (seconds), ``_total``
on counters, one family per quantity with labels for its kinds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

# docs/protocol.md, "hangup": every reason a call can end with (pre-created, so each shows 0).
HANGUP_REASONS = ("caller", "agent", "flow", "no_answer", "timeout", "shutdown", "error")
# docs/protocol.md, "Limits": the error codes a connection is closed with for a limit.
WS_LIMITS = ("rate_limited", "too_many_events", "too_many_errors")
# What became of each new SIP INVITE (docs/config.md#sip: the checks in order).
SIP_OUTCOMES = (
    "placed",
    "not_found",
    "forbidden",
    "busy",
    "no_codec",
    "bad_sdp",
    "cancelled",
    "storage",
    "error",
)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
JITTER_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)

SETUP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DTMF_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)
# The capacity thresholds (10, 20, 60 ms) are bucket edges.
TICK_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.5)


class ServerMetrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._calls_active = Gauge("ivr_calls_active", "Calls in progress.", registry=r)
        self._calls_started = Counter("ivr_calls_started", "Calls answered.", registry=r)
        self._calls_ended = Counter(
            "ivr_calls_ended", "Calls ended, by hangup reason.", ["reason"], registry=r
        )
        for reason in HANGUP_REASONS:
            self._calls_ended.labels(reason)
        self._recordings_active = Gauge(
            "ivr_recordings_active", "Recordings being written.", registry=r
        )
        self._recordings_started = Counter(
            "ivr_recordings_started", "Recordings started.", registry=r
        )
        self._setup = Histogram(
            "ivr_call_setup_seconds",
            "From the caller's dial to the call's answer.",
            buckets=SETUP_BUCKETS_S,
            registry=r,
        )
        self._dtmf = Histogram(
            "ivr_dtmf_latency_seconds",
            "From a digit received to the first frame of what follows.",
            buckets=DTMF_BUCKETS_S,
            registry=r,
        )
        self._tick = Histogram(
            "ivr_clock_tick_lateness_seconds",
            "How late each 20 ms media clock tick ran against its schedule.",
            buckets=TICK_BUCKETS_S,
            registry=r,
        )
        self._frames_late = Counter(
            "ivr_frames_late",
            "Caller frames missing at their tick (played as silence).",
            registry=r,
        )
        self._frames_dropped = Counter(
            "ivr_frames_dropped", "Caller frames dropped from a full jitter buffer.", registry=r
        )
        self._ticks_skipped = Counter(
            "ivr_clock_ticks_skipped",
            "Media clock ticks skipped because the process stalled (written as silence).",
            registry=r,
        )
        self._gap_seconds = Counter(
            "ivr_recording_gap_seconds",
            "Seconds of silence written into recordings for skipped ticks (their `gaps`).",
            registry=r,
        )
        self._truncated = Counter(
            "ivr_recordings_truncated",
            "Recordings ended early because their file could not be written.",
            registry=r,
        )
        self._storage_failing = Gauge(
            "ivr_storage_failing",
            "1 while the database refuses writes (full or failing disk), else 0.",
            registry=r,
        )
        self._storage_failures = Counter(
            "ivr_storage_write_failures", "Database writes that failed.", registry=r
        )
        self._limit_closes = Counter(
            "ivr_ws_limit_closes",
            "WebSocket connections closed for going over a limit, by limit.",
            ["limit"],
            registry=r,
        )
        for limit in WS_LIMITS:
            self._limit_closes.labels(limit)
        self._sip_invites = Counter(
            "ivr_sip_invites", "New SIP INVITEs, by what became of them.", ["outcome"], registry=r
        )
        for outcome in SIP_OUTCOMES:
            self._sip_invites.labels(outcome)
        self._sip_malformed = Counter(
            "ivr_sip_malformed",
            "SIP messages that could not be parsed (answered 400, or dropped).",
            registry=r,
        )
        self._rtp_foreign = Counter(
            "ivr_rtp_foreign_packets",
            "RTP and RTCP packets from an address other than the call's peer (dropped).",
            registry=r,
        )
        self._rtcp_loss = Histogram(
            "ivr_rtcp_peer_fraction_lost",
            "At a SIP call's end: the fraction of our RTP its peer last reported lost (RTCP).",
            buckets=LOSS_BUCKETS,
            registry=r,
        )
        self._rtcp_jitter = Histogram(
            "ivr_rtcp_peer_jitter_seconds",
            "At a SIP call's end: the interarrival jitter its peer last reported (RTCP).",
            buckets=JITTER_BUCKETS_S,
            registry=r,
        )

    # -- calls ------------------------------------------------------------------

    def call_started(self) -> None:
        self._calls_started.inc()
        self._calls_active.inc()

    def call_ended(self, reason: str) -> None:
        """A call ended with hangup ``reason`` (one of docs/protocol.md's reasons, or another)."""
        self._calls_active.dec()
        self._calls_ended.labels(reason).inc()

    # -- recordings -------------------------------------------------------------

    def recording_started(self) -> None:
        self._recordings_started.inc()
        self._recordings_active.inc()

    def recording_ended(self) -> None:
        self._recordings_active.dec()

    # -- latencies --------------------------------------------------------------

    def observe_setup(self, seconds: float) -> None:
        self._setup.observe(seconds)

    def observe_dtmf_latency(self, seconds: float) -> None:
        self._dtmf.observe(seconds)

    def observe_tick_lateness(self, seconds: float) -> None:
        self._tick.observe(max(seconds, 0.0))

    # -- media ------------------------------------------------------------------

    def frames(self, late: int = 0, dropped: int = 0) -> None:
        """Count caller frames found late or dropped (e.g. from a call's stats as it ends)."""
        if late:
            self._frames_late.inc(late)
        if dropped:
            self._frames_dropped.inc(dropped)

    def ticks_skipped(self, ticks: int) -> None:
        self._ticks_skipped.inc(ticks)

    def recording_gap(self, seconds: float) -> None:
        self._gap_seconds.inc(seconds)

    def recording_truncated(self) -> None:
        self._truncated.inc()

    # -- storage and limits -----------------------------------------------------

    def storage_failing(self, failing: bool) -> None:
        """A store write failed (True), or writes succeed again (False)."""
        self._storage_failing.set(1 if failing else 0)
        if failing:
            self._storage_failures.inc()

    def limit_close(self, limit: str) -> None:
        """A WebSocket was closed for going over ``limit`` (one of :data:`WS_LIMITS`)."""
        self._limit_closes.labels(limit).inc()

    # -- SIP and RTP --------------------------------------------------------------

    def sip_invite(self, outcome: str) -> None:
        """A new INVITE was placed or refused (one of :data:`SIP_OUTCOMES`)."""
        self._sip_invites.labels(outcome).inc()

    def sip_malformed(self, count: int = 1) -> None:
        self._sip_malformed.inc(count)

    def rtp_call_ended(self, foreign: int, loss: float | None, jitter_s: float | None) -> None:
        """A SIP call's media closed: packets from strangers, the peer's last RTCP figures."""
        if foreign:
            self._rtp_foreign.inc(foreign)
        if loss is not None:
            self._rtcp_loss.observe(loss)
        if jitter_s is not None:
            self._rtcp_jitter.observe(jitter_s)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Every metric, in the format the ``Accept`` header asks for, and its content type.

        Without one, the Prometheus text format 0.0.4; OpenMetrics when asked for.
        """
        encoder, content_type = choose_encoder(accept)
        return bytes(encoder(self.registry)), content_type


def metrics_handler(
    metrics: ServerMetrics, token: str | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler serving ``metrics`` (for ``GET /metrics``).

    With ``token``, only a request with ``Authorization: Bearer <token>`` is
    served; any other gets 401 (RFC 6750 section 3: with ``WWW-Authenticate:
    Bearer``). The token is compared in constant time (its SHA-256, so not
    even its length shows) and never logged.
    """
    want = hashlib.sha256(token.encode()).digest() if token is not None else None

    async def handler(request: web.Request) -> web.Response:
        if want is not None:
            header = request.headers.get("Authorization", "")
            given = header[7:].strip() if header.startswith("Bearer ") else ""
            if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), want):
                return web.json_response(
                    {
                        "error": {
                            "code": "unauthorized",
                            "message": "wrong metrics token" if given else "missing bearer token",
                        }
                    },
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body, content_type = metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler
