"""The aiohttp application: ``create_app(settings)`` wires the parts together.

Start-up (``cleanup_ctx``, in order): open the store, load the prompts, seed
the store from the config, build the switchboard (and its bots), start the
media clock. Shutdown first ends every call with reason ``shutdown`` (so each
recording is closed and complete), then stops the clock and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from ivr import api, compliance, privacy, serving, ws
from ivr.agent import PersonSeat
from ivr.audit import AuditLog
from ivr.auth import Authenticator, HashParams, LoginLimiter
from ivr.clock import MediaClock
from ivr.config import Config, load_config
from ivr.errors import InvalidConfig, Problem
from ivr.metrics import ServerMetrics, metrics_handler
from ivr.prompt import PromptLibrary
from ivr.recorder import RecorderPool
from ivr.repair import repair
from ivr.seed import seed_and_load
from ivr.store import Store
from ivr.switch import Switchboard
from ivr.transcribe import TranscriptionWorker, check_languages
from ivr.web import add_routes as add_web_routes

log = logging.getLogger("ivr.app")


@dataclass(frozen=True, slots=True)
class Settings:
    """What a server needs to start."""

    data_dir: Path
    config_path: Path | None = None
    config: Config | None = None  # already loaded (tests); else read from config_path
    hash_params: HashParams = field(default_factory=HashParams)
    # /metrics: with a token, only ``Authorization: Bearer <token>`` is served
    # (never in a repr, so never in a log line). With a port, /metrics is on a
    # listener of its own at metrics_host:metrics_port (0: any free port), and
    # not on the main one. Neither: open on the main listener, as before.
    metrics_token: str | None = field(default=None, repr=False)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None


settings_key = web.AppKey("settings", Settings)
store_key = web.AppKey("store", Store)
switchboard_key = web.AppKey("switchboard", Switchboard)
authenticator_key = web.AppKey("authenticator", Authenticator)
clock_key = web.AppKey("clock", MediaClock)
audit_key = web.AppKey("audit", AuditLog)
metrics_key = web.AppKey("metrics", ServerMetrics)
limiter_key = web.AppKey("limiter", LoginLimiter)
allowed_origins_key = web.AppKey("allowed_origins", frozenset[str])
"""The config's http.allowed_origins, canonical (ivr.ws.check_origin)."""
metrics_runner_key = web.AppKey("metrics_runner", web.AppRunner)
"""The separate /metrics listener's runner, when ``Settings.metrics_port`` is set."""


async def _core_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    config = settings.config or load_config(settings.config_path)
    store = Store(settings.data_dir)
    store.health.listeners.append(app[metrics_key].storage_failing)
    await store.open()
    try:
        report = await repair(store)
        if report.recordings or report.calls_closed:
            log.warning(
                "repaired after a crash: %d recording(s), %d call(s) closed",
                len(report.recordings),
                report.calls_closed,
            )
        for receipt in await privacy.resume_erasures(store):
            log.warning("completed an interrupted erasure: %s", receipt["id"])
        live = await seed_and_load(config, store)
        languages = check_languages(live.numbers)
        if languages:
            raise InvalidConfig(
                config.source,
                [Problem(m.split(": ", 1)[0], m.split(": ", 1)[1]) for m in languages],
            )
        violations = compliance.check_all(live.numbers, live.flows)
        if violations:
            raise InvalidConfig(
                config.source,
                [
                    Problem(f"numbers.{v.number}" if v.number else "flows", str(v))
                    for v in violations
                ],
            )
        prompts = await asyncio.to_thread(
            PromptLibrary.load, live.prompts, settings.data_dir / "cache" / "tts", config.source
        )
        clock = MediaClock()
        clock.on_tick_lateness = app[metrics_key].observe_tick_lateness
        clock.on_skip = app[metrics_key].ticks_skipped
        recorder = RecorderPool()
        switchboard = Switchboard(
            config,
            store,
            prompts,
            clock,
            recorder,
            numbers=live.numbers,
            flows=live.flows,
            teams=live.teams,
            metrics=app[metrics_key],
        )
        app[store_key] = store
        app[clock_key] = clock
        app[switchboard_key] = switchboard
        # Signing out ends the agent seats signed in with the session.
        app[authenticator_key] = await Authenticator.create(
            store, settings.hash_params, seats=switchboard
        )
        app[audit_key] = audit = AuditLog(store)
        app[limiter_key] = LoginLimiter()
        app[allowed_origins_key] = frozenset(config.http.allowed_origins)
        clock.start()
        transcriber = TranscriptionWorker(store, switchboard.numbers)
        transcriber.start()
        sweeper = asyncio.get_running_loop().create_task(
            _sweep(store, config.limits.retention_sweep_s), name="retention"
        )
        # What is built so far (modules, config, prompts, the app) lives as long as
        # the server: keep it out of the collector's sight. A full collection walks
        # every tracked object; with these frozen it walks only what calls create,
        # and stops stalling the media clock (it was a ~50 ms pause under load).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await switchboard.shutdown()
        await clock.stop()
        await asyncio.to_thread(recorder.shutdown)
        await transcriber.stop()
        await audit.close()
    finally:
        await store.close()


