"""SIP signalling, sans-I/O (RFC 3261): bytes and ``now`` in; events, bytes and timers out.

Like python-websockets' and h11's protocol objects, :class:`SipCore` does no
I/O and reads no clock: the driver (the asyncio edge) reads sockets, keeps
the timers and calls back; the application decides about calls. A whole
call, as the driver sees it::

    core = SipCore(SipConfig(host="203.0.113.5"))
    core.receive_datagram(invite, ("192.0.2.10", 5061), now)    # out: 100 Trying
    call = core.events_received()[0].call                        # IncomingCall
    core.ring(call, now); core.answer(call, sdp, now)            # out: 180, 200 (+ timers)
    core.receive_datagram(ack, ("192.0.2.10", 5061), now)        # AckReceived
    core.receive_datagram(bye, ("192.0.2.10", 5061), now)        # out: 200; ByeReceived

after each call: ``core.data_to_send()`` (send each :class:`Outgoing`),
``core.timers_to_set()`` (start or cancel; on expiry ``core.timer_fired(timer,
now)``) and ``core.events_received()``.

Layers, bottom up: :mod:`.message` (parse, build, serialise; :mod:`.uri`,
:mod:`.headers`, :mod:`.grammar` below it), :mod:`.framing` (TCP streams),
:mod:`.transaction` and :mod:`.client_transaction` (section 17),
:mod:`.dialog` (12), :mod:`.calls` (one call's table), :mod:`.core`.
"""

from ivr.transport.sip.config import SipConfig
from ivr.transport.sip.core import SipCore
from ivr.transport.sip.errors import BadMessage, CallGone, SipError, SipStateError
from ivr.transport.sip.events import (
    AckReceived,
    ByeCompleted,
    ByeReceived,
    CallCancelled,
    CallTimedOut,
    CancelTimer,
    CloseConnection,
    DriverAction,
    Endpoint,
    IncomingCall,
    InfoReceived,
    Outgoing,
    ReInviteCancelled,
    ReInviteReceived,
    SipEvent,
    StartTimer,
    Timer,
    TimerAction,
    Transport,
)
from ivr.transport.sip.framing import PONG, Ping, StreamParser
from ivr.transport.sip.message import Request, Response, parse_message, serialize
from ivr.transport.sip.transaction import TimerSettings
from ivr.transport.sip.uri import Uri, parse_uri

__all__ = [
    "PONG",
    "AckReceived",
    "BadMessage",
    "ByeCompleted",
    "ByeReceived",
    "CallCancelled",
    "CallGone",
    "CallTimedOut",
    "CancelTimer",
    "CloseConnection",
    "DriverAction",
    "Endpoint",
    "IncomingCall",
    "InfoReceived",
    "Outgoing",
    "Ping",
    "ReInviteCancelled",
    "ReInviteReceived",
    "Request",
    "Response",
    "SipConfig",
    "SipCore",
    "SipError",
    "SipEvent",
    "SipStateError",
    "StartTimer",
    "StreamParser",
    "Timer",
    "TimerAction",
    "TimerSettings",
    "Transport",
    "Uri",
    "parse_message",
    "parse_uri",
    "serialize",
]
