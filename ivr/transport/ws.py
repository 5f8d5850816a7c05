"""The WebSocket endpoints of PROTOCOL.md: ``/v1/call`` and ``/v1/agent``.

The handlers only shuttle between the socket and the call: they parse
messages (:mod:`ivr.transport.protocol`), hand audio and digits to the session or the
seat, and turn protocol errors into ``error`` messages. A client that keeps
misbehaving (more than 50 errors) is closed with 1008. Sending never awaits:
:class:`WsTransport` writes each frame at once, and drops audio for a peer
that does not read, so one slow client cannot stall the media clock.

What one connection may send is bounded (docs/protocol.md, "Limits"):
control messages, DTMF digits and audio frames each have a token bucket
(:mod:`ivr.transport.rate`); going over one is answered ``rate_limited`` and the
connection is closed with 1008, after a short wait for the client's close
frame rather than the usual 10 s of reading whatever it still floods in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from ivr.access.auth import Authenticator, Session
from ivr.call.leg import Leg
from ivr.call.seat import PersonSeat
from ivr.call.session import CallSession
from ivr.call.switchboard import Busy, Switchboard
from ivr.config import NumberConfig
from ivr.errors import AuthError, StorageUnavailable
from ivr.privacy.redact import mask_number
from ivr.server.keys import authenticator_key, store_key, switchboard_key
from ivr.stamp import new_id, now_iso
from ivr.store import NewCall, Store
from ivr.transport.origin import check_origin
from ivr.transport.protocol import (
    AGENT_TYPES,
    CALLER_TYPES,
    MAX_ERRORS,
    Dial,
    ProtocolError,
    parse,
    parse_call_id,
    parse_dial,
    parse_dtmf,
    parse_login,
)
from ivr.transport.rate import Rate, TokenBucket
from media.errors import BadFrame

log = logging.getLogger("ivr.ws")
T = TypeVar("T")

MAX_MESSAGE_BYTES = 1 << 16
# Audio is dropped (and counted) rather than queued once this much is unsent.
MAX_WRITE_BUFFER = 64 * 1024
FIRST_MESSAGE_TIMEOUT_S = 30.0
# docs/protocol.md, "Limits". A person presses a key a few times a second; a
# message may carry up to 32 digits (a card number in one go), hence the burst.
MESSAGE_RATE = Rate(per_s=20, burst=50)  # control messages
DIGIT_RATE = Rate(per_s=10, burst=64)  # DTMF digits, counted one by one
# Real time is 50 frames a second; a network hiccup may bring 3 s at once.
FRAME_RATE = Rate(per_s=75, burst=150)
# How long a client closed for breaking a rule has to answer our close frame.
POLICY_CLOSE_WAIT_S = 1.0


class _Limits:
    """The rate limits of one connection."""

    __slots__ = ("digits", "frames", "messages")

    def __init__(self) -> None:
        self.messages = TokenBucket(MESSAGE_RATE)
        self.digits = TokenBucket(DIGIT_RATE)
        self.frames = TokenBucket(FRAME_RATE)


def _over(what: str, rate: Rate) -> str:
    return f"more than {rate.per_s:g} {what} a second (burst {rate.burst}): closing"


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


class WsTransport:
    """A leg's :class:`ivr.call.leg.Transport` over an aiohttp WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._transport = request.transport
        self.closing = False
        self.close_code: int | None = None

    def _buffered(self) -> int:
        t = self._transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 1 << 30

    def send_audio(self, payload: bytes) -> bool:
        if self.closing or self._ws.closed or self._buffered() > MAX_WRITE_BUFFER:
            return False
        return _run_now(self._ws.send_bytes(payload))

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


class _Errors:
    def __init__(self, transport: WsTransport, metrics: Any = None) -> None:
        self.count = 0
        self._t = transport
        self._metrics = metrics

    def report(self, err: ProtocolError) -> bool:
        """Send the error; True when the client has now misbehaved too often."""
        self.count += 1
        self._t.send_message(err.as_message())
        if self.count > MAX_ERRORS:
            self._t.send_message(
                {
                    "type": "error",
                    "code": "too_many_errors",
                    "message": f"more than {MAX_ERRORS} errors: closing",
                }
            )
            if self._metrics is not None:
                self._metrics.limit_close("too_many_errors")
            self._t.close(1008)
            return True
        return False


