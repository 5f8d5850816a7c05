"""A driver for tests: a fake clock, the timers the core armed, what it sent, parsed back."""

from __future__ import annotations

import random
from typing import Any

from ivr.transport.sip.config import SipConfig
from ivr.transport.sip.core import SipCore
from ivr.transport.sip.errors import BadMessage
from ivr.transport.sip.events import (
    CloseConnection,
    Endpoint,
    IncomingCall,
    Outgoing,
    SipEvent,
    StartTimer,
    Timer,
)
from ivr.transport.sip.framing import PONG
from ivr.transport.sip.message import Request, Response, parse_message
from tests.ivr.transport.sip.wire import SIPP

Sent = tuple[Request | Response, Endpoint]


class Harness:
    """Feeds bytes in at ``now``, moves the clock, fires due timers in order."""

    def __init__(self, **config: Any) -> None:
        self.core = SipCore(SipConfig(host="203.0.113.5", **config), rng=random.Random(7))
        self.now = 100.0
        self.due: dict[Timer, float] = {}
        self.sent: list[Sent] = []
        self.wire: list[tuple[bytes, Endpoint]] = []  # every datagram sent, as bytes
        self.unparsable: list[tuple[bytes, Endpoint]] = []  # what we echoed of a broken request
        self.closed: list[int] = []
        self.pongs: list[Endpoint] = []
        self.events: list[SipEvent] = []

    def drain(self) -> None:
        for action in self.core.timers_to_set():
            if isinstance(action, StartTimer):
                assert action.at_s == self.now + action.delay_s
                self.due[action.timer] = action.at_s
            else:
                self.due.pop(action.timer, None)
        for out in self.core.data_to_send():
            if isinstance(out, CloseConnection):
                self.closed.append(out.connection)
            elif out.data == PONG:
                self.pongs.append(out.destination)
            else:
                assert isinstance(out, Outgoing)
                self.wire.append((out.data, out.destination))
                try:
                    self.sent.append((parse_message(out.data), out.destination))
                except BadMessage:
                    self.unparsable.append((out.data, out.destination))
        self.events.extend(self.core.events_received())

    def udp(self, data: bytes, source: tuple[str, int] | Endpoint = SIPP) -> None:
        self.core.receive_datagram(data, source, self.now)
        self.drain()

    def stream(self, data: bytes, source: Endpoint) -> None:
        self.core.receive_stream(data, source, self.now)
        self.drain()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            ready = [(at, t.serial, t) for t, at in self.due.items() if at <= end + 1e-9]
            if not ready:
                break
            at, _, timer = min(ready)
            del self.due[timer]
            self.now = at
            self.core.timer_fired(timer, self.now)
            self.drain()
        self.now = end

    def take(self) -> list[Sent]:
        sent, self.sent = self.sent, []
        return sent

    def take_events(self) -> list[SipEvent]:
        events, self.events = self.events, []
        return events

    def statuses(self) -> list[int]:
        """The status (or 0 for a request) of each message sent since the last take."""
        return [m.status if isinstance(m, Response) else 0 for m, _ in self.take()]

    def incoming(self) -> IncomingCall:
        (event,) = [e for e in self.take_events() if isinstance(e, IncomingCall)]
        return event

    def armed(self) -> set[str]:
        return {t.name for t in self.due}


def only(sent: list[Sent]) -> Sent:
    assert len(sent) == 1, [m.start_line for m, _ in sent]
    return sent[0]


def response(sent: Sent) -> Response:
    message = sent[0]
    assert isinstance(message, Response), message.start_line
    return message


def request(sent: Sent) -> Request:
    message = sent[0]
    assert isinstance(message, Request), message.start_line
    return message
