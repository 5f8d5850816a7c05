"""Calls across nodes: an agent on node A takes a call whose caller is on node B.

Each side is made of what the call path already has, with the link between
the nodes (a WebSocket, :mod:`ivr.transport.bridge`) as a :class:`Leg`:

* on **B**, the caller's node, the agent is a :class:`RemoteSeat`: a seat
  like any other to the switchboard and the call. Offering the call opens
  the link and sends ``offer``; A answers ``answered`` or ``declined``; once
  the call is bridged, the seat speaks the frames that come over the link
  and sends the caller's frames over it. B records the call, as it holds the
  caller (its recorder sees the agent's frames as they arrive);
* on **A**, the agent's node, the call is a :class:`RemoteCall`: what a
  person's seat needs of a call (:class:`ivr.call.seat.OfferedCall`), and
  a :class:`ivr.call.clock.Tickable` on A's media clock once connected, so
  that every 20 ms the agent hears the caller's frame from the link and the
  agent's frame goes back over it.

The messages on the link (JSON; audio as binary frames of 16-bit PCM at the
caller's rate, 20 ms each, both ways once connected):

    B -> A  {"type": "offer", "seat", "call_id", "from", "line", "team", "recording", "rate"}
    A -> B  {"type": "answered"} | {"type": "declined", "why"} | {"type": "hangup"}
    B -> A  {"type": "connected"} | {"type": "withdraw"} | {"type": "hangup", "reason"}
            | {"type": "indicate", "message": {...}}   (recording on/off, to the agent)

A link that drops is a decline (before the call is connected) or a hang-up
(after), on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ivr.call.clock import Inband
from ivr.call.leg import Leg
from ivr.call.seat import OfferedCall, PersonSeat, Seat
from media.frame import Pcm

if TYPE_CHECKING:
    from ivr.call.switchboard import Switchboard

log = logging.getLogger("ivr.bridge")


class RemoteSeat(Seat):
    """On the caller's node: an agent signed in on another node (``node_id``)."""

    def __init__(
        self,
        seat_id: str,
        name: str,
        teams: tuple[str, ...],
        user_id: str,
        node_id: str,
        url: str,
        opener: Callable[[RemoteSeat, OfferedCall], None],
    ) -> None:
        super().__init__(seat_id, name, teams, user_id)
        self.node_id = node_id
        self.url = url
        self.remote_seat_id = seat_id.split(":", 1)[-1]
        self._opener = opener
        self.link: Leg | None = None
        self.closing: Callable[[], None] | None = None  # closes the link (set by the opener)
        self.seen = ""  # when its node last said it changed state (the mirror's)

    # -- the switchboard and the call ---------------------------------------------

    def offer(self, call: OfferedCall) -> None:
        super().offer(call)
        self._opener(self, call)  # opens the link and sends the offer; replies come later

    def withdraw(self) -> None:
        self._send({"type": "withdraw"})
        self._close()
        super().withdraw()

    def connect(self, call: OfferedCall) -> None:
        super().connect(call)
        if self.link is not None:
            self.link.reset()
        self._send({"type": "connected"})

    def speak(self) -> Pcm | None:
        return self.link.take_inbound() if self.link is not None else None

    def hear(self, pcm: Pcm | None) -> None:
        if self.link is not None:
            self.link.send_pcm(pcm)

    def indicate(self, message: dict[str, Any]) -> None:
        """A recording indicator for the agent, passed on to their node."""
        self._send({"type": "indicate", "message": message})

    def end(self, reason: str) -> None:
        self._send({"type": "hangup", "reason": reason})
        self._close()
        super().end(reason)

    # -- the link ----------------------------------------------------------------

    def attached(self, link: Leg, close: Callable[[], None]) -> None:
        """The link to the agent's node is open (the offer is sent on it next)."""
        self.link, self.closing = link, close

    def received(self, call: OfferedCall, message: dict[str, Any]) -> None:
        """A message from the agent's node about ``call`` (the call the link was opened for)."""
        kind = message.get("type")
        if call is not self.call:
            return  # a late message about an earlier call
        if kind == "answered" and self.state == "offered":
            call.agent_answered(self)
        elif kind == "declined" and self.state == "offered":
            log.info("seat %s on node %s declined call %s: %s", self.remote_seat_id,
                     self.node_id, call.id, str(message.get("why", ""))[:80])  # fmt: skip
            self._close()
            # Not offered again until their node publishes them ready anew.
            self.wants_ready = False
            call.agent_declined(self)
        elif kind == "hangup" and call.bridged:
            call.agent_hangup()

    def link_lost(self, call: OfferedCall) -> None:
        """The link opened for ``call`` closed, or never opened: the offer is declined,
        or the agent hung up."""
        if call is not self.call:
            return  # the link of an earlier call
        self.link = None
        self.closing = None
        if self.state == "offered":
            call.agent_declined(self)
        elif call.bridged:
            call.agent_hangup()

    def _send(self, message: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.send_message(message)

    def _close(self) -> None:
        close, self.closing, self.link = self.closing, None, None
        if close is not None:
            close()


class RemoteCall:
    """On the agent's node: a call whose caller is on another node, offered to ``seat``."""

    def __init__(
        self, offer: dict[str, Any], link: Leg, seat: PersonSeat, switchboard: Switchboard
    ) -> None:
        self.id = str(offer["call_id"])
        self.caller_number = str(offer.get("from", ""))
        self.line: str | None = offer.get("line")
        self.team: str | None = offer.get("team")
        self.will_record = bool(offer.get("recording"))
        self.bridged = False
        self.link = link
        self.seat = seat
        self.sb = switchboard
        self.ended = False
        self._rate = link.sample_rate

    @property
    def key(self) -> str:
        return f"remote:{self.id}"

    @property
    def sample_rate(self) -> int:
        return self._rate

    # -- what the agent's seat does (its WebSocket messages) ---------------------

    def agent_answered(self, seat: Seat) -> None:
        if seat is self.seat and not self.bridged and not self.ended:
            self.link.send_message({"type": "answered"})

    def agent_declined(self, seat: Seat) -> None:
        if seat is not self.seat or self.bridged or self.ended:
            return
        self.ended = True
        self.link.send_message({"type": "declined", "why": "the agent declined"})
        seat.withdraw()
        self.sb.seat_declined(seat)
        self._close()

    def agent_hangup(self) -> None:
        if self.bridged and not self.ended:
            self.link.send_message({"type": "hangup"})  # the caller's node ends the call

    # -- what the caller's node says ----------------------------------------------

    def offer_to_seat(self) -> str | None:
        """Offer the call to the agent; why not, if their seat cannot take it."""
        seat = self.sb.seats.get(self.seat.id)
        if seat is not self.seat or seat.state != "ready":
            return "the agent is not available"
        seat.offer(self)
        return None

    def received(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "connected" and not self.bridged and not self.ended:
            if self.seat.call is not self:  # the agent left meanwhile
                self.link.send_message({"type": "hangup"})
                return
            self.bridged = True
            self.seat.connect(self)
            self.sb.seat_answered(self.seat, self)
            self.sb.clock.add(self)
        elif kind == "withdraw" and not self.bridged:
            self._finish(None)
        elif kind == "hangup":
            self._finish(str(message.get("reason") or "caller"))
        elif kind == "indicate" and self.bridged and isinstance(message.get("message"), dict):
            self.seat.leg.send_message(message["message"])

    def link_lost(self) -> None:
        """The link to the caller's node closed: the call is over for this agent."""
        self._finish("error" if self.bridged else None)

    def _finish(self, reason: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        seat = self.seat
        if self.bridged:
            self.sb.clock.remove(self)
            if seat.call is self:
                seat.end(reason or "error")
                self.sb.seat_released(seat)
        elif seat.call is self:
            seat.withdraw()
            self.sb.seat_released(seat)
        self._close()

    def _close(self) -> None:
        if self.link.transport is not None:
            self.link.transport.close(1000)

    # -- the media clock ------------------------------------------------------------

    def take_inbound(self) -> Pcm | None:
        return self.link.take_inbound()

    def tick(self, n: int, inbound: Pcm | None, inband: Inband) -> None:
        self.seat.hear(inbound)
        self.link.send_pcm(self.seat.speak())

    def skipped(self, ticks: int) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        log.error("remote call %s failed: %s", self.id, type(exc).__name__)
        self.link.send_message({"type": "hangup"})
        self._finish("error")