async def call_handler(request: web.Request) -> web.StreamResponse:
    """``GET /v1/call``: one caller leg."""
    refused = check_origin(request)
    if refused is not None:
        return refused
    sb = request.app[switchboard_key]
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30)
    await ws.prepare(request)
    transport = WsTransport(ws, request)
    errors = _Errors(transport, sb.metrics)
    limits = _Limits()
    session: CallSession | None = None
    try:
        session = await _wait_dial(ws, transport, errors, sb, request.app[store_key])
        if session is None:
            return ws
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                if not limits.frames.take():
                    session.end_for_limit("rate_limited", _over("audio frames", FRAME_RATE))
                    break
                try:
                    session.caller.receive_audio(msg.data)
                except BadFrame as exc:
                    if errors.report(ProtocolError("bad_frame", str(exc))):
                        session.hangup("error")
                        break
            elif msg.type == WSMsgType.TEXT:
                if not limits.messages.take():
                    session.end_for_limit("rate_limited", _over("messages", MESSAGE_RATE))
                    break
                try:
                    m = parse(msg.data, CALLER_TYPES)
                    if m["type"] == "dtmf":
                        digits = parse_dtmf(m).digits
                        if not limits.digits.take(len(digits)):
                            session.end_for_limit("rate_limited", _over("digits", DIGIT_RATE))
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
        if session is not None:
            session.caller_hangup()
            await session.wait_finished()
        if not ws.closed:
            await ws.close(code=transport.close_code or 1000)
    return ws


