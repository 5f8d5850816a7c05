"""Agents who take calls: people on the agent WebSocket, and bots.

Both are *seats* to the switchboard: it offers a ringing call to the seat of
the team that has been idle longest, and the seat answers or declines. A
person answers with an ``answer`` message; a bot answers by itself after its
delay, plays its greeting and stays on the line until the caller hangs up or
its maximum call length runs out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from ivr.call.leg import Leg
from ivr.call.prompt import Prompt
from media.frame import Pcm
from media.resample import StreamResampler

SeatState = Literal["not_ready", "ready", "offered", "busy"]


class OfferedCall(Protocol):
    """What a seat needs of the call it is offered or connected to (a call session)."""

    @property
    def id(self) -> str: ...

    @property
    def caller_number(self) -> str: ...

    @property
    def line(self) -> str | None: ...

    @property
    def team(self) -> str | None: ...

    @property
    def will_record(self) -> bool: ...

    @property
    def bridged(self) -> bool: ...

    @property
    def sample_rate(self) -> int:
        """The caller's rate: what a seat's audio is resampled to and from."""

    def agent_answered(self, seat: Seat) -> None: ...

    def agent_declined(self, seat: Seat) -> None: ...

    def agent_hangup(self) -> None: ...


class Person(Protocol):
    """Who signs in on a seat: a user's id, name and teams (the store's ``User`` has them)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def teams(self) -> tuple[str, ...]: ...


class Seat:
    """What the switchboard and a call need of an agent, person or bot."""

    is_bot = False

    def __init__(
        self, seat_id: str, name: str, teams: tuple[str, ...], user_id: str | None
    ) -> None:
        self.id = seat_id
        self.name = name
        self.teams = teams
        self.user_id = user_id
        self.state: SeatState = "not_ready"
        self.wants_ready = False  # where the seat goes when its call or offer ends
        self.retired = False  # a bot removed from its team: gone once its call ends
        self.idle_since = 0
        self.call: OfferedCall | None = None

    def offer(self, call: OfferedCall) -> None:
        """The switchboard offers ``call``; the seat will answer or decline."""
        self.state = "offered"
        self.call = call

    def withdraw(self) -> None:
        """The offer is off (the caller left, the ring timed out, another seat took it)."""
        self.call = None

    def connect(self, call: OfferedCall) -> None:
        """The call is bridged to this seat."""
        self.state = "busy"
        self.call = call

    def speak(self) -> Pcm | None:
        """This tick's audio from the agent, at the call's rate (None: silence)."""
        return None

    def hear(self, pcm: Pcm | None) -> None:
        """This tick's audio from the caller, at the call's rate."""

    def end(self, reason: str) -> None:
        """The call this seat was on has ended."""
        self.call = None


class BotSeat(Seat):
    """A simulated agent inside the server, with no WebSocket."""

    is_bot = True

    def __init__(
        self,
        seat_id: str,
        name: str,
        team: str,
        greeting: Prompt,
        answer_delay_s: float,
        max_call_s: float,
    ) -> None:
        super().__init__(seat_id, name, (team,), None)
        self.wants_ready = True
        self.greeting = greeting
        self.answer_delay_s = answer_delay_s
        self.max_call_s = max_call_s
        self._frame = 0
        self._frames: list[Pcm] = []

    def connect(self, call: OfferedCall) -> None:
        super().connect(call)
        self._frame = 0
        self._frames = self.greeting.pcm_frames(call.sample_rate)

    def speak(self) -> Pcm | None:
        i = self._frame
        if i >= len(self._frames):
            return None
        self._frame = i + 1
        return self._frames[i]


class PersonSeat(Seat):
    """A person signed in on ``/v1/agent``; their audio rides on a :class:`Leg`.

    The seat keeps the hash of the token it signed in with and that token's
    expiry: the seat lives no longer than the session, so the switchboard can
    end it when the token is revoked (by its hash), when the user loses their
    sessions (by user id), or once it has expired.
    """

    user_id: str

    def __init__(
        self,
        seat_id: str,
        name: str,
        teams: tuple[str, ...],
        user_id: str,
        leg: Leg,
        *,
        token_hash: str,
        expires_at: datetime | None = None,
    ) -> None:
        super().__init__(seat_id, name, teams, user_id)
        self.leg = leg
        self.token_hash = token_hash
        self.expires_at = expires_at
        self._to_call: StreamResampler | None = None
        self._to_agent: StreamResampler | None = None

    def expired(self, now: datetime) -> bool:
        """Whether the session this seat signed in with has run out at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def signed_out(self, why: str) -> None:
        """Tell the person why their session is over and close the socket (1008).

        The switchboard has already taken the seat out and settled its call.
        """
        self.leg.send_message({"type": "error", "code": "unauthorized", "message": why})
        if self.leg.transport is not None:
            self.leg.transport.close(1008)

    def offer(self, call: OfferedCall) -> None:
        super().offer(call)
        self.leg.send_message(
            {
                "type": "offer",
                "call_id": call.id,
                "from": call.caller_number,
                "line": call.line,
                "recording": call.will_record,
            }
        )

    def connect(self, call: OfferedCall) -> None:
        super().connect(call)
        self.leg.reset()
        rate, mine = call.sample_rate, self.leg.sample_rate
        self._to_call = StreamResampler(mine, rate) if mine != rate else None
        self._to_agent = StreamResampler(rate, mine) if mine != rate else None
        self.leg.answered(call.id)

    def speak(self) -> Pcm | None:
        pcm = self.leg.take_inbound()
        if pcm is not None and self._to_call is not None:
            pcm = self._to_call.process(pcm)
        return pcm

    def hear(self, pcm: Pcm | None) -> None:
        if pcm is not None and self._to_agent is not None:
            pcm = self._to_agent.process(pcm)
        self.leg.send_pcm(pcm)

    def end(self, reason: str) -> None:
        call = self.call
        super().end(reason)
        if call is not None:
            self.leg.send_message(
                {
                    "type": "hangup",
                    "call_id": call.id,
                    "reason": reason,
                    "stats": self.leg.stats.snapshot(),
                }
            )
