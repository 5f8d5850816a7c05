"""The switchboard: live calls, agents' seats, and who gets which call.

A ``ring`` node puts the call in its team's queue; the queue's oldest call is
offered to the team's available seat that has been idle longest (people and
bots alike). A declined or unanswered offer goes to the next seat; a call
nobody takes waits, on hold audio, until its ring timer runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from ivr.agent import BotSeat, PersonSeat, Seat
from ivr.clock import MediaClock
from ivr.config import Config, Flow, NumberConfig, TeamConfig
from ivr.leg import Leg
from ivr.metrics import ServerMetrics
from ivr.prompt import PromptLibrary
from ivr.recorder import RecorderPool
from ivr.session import CallSession
from ivr.store import Store, User, new_id

log = logging.getLogger("ivr.switch")


# How long a stopping server waits for unsaved calls (the store's writes failing).
SHUTDOWN_SAVE_S = 30.0


class Busy(Exception):
    """The server is at its call limit."""


class Switchboard:
    """Every live call and every seat of this process."""

    def __init__(
        self,
        config: Config,
        store: Store,
        prompts: PromptLibrary,
        clock: MediaClock,
        recorder: RecorderPool,
        *,
        numbers: dict[str, NumberConfig] | None = None,
        flows: dict[str, Flow] | None = None,
        teams: dict[str, TeamConfig] | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ServerMetrics()
        self.config = config
        self.store = store
        self.prompts = prompts
        self.clock = clock
        self.recorder = recorder
        # What calls use now: seeded from the config, changed through the API.
        self.numbers: dict[str, NumberConfig] = dict(numbers or config.numbers)
        self.flows: dict[str, Flow] = dict(flows or config.flows)
        self.teams: dict[str, TeamConfig] = dict(teams or config.teams)
        self.calls: dict[str, CallSession] = {}
        self._unsaved: set[CallSession] = set()  # ended or not, until saved
        self.seats: dict[str, Seat] = {}
        self._queues: dict[str, deque[CallSession]] = {t: deque() for t in self.teams}
        self._idle_seq = 0
        self.shutting_down = False
        for team_id, team in self.teams.items():
            self._sync_bots(team_id, team)

    def _sync_bots(self, team_id: str, team: TeamConfig | None) -> None:
        """Make the team's bot seats match its config: add or retire bots."""
        bots = self.config.bots
        want = team.bots if team is not None else 0
        mine = sorted(
            (s for s in self.seats.values() if s.is_bot and team_id in s.teams),
            key=lambda s: int(s.id.rsplit("-", 1)[1]),
        )
        for seat in mine[want:]:
            seat.wants_ready = False
            seat.retired = True
            if seat.state in ("ready", "not_ready"):
                del self.seats[seat.id]
        if want > len(mine) and team is not None:
            greeting = self.prompts.get(team.bot_greeting or bots.greeting)
            for i in range(len(mine) + 1, want + 1):
                seat = BotSeat(
                    f"bot-{team_id}-{i}",
                    f"{team_id} bot {i}",
                    team_id,
                    greeting,
                    bots.answer_delay_s,
                    bots.max_call_s,
                )
                self._add_seat(seat, ready=True)
            self._dispatch(team_id)

    # -- live changes (the API) ------------------------------------------------

    def set_number(self, number_id: str, number: NumberConfig) -> None:
        """Takes effect for the next call; calls in progress keep their settings."""
        self.numbers[number_id] = number

    def set_flow(self, flow: Flow) -> None:
        self.flows[flow.id] = flow

    def set_team(self, team_id: str, team: TeamConfig | None) -> None:
        if team is None:
            self.teams.pop(team_id, None)
        else:
            self.teams[team_id] = team
            self._queues.setdefault(team_id, deque())
        self._sync_bots(team_id, team)

    # -- seats -----------------------------------------------------------------

    def _add_seat(self, seat: Seat, *, ready: bool) -> None:
        self.seats[seat.id] = seat
        seat.wants_ready = ready
        if ready:
            self._idle_seq += 1
            seat.idle_since = self._idle_seq
            seat.state = "ready"

    def add_person(self, user: User, leg: Leg) -> PersonSeat:
        seat = PersonSeat(new_id("s"), user.name, user.teams, user.id, leg)
        self._add_seat(seat, ready=False)
        return seat

    def remove_person(self, seat: PersonSeat) -> None:
        call = seat.call
        if call is not None:
            if call.bridged:
                call.agent_hangup()
            else:
                seat.withdraw()
                call.agent_declined(seat)
        self.seats.pop(seat.id, None)
        seat.state = "not_ready"

    def set_ready(self, seat: Seat, ready: bool) -> None:
        seat.wants_ready = ready
        if seat.state in ("offered", "busy"):
            return
        if ready and seat.state != "ready":
            self._idle_seq += 1
            seat.idle_since = self._idle_seq
            seat.state = "ready"
            self._dispatch_teams(seat.teams)
        elif not ready:
            seat.state = "not_ready"

    def seat_answered(self, seat: Seat, call: CallSession) -> None:
        seat.state = "busy"

    def seat_declined(self, seat: Seat) -> None:
        self.seat_released(seat)

    def seat_released(self, seat: Seat) -> None:
        """The seat's offer or call is over: it is available again (unless it asked not to be)."""
        if seat.id not in self.seats:
            return
        if seat.retired:
            del self.seats[seat.id]
            return
        self._idle_seq += 1
        seat.idle_since = self._idle_seq
        seat.state = "ready" if seat.wants_ready else "not_ready"
        if seat.state == "ready":
            self._dispatch_teams(seat.teams)

    # -- queues ----------------------------------------------------------------

    def request_agent(self, call: CallSession, team: str, *, front: bool = False) -> None:
        queue = self._queues.setdefault(team, deque())
        if call in queue:
            return
        if front:
            queue.appendleft(call)
        else:
            queue.append(call)
        self._dispatch(team)

    def cancel_request(self, call: CallSession) -> None:
        if call.team is not None:
            queue = self._queues.get(call.team)
            if queue is not None and call in queue:
                queue.remove(call)

    def _dispatch_teams(self, teams: tuple[str, ...]) -> None:
        for team in teams:
            self._dispatch(team)

    def _dispatch(self, team: str) -> None:
        queue = self._queues.get(team)
        while queue:
            call = queue[0]
            candidates = [
                s
                for s in self.seats.values()
                if s.state == "ready" and team in s.teams and s.id not in call.declined
            ]
            if not candidates:
                return
            seat = min(candidates, key=lambda s: s.idle_since)
            queue.popleft()
            call.offered(seat)

    def waiting(self, team: str) -> int:
        return len(self._queues.get(team, ()))

    # -- calls -----------------------------------------------------------------

    def check_capacity(self) -> None:
        if self.shutting_down or len(self.calls) >= self.config.limits.max_calls:
            raise Busy("the server is at its call limit")

    def call_started(self, call: CallSession) -> None:
        self.calls[call.id] = call
        self._unsaved.add(call)

    def call_saved(self, call: CallSession) -> None:
        self._unsaved.discard(call)

    def call_ended(self, call: CallSession) -> None:
        self.calls.pop(call.id, None)

    async def shutdown(self, save_timeout_s: float = SHUTDOWN_SAVE_S) -> None:
        """End every call with reason ``shutdown`` and wait until all are saved.

        While the store's writes fail, saving waits for the disk; after
        ``save_timeout_s`` the server stops anyway and says plainly what was lost.
        """
        self.shutting_down = True
        for call in list(self.calls.values()):
            call.hangup("shutdown")
        pending = list(self._unsaved)
        if not pending:
            return
        waits = [asyncio.ensure_future(c.wait_finished()) for c in pending]
        _, late = await asyncio.wait(waits, timeout=save_timeout_s)
        for w in late:
            w.cancel()
        if late:
            log.error(
                "shutdown: %d call(s) could not be saved in %.0f s (storage: %s); their "
                "records are lost",
                len(late),
                save_timeout_s,
                self.store.health.reason or "slow",
            )