async def _first_message(
    ws: web.WebSocketResponse,
    transport: WsTransport,
    errors: _Errors,
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


async def _wait_dial(
    ws: web.WebSocketResponse,
    transport: WsTransport,
    errors: _Errors,
    sb: Switchboard,
    store: Store,
) -> CallSession | None:
    """Read messages until a valid ``dial``; place the call and return its session."""
    while True:
        dial = await _first_message(ws, transport, errors, CALLER_TYPES, "dial", parse_dial)
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
            return await _place_call(sb, store, dial, number, transport, dialled_at)
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


async def _place_call(
    sb: Switchboard,
    store: Store,
    dial: Dial,
    number: NumberConfig,
    transport: WsTransport,
    dialled_at: float,
) -> CallSession:
    call_id = new_id("c")
    flow = sb.flows[number.flow]
    started_at = now_iso()
    # The call's row first: if the store cannot take it, there is no call.
    contact_id = await store.calls.contact_id(dial.from_)
    await store.calls.create(
        NewCall(
            id=call_id,
            number=dial.to,
            contact_id=contact_id,
            flow_id=flow.id,
            flow_version=flow.version,
            codec=dial.codec.name,
            sample_rate=dial.codec.sample_rate,
            client_ref=dial.client_ref,
            started_at=started_at,
        )
    )
    session = CallSession(
        sb,
        call_id=call_id,
        number_id=dial.to,
        number=number,
        flow=flow,
        caller=Leg(dial.codec, transport),
        caller_number=dial.from_,
        contact_id=contact_id,
        client_ref=dial.client_ref,
        started_at=started_at,
    )
    log.info(
        "call %s to %s from %s (%s/%d)",
        call_id,
        dial.to,
        mask_number(dial.from_),
        dial.codec.name,
        dial.codec.sample_rate,
    )
    sb.call_started(session)
    session.start(dialled_at)
    return session


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


async def agent_handler(request: web.Request) -> web.StreamResponse:
    """``GET /v1/agent``: a person taking calls."""
    refused = check_origin(request)
    if refused is not None:
        return refused
    sb = request.app[switchboard_key]
    auth = request.app[authenticator_key]
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30)
    await ws.prepare(request)
    transport = WsTransport(ws, request)
    errors = _Errors(transport, sb.metrics)
    limits = _Limits()
    seat = None
    try:
        while seat is None:
            login = await _first_message(ws, transport, errors, AGENT_TYPES, "login", parse_login)
            if login is None:
                return ws
            session = await _session(auth, login.token)
            if isinstance(session, str):
                transport.send_message(
                    {"type": "error", "code": "unauthorized", "message": session}
                )
                await ws.close(code=1008)
                return ws
            seat = sb.add_person(
                session.user,
                Leg(login.codec, transport),
                token_hash=session.token_hash,
                expires_at=session.expires_at,
            )
            # Once more, now that the seat can be found: a logout, deletion or
            # change that came while the session was being read found no seat
            # to end or update; this second read sees it.
            again = await _session(auth, login.token)
            if isinstance(again, str):
                sb.end_seats(token_hash=session.token_hash, why="the session was revoked")
                return ws
            if (again.user.name, again.user.teams) != (session.user.name, session.user.teams):
                sb.update_seats(again.user)
            transport.send_message(
                {"type": "logged_in", "agent": seat.name, "teams": list(seat.teams)}
            )
            log.info("agent %s signed in", seat.user_id)
        async for msg in ws:
            if not (limits.frames if msg.type == WSMsgType.BINARY else limits.messages).take():
                _agent_over_limit(sb, transport, msg.type == WSMsgType.BINARY)
                break
            if msg.type == WSMsgType.BINARY:
                if seat.call is None or not seat.call.bridged:
                    early = ProtocolError("bad_frame", "audio before 'answered'")
                    if errors.report(early):
                        break
                    continue
                try:
                    seat.leg.receive_audio(msg.data)
                except BadFrame as exc:
                    if errors.report(ProtocolError("bad_frame", str(exc))):
                        break
                continue
            if msg.type != WSMsgType.TEXT:
                break
            try:
                m = parse(msg.data, AGENT_TYPES)
                if m["type"] == "dtmf" and not limits.digits.take(len(parse_dtmf(m).digits)):
                    transport.send_message(
                        {
                            "type": "error",
                            "code": "rate_limited",
                            "message": _over("digits", DIGIT_RATE),
                        }
                    )
                    sb.metrics.limit_close("rate_limited")
                    transport.close(1008)
                    break
                _agent_message(sb, seat, m)
            except ProtocolError as err:
                if errors.report(err):
                    break
    finally:
        if seat is not None:
            sb.remove_person(seat)
        if not ws.closed:
            await ws.close(code=transport.close_code or 1000)
    return ws


def _agent_over_limit(sb: Switchboard, transport: WsTransport, audio: bool) -> None:
    """An agent's connection went over a rate limit: say so and close with 1008."""
    message = _over("audio frames", FRAME_RATE) if audio else _over("messages", MESSAGE_RATE)
    transport.send_message({"type": "error", "code": "rate_limited", "message": message})
    sb.metrics.limit_close("rate_limited")
    transport.close(1008)


async def _session(auth: Authenticator, token: str) -> Session | str:
    """The session of a token that may take calls, or why it may not."""
    try:
        session = await auth.session(token)
    except AuthError:
        return "unknown or expired token"
    return "Owners have no access to calls" if session.user.role == "owner" else session


def _agent_message(sb: Switchboard, seat: PersonSeat, m: dict[str, Any]) -> None:
    kind = m["type"]
    if kind == "login":
        raise ProtocolError("bad_field", "already signed in")
    if kind in ("ready", "not_ready"):
        sb.set_ready(seat, kind == "ready")
    elif kind in ("answer", "reject"):
        call_id = parse_call_id(m)
        call = seat.call
        if call is None or call.id != call_id or call.bridged:
            raise ProtocolError("bad_field", f"no call {call_id[:40]!r} is offered to you")
        if kind == "answer":
            call.agent_answered(seat)
        else:
            call.agent_declined(seat)
    elif kind == "hangup":
        if seat.call is not None and seat.call.bridged:
            seat.call.agent_hangup()
    elif kind == "dtmf":
        parse_dtmf(m)  # checked; agents' digits do not drive the caller's flow