async def _metrics_listener(app: web.Application) -> AsyncIterator[None]:
    """Serve /metrics alone on ``metrics_host:metrics_port`` for as long as the app runs."""
    settings = app[settings_key]
    assert settings.metrics_port is not None
    side = web.Application(middlewares=[api.error_middleware], handler_args=HANDLER_ARGS)
    side.router.add_get("/metrics", metrics_handler(app[metrics_key], settings.metrics_token))
    runner = serving.AppRunner(side, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.metrics_host, settings.metrics_port)
        await site.start()
        app[metrics_runner_key] = runner
        log.info("metrics on %s", ", ".join(f"http://{h}:{p}/metrics" for h, p in _hosts(runner)))
        yield
    finally:
        await runner.cleanup()


def metrics_addresses(app: web.Application) -> list[tuple[str, int]]:
    """Where the separate /metrics listener listens (host, port); [] if there is none."""
    if metrics_runner_key not in app:
        return []
    return _hosts(app[metrics_runner_key])


def _hosts(runner: web.BaseRunner) -> list[tuple[str, int]]:
    return [(str(a[0]), int(a[1])) for a in runner.addresses]


async def _sweep(store: Store, every_s: float) -> None:
    """Delete expired recordings now and then, for as long as the server runs."""
    while True:
        try:
            await privacy.purge_expired(store, datetime.now(UTC))
        except Exception:
            log.exception("the retention sweep failed; it runs again later")
        await asyncio.sleep(every_s)


async def _on_shutdown(app: web.Application) -> None:
    if switchboard_key not in app:
        return
    switchboard = app[switchboard_key]
    await switchboard.shutdown()
    for seat in list(switchboard.seats.values()):
        if isinstance(seat, PersonSeat) and seat.leg.transport is not None:
            seat.leg.transport.close(1001)


HANDLER_ARGS = {
    # No request body is ever inflated: the API refuses a Content-Encoding with
    # 415 before reading (ivr.api.base.check_body), and with this off a body
    # read by mistake would arrive raw instead of inflating on the event loop.
    "auto_decompress": False,
    # After a response, aiohttp reads and discards whatever is left of an
    # unread body for up to 10 s ("lingering"). That is megabytes of reading,
    # or of inflating, for a body the server has already refused. With 0 the
    # connection is closed instead.
    "lingering_time": 0,
}
"""aiohttp's per-connection settings (``RequestHandler`` arguments) for the app."""


def create_app(settings: Settings) -> web.Application:
    """The softswitch as an aiohttp application."""
    app = web.Application(
        middlewares=[api.error_middleware],
        client_max_size=api.MAX_BODY_BYTES,
        handler_args=HANDLER_ARGS,
    )
    app[settings_key] = settings
    app[metrics_key] = metrics = ServerMetrics()
    app.cleanup_ctx.append(_core_ctx)
    # Prometheus: counters and histograms only, nothing personal (docs/load.md),
    # open, behind a token, or on a listener of its own (docs/access.md).
    if settings.metrics_port is None:
        app.router.add_get("/metrics", metrics_handler(metrics, settings.metrics_token))
    else:
        app.cleanup_ctx.append(_metrics_listener)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/v1/call", ws.call_handler)
    app.router.add_get("/v1/agent", ws.agent_handler)
    api.add_routes(app)
    add_web_routes(app)  # the softphone, QA console and admin pages
    return app
