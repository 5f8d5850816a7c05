"""What crosses the SIP core's edge: addresses, the driver's three outputs, the app's events.

Kept apart from the core, as h11 keeps its events, so that the asyncio
driver and the application depend on these and on nothing of the core's
insides. All are frozen dataclasses.

The driver drains three queues after every call into the core:

- :meth:`~ivr.transport.sip.core.SipCore.data_to_send`: :class:`Outgoing`
  (bytes and where to) and :class:`CloseConnection`;
- :meth:`~ivr.transport.sip.core.SipCore.timers_to_set`: :class:`StartTimer`
  and :class:`CancelTimer`; when a started timer's delay has passed, the
  driver calls ``timer_fired(timer, now)``;
- :meth:`~ivr.transport.sip.core.SipCore.events_received`: the events below,
  for the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ivr.transport.sip.message import Request

Transport = Literal["UDP", "TCP", "TLS"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a message came from or goes to.

    ``host`` is an IP address for a source; for a destination it may be a
    name from a URI, which the driver resolves (RFC 3263). ``connection`` is
    the driver's id of a TCP/TLS connection: set on what arrived on one, and
    on what should go back on it (RFC 3261 section 18.2.2). A destination on
    a stream without a connection asks the driver to open one.
    """

    host: str
    port: int
    transport: Transport = "UDP"
    connection: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


# -- for the driver --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    data: bytes
    destination: Endpoint


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """The stream can no longer be framed (RFC 3261 section 18.3): close it."""

    connection: int


@dataclass(frozen=True, slots=True)
class Timer:
    """One armed timer. ``name`` is the RFC's letter ("G", "H"...) or the core's
    ("2xx", "no-ack", "linger"); ``serial`` makes each arming unique, so a timer
    that fires after it was cancelled is recognised and ignored."""

    name: str
    owner: str
    serial: int


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    delay_s: float
    at_s: float  # now + delay_s, on the driver's clock (what ``now`` was)


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


DriverAction = Outgoing | CloseConnection
TimerAction = StartTimer | CancelTimer


# -- for the application ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE: 100 Trying is already sent. Answer with ``ring``, ``answer``, ``reject``."""

    call: str  # the key for every later decision about this call
    call_id: str
    request_uri_user: str | None  # the dialled number, unescaped: "+15550100"
    from_user: str | None
    display_name: str
    sdp_offer: bytes | None  # None: a delayed offer, ours goes in the 200, theirs in the ACK
    source: Endpoint
    request: Request  # everything else (P-Asserted-Identity, User-Agent...)


@dataclass(frozen=True, slots=True)
class CallCancelled:
    """A CANCEL came before our final response; the INVITE got 487 (RFC 3261 9.2)."""

    call: str


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The caller acknowledged our 2xx; ``sdp_answer`` when our 200 carried the offer."""

    call: str
    sdp_answer: bytes | None


@dataclass(frozen=True, slots=True)
class ByeReceived:
    """The caller hung up; the BYE got 200 and the call is over."""

    call: str


@dataclass(frozen=True, slots=True)
class ReInviteReceived:
    """A re-INVITE (hold, resume, refresh): answer with ``answer_reinvite`` or
    ``reject_reinvite``. ``sdp_offer`` None: they want our offer."""

    call: str
    sdp_offer: bytes | None


@dataclass(frozen=True, slots=True)
class ReInviteCancelled:
    """The pending re-INVITE was cancelled (487); the session is as it was."""

    call: str


@dataclass(frozen=True, slots=True)
class InfoReceived:
    """An INFO with a DTMF body (``application/dtmf-relay`` or ``application/dtmf``)."""

    call: str
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """No ACK for our 2xx within 64*T1 (RFC 3261 13.3.1.4): the core sent BYE."""

    call: str


@dataclass(frozen=True, slots=True)
class ByeCompleted:
    """Our BYE is over: ``status`` of its final response, None when it timed out (F)."""

    call: str
    status: int | None


SipEvent = (
    IncomingCall
    | CallCancelled
    | AckReceived
    | ByeReceived
    | ReInviteReceived
    | ReInviteCancelled
    | InfoReceived
    | CallTimedOut
    | ByeCompleted
)
