"""Client transactions (RFC 3261 section 17.1): ours, for BYE now, INVITE and REGISTER next.

Started with :meth:`start` (the first transmission and its timers), then fed
responses and timers like the server machines of
:mod:`ivr.transport.sip.transaction`. The INVITE client transaction builds
and sends the ACK for a non-2xx final response itself (17.1.1.3); the ACK
for a 2xx is the TU's, being a transaction of its own (13.2.2.4).
"""

from __future__ import annotations

from ivr.transport.sip.message import Request, make_request
from ivr.transport.sip.transaction import (
    Deliver,
    Disarm,
    PeerMessage,
    TimedOut,
    TimerSettings,
    Transaction,
    Transmit,
    TxAction,
    TxInput,
)


class _Client(Transaction):
    def __init__(self, request: Request, *, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(reliable=reliable, timers=timers)
        self.request = request

    def _deliver(self, event: TxInput) -> None:
        assert isinstance(event, PeerMessage)
        assert not isinstance(event.message, Request)
        self._out.append(Deliver(event.message))

    def _flush(self) -> list[TxAction]:
        out, self._out = self._out, []
        return out


class InviteClientTransaction(_Client):
    """RFC 3261 section 17.1.1, figure 5: Calling, Proceeding, Completed, Terminated."""

    def __init__(self, request: Request, *, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = "Calling"
        self._a_s = timers.t1_s
        self.ack: Request | None = None

    def start(self) -> list[TxAction]:
        self._out.append(Transmit(self.request))
        if not self.reliable:
            self._arm("A", self._a_s)
        self._arm("B", self.timers.timeout_s)
        return self._flush()

    def _retransmit_a(self, event: TxInput) -> None:
        self._out.append(Transmit(self.request))
        self._a_s *= 2  # A doubles without the T2 cap (17.1.1.2)
        self._arm("A", self._a_s)

    def _proceed(self, event: TxInput) -> None:
        self._out.extend([Disarm("A"), Disarm("B")])
        self._deliver(event)

    def _complete(self, event: TxInput) -> None:
        assert isinstance(event, PeerMessage)
        self._out.extend([Disarm("A"), Disarm("B")])
        self._deliver(event)
        self.ack = self._build_ack(event)
        self._out.append(Transmit(self.ack))
        self._wait("D", self.timers.timer_d_s)

    def _resend_ack(self, event: TxInput) -> None:
        assert self.ack is not None
        self._out.append(Transmit(self.ack))

    def _time_out(self, event: TxInput) -> None:
        self._out.append(TimedOut("B"))

    def _build_ack(self, event: PeerMessage) -> Request:
        """RFC 3261 section 17.1.1.3: the INVITE's Request-URI, top Via, From, Call-ID,
        CSeq number and Route; the response's To (with its tag)."""
        invite, response = self.request, event.message
        headers = [
            ("Via", invite.top_via.raw),
            ("Max-Forwards", "70"),
            ("From", invite.from_.raw),
            ("To", response.to.raw),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.number} ACK"),
            *(("Route", r.raw) for r in invite.route),
        ]
        return make_request("ACK", invite.uri, headers)


_N = Transaction._nothing
InviteClientTransaction.TABLE = {
    ("Calling", "timer_A"): ("Calling", InviteClientTransaction._retransmit_a),
    ("Calling", "timer_B"): ("Terminated", InviteClientTransaction._time_out),
    ("Calling", "1xx"): ("Proceeding", InviteClientTransaction._proceed),
    ("Calling", "2xx"): ("Terminated", InviteClientTransaction._proceed),
    ("Calling", "300_699"): ("Completed", InviteClientTransaction._complete),
    ("Proceeding", "1xx"): ("Proceeding", _Client._deliver),
    ("Proceeding", "2xx"): ("Terminated", _Client._deliver),
    ("Proceeding", "300_699"): ("Completed", InviteClientTransaction._complete),
    ("Completed", "1xx"): ("Completed", _N),
    ("Completed", "2xx"): ("Completed", _N),
    ("Completed", "300_699"): ("Completed", InviteClientTransaction._resend_ack),
    ("Completed", "timer_D"): ("Terminated", _N),
}


class NonInviteClientTransaction(_Client):
    """RFC 3261 section 17.1.2, figure 6: Trying, Proceeding, Completed, Terminated."""

    def __init__(self, request: Request, *, reliable: bool, timers: TimerSettings) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.state = "Trying"
        self._e_s = timers.t1_s

    def start(self) -> list[TxAction]:
        self._out.append(Transmit(self.request))
        if not self.reliable:
            self._arm("E", self._e_s)
        self._arm("F", self.timers.timeout_s)
        return self._flush()

    def _retransmit_trying(self, event: TxInput) -> None:
        self._out.append(Transmit(self.request))
        self._e_s = min(2 * self._e_s, self.timers.t2_s)
        self._arm("E", self._e_s)

    def _retransmit_proceeding(self, event: TxInput) -> None:
        self._out.append(Transmit(self.request))
        self._e_s = self.timers.t2_s  # 17.1.2.2: T2 once a provisional came
        self._arm("E", self._e_s)

    def _complete(self, event: TxInput) -> None:
        self._out.extend([Disarm("E"), Disarm("F")])
        self._deliver(event)
        self._wait("K", self.timers.t4_s)

    def _time_out(self, event: TxInput) -> None:
        self._out.append(TimedOut("F"))


NonInviteClientTransaction.TABLE = {
    ("Trying", "timer_E"): ("Trying", NonInviteClientTransaction._retransmit_trying),
    ("Trying", "timer_F"): ("Terminated", NonInviteClientTransaction._time_out),
    ("Trying", "1xx"): ("Proceeding", _Client._deliver),
    ("Trying", "2xx"): ("Completed", NonInviteClientTransaction._complete),
    ("Trying", "300_699"): ("Completed", NonInviteClientTransaction._complete),
    ("Proceeding", "timer_E"): ("Proceeding", NonInviteClientTransaction._retransmit_proceeding),
    ("Proceeding", "timer_F"): ("Terminated", NonInviteClientTransaction._time_out),
    ("Proceeding", "1xx"): ("Proceeding", _Client._deliver),
    ("Proceeding", "2xx"): ("Completed", NonInviteClientTransaction._complete),
    ("Proceeding", "300_699"): ("Completed", NonInviteClientTransaction._complete),
    ("Completed", "1xx"): ("Completed", _N),
    ("Completed", "2xx"): ("Completed", _N),
    ("Completed", "300_699"): ("Completed", _N),
    ("Completed", "timer_K"): ("Terminated", _N),
}
