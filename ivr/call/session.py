"""The call session: one call, from ``answered`` to ``hangup``, between its leg and its flow.

A :class:`CallSession` takes what comes in (digits as messages and as tones,
hangups, agents answering or declining, the API's pause and resume), feeds
it to the flow engine (:class:`ivr.flows.CallFlow`), and has
:class:`ivr.call.actions.FlowActions` carry out what the engine emits. On
every media clock tick it sends the caller its frame (a prompt,
:mod:`ivr.call.playback`, or the agent), records both sides with the tick's
masking decision, fires its timers, then takes the tick's in-band digits.
Everything it does on the clock is synchronous; what it writes about its
call (the call row, consent evidence, the decision, the recording's row,
the timeline) it hands to its :class:`ivr.call.journal.Journal` as facts,
which writes them in order, off the clock, and keeps any the disk refuses
until it takes them.

The socket closes once everything is saved. When the call has ended and its
records are still unsaved after ``SAVE_WAIT_S`` because the store's writes
fail, the caller is told (``error`` ``storage_unavailable``) and the socket
closes with 1011. What a call may pile up is bounded: at most
``MAX_EVENTS_PER_CALL`` events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from ivr.call.actions import BOT_ANSWER, BOT_MAX, OFFER, Dispatcher, FlowActions, ticks_for
from ivr.call.clock import TICK_S, Inband
from ivr.call.journal import Journal
from ivr.call.leg import Leg
from ivr.call.playback import EventSink, PromptPlayer
from ivr.call.recorder import Recording
from ivr.call.remote import RemoteSeat
from ivr.call.seat import BotSeat, PersonSeat, Seat
from ivr.config import NumberConfig
from ivr.flows import (
    AgentAnswered,
    AgentHungUp,
    CallAnswered,
    CallerHungUp,
    CallFlow,
    DigitReceived,
    Event,
    Flow,
    HangupReason,
    NumberPolicy,
    PlaybackFinished,
    RecordingDecision,
    TimerExpired,
    sample_draw,
)
from ivr.privacy.redact import mask_number
from ivr.stamp import now_iso
from media.frame import Pcm

log = logging.getLogger("ivr.call")


CLOSE_CODES: dict[str, int] = {"shutdown": 1001, "error": 1011}

DEDUP_TICKS = 15  # 300 ms: a tone's detection and its message arrive well within this
# docs/protocol.md, "Limits": a call's timeline holds at most this many events;
# a caller who would add more (digits) gets `too_many_events` and is closed.
MAX_EVENTS_PER_CALL = 2000
# How long an ended call's socket waits for its records while the store's
# writes fail, before the caller is told and the socket closes (1011).
SAVE_WAIT_S = 5.0


class CallSession:
    """One call, from ``answered`` to ``hangup``."""

    def __init__(
        self,
        switchboard: Dispatcher,
        *,
        call_id: str,
        number_id: str,
        number: NumberConfig,
        flow: Flow,
        caller: Leg,
        caller_number: str,
        contact_id: str,
        started_at: str | None = None,
        recording_blocked: str | None = None,
    ) -> None:
        self.sb = switchboard
        self.id = self.key = call_id
        self.number_id = number_id
        self.number = number
        self.flow_def = flow
        self.caller = caller
        self.caller_number = caller_number
        self.contact_id = contact_id
        self.policy = NumberPolicy(
            recording=number.recording,
            transcription=number.transcription,
            consent_mode=number.consent_mode,
            record_percent=number.record_percent,
            sample_draw=sample_draw(call_id),
            blocked=recording_blocked,
        )
        self.flow = CallFlow(flow, self.policy)
        self.line: str | None = None
        self.team: str | None = None
        self.decision: RecordingDecision | None = None
        self.seat: Seat | None = None
        self.bridged = False
        self.declined: set[str] = set()
        self.recording: Recording | None = None
        self.recording_ids: list[str] = []
        self.ended = False
        self.reason: HangupReason | None = None
        self.started_at = started_at or now_iso()
        self.timers: dict[str, int] = {}  # name -> the tick it fires at
        self.tick_number = switchboard.clock.ticks  # of the last tick this call had
        self._last_digit: tuple[str, str, int] | None = None
        self._events: list[tuple[str, str, dict[str, Any]]] = []
        # The player notes its events in the call's list through a function of
        # that list only, not a method of the session: no cycle (see FlowActions).
        self.player = PromptPlayer(caller, switchboard.prompts, _noting(self._events))
        self.actions = FlowActions(self)
        self.journal = Journal(switchboard.records, call_id, switchboard.recording_finished)
        # Held: the event loop keeps only a weak reference to a task.
        self._closer = asyncio.get_running_loop().create_task(
            self._close_when_saved(), name=f"call-{call_id}"
        )
        self.finished = asyncio.Event()
        self._close_code: int | None = None  # set when a limit ends the call (1008)
        self._overdue: asyncio.TimerHandle | None = None

    @property
    def will_record(self) -> bool:
        return bool(self.decision and self.decision.record)

    # -- inputs ----------------------------------------------------------------

    def start(self, dialled_at: float | None = None) -> None:
        """Answer the call and start the flow (``dialled_at``: monotonic time of the dial)."""
        self.sb.clock.add(self)
        self.sb.metrics.call_started()
        if dialled_at is not None:
            self.sb.metrics.observe_setup(time.monotonic() - dialled_at)
        self.caller.answered(self.id)
        self.event("answered", {"codec": self.caller.codec.name, "rate": self.caller.sample_rate})
        self._feed(CallAnswered())

    @property
    def sample_rate(self) -> int:
        return self.caller.sample_rate

    def digits(self, digits: str, source: str = "message") -> None:
        for digit in digits:
            if self.ended:
                return
            if len(self._events) >= MAX_EVENTS_PER_CALL:
                self.end_for_limit(
                    "too_many_events",
                    f"more than {MAX_EVENTS_PER_CALL} events for one call: closing",
                )
                return
            # The same key as a tone and as a message at once counts once (RFC 4733
            # senders often do both): drop it if the other path gave it just now.
            last, n = self._last_digit, self.tick_number
            if last and last[0] == digit and last[1] != source and n - last[2] <= DEDUP_TICKS:
                self._last_digit = None
                continue
            self._last_digit = (digit, source, n)
            self.actions.key_at = time.monotonic()
            if self.flow.sensitive:  # a sensitive gather: never log the digit
                self.event(
                    "dtmf",
                    {"digit": "*", "redacted": True, "source": source, "node": self.flow.node},
                )
            else:
                self.event("dtmf", {"digit": digit, "source": source, "node": self.flow.node})
            self._feed(DigitReceived(digit))

    def caller_hangup(self) -> None:
        if not self.ended:
            self._feed(CallerHungUp())

    def agent_answered(self, seat: Seat) -> None:
        """``seat`` picked up the offered call."""
        if self.ended or self.seat is not seat or self.flow.phase != "ringing":
            return
        self.timers.pop(OFFER, None)
        self.timers.pop(BOT_ANSWER, None)
        self.sb.seat_answered(seat, self)
        self._feed(AgentAnswered(seat.name))

    def agent_declined(self, seat: Seat) -> None:
        if self.seat is not seat or self.bridged:
            return
        self.timers.pop(OFFER, None)
        self.declined.add(seat.id)
        self.seat = None
        self.sb.seat_declined(seat)
        if not self.ended and self.team is not None:
            self.sb.request_agent(self, self.team, front=True)

    def agent_hangup(self) -> None:
        if not self.ended and self.bridged:
            self._feed(AgentHungUp())

    def offered(self, seat: Seat) -> None:
        """The switchboard offered this call to ``seat``."""
        self.seat = seat
        self.event("offered", {"agent": seat.name, "bot": seat.is_bot})
        if isinstance(seat, BotSeat):
            self.timers[BOT_ANSWER] = self.tick_number + ticks_for(seat.answer_delay_s)
        else:
            self.timers[OFFER] = self.tick_number + ticks_for(
                self.sb.config.limits.agent_offer_timeout_s
            )
        seat.offer(self)

    def block_recording(self, why: str) -> asyncio.Event:
        """The caller or the agent objected (an erasure): stop recording this call, for good.

        A running recording stops (the caller gets ``recording`` ``off``) and
        the line's decision is saved again with ``why`` among its reasons; no
        later line records. The call goes on. The event is set once what the
        call wrote until now (the recording's close among it) is saved, so an
        erasure run after it finds every file closed and every row there.
        """
        self.flow.block_recording(why)
        for action in self.flow.actions_to_take():
            self.actions.carry_out(action)
        decision = self.flow.decision
        if decision is not None and self.line is not None:
            self.decision = decision
            self.journal.decision(self.line, self.team, asdict(decision))
        self.event("recording", {"state": "blocked", "reason": why})
        return self.journal.mark()

    def rename_agent(self, name: str, pseudonym: str) -> None:
        """An erased agent: their name in this call's events not yet saved becomes the pseudonym."""
        for _, _, data in self._events:
            if data.get("agent") == name:
                data["agent"] = pseudonym

    def pause_recording(self, reason: str) -> bool:
        """Pause the live recording (silence is written); False if nothing changed."""
        return self.actions.pause_recording(reason)

    def resume_recording(self) -> bool:
        return self.actions.resume_recording()

    def indicate(self, message: dict[str, Any]) -> None:
        """A recording or transcription indicator: to the caller, and to a person agent."""
        self.caller.send_message(message)
        if self.bridged and isinstance(self.seat, PersonSeat):
            self.seat.leg.send_message(message)
        elif self.bridged and isinstance(self.seat, RemoteSeat):
            self.seat.indicate(message)

    def hangup(self, reason: HangupReason) -> None:
        """End the call from the server's side (shutdown, error)."""
        self._end(reason)

    def end_for_limit(self, code: str, message: str) -> None:
        """The caller went over a limit (docs/protocol.md, "Limits"): tell them, end, close 1008."""
        if self.ended:
            return
        self.caller.send_message({"type": "error", "code": code, "message": message})
        self.sb.metrics.limit_close(code)
        log.warning("call %s: closed for a limit (%s)", self.id, code)
        self._close_code = 1008
        self._end("error")

    def fail(self, exc: BaseException) -> None:
        log.error("call %s ended by an error: %s", self.id, type(exc).__name__)
        self._end("error")

    # -- the media clock -------------------------------------------------------

    def take_inbound(self) -> Pcm | None:
        """The caller's frame for this tick, from the jitter buffer (None: silence)."""
        return self.caller.take_inbound()

    def tick(self, n: int, caller_in: Pcm | None, inband: Inband) -> None:
        """Tick ``n``: send, record (masking a tone already), fire timers, then take tones.

        ``caller_in`` is the frame :meth:`take_inbound` gave this tick, and
        ``inband`` what the clock's DTMF detector found in it.
        """
        self.tick_number = n
        seat = self.seat if self.bridged else None
        if seat is not None:
            agent_in = seat.speak()
            seat.hear(caller_in)
            self.caller.send_pcm(agent_in)
        else:
            agent_in = None
            finished = self.player.send_frame()
            if finished is not None:
                self._feed(PlaybackFinished(finished))
        rec = self.recording
        if rec is not None:
            rec.add(caller_in, agent_in, inband.mask_from)
            if rec.failed is not None:
                self.actions.recording_failed(rec)
        timers = self.timers
        if timers and not self.ended and min(timers.values()) <= n:  # sorted only when one is due
            for name, due in sorted(timers.items(), key=lambda kv: kv[1]):
                if due <= n and self.timers.get(name) == due and not self.ended:
                    del self.timers[name]
                    self._timer_fired(name)
        for digit, _onset in inband.digits:
            self.digits(digit, source="inband")

    def skipped(self, ticks: int) -> None:
        """The media clock skipped ``ticks`` ticks: the recording writes them as silence."""
        if self.recording is not None:
            self.recording.add_gap(ticks, "clock_stall")
            self.sb.metrics.recording_gap(ticks * TICK_S)

    def _timer_fired(self, name: str) -> None:
        if name == BOT_ANSWER:
            if self.seat is not None:
                self.agent_answered(self.seat)
        elif name == BOT_MAX:
            self.agent_hangup()
        elif name == OFFER:
            if self.seat is not None:
                self.event("offer_timeout", {"agent": self.seat.name})
                seat = self.seat
                seat.withdraw()
                self.agent_declined(seat)
        else:
            self._feed(TimerExpired(name))

    # -- the engine ------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        self.flow.receive(event)
        for action in self.flow.actions_to_take():
            self.actions.carry_out(action)

    def _end(self, reason: HangupReason) -> None:
        if self.ended:
            return
        self.ended = True
        self.reason = reason
        self.timers.clear()
        self.sb.clock.remove(self)
        self.sb.cancel_request(self)
        # While the seat is still bridged: a person agent gets `recording` `off`
        # before their `hangup`, as the caller does, whoever ends the call.
        open_recording = self.actions.stop_recording(later=True)
        seat, self.seat = self.seat, None
        if seat is not None:
            if self.bridged:
                seat.end(reason)
            else:
                seat.withdraw()
            self.sb.seat_released(seat)
        stats = {
            **self.caller.stats.snapshot(),
            "recording_id": self.recording_ids[-1] if self.recording_ids else None,
        }
        self.caller.send_message({"type": "hangup", "reason": reason, "stats": stats})
        self.sb.metrics.call_ended(reason)
        leg = self.caller.stats
        self.sb.metrics.frames(late=leg.frames_late, dropped=leg.frames_dropped)
        self.event("hangup", {"reason": reason})
        log.info(
            "call %s to %s from %s ended: %s",
            self.id,
            self.number_id,
            mask_number(self.caller_number),
            reason,
        )
        self.journal.ended(
            {
                "ended_at": now_iso(),
                "end_reason": reason,
                "stats": stats,
                "recording_decision": asdict(self.decision) if self.decision else None,
            },
            self._events,
            open_recording,
        )
        self._overdue = asyncio.get_running_loop().call_later(SAVE_WAIT_S, self._save_overdue)
        self.sb.call_ended(self)

    # -- persistence -----------------------------------------------------------

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self._events.append((now_iso(), kind, data))

    async def _close_when_saved(self) -> None:
        await self.journal.saved.wait()
        if self._overdue is not None:
            self._overdue.cancel()
        # Close only once everything is saved: a client that sees the close can
        # rely on the call row and the recording being complete.
        if self.caller.transport is not None:
            code = self._close_code or CLOSE_CODES.get(self.reason or "error", 1000)
            self.caller.transport.close(code)
        self.sb.call_saved(self)
        self.finished.set()

    def _save_overdue(self) -> None:
        """The call ended a while ago and its records are still unsaved."""
        self._overdue = None
        if self.finished.is_set():
            return
        if not self.journal.failing:  # merely slow: keep waiting
            self._overdue = asyncio.get_running_loop().call_later(SAVE_WAIT_S, self._save_overdue)
            return
        log.error("call %s: its records are not saved yet: storage is failing", self.id)
        self.caller.send_message(
            {
                "type": "error",
                "code": "storage_unavailable",
                "message": (
                    "the call has ended, but the server cannot save it yet: its storage is "
                    "failing; it is kept and saved when the storage recovers"
                ),
            }
        )
        if self.caller.transport is not None:
            self.caller.transport.close(1011)

    async def wait_finished(self) -> None:
        """Wait until the call has ended and everything about it is saved."""
        await self.finished.wait()


def _noting(events: list[tuple[str, str, dict[str, Any]]]) -> EventSink:
    """An event sink that stamps each event and appends it to ``events``."""

    def note(kind: str, data: dict[str, Any]) -> None:
        events.append((now_iso(), kind, data))

    return note
