"""The aiohttp application: ``create_app(settings)`` wires the parts together.

Start-up (``cleanup_ctx``, in order): open the store, load the prompts, seed
the store from the config, build the switchboard (and its bots), start the
media clock, the SIP edge (when the config turns it on) and the
transcription worker, which each finished recording wakes. Shutdown first
ends every call with reason ``shutdown`` (so each recording is closed and
complete; a SIP caller gets a BYE), then closes the SIP edge's sockets,
stops the clock and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from ivr import api, eventloop, privacy
from ivr.access.audit import AuditLog
from ivr.access.auth import Authenticator, LoginLimiter
from ivr.access.checkpoint import Checkpointer, locations
from ivr.call.clock import MediaClock
from ivr.call.recorder import RecorderPool
from ivr.call.seat import PersonSeat
from ivr.call.switchboard import Switchboard
from ivr.config import load_config
from ivr.server import serving
from ivr.server.keys import (
    Settings,
    allowed_origins_key,
    audit_key,
    authenticator_key,
    clock_key,
    limiter_key,
    metrics_key,
    metrics_runner_key,
    node_key,
    settings_key,
    store_key,
    switchboard_key,
)
from ivr.server.metrics import ServerMetrics, metrics_handler
from ivr.services.repair import repair
from ivr.services.switch import open_switchboard
from ivr.speech.worker import TranscriptionWorker
from ivr.stamp import now_iso
from ivr.store import NodeState, Store
from ivr.store.nodes import NODE_TIMEOUT_S
from ivr.transport import agent, caller
from ivr.transport.bridge import BRIDGE_PATH, Peers, bridge_handler
from ivr.transport.sipedge import SipEdge
from ivr.transport.sipedge.call import RETRY_AFTER_S
from ivr.web import add_routes as add_web_routes

log = logging.getLogger("ivr.app")

sip_edge_key = web.AppKey("sip_edge", SipEdge)
"""The SIP and RTP edge, when the config's ``sip.enabled`` (or ``ivr serve --sip-port``)."""


async def _core_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    config = settings.config or load_config(settings.config_path)
    enc = config.encryption
    store = Store(
        settings.data_dir,
        settings.database,
        keys=settings.keys or (Path(enc.key_folder) if enc.key_folder else None),
        kms=enc.kms,
        seal=enc.enabled,
    )
    node = settings.node_id or f"{socket.gethostname()}:{os.getpid()}"
    store.node_id = node
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
        clock = MediaClock()
        clock.on_tick_lateness = app[metrics_key].observe_tick_lateness
        clock.on_skip = app[metrics_key].ticks_skipped
        recorder = RecorderPool()
        switchboard = await open_switchboard(
            config, store, settings.data_dir, clock, recorder, metrics=app[metrics_key]
        )
        app[store_key] = store
        app[clock_key] = clock
        app[switchboard_key] = switchboard
        # Signing out ends the agent seats signed in with the session.
        app[authenticator_key] = await Authenticator.create(
            store, settings.hash_params, seats=switchboard
        )
        app[audit_key] = audit = AuditLog(store)
        key_path, checkpoints = locations(config.audit, settings.data_dir)
        checkpointer = Checkpointer(
            store,
            key_path,
            checkpoints,
            node=node,
            every_s=config.audit.checkpoint_every_s,
            to_log=config.audit.log_checkpoints,
        )
        app[limiter_key] = LoginLimiter()
        app[allowed_origins_key] = frozenset(config.http.allowed_origins)
        edge: SipEdge | None = None
        if config.sip.enabled:  # before the clock: a port in use stops the start-up cleanly
            edge = SipEdge(config.sip, switchboard, store, app[metrics_key])
            await edge.start()
            app[sip_edge_key] = edge
        await store.nodes.register(
            node, socket.gethostname(), os.getpid(), now_iso(), settings.node_url
        )
        app[node_key] = node
        peers = None
        if settings.node_url is not None:
            peers = Peers(store, switchboard, node)
            peers.start()
        log.info("node %s registered", node)
        heart = asyncio.get_running_loop().create_task(
            _heartbeat(store, switchboard, node, HEARTBEAT_S, settings.node_url), name="heartbeat"
        )
        clock.start()
        checkpointer.start()
        transcriber = TranscriptionWorker(store, switchboard.numbers)
        # A finished recording may be one to transcribe: the worker looks at once.
        switchboard.on_recording_finished = lambda _recording_id: transcriber.wake()
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
        if peers is not None:
            await peers.stop()
        heart.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heart
        await _beat(store, switchboard, node, "stopped", settings.node_url)
        if edge is not None:
            await edge.stop()
        await clock.stop()
        await asyncio.to_thread(recorder.shutdown)
        await transcriber.stop()
        await audit.close()
        await checkpointer.close()  # the head after the last entry, signed
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


