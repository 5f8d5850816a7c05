"""The WebSocket transport of docs/protocol.md: frames out at once, never awaited; in as parsed.

:class:`WsTransport` is a call leg's :class:`ivr.call.leg.Transport` over an
aiohttp WebSocket. Sending never awaits: it writes each frame at once, and
drops audio for a peer that does not read (more than ``MAX_WRITE_BUFFER``
unsent), so one slow client cannot stall the media clock. A close for a
broken rule (1008) waits only ``POLICY_CLOSE_WAIT_S`` for the client's close
frame. :func:`open_socket` prepares a connection as both endpoints want it,
and :func:`first_message` reads up to the first valid ``dial`` or ``login``.

Inbound audio does not wake the connection's handler: a :class:`MediaSocket`
hands each binary frame to its leg as aiohttp's parser produces it, inside
the protocol's ``data_received`` (:meth:`MediaSocket.take_audio`), so a
frame costs no future, no task step and no message object queued. Whatever
the sink declines (a frame of the wrong size, one over the rate limit, a
frame behind a queued text message) goes through aiohttp's queue to the
handler as before, which answers it as the protocol says. The heartbeat
keeps aiohttp's timing (a ping 30 s after the last data, the close 15 s
after an unanswered ping) without a callback per received chunk.

The endpoints are :mod:`ivr.transport.caller` (``/v1/call``) and
:mod:`ivr.transport.agent` (``/v1/agent``); what one connection may send is
:mod:`ivr.transport.limits`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import WSMsgType, web
from aiohttp._websocket.models import WSMessageTextBytes
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.helpers import DEFAULT_CHUNK_SIZE
from aiohttp.http_websocket import WebSocketReader, WebSocketWriter, WSMessage

from ivr.call.leg import Leg
from ivr.transport.limits import FIRST_MESSAGE_TIMEOUT_S, ErrorCount
from ivr.transport.protocol import ProtocolError, parse
from ivr.transport.rate import TokenBucket

T = TypeVar("T")

MAX_MESSAGE_BYTES = 1 << 16
# Audio is dropped (and counted) rather than queued once this much is unsent.
MAX_WRITE_BUFFER = 64 * 1024
# How long a client closed for breaking a rule has to answer our close frame.
POLICY_CLOSE_WAIT_S = 1.0
# A ping this long after the last data received; closed if nothing comes for half as long again.
HEARTBEAT_S = 30.0


_HEADERS: dict[int, bytes] = {}


def _binary_header(length: int) -> bytes:
    """The header of an unmasked, unfragmented binary frame of ``length`` bytes (RFC 6455 5.2)."""
    if length < 126:
        header = bytes((0x82, length))
    elif length < 1 << 16:
        header = bytes((0x82, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x82, 127)) + length.to_bytes(8, "big")
    if len(_HEADERS) < 64:  # a few frame sizes in use: one per codec and rate
        _HEADERS[length] = header
    return header


def _run_now(coro: Coroutine[Any, Any, None]) -> bool:
    """Run a send coroutine that does not need to wait; False if it failed.

    aiohttp writes an uncompressed frame to the transport before its only
    await (waiting for the socket to drain). So stepping the coroutine once
    writes the frame; if it then wants to wait, we stop waiting: the frame is
    already queued, and the write-buffer check bounds what can pile up.
    """
    try:
        coro.send(None)
    except StopIteration:
        return True
    except (ConnectionError, RuntimeError):
        return False
    coro.close()
    return True


AudioSink = Callable[[bytes], bool]
"""Takes one inbound binary frame; False hands it to the handler instead."""


def leg_sink(leg: Leg, frames: TokenBucket, up: Callable[[], bool]) -> AudioSink:
    """A sink of a leg's frames, for :meth:`MediaSocket.take_audio`.

    It takes only what the endpoint's loop would take without a word: a
    frame of the codec's size, within the ``frames`` limit, while ``up()``
    (the call is up, the agent bridged). Any other frame goes to the loop,
    which answers it.
    """
    size = leg.codec.frame_bytes
    take = frames.take
    receive = leg.receive_audio

    def sink(payload: bytes) -> bool:
        if len(payload) != size or not up() or not take():
            return False
        receive(payload)
        return True

    return sink


class AudioQueue(WebSocketDataQueue):
    """aiohttp's queue of a connection's messages, with binary frames offered to a sink first.

    A frame goes to the sink only when nothing is queued before it, so the
    handler sees messages and declined frames in the order they came.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink: AudioSink | None = None
        self.taken = 0
        """Frames the sink took (a test's and a benchmark's figure)."""

    def feed_data(self, data: WSMessage | WSMessageTextBytes, size: int) -> None:
        sink = self.sink
        if sink is not None and data[0] is WSMsgType.BINARY and not self._buffer and sink(data[1]):
            self.taken += 1
            return
        super().feed_data(data, size)


