"""SIP transactions (RFC 3261 section 17) as sans-I/O state machines.

A transaction is fed :class:`PeerMessage` (from the network), :class:`TuResponse`
(a server transaction's response from its TU, the core) and :class:`TimerFired`,
and answers with actions: :class:`Transmit` to its peer, :class:`Arm` or
:class:`Disarm` a timer by the RFC's letter, :class:`Deliver` a response to
the TU, :class:`TimedOut`, and :class:`Ended` once it reaches Terminated. It
never reads a clock: delays go out in ``Arm``, their end comes back in
``TimerFired``.

Each machine is a table ``(state, input) -> (next state, step)`` with the
RFC's state names and timer letters (figures 5 to 8). An input missing from
the table is a misuse by the TU or the driver and raises
:class:`SipStateError`; the table holds an entry for every message a peer
can send in every live state, so nothing a peer does raises.

On a reliable transport (TCP, TLS) the retransmission timers (A, E, G) are
not armed and the wait timers (D, I, J, K) are zero: the transaction moves
on at once (RFC 3261 sections 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ivr.transport.sip.errors import SipStateError
from ivr.transport.sip.headers import MAGIC_COOKIE
from ivr.transport.sip.message import Request, Response


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """RFC 3261 section 17.1.1.1 and table 4; the defaults are the RFC's."""

    t1_s: float = 0.5  # round-trip estimate
    t2_s: float = 4.0  # longest retransmission interval for non-INVITE requests and responses
    t4_s: float = 5.0  # longest time a message stays in the network
    timer_d_s: float = 32.0  # at least 32 s on unreliable transports (17.1.1.2)

    @property
    def timeout_s(self) -> float:
        """64*T1: timers B, F, H and J, and the 2xx retransmission limit (13.3.1.4)."""
        return 64 * self.t1_s


# -- inputs and actions ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerMessage:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class TuResponse:
    response: Response


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: str  # the RFC's letter


TxInput = PeerMessage | TuResponse | TimerFired


@dataclass(frozen=True, slots=True)
class Transmit:
    message: Request | Response


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class Disarm:
    name: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """A response for the TU (client transactions)."""

    response: Response


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B, F or H fired: the peer never answered (or never acknowledged)."""

    name: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The transaction reached Terminated: forget it and its timers."""


TxAction = Transmit | Arm | Disarm | Deliver | TimedOut | Ended
Step = Callable[[Any, TxInput], None]  # an unbound method of the machine


def input_kind(event: TxInput) -> str:
    """The table key of an input: ``request``, ``ack``, ``tu_1xx``, ``2xx``, ``timer_G``..."""
    if isinstance(event, TimerFired):
        return f"timer_{event.name}"
    if isinstance(event, TuResponse):
        return "tu_" + _status_class(event.response.status)
    message = event.message
    if isinstance(message, Request):
        return "ack" if message.method == "ACK" else "request"
    return _status_class(message.status)


def _status_class(status: int) -> str:
    return "1xx" if status < 200 else "2xx" if status < 300 else "300_699"


# -- matching (17.1.3, 17.2.3) ---------------------------------------------------

TxKey = tuple[str, ...]


def server_key(request: Request, method: str | None = None) -> TxKey:
    """The server transaction a request belongs to (RFC 3261 section 17.2.3).

    With the magic cookie: branch, sent-by and method (ACK counts as INVITE;
    a CANCEL looks up its INVITE with ``method="INVITE"``, section 9.2).
    Without it (RFC 2543 peers): Request-URI, From tag, Call-ID, CSeq number
    and the top Via; the To tag is left out because the INVITE had none.
    """
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.sent_by, method)
    tag = request.from_.tag or ""
    number = str(request.cseq.number)
    return ("2543", str(request.uri), tag, request.call_id, number, via.sent_by, branch, method)


def client_key(message: Request | Response) -> TxKey:
    """Top Via branch and CSeq method (RFC 3261 section 17.1.3)."""
    return (message.top_via.branch or "", message.cseq.method)


# -- the machines ----------------------------------------------------------------


class Transaction:
    """What the four machines share: the table walk, timers, zero-length waits."""

    TABLE: ClassVar[dict[tuple[str, str], tuple[str, Step]]]
    state: str

    def __init__(self, *, reliable: bool, timers: TimerSettings) -> None:
        self.reliable = reliable
        self.timers = timers
        self._out: list[TxAction] = []
        self._zero: list[str] = []

    @property
    def terminated(self) -> bool:
        return self.state == "Terminated"

    def receive(self, event: TxInput) -> list[TxAction]:
        self._step(event)
        while self._zero:  # a zero-length timer fires now (reliable transports)
            self._step(TimerFired(self._zero.pop(0)))
        out, self._out = self._out, []
        return out

    def _step(self, event: TxInput) -> None:
        kind = input_kind(event)
        entry = self.TABLE.get((self.state, kind))
        if entry is None:
            machine = type(self).__name__
            raise SipStateError(f"can't handle {kind} in state {self.state} ({machine})")
        next_state, step = entry
        step(self, event)
        self.state = next_state
        if next_state == "Terminated":
            self._zero.clear()
            self._out.append(Ended())

    def _arm(self, name: str, delay_s: float) -> None:
        if delay_s <= 0:
            self._zero.append(name)
        else:
            self._out.append(Arm(name, delay_s))

    def _wait(self, name: str, unreliable_s: float) -> None:
        """Arm a wait timer: its value on UDP, zero on a reliable transport."""
        self._arm(name, 0.0 if self.reliable else unreliable_s)

    def _nothing(self, event: TxInput) -> None:
        """Absorb: a retransmission the state has already answered, or a timer's end."""


