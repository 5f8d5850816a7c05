"""``GET /v1/agent``: a person taking calls, from ``login`` to the close (docs/protocol.md).

The handler reads up to a valid ``login``, seats the person (tied to the
session they signed in with, read twice so that a logout during the login
is not missed), then shuttles messages and audio between the socket and
the seat, within the connection's limits. Leaving, for any reason, takes
the seat out: an offer moves on, a connected call ends with ``agent``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import WSMsgType, web

from ivr.access.auth import Authenticator, Session
from ivr.call.leg import Leg
from ivr.call.seat import PersonSeat
from ivr.call.switchboard import Switchboard
from ivr.errors import AuthError
from ivr.server.keys import authenticator_key, switchboard_key
from ivr.transport.limits import DIGIT_RATE, FRAME_RATE, MESSAGE_RATE, ErrorCount, Limits, over
from ivr.transport.origin import check_origin
from ivr.transport.protocol import (
    AGENT_TYPES,
    ProtocolError,
    parse,
    parse_call_id,
    parse_dtmf,
    parse_login,
)
from ivr.transport.ws import WsTransport, first_message, leg_sink, open_socket
from media.errors import BadFrame

log = logging.getLogger("ivr.ws")


async def agent_handler(request: web.Request) -> web.StreamResponse:
    """``GET /v1/agent``: a person taking calls."""
    refused = check_origin(request)
    if refused is not None:
        return refused
    sb = request.app[switchboard_key]
    auth = request.app[authenticator_key]
    ws, transport = await open_socket(request)
    errors = ErrorCount(transport, sb.metrics)
    limits = Limits()
    seat = None
    try:
        while seat is None:
            login = await first_message(ws, transport, errors, AGENT_TYPES, "login", parse_login)
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
        agent = seat  # signed in: its frames go to its leg while it is bridged
        ws.take_audio(
            leg_sink(
                agent.leg, limits.frames, lambda: agent.call is not None and agent.call.bridged
            )
        )
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
                            "message": over("digits", DIGIT_RATE),
                        }
                    )
                    sb.metrics.limit_close("rate_limited")
                    transport.close(1008)
                    break
                agent_message(sb, seat, m)
            except ProtocolError as err:
                if errors.report(err):
                    break
    finally:
        ws.take_audio(None)
        if seat is not None:
            sb.remove_person(seat)
        if not ws.closed:
            await ws.close(code=transport.close_code or 1000)
    return ws


def _agent_over_limit(sb: Switchboard, transport: WsTransport, audio: bool) -> None:
    """An agent's connection went over a rate limit: say so and close with 1008."""
    message = over("audio frames", FRAME_RATE) if audio else over("messages", MESSAGE_RATE)
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


def agent_message(sb: Switchboard, seat: PersonSeat, m: dict[str, Any]) -> None:
    """A signed-in agent's message (docs/protocol.md); :class:`ProtocolError` if it is wrong."""
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
