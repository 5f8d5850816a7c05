"""The switchboard: live calls, agents' seats, and who gets which call.

A ``ring`` node puts the call in its team's queue; the queue's oldest call is
offered to the team's available seat that has been idle longest (people and
bots alike). A declined or unanswered offer goes to the next seat; a call
nobody takes waits, on hold audio, until its ring timer runs out.

A person's seat lives no longer than the session it signed in with: the
authenticator and the API end it (:meth:`Switchboard.end_seats`) when the
token is revoked or the user is deleted, loses their role or password, and
:meth:`Switchboard.update_seats` carries a change of teams or name to the
live seats. An expired session is ended when an offer would go to it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from ivr.call.clock import MediaClock
from ivr.call.journal import CallRecords
from ivr.call.leg import Leg
from ivr.call.metrics import CallMetrics, NoMetrics
from ivr.call.prompt import PromptLibrary
from ivr.call.recorder import RecorderPool
from ivr.call.remote import RemoteSeat
from ivr.call.seat import BotSeat, OfferedCall, Person, PersonSeat, Seat
from ivr.call.session import CallSession
from ivr.config import Config, NumberConfig, TeamConfig
from ivr.errors import IvrError
from ivr.flows import Flow
from ivr.stamp import new_id

log = logging.getLogger("ivr.switch")


# How long a stopping server waits for unsaved calls (the store's writes failing).
SHUTDOWN_SAVE_S = 30.0


class Busy(IvrError):
    """The server is at its call limit, draining or shutting down: no new call."""


class Switchboard:
    """Every live call and every seat of this process."""

    def __init__(
        self,
        config: Config,
        records: CallRecords,
        prompts: PromptLibrary,
        clock: MediaClock,
        recorder: RecorderPool,
        *,
        numbers: dict[str, NumberConfig] | None = None,
        flows: dict[str, Flow] | None = None,
        teams: dict[str, TeamConfig] | None = None,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.metrics: CallMetrics = metrics or NoMetrics()
        self.config = config
        self.records = records
        self.prompts = prompts
        self.clock = clock
        self.recorder = recorder
        # What calls use now: seeded from the config, changed through the API.
        self.numbers: dict[str, NumberConfig] = dict(numbers or config.numbers)
        self.flows: dict[str, Flow] = dict(flows or config.flows)
        self.teams: dict[str, TeamConfig] = dict(teams or config.teams)
        self.calls: dict[str, CallSession] = {}
        self._unsaved: set[CallSession] = set()  # ended or not, until saved
        self.objected: set[str] = set()
        """Callers (E.164) being erased now: a call placed meanwhile is not recorded."""
        self.seats: dict[str, Seat] = {}
        self._queues: dict[str, deque[CallSession]] = {t: deque() for t in self.teams}
        self._idle_seq = 0
        # Each team's ready seats, longest idle first (ours before other nodes'): a
        # heap of (remote, idle_since, seat id), pushed whenever a seat becomes
        # ready; entries that no longer hold (the seat left, was offered a call,
        # went not ready, left the team) are dropped as they reach the top.
        self._ready: dict[str, list[tuple[bool, int, str]]] = {}
        self.shutting_down = False
        self.draining = False  # SIGTERM: no new calls, the live ones finish (drain())
        # Told each finished recording's id once its row is saved (the server
        # wakes the transcription worker with it).
        self.on_recording_finished: Callable[[str], None] | None = None
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
            # The store drops the team from every user: so do their live seats.
            for seat in self._people():
                if team_id in seat.teams:
                    seat.teams = tuple(t for t in seat.teams if t != team_id)
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
            self._offerable(seat)

    def add_person(
        self, user: Person, leg: Leg, *, token_hash: str, expires_at: datetime | None = None
    ) -> PersonSeat:
        """Seat a signed-in person (not ready yet), tied to the token they signed in with."""
        seat = PersonSeat(
            new_id("s"),
            user.name,
            user.teams,
            user.id,
            leg,
            token_hash=token_hash,
            expires_at=expires_at,
        )
        self._add_seat(seat, ready=False)
        return seat

    def remove_person(self, seat: PersonSeat) -> None:
        """Take the seat out: an offer moves to the next seat, a connected call ends (``agent``)."""
        # Out of the switchboard first, so that the call moving on is never
        # offered back to this seat, nor any other waiting call.
        self.seats.pop(seat.id, None)
        seat.wants_ready = False
        seat.state = "not_ready"
        call = seat.call
        if call is not None:
            if call.bridged:
                call.agent_hangup()
            else:
                seat.withdraw()
                call.agent_declined(seat)

    def add_remote(self, seat: RemoteSeat) -> None:
        """An agent signed in on another node, ready: offered calls as any seat, after ours."""
        self._add_seat(seat, ready=True)
        self._dispatch_teams(seat.teams)

    def remove_remote(self, seat: RemoteSeat) -> None:
        """The other node no longer has the agent (or is gone): out, once its call is over."""
        seat.wants_ready = False
        if seat.state in ("ready", "not_ready"):
            self.seats.pop(seat.id, None)
        else:
            seat.retired = True  # seat_released takes it out

    def _people(self) -> list[PersonSeat]:
        return [s for s in self.seats.values() if isinstance(s, PersonSeat)]

    def end_seats(
        self, *, why: str, user_id: str | None = None, token_hash: str | None = None
    ) -> int:
        """End the live seats of a user, or of one token; returns how many.

        Each seat leaves the switchboard (its offer moves on, its call ends as
        if the agent hung up), then gets ``unauthorized`` with ``why`` and its
        socket closes with 1008.
        """
        ended = [
            s
            for s in self._people()
            if (user_id is not None and s.user_id == user_id)
            or (token_hash is not None and s.token_hash == token_hash)
        ]
        for seat in ended:
            self._end_seat(seat, why)
        return len(ended)

    def _end_seat(self, seat: PersonSeat, why: str) -> None:
        self.remove_person(seat)
        seat.signed_out(why)
        log.info("agent %s signed out by the server: %s", seat.user_id, why)

    def update_seats(self, user: Person) -> int:
        """Carry a user's new name and teams to their live seats; returns how many.

        An offer of a team the seat has left moves to the next seat; a
        connected call goes on. Calls waiting in the new teams are offered.
        """
        seats = [s for s in self._people() if s.user_id == user.id]
        for seat in seats:
            seat.name = user.name
            seat.teams = user.teams
            call = seat.call
            if call is not None and not call.bridged and call.team not in seat.teams:
                seat.withdraw()
                call.agent_declined(seat)
            else:
                self.teams_changed(seat)
        return len(seats)

    def teams_changed(self, seat: Seat) -> None:
        """``seat.teams`` changed: a ready seat is offered its new teams' calls."""
        if seat.state == "ready":
            self._offerable(seat)
            self._dispatch_teams(seat.teams)

    def set_ready(self, seat: Seat, ready: bool) -> None:
        seat.wants_ready = ready
        if seat.state in ("offered", "busy"):
            return
        if ready and seat.state != "ready":
            self._idle_seq += 1
            seat.idle_since = self._idle_seq
            seat.state = "ready"
            self._offerable(seat)
            self._dispatch_teams(seat.teams)
        elif not ready:
            seat.state = "not_ready"

    def seat_answered(self, seat: Seat, call: OfferedCall) -> None:
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
            self._offerable(seat)
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

    def _offerable(self, seat: Seat) -> None:
        """``seat`` is ready now, with its ``idle_since`` and teams: file it in each team."""
        entry = (isinstance(seat, RemoteSeat), seat.idle_since, seat.id)
        for team in seat.teams:
            heap = self._ready.setdefault(team, [])
            heapq.heappush(heap, entry)
            if len(heap) > 2 * len(self.seats) + 64:  # mostly stale: keep what holds
                heap[:] = [e for e in heap if self._ready_seat(e, team) is not None]
                heapq.heapify(heap)

    def _ready_seat(self, entry: tuple[bool, int, str], team: str) -> Seat | None:
        """The entry's seat if the entry still holds: ready since then, in ``team``."""
        seat = self.seats.get(entry[2])
        if seat is None or seat.state != "ready" or seat.idle_since != entry[1]:
            return None
        return seat if team in seat.teams else None

    def _dispatch(self, team: str) -> None:
        queue = self._queues.get(team)
        while queue:
            call = queue[0]
            seat = self._next_seat(team, call)
            if seat is None:
                return
            queue.popleft()
            call.offered(seat)

    def _next_seat(self, team: str, call: CallSession) -> Seat | None:
        """The ready seat of ``team`` idle longest, ours first, that ``call`` has not declined.

        A person whose session has expired is signed out when the call would
        go to them, and the next seat is taken.
        """
        heap = self._ready.get(team)
        if not heap:
            return None
        declined: list[tuple[bool, int, str]] = []
        found: Seat | None = None
        now: datetime | None = None
        while heap:
            seat = self._ready_seat(heap[0], team)
            if seat is None:
                heapq.heappop(heap)
                continue
            if seat.id in call.declined:
                declined.append(heapq.heappop(heap))
                continue
            if isinstance(seat, PersonSeat) and seat.expires_at is not None:
                now = now or datetime.now(UTC)
                if seat.expired(now):  # a ready seat: ending it moves no call
                    heapq.heappop(heap)
                    self._end_seat(seat, "the session has expired; sign in again")
                    continue
            found = seat
            break
        for entry in declined:
            heapq.heappush(heap, entry)
        return found

    def waiting(self, team: str) -> int:
        return len(self._queues.get(team, ()))

    # -- calls -----------------------------------------------------------------

    @property
    def taking_calls(self) -> bool:
        """False once the server drains or shuts down (``/readyz`` says so)."""
        return not (self.draining or self.shutting_down)

    def check_capacity(self) -> None:
        if not self.taking_calls:
            raise Busy("the server is draining: it takes no new calls")
        if len(self.calls) >= self.config.limits.max_calls:
            raise Busy("the server is at its call limit")

    async def drain(self, deadline_s: float) -> int:
        """Take no new calls; wait up to ``deadline_s`` for the live ones to end and be saved.

        Returns how many calls are still live at the deadline (0: all ended
        on their own); :meth:`shutdown` then hangs those up with ``shutdown``.
        """
        self.draining = True
        log.info("draining: %d live call(s), up to %.0f s", len(self.calls), deadline_s)
        waits = [
            asyncio.ensure_future(c.wait_finished()) for c in {*self.calls.values(), *self._unsaved}
        ]
        if waits:
            _, late = await asyncio.wait(waits, timeout=deadline_s)
            for w in late:
                w.cancel()
        left = len(self.calls)
        if left:
            log.warning("drain deadline: %d call(s) still live are hung up (shutdown)", left)
        else:
            log.info("drained: every call ended on its own")
        return left

    def unsaved_calls(self) -> list[CallSession]:
        """Every call of this process whose records are not all saved yet (live, or just ended)."""
        return [*self._unsaved]

    def call_started(self, call: CallSession) -> None:
        self.calls[call.id] = call
        self._unsaved.add(call)

    def call_saved(self, call: CallSession) -> None:
        self._unsaved.discard(call)

    def call_ended(self, call: CallSession) -> None:
        self.calls.pop(call.id, None)

    def recording_finished(self, recording_id: str) -> None:
        """A call's recording is closed and saved as finished (and queued, if it is transcribed)."""
        if self.on_recording_finished is not None:
            self.on_recording_finished(recording_id)

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
                self.records.health.reason or "slow",
            )
