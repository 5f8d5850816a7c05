"""The server's Prometheus metrics: each method moves its metric, and /metrics serves them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from ivr.server.metrics import HANGUP_REASONS, ServerMetrics, metrics_handler


def samples(metrics: ServerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    body, _ = metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_a_fresh_registry_shows_every_metric_at_zero() -> None:
    m = ServerMetrics()
    s = samples(m)
    for name in (
        "ivr_calls_active",
        "ivr_calls_started_total",
        "ivr_recordings_active",
        "ivr_recordings_started_total",
        "ivr_frames_late_total",
        "ivr_frames_dropped_total",
        "ivr_call_setup_seconds_count",
        "ivr_dtmf_latency_seconds_count",
        "ivr_clock_tick_lateness_seconds_count",
    ):
        assert s[(name, ())] == 0, name
    for reason in HANGUP_REASONS:
        assert value(m, "ivr_calls_ended_total", reason=reason) == 0


def test_calls_and_recordings_are_counted_and_gauged() -> None:
    m = ServerMetrics()
    for _ in range(3):
        m.call_started()
    m.recording_started()
    m.recording_started()
    m.recording_ended()
    m.call_ended("caller")
    m.call_ended("no_answer")
    assert value(m, "ivr_calls_active") == 1
    assert value(m, "ivr_calls_started_total") == 3
    assert value(m, "ivr_calls_ended_total", reason="caller") == 1
    assert value(m, "ivr_calls_ended_total", reason="no_answer") == 1
    assert value(m, "ivr_calls_ended_total", reason="agent") == 0
    assert value(m, "ivr_recordings_active") == 1
    assert value(m, "ivr_recordings_started_total") == 2


def test_latencies_land_in_their_buckets() -> None:
    m = ServerMetrics()
    for s in (0.004, 0.03, 0.2):
        m.observe_setup(s)
    m.observe_dtmf_latency(0.025)
    for s in (0.0001, 0.015, 0.07, -0.001):  # a tick can never be early: counted as 0
        m.observe_tick_lateness(s)
    assert value(m, "ivr_call_setup_seconds_bucket", le="0.005") == 1
    assert value(m, "ivr_call_setup_seconds_bucket", le="0.05") == 2
    assert value(m, "ivr_call_setup_seconds_bucket", le="+Inf") == 3
    assert value(m, "ivr_call_setup_seconds_sum") == pytest.approx(0.234)
    assert value(m, "ivr_dtmf_latency_seconds_bucket", le="0.02") == 0
    assert value(m, "ivr_dtmf_latency_seconds_bucket", le="0.03") == 1
    assert value(m, "ivr_clock_tick_lateness_seconds_bucket", le="0.0005") == 2
    assert value(m, "ivr_clock_tick_lateness_seconds_bucket", le="0.02") == 3
    assert value(m, "ivr_clock_tick_lateness_seconds_bucket", le="0.06") == 3
    assert value(m, "ivr_clock_tick_lateness_seconds_count") == 4


def test_frames_late_and_dropped() -> None:
    m = ServerMetrics()
    m.frames(late=3)
    m.frames(late=2, dropped=5)
    m.frames()
    assert value(m, "ivr_frames_late_total") == 5
    assert value(m, "ivr_frames_dropped_total") == 5


def test_registries_are_independent() -> None:
    a, b = ServerMetrics(), ServerMetrics()
    a.call_started()
    assert value(a, "ivr_calls_active") == 1
    assert value(b, "ivr_calls_active") == 0


async def test_the_handler_serves_the_text_exposition(aiohttp_client: Any) -> None:
    m = ServerMetrics()
    m.call_started()
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(m))
    client = await aiohttp_client(app)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert "# TYPE ivr_calls_active gauge" in text
    assert "ivr_calls_active 1.0" in text
    resp = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await resp.text()).rstrip().endswith("# EOF")
