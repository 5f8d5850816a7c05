"""How the app is served: aiohttp's connection handler, with the API's JSON errors.

aiohttp answers a request its own parser cannot read (a malformed request
line, a bad header, a line over 8190 bytes, too many headers) itself, before
any application code runs: no middleware or signal sees it. It sent a plain
text body that echoes the offending bytes, and logged a traceback at ERROR,
with those bytes (an ``Authorization`` header among them) in the log.

aiohttp offers no setting for this (aio-libs/aiohttp#3287 is open). The one
place is the public ``RequestHandler.handle_error`` method, so this module
overrides it, and :class:`AppRunner` makes every connection use that
handler. ``ivr serve`` runs the app with :func:`run`; the tests start it with
the same runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from ivr.api.base import error
from ivr.eventloop import LoopChoice, new_loop

log = logging.getLogger("ivr.serving")

# Where aiohttp's parser messages start quoting the request's own bytes.
_QUOTED = re.compile(r"""\s*:?\s*(?:b?['"]|bytearray\(|\^)""")


def parser_reason(message: str | None) -> str:
    """The words of an aiohttp parser message, without the request bytes it quotes.

    ``"Invalid header value char:\\n\\n  b'X-Token: ...'\\n  ^"`` gives
    ``"Invalid header value char"``: what was wrong, never what was sent.
    """
    words: list[str] = []
    for line in (message or "").splitlines():
        kept = _QUOTED.split(line.strip(), maxsplit=1)[0].strip().rstrip(":").strip()
        if not kept:
            if words:
                break  # the quoted part starts: nothing after it is ours to repeat
            continue
        words.append(kept)
    return ": ".join(words)[:160] or "malformed request"


class JsonErrorRequestHandler(web.RequestHandler):
    """aiohttp's per-connection handler, answering its own errors as the API does.

    The status stays aiohttp's (400 for every parser error in aiohttp 3.x);
    the body is ``{"error": {"code": "bad_request", "message": ...}}``; the
    log gets one line, without the request's bytes and without a traceback.
    A 500 that escapes the app (which its middleware prevents) is logged
    with its traceback, as a bug should be.
    """

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("internal error on a request from %s", request.remote, exc_info=exc)
            code, text = "internal", "internal error"
        else:
            reason = parser_reason(message if message is not None else str(exc or ""))
            log.info("refused a malformed request from %s: %d %s", request.remote, status, reason)
            code, text = "bad_request", f"malformed request: {reason}"
        # As aiohttp's own: once part of a response is out, another cannot follow.
        if request.writer.output_size > 0:
            raise ConnectionError("a response is sent already; cannot send the error")
        resp = error(status, code, text)
        resp.force_close()
        return resp

    def connection_lost(self, exc: BaseException | None) -> None:
        """aiohttp's, then the WebSocket heartbeat's callback dropped.

        With a heartbeat, a WebSocket response gives the connection's handler
        a callback, its own bound method, that aiohttp never clears: response,
        request and handler then form a cycle that outlives the connection
        until a full collection (every call's connection, some 8 KiB each, and
        the collector rarely runs a full pass on a server whose live objects
        are frozen). Once the connection is lost nothing is received, so the
        callback can go, and the connection's objects with their last reference.
        """
        super().connection_lost(exc)
        self._data_received_cb = None


class _JsonErrorServer(web.Server):
    """``web.Server`` building :class:`JsonErrorRequestHandler` for each connection."""

    def __call__(self) -> web.RequestHandler:
        # Mirrors web.Server.__call__, with the subclass.
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer aiohttp's own errors as JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The app built and configured it (handler arguments, request
        # factory); only the class that makes each connection's handler
        # changes, to one that adds no state.
        server.__class__ = _JsonErrorServer
        return server


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    shutdown_timeout: float = 10.0,
    loop_choice: LoopChoice = "auto",
    on_drain: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then shut it down cleanly.

    On uvloop when it is installed, unless ``loop_choice`` says otherwise
    (:mod:`ivr.eventloop`).

    SIGINT (Ctrl-C) stops at once. SIGTERM first awaits ``on_drain`` (the
    server stops taking calls and lets the live ones finish, up to its
    deadline), then stops; a second SIGTERM stops at once. Stopping is what
    ``web.run_app`` does, with :class:`AppRunner`: the runner's cleanup runs
    the app's shutdown (calls still live end with ``shutdown``), and leftover
    tasks are cancelled before the loop closes.
    """
    loop = new_loop(loop_choice)
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, host, port, on_listening, shutdown_timeout, on_drain))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    shutdown_timeout: float,
    on_drain: Callable[[], Awaitable[object]] | None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    draining: list[asyncio.Task[None]] = []

    async def drain_then_stop(drain: Callable[[], Awaitable[object]]) -> None:
        try:
            await drain()
        except Exception:
            log.exception("draining failed; stopping now")
        stop.set()

    def terminate() -> None:
        if on_drain is None or draining:
            log.info("SIGTERM: stopping now")
            stop.set()
            return
        log.info("SIGTERM: draining (a second SIGTERM stops at once)")
        draining.append(loop.create_task(drain_then_stop(on_drain), name="drain"))

    runner = AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    signals = {signal.SIGINT: stop.set, signal.SIGTERM: terminate}
    for number, handler in signals.items():
        # Not in the main thread, or not on this platform: the caller stops us otherwise.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, handler)
    try:
        await web.TCPSite(runner, host, port).start()
        on_listening()
        await stop.wait()
    finally:
        for number in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(number)
        for task in draining:
            task.cancel()
        await runner.cleanup()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("a task failed during shutdown", exc_info=task.exception())
