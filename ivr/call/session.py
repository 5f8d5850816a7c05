"""The call session: the driver between a caller's leg and the flow engine.

It feeds events to :class:`ivr.flows.CallFlow` and executes the actions that
come out, mechanically: play a prompt, arm a timer, ring a team, bridge,
record, hang up. Everything it does on the media clock is synchronous; what
it writes about its call (the call row, consent evidence, the decision, the
recording's row, the timeline) it hands to its :class:`ivr.call.journal.Journal`
as facts, which writes them in order, off the clock, and keeps any the disk
refuses until it takes them.

The socket closes once everything is saved. When the call has ended and its
records are still unsaved after ``SAVE_WAIT_S`` because the store's writes
fail, the caller is told (``error`` ``storage_unavailable``) and the socket
closes with 1011. What a call may pile up is bounded: at most
``MAX_EVENTS_PER_CALL`` events.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import asdict
from typing import Any, Protocol

from ivr.call.clock import TICK_S, Inband, MediaClock
from ivr.call.journal import CallRecords, Journal
from ivr.call.leg import Leg
from ivr.call.metrics import CallMetrics
from ivr.call.prompt import Prompt, PromptLibrary
from ivr.call.recorder import RecorderPool, Recording
from ivr.call.seat import BotSeat, PersonSeat, Seat
from ivr.config import Config, NumberConfig
from ivr.flows import (
    Action,
    AgentAnswered,
    AgentHungUp,
    Bridge,
    CallAnswered,
    CallerHungUp,
    CallFlow,
    CancelTimer,
    DigitReceived,
    Event,
    Flow,
    Gathered,
    Hangup,
    HangupReason,
    LogConsent,
    LogNotice,
    NumberPolicy,
    PauseRecording,
    Play,
    PlaybackFinished,
    RecordingDecision,
    ResumeRecording,
    Ring,
    StartRecording,
    StartTimer,
    StartVoicemail,
    StopPlayback,
    StopRecording,
    StopRinging,
    TimerExpired,
    sample_draw,
)
from ivr.privacy.redact import mask_number
from ivr.stamp import expiry, new_id, now_iso
from media.frame import FRAMES_PER_SECOND, Pcm

log = logging.getLogger("ivr.call")


class Dispatcher(Protocol):
    """What a session needs of the switchboard that placed it.

    The media clock that ticks it, the prompts, where it records and writes
    its facts, the metrics, and the seats: ask for an agent, give one back.
    """

    @property
    def clock(self) -> MediaClock: ...

    @property
    def config(self) -> Config: ...

    @property
    def metrics(self) -> CallMetrics: ...

    @property
    def prompts(self) -> PromptLibrary: ...

    @property
    def records(self) -> CallRecords: ...

    @property
    def recorder(self) -> RecorderPool: ...

    def request_agent(self, call: CallSession, team: str, *, front: bool = False) -> None: ...

    def cancel_request(self, call: CallSession) -> None: ...

    def seat_answered(self, seat: Seat, call: CallSession) -> None: ...

    def seat_declined(self, seat: Seat) -> None: ...

    def seat_released(self, seat: Seat) -> None: ...

    def call_ended(self, call: CallSession) -> None: ...

    def call_saved(self, call: CallSession) -> None: ...

    def recording_finished(self, recording_id: str) -> None: ...


CLOSE_CODES: dict[str, int] = {"shutdown": 1001, "error": 1011}

# Driver timers (not the engine's): named with a leading underscore.
BOT_ANSWER = "_bot_answer"
BOT_MAX = "_bot_max"
OFFER = "_offer"
DEDUP_TICKS = 15  # 300 ms: a tone's detection and its message arrive well within this
# docs/protocol.md, "Limits": a call's timeline holds at most this many events;
# a caller who would add more (digits) gets `too_many_events` and is closed.
MAX_EVENTS_PER_CALL = 2000
# How long an ended call's socket waits for its records while the store's
# writes fail, before the caller is told and the socket closes (1011).
SAVE_WAIT_S = 5.0


def ticks_for(seconds: float) -> int:
    return max(1, math.ceil(seconds * FRAMES_PER_SECOND - 1e-9))


class Playback:
    """A prompt being played to the caller, frame by frame."""

    __slots__ = ("frames", "index", "loop", "node", "prompt", "started_at")

    def __init__(self, prompt: Prompt, frames: list[bytes], node: str, loop: bool) -> None:
        self.prompt = prompt
        self.frames = frames
        self.node = node
        self.loop = loop
        self.index = 0
        self.started_at = now_iso()

    def next_frame(self) -> tuple[bytes, bool]:
        """The next wire frame, and whether the prompt has now played to its end."""
        frame = self.frames[self.index]
        self.index += 1
        if self.index == len(self.frames):
            if self.loop:
                self.index = 0
                return frame, False
            return frame, True
        return frame, False


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
        client_ref: str | None,
        started_at: str | None = None,
    ) -> None:
        self.sb = switchboard
        self.id = self.key = call_id
        self.number_id = number_id
        self.number = number
        self.flow_def = flow
        self.caller = caller
        self.caller_number = caller_number
        self.contact_id = contact_id
        self.client_ref = client_ref
        self.policy = NumberPolicy(
            recording=number.recording,
            transcription=number.transcription,
            consent_mode=number.consent_mode,
            record_percent=number.record_percent,
            sample_draw=sample_draw(call_id),
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
        self._playback: Playback | None = None
        self._timers: dict[str, int] = {}
        self._n = switchboard.clock.ticks
        self._last_digit: tuple[str, str, int] | None = None
        self._digit_at: float | None = None  # for the DTMF-to-response histogram
        self._events: list[tuple[str, str, dict[str, Any]]] = []
        self._played: dict[str, dict[str, Any]] = {}
        self._notices: list[dict[str, Any]] = []
        self.journal = Journal(switchboard.records, call_id, switchboard.recording_finished)
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
        self._event("answered", {"codec": self.caller.codec.name, "rate": self.caller.sample_rate})
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
            last = self._last_digit
            if last and last[0] == digit and last[1] != source and self._n - last[2] <= DEDUP_TICKS:
                self._last_digit = None
                continue
            self._last_digit = (digit, source, self._n)
            self._digit_at = time.monotonic()
            if self.flow.sensitive:  # a sensitive gather: never log the digit
                self._event(
                    "dtmf",
                    {"digit": "*", "redacted": True, "source": source, "node": self.flow.node},
                )
            else:
                self._event("dtmf", {"digit": digit, "source": source, "node": self.flow.node})
            self._feed(DigitReceived(digit))

    def caller_hangup(self) -> None:
        if not self.ended:
            self._feed(CallerHungUp())

    def agent_answered(self, seat: Seat) -> None:
        """``seat`` picked up the offered call."""
        if self.ended or self.seat is not seat or self.flow.phase != "ringing":
            return
        self._timers.pop(OFFER, None)
        self._timers.pop(BOT_ANSWER, None)
        self.sb.seat_answered(seat, self)
        self._feed(AgentAnswered(seat.name))

    def agent_declined(self, seat: Seat) -> None:
        if self.seat is not seat or self.bridged:
            return
        self._timers.pop(OFFER, None)
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
        self._event("offered", {"agent": seat.name, "bot": seat.is_bot})
        if isinstance(seat, BotSeat):
            self._timers[BOT_ANSWER] = self._n + ticks_for(seat.answer_delay_s)
        else:
            self._timers[OFFER] = self._n + ticks_for(self.sb.config.limits.agent_offer_timeout_s)
        seat.offer(self)

    def pause_recording(self, reason: str) -> bool:
        """Pause the live recording (silence is written); False if nothing changed."""
        if self.recording is None or not self.recording.pause(reason):
            return False
        self._indicate({"type": "recording", "state": "paused"})
        self._event("recording", {"state": "paused", "reason": reason})
        return True

    def resume_recording(self) -> bool:
        if self.recording is None or not self.recording.resume():
            return False
        self._indicate({"type": "recording", "state": "on"})
        self._event("recording", {"state": "on"})
        return True

    def _indicate(self, message: dict[str, Any]) -> None:
        """A recording or transcription indicator: to the caller, and to a person agent."""
        self.caller.send_message(message)
        if self.bridged and isinstance(self.seat, PersonSeat):
            self.seat.leg.send_message(message)

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
        self._n = n
        seat = self.seat if self.bridged else None
        if seat is not None:
            agent_in = seat.speak()
            seat.hear(caller_in)
            self.caller.send_pcm(agent_in)
        else:
            agent_in = None
            pb = self._playback
            if pb is not None:
                frame, done = pb.next_frame()
                self.caller.send_wire(frame)
                if done:
                    self._playback = None
                    self._prompt_ended(pb, interrupted=False)
                    self._feed(PlaybackFinished(pb.node))
            else:
                self.caller.send_wire(self.caller.silence_wire)
        rec = self.recording
        if rec is not None:
            rec.add(caller_in, agent_in, inband.mask_from)
            if rec.failed is not None:
                self._recording_failed(rec)
        if self._timers and not self.ended:
            for name, due in sorted(self._timers.items(), key=lambda kv: kv[1]):
                if due <= n and self._timers.get(name) == due and not self.ended:
                    del self._timers[name]
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
                self._event("offer_timeout", {"agent": self.seat.name})
                seat = self.seat
                seat.withdraw()
                self.agent_declined(seat)
        else:
            self._feed(TimerExpired(name))

    # -- the engine ------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        self.flow.receive(event)
        for action in self.flow.actions_to_take():
            self._execute(action)

    def _execute(self, action: Action) -> None:
        if isinstance(action, Play):
            self._play(action)
        elif isinstance(action, StopPlayback):
            pb = self._playback
            if pb is not None and pb.node == action.node:
                self._playback = None
                self._prompt_ended(pb, interrupted=True)
        elif isinstance(action, StartTimer):
            self._timers[action.name] = self._n + ticks_for(action.seconds)
        elif isinstance(action, CancelTimer):
            self._timers.pop(action.name, None)
        elif isinstance(action, LogNotice):
            self._log_notice(action)
        elif isinstance(action, LogConsent):
            self._log_consent(action)
        elif isinstance(action, Ring):
            self._ring(action)
        elif isinstance(action, StopRinging):
            self._stop_ringing()
        elif isinstance(action, Bridge):
            self._bridge(action)
        elif isinstance(action, StartRecording):
            self._start_recording(action)
        elif isinstance(action, StopRecording):
            self._stop_recording()
        elif isinstance(action, PauseRecording):
            self.pause_recording(action.reason)
        elif isinstance(action, ResumeRecording):
            self.resume_recording()
        elif isinstance(action, Gathered):
            shown = "*" * len(action.digits) if action.sensitive else action.digits
            self._event(
                "gathered",
                {
                    "node": action.node,
                    "digits": shown,
                    "count": len(action.digits),
                    "sensitive": action.sensitive,
                },
            )
        elif isinstance(action, StartVoicemail):
            self._save_decision(action.line, None, action.decision)
        else:
            assert isinstance(action, Hangup)
            self._end(action.reason)

    def _play(self, action: Play) -> None:
        if self._digit_at is not None:  # the response to a key: the next prompt starts
            self.sb.metrics.observe_dtmf_latency(time.monotonic() - self._digit_at)
            self._digit_at = None
        prompt = self.sb.prompts.get(action.prompt)
        self._playback = Playback(
            prompt, prompt.wire_frames(self.caller.codec), action.node, action.loop
        )
        self.caller.send_message(
            {"type": "prompt", "event": "start", "prompt": action.prompt, "node": action.node}
        )
        self._event("prompt_start", {"prompt": action.prompt, "node": action.node})

    def _prompt_ended(self, pb: Playback, *, interrupted: bool) -> None:
        at = now_iso()
        self._played[pb.node] = {
            "node": pb.node,
            "prompt": pb.prompt.id,
            "sha256": pb.prompt.sha256[self.caller.sample_rate],
            "played_from": pb.started_at,
            "played_to": at,
            "interrupted": interrupted,
        }
        self.caller.send_message(
            {
                "type": "prompt",
                "event": "end",
                "prompt": pb.prompt.id,
                "node": pb.node,
                "interrupted": interrupted,
            }
        )
        self._event(
            "prompt_end", {"prompt": pb.prompt.id, "node": pb.node, "interrupted": interrupted}
        )

    def _log_notice(self, action: LogNotice) -> None:
        evidence = {**self._played[action.node], "kinds": list(action.kinds)}
        self._notices.append(evidence)
        self._event("notice", {"node": action.node, "kinds": list(action.kinds)})
        if self.policy.consent_mode == "notice" and "recording" in action.kinds:
            self._save_consent("notice", None, None, {"notices": list(self._notices)})

    def _log_consent(self, action: LogConsent) -> None:
        at = now_iso()
        menu = self._played.get(action.node, {})
        self._event(
            "consent", {"node": action.node, "decision": action.decision, "digit": action.digit}
        )
        self._save_consent(
            action.decision, action.digit, at, {"menu": menu, "notices": list(self._notices)}
        )

    def _save_consent(
        self, decision: str, digit: str | None, digit_at: str | None, evidence: dict[str, Any]
    ) -> None:
        row = {
            "call_id": self.id,
            "contact_id": self.contact_id,
            "number": self.number_id,
            "flow_id": self.flow_def.id,
            "flow_version": self.flow_def.version,
            "consent_mode": self.policy.consent_mode,
            "decision": decision,
            "digit": digit,
            "digit_at": digit_at,
            "evidence": evidence,
        }
        self.journal.consent(row)

    def _ring(self, action: Ring) -> None:
        self.line, self.team, self.decision = action.line, action.team, action.decision
        self.declined.clear()
        self.caller.send_message({"type": "ringing", "line": action.line})
        self._event(
            "ringing", {"line": action.line, "team": action.team, "record": action.decision.record}
        )
        self._save_decision(action.line, action.team, action.decision)
        self.sb.request_agent(self, action.team)

    def _save_decision(self, line: str, team: str | None, decision: RecordingDecision) -> None:
        self.line, self.decision = line, decision
        self.journal.decision(line, team, asdict(decision))

    def _stop_ringing(self) -> None:
        self._timers.pop(OFFER, None)
        self._timers.pop(BOT_ANSWER, None)
        self.sb.cancel_request(self)
        if self.seat is not None and not self.bridged:
            seat, self.seat = self.seat, None
            seat.withdraw()
            self.sb.seat_released(seat)

    def _bridge(self, action: Bridge) -> None:
        seat = self.seat
        assert seat is not None
        self.bridged = True
        seat.connect(self)
        if isinstance(seat, BotSeat):
            self._timers[BOT_MAX] = self._n + ticks_for(seat.max_call_s)
        self.caller.send_message({"type": "connected", "line": action.line, "agent": seat.name})
        self._event("connected", {"line": action.line, "agent": seat.name, "bot": seat.is_bot})
        self.journal.connected(seat.user_id, seat.name)

    def _start_recording(self, action: StartRecording) -> None:
        rec_id = new_id("r")
        day = self.started_at[:10].replace("-", "/")
        relative = f"{day}/{rec_id}.wav"
        path = self.sb.records.recordings_dir / relative
        rate = self.caller.sample_rate
        self.recording = Recording(self.sb.recorder, rec_id, path, rate)
        self.sb.metrics.recording_started()
        self.recording_ids.append(rec_id)
        self._indicate({"type": "recording", "state": "on"})
        if action.transcribe:
            self._indicate({"type": "transcription", "state": "on"})
        if action.paused:
            self.pause_recording("flow")
        self._event("recording", {"state": "on", "recording_id": rec_id})
        row = {
            "id": rec_id,
            "call_id": self.id,
            "path": relative,
            "status": "recording",
            "started_at": now_iso(),
            "sample_rate": rate,
            "channels": 2,
            "format": "wav/pcm_s16le",
            "transcribe": int(action.transcribe),
            "expires_at": expiry(self.number.retention_days),
        }
        self.journal.recording_started(row)

    def _stop_recording(self, *, later: bool = False) -> Recording | None:
        """Stop the recording; the journal closes it (or, ``later``, it is returned to close)."""
        rec = self.recording
        if rec is None:
            return None
        self.recording = None
        self.sb.metrics.recording_ended()
        self._indicate({"type": "recording", "state": "off"})
        if self.decision is not None and self.decision.transcribe:
            self._indicate({"type": "transcription", "state": "off"})
        self._event("recording", {"state": "off", "recording_id": rec.id})
        if later:
            return rec
        self.journal.recording_stopped(rec)
        return None

    def _recording_failed(self, rec: Recording) -> None:
        """The recording's file could not be written: end it there, and say so."""
        self.recording = None
        self.sb.metrics.recording_ended()
        self.sb.metrics.recording_truncated()
        self._indicate({"type": "recording", "state": "off"})
        if self.decision is not None and self.decision.transcribe:
            self._indicate({"type": "transcription", "state": "off"})
        self._indicate(
            {
                "type": "error",
                "code": "recording_failed",
                "message": (
                    f"the recording stopped: the server could not write it ({rec.failed}); "
                    "the call goes on unrecorded"
                ),
            }
        )
        self._event("recording", {"state": "off", "recording_id": rec.id, "reason": "write_failed"})
        log.error("call %s: recording %s stopped: %s", self.id, rec.id, rec.failed)
        self.journal.recording_stopped(rec)

    def _end(self, reason: HangupReason) -> None:
        if self.ended:
            return
        self.ended = True
        self.reason = reason
        self._timers.clear()
        self.sb.clock.remove(self)
        self.sb.cancel_request(self)
        # While the seat is still bridged: a person agent gets `recording` `off`
        # before their `hangup`, as the caller does, whoever ends the call.
        open_recording = self._stop_recording(later=True)
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
        self._event("hangup", {"reason": reason})
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

    def _event(self, kind: str, data: dict[str, Any]) -> None:
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
