"""``GET /v1/call``: one caller leg, from ``dial`` to the close (docs/protocol.md).

The handler only shuttles between the socket and the call: it reads up to a
valid ``dial``, places the call (its row first: no call without its
records), then hands audio and digits to the session and turns protocol
errors into ``error`` messages, within the connection's limits. It closes
the socket once the call and everything about it are saved.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from ivr.call.session import CallSession
from ivr.call.switchboard import Busy, Switchboard
from ivr.errors import StorageUnavailable
from ivr.server.keys import store_key, switchboard_key
from ivr.store import Store
from ivr.transport.limits import DIGIT_RATE, FRAME_RATE, MESSAGE_RATE, ErrorCount, Limits, over
from ivr.transport.origin import check_origin
from ivr.transport.placement import place_call
from ivr.transport.protocol import (
    CALLER_TYPES,
    ProtocolError,
    parse,
    parse_dial,
    parse_dtmf,
)
from ivr.transport.ws import MediaSocket, WsTransport, first_message, leg_sink, open_socket
from media.errors import BadFrame

log = logging.getLogger("ivr.ws")


async def call_handler(request: web.Request) -> web.StreamResponse:
    """``GET /v1/call``: one caller leg."""
    refused = check_origin(request)
    if refused is not None:
        return refused
    sb = request.app[switchboard_key]
    ws, transport = await open_socket(request)
    errors = ErrorCount(transport, sb.metrics)
    limits = Limits()
    session: CallSession | None = None
    try:
        session = await _wait_dial(ws, transport, errors, sb, request.app[store_key])
        if session is None:
            return ws
        call = session  # placed: the sink takes audio while the call is up
        ws.take_audio(leg_sink(call.caller, limits.frames, lambda: not call.ended))
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                if not limits.frames.take():
                    session.end_for_limit("rate_limited", over("audio frames", FRAME_RATE))
                    break
                try:
                    session.caller.receive_audio(msg.data)
                except BadFrame as exc:
                    if errors.report(ProtocolError("bad_frame", str(exc))):
                        session.hangup("error")
                        break
            elif msg.type == WSMsgType.TEXT:
                if not limits.messages.take():
                    session.end_for_limit("rate_limited", over("messages", MESSAGE_RATE))
                    break
                try:
                    m = parse(msg.data, CALLER_TYPES)
                    if m["type"] == "dtmf":
                        digits = parse_dtmf(m).digits
                        if not limits.digits.take(len(digits)):
                            session.end_for_limit("rate_limited", over("digits", DIGIT_RATE))
                            break
                        session.digits(digits)
                    elif m["type"] == "hangup":
                        session.caller_hangup()
                        break
                    else:
                        raise ProtocolError("bad_field", "the call is already dialled")
                except ProtocolError as err:
                    if errors.report(err):
                        session.hangup("error")
                        break
            else:
                break
            if session.ended:
                break
    finally:
        ws.take_audio(None)
        if session is not None:
            session.caller_hangup()
            await session.wait_finished()
        if not ws.closed:
            await ws.close(code=transport.close_code or 1000)
    return ws


async def _wait_dial(
    ws: MediaSocket,
    transport: WsTransport,
    errors: ErrorCount,
    sb: Switchboard,
    store: Store,
) -> CallSession | None:
    """Read messages until a valid ``dial``; place the call and return its session."""
    while True:
        dial = await first_message(ws, transport, errors, CALLER_TYPES, "dial", parse_dial)
        if dial is None:
            return None
        dialled_at = time.monotonic()
        number = sb.numbers.get(dial.to)
        if number is None:
            transport.send_message(
                {
                    "type": "error",
                    "code": "unknown_number",
                    "message": f"{dial.to} is not a number of this server",
                }
            )
            transport.send_message({"type": "hangup", "reason": "error", "stats": _empty_stats()})
            await ws.close(code=1000)
            return None
        try:
            sb.check_capacity()
        except Busy as exc:
            transport.send_message({"type": "error", "code": "busy", "message": str(exc)})
            transport.send_message({"type": "hangup", "reason": "error", "stats": _empty_stats()})
            await ws.close(code=1000)
            return None
        try:
            return await place_call(sb, store, dial, number, transport, dialled_at)
        except StorageUnavailable:
            # No call without its records: the store cannot write, so none is placed.
            transport.send_message(
                {
                    "type": "error",
                    "code": "storage_unavailable",
                    "message": "the server cannot take calls now: its storage is failing",
                }
            )
            transport.send_message({"type": "hangup", "reason": "error", "stats": _empty_stats()})
            await ws.close(code=1011)
            return None


def _empty_stats() -> dict[str, Any]:
    return {
        "frames_sent": 0,
        "frames_received": 0,
        "frames_late": 0,
        "frames_dropped": 0,
        "frames_malformed": 0,
        "frames_unsent": 0,
        "recording_id": None,
    }