class MediaSocket(web.WebSocketResponse):
    """A WebSocket response whose audio can skip the handler (:meth:`take_audio`).

    Two things differ from aiohttp's response, both below its public API (and
    so checked by this module's tests on the aiohttp installed): the message
    queue is an :class:`AudioQueue`, and received data only notes the time,
    where aiohttp schedules a heartbeat reset per chunk; the heartbeat, when
    it falls due, moves itself to 30 s after the last data, and an unanswered
    ping counts as answered if anything came after it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audio: AudioQueue | None = None
        self._rx_at = 0.0
        self._ping_at = 0.0
        self._time: Callable[[], float] = time.monotonic

    def take_audio(self, sink: AudioSink | None) -> None:
        """Offer every binary frame to ``sink`` as it is parsed (None: back to the handler)."""
        if self.audio is not None:
            self.audio.sink = sink

    def _post_start(
        self, request: web.BaseRequest, protocol: str | None, writer: WebSocketWriter
    ) -> None:
        # aiohttp 3.14's _post_start, with an AudioQueue for its WebSocketDataQueue.
        self._ws_protocol = protocol
        self._writer = writer
        loop = self._loop
        assert loop is not None
        self._time = loop.time
        self._rx_at = self._time()
        self._reset_heartbeat()
        self.audio = AudioQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        self._reader = self.audio
        self._parser = WebSocketReader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        cb = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(self._parser, data_received_cb=cb)
        request.protocol.keep_alive(False)

    def _on_data_received(self) -> None:
        self._rx_at = self._time()

    def _send_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat_when = max(self._heartbeat_when, self._rx_at + self._heartbeat)
        self._ping_at = self._time()
        super()._send_heartbeat()

    def _pong_not_received(self) -> None:
        if self._rx_at > self._ping_at:  # something came after the ping: the peer is there
            self._pong_response_cb = None
            self._reset_heartbeat()
            return
        super()._pong_not_received()


class WsTransport:
    """A leg's :class:`ivr.call.leg.Transport` over an aiohttp WebSocket."""

    def __init__(self, ws: MediaSocket, request: web.Request) -> None:
        self._ws = ws
        self._transport = request.transport
        self.closing = False
        self.close_code: int | None = None

    def send_audio(self, payload: bytes) -> bool:
        """One binary frame, written to the socket at once: its header prebuilt, one write.

        A server's frames are not masked (RFC 6455 section 5.1) and ours are
        not compressed, so an audio frame is a header that depends only on the
        payload's length, and the payload: nothing of aiohttp's writer is
        needed per frame. Text and control frames still go through aiohttp,
        on the same transport and in the order they are sent.
        """
        t = self._transport
        if self.closing or self._ws.closed or t is None or t.is_closing():
            return False
        if t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            return False
        header = _HEADERS.get(len(payload)) or _binary_header(len(payload))
        try:
            t.write(header + payload)
        except (ConnectionError, RuntimeError):  # a transport closed under us
            return False
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        if not self.closing and not self._ws.closed:
            _run_now(self._ws.send_str(json.dumps(message)))

    def close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            self.close_code = code
            asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: int) -> None:
        # A client closed for breaking a rule (1008) gets a short while to answer
        # our close frame: waiting the usual 10 s would mean reading on whatever
        # it still floods in. Past the wait, aiohttp drops the connection.
        wait = POLICY_CLOSE_WAIT_S if code == 1008 else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ws.close(code=code), wait)


async def open_socket(request: web.Request) -> tuple[MediaSocket, WsTransport]:
    """Upgrade ``request``: no compression, 64 KiB messages, a ping 30 s after the last data."""
    ws = MediaSocket(compress=False, max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    return ws, WsTransport(ws, request)


async def first_message(
    ws: web.WebSocketResponse,
    transport: WsTransport,
    errors: ErrorCount,
    allowed: tuple[str, ...],
    first: str,
    parse_first: Callable[[dict[str, Any]], T],
) -> T | None:
    """The first valid ``first`` message (``dial`` or ``login``), or None if the client left.

    Anything else before it is an error (``not_first``, ``bad_frame``...) and the
    client may try again, up to the error limit; nothing within 30 s closes with 1008.
    """
    while True:
        try:
            msg = await ws.receive(timeout=FIRST_MESSAGE_TIMEOUT_S)
        except TimeoutError:
            transport.send_message(
                {"type": "error", "code": "missing_field", "message": f"no {first} within 30 s"}
            )
            await ws.close(code=1008)
            return None
        if msg.type == WSMsgType.BINARY:
            if errors.report(ProtocolError("bad_frame", "audio before 'answered'")):
                return None
            continue
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            m = parse(msg.data, allowed)
            if m["type"] != first:
                raise ProtocolError("not_first", f"'{m['type']}' before '{first}'")
            return parse_first(m)
        except ProtocolError as err:
            if errors.report(err):
                return None