def sip_address(app: web.Application) -> tuple[str, int] | None:
    """Where the SIP edge listens (host, port: UDP and/or TCP); None if SIP is off."""
    if sip_edge_key not in app:
        return None
    edge = app[sip_edge_key]
    return edge.settings.host, edge.port


def _hosts(runner: web.BaseRunner) -> list[tuple[str, int]]:
    return [(str(a[0]), int(a[1])) for a in runner.addresses]


HEARTBEAT_S = NODE_TIMEOUT_S / 3
"""How often a node writes its heartbeat: three beats missed and it is dead."""


async def _beat(
    store: Store, switchboard: Switchboard, node: str, state: NodeState, url: str | None = None
) -> None:
    """One heartbeat; a store that fails it is logged (and in /metrics), never raised."""
    try:
        if not await store.nodes.heartbeat(node, now_iso(), state, len(switchboard.calls)):
            # Forgotten by an operator while running: register again.
            await store.nodes.register(node, socket.gethostname(), os.getpid(), now_iso(), url)
    except Exception:
        if eventloop.cancelling():
            raise asyncio.CancelledError from None
        log.exception("node %s: the heartbeat could not be written", node)


async def _heartbeat(
    store: Store, switchboard: Switchboard, node: str, every_s: float, url: str | None = None
) -> None:
    """Tell the other nodes this one is here, how many calls it holds and if it drains."""
    while True:
        await eventloop.sleep_or_stop(every_s)
        state: NodeState = "ready" if switchboard.taking_calls else "draining"
        await _beat(store, switchboard, node, state, url)


async def _sweep(store: Store, every_s: float) -> None:
    """Delete expired recordings now and then, for as long as the server runs."""
    while True:
        try:
            await privacy.purge_expired(store, datetime.now(UTC))
        except Exception:
            if eventloop.cancelling():
                raise asyncio.CancelledError from None  # stopping: not a failure to retry
            log.exception("the retention sweep failed; it runs again later")
        await eventloop.sleep_or_stop(every_s)


async def _on_shutdown(app: web.Application) -> None:
    if switchboard_key not in app:
        return
    switchboard = app[switchboard_key]
    await switchboard.shutdown()
    for seat in list(switchboard.seats.values()):
        if isinstance(seat, PersonSeat) and seat.leg.transport is not None:
            seat.leg.transport.close(1001)


async def drain(app: web.Application, deadline_s: float) -> int:
    """SIGTERM: take no new calls, let the live ones finish for up to ``deadline_s``.

    ``/readyz`` answers 503 from now on, so a balancer sends new calls
    elsewhere; a call that still reaches this node is refused as ``busy``
    (WebSocket) or ``503`` with ``Retry-After`` (SIP, and an OPTIONS ping
    outside a call gets the same, for a dispatcher). Returns how many calls
    were still live at the deadline: the shutdown that follows hangs them
    up with ``shutdown``.
    """
    if switchboard_key not in app:
        return 0
    if sip_edge_key in app:
        app[sip_edge_key].core.draining_retry_after_s = RETRY_AFTER_S
    switchboard = app[switchboard_key]
    switchboard.draining = True
    if node_key in app:  # the other nodes hear of it now, not at the next beat
        await _beat(
            app[store_key], switchboard, app[node_key], "draining", app[settings_key].node_url
        )
    return await switchboard.drain(deadline_s)


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers (for a balancer or a supervisor; no sign-in, no details)."""
    return web.json_response({"status": "alive"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    """Taking calls: 200 once started and until it drains or stops, else 503."""
    app = request.app
    if switchboard_key not in app:
        status, code = "starting", 503
    elif not app[switchboard_key].taking_calls:
        status, code = "draining", 503
    else:
        status, code = "ready", 200
    return web.json_response({"status": status}, status=code, headers={"Cache-Control": "no-store"})


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
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/call", caller.call_handler)
    app.router.add_get("/v1/agent", agent.agent_handler)
    app.router.add_get(BRIDGE_PATH, bridge_handler)  # other nodes only (signed)
    api.add_routes(app)
    add_web_routes(app)  # the softphone, QA console and admin pages
    return app