class _Server(Transaction):
    def __init__(self, request: Request, *, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(reliable=reliable, timers=timers)
        self.request = request
        self.provisional: Response | None = None
        self.final: Response | None = None

    def _send_provisional(self, event: TxInput) -> None:
        assert isinstance(event, TuResponse)
        self.provisional = event.response
        self._out.append(Transmit(event.response))

    def _resend_provisional(self, event: TxInput) -> None:
        if self.provisional is not None:
            self._out.append(Transmit(self.provisional))

    def _resend_final(self, event: TxInput) -> None:
        assert self.final is not None
        self._out.append(Transmit(self.final))

    def _send_final(self, event: TxInput) -> None:
        assert isinstance(event, TuResponse)
        self.final = event.response
        self._out.append(Transmit(event.response))


class InviteServerTransaction(_Server):
    """RFC 3261 section 17.2.1, figure 7. A 2xx ends it: the TU retransmits 2xx (13.3.1.4)."""

    def __init__(self, request: Request, *, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = "Proceeding"  # then Completed, Confirmed, Terminated
        self._g_s = timers.t1_s

    def _complete(self, event: TxInput) -> None:
        self._send_final(event)
        if not self.reliable:
            self._arm("G", self._g_s)
        self._arm("H", self.timers.timeout_s)

    def _retransmit_g(self, event: TxInput) -> None:
        self._resend_final(event)
        self._g_s = min(2 * self._g_s, self.timers.t2_s)
        self._arm("G", self._g_s)

    def _confirm(self, event: TxInput) -> None:
        self._out.extend([Disarm("G"), Disarm("H")])
        self._wait("I", self.timers.t4_s)

    def _time_out(self, event: TxInput) -> None:
        self._out.append(TimedOut("H"))


InviteServerTransaction.TABLE = {
    ("Proceeding", "request"): ("Proceeding", _Server._resend_provisional),
    ("Proceeding", "ack"): ("Proceeding", Transaction._nothing),
    ("Proceeding", "tu_1xx"): ("Proceeding", _Server._send_provisional),
    ("Proceeding", "tu_2xx"): ("Terminated", _Server._send_final),
    ("Proceeding", "tu_300_699"): ("Completed", InviteServerTransaction._complete),
    ("Completed", "request"): ("Completed", _Server._resend_final),
    ("Completed", "ack"): ("Confirmed", InviteServerTransaction._confirm),
    ("Completed", "timer_G"): ("Completed", InviteServerTransaction._retransmit_g),
    ("Completed", "timer_H"): ("Terminated", InviteServerTransaction._time_out),
    ("Confirmed", "request"): ("Confirmed", Transaction._nothing),
    ("Confirmed", "ack"): ("Confirmed", Transaction._nothing),
    ("Confirmed", "timer_I"): ("Terminated", Transaction._nothing),
}


class NonInviteServerTransaction(_Server):
    """RFC 3261 section 17.2.2, figure 8."""

    def __init__(self, request: Request, *, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = "Trying"  # then Proceeding, Completed, Terminated

    def _complete(self, event: TxInput) -> None:
        self._send_final(event)
        self._wait("J", self.timers.timeout_s)


NonInviteServerTransaction.TABLE = {
    ("Trying", "request"): ("Trying", Transaction._nothing),
    ("Trying", "tu_1xx"): ("Proceeding", _Server._send_provisional),
    ("Trying", "tu_2xx"): ("Completed", NonInviteServerTransaction._complete),
    ("Trying", "tu_300_699"): ("Completed", NonInviteServerTransaction._complete),
    ("Proceeding", "request"): ("Proceeding", _Server._resend_provisional),
    ("Proceeding", "tu_1xx"): ("Proceeding", _Server._send_provisional),
    ("Proceeding", "tu_2xx"): ("Completed", NonInviteServerTransaction._complete),
    ("Proceeding", "tu_300_699"): ("Completed", NonInviteServerTransaction._complete),
    ("Completed", "request"): ("Completed", _Server._resend_final),
    ("Completed", "timer_J"): ("Terminated", Transaction._nothing),
}
