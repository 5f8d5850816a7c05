"""What a call does when the flow engine asks: the actions, carried out mechanically.

:class:`ivr.flows.CallFlow` decides; it emits actions (play a prompt, arm a
timer, ring a team, bridge, record, log the notice or the consent, hang up)
and :class:`FlowActions` carries each one out on its call session: messages
to the caller (and a person agent), the call's timeline, the seats, the
recording, and the facts the call's journal saves (consent evidence, the
recording decision, the recording's row). Nothing here decides anything;
what happens on the media clock's tick is :mod:`ivr.call.session`'s.

:class:`Dispatcher` is what a call needs of the switchboard that placed it,
for the actions and for the session.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from ivr.call.clock import MediaClock
from ivr.call.journal import CallRecords
from ivr.call.metrics import CallMetrics
from ivr.call.prompt import PromptLibrary
from ivr.call.recorder import RecorderPool, Recording
from ivr.call.seat import BotSeat, Seat
from ivr.config import Config
from ivr.flows import (
    Action,
    Bridge,
    CancelTimer,
    Gathered,
    Hangup,
    LogConsent,
    LogNotice,
    PauseRecording,
    Play,
    RecordingDecision,
    ResumeRecording,
    Ring,
    StartRecording,
    StartTimer,
    StartVoicemail,
    StopPlayback,
    StopRecording,
    StopRinging,
)
from ivr.stamp import expiry, new_id, now_iso
from media.frame import FRAMES_PER_SECOND

if TYPE_CHECKING:
    from ivr.call.session import CallSession

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


# Driver timers (not the engine's): named with a leading underscore.
BOT_ANSWER = "_bot_answer"
BOT_MAX = "_bot_max"
OFFER = "_offer"


def ticks_for(seconds: float) -> int:
    """Media clock ticks in ``seconds``, at least one (a timer never fires in its own tick)."""
    return max(1, math.ceil(seconds * FRAMES_PER_SECOND - 1e-9))


class FlowActions:
    """Carries out the flow engine's actions on one call session."""

    def __init__(self, call: CallSession) -> None:
        # A weak reference: the session holds its actions, and a cycle between
        # them would keep every finished call's objects until the next full
        # collection (which runs rarely, and walks every live call when it does).
        self._call: CallSession = weakref.proxy(call)
        self._notices: list[dict[str, Any]] = []  # the notices heard, as consent evidence
        self.key_at: float | None = None
        """When the caller last pressed a key (monotonic): the DTMF-to-response histogram."""

    def carry_out(self, action: Action) -> None:
        call = self._call
        if isinstance(action, Play):
            self._play(action)
        elif isinstance(action, StopPlayback):
            call.player.stop(action.node)
        elif isinstance(action, StartTimer):
            call.timers[action.name] = call.tick_number + ticks_for(action.seconds)
        elif isinstance(action, CancelTimer):
            call.timers.pop(action.name, None)
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
            self.stop_recording()
        elif isinstance(action, PauseRecording):
            self.pause_recording(action.reason)
        elif isinstance(action, ResumeRecording):
            self.resume_recording()
        elif isinstance(action, Gathered):
            shown = "*" * len(action.digits) if action.sensitive else action.digits
            call.event(
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
            call.hangup(action.reason)

    # -- prompts, notices and consent ---------------------------------------------------

    def _play(self, action: Play) -> None:
        if self.key_at is not None:  # the response to a key: the next prompt starts
            self._call.sb.metrics.observe_dtmf_latency(time.monotonic() - self.key_at)
            self.key_at = None
        self._call.player.play(action.prompt, action.node, action.loop)

    def _log_notice(self, action: LogNotice) -> None:
        call = self._call
        evidence = {**call.player.played[action.node], "kinds": list(action.kinds)}
        self._notices.append(evidence)
        call.event("notice", {"node": action.node, "kinds": list(action.kinds)})
        if call.policy.consent_mode == "notice" and "recording" in action.kinds:
            self._save_consent("notice", None, None, {"notices": list(self._notices)})

    def _log_consent(self, action: LogConsent) -> None:
        at = now_iso()
        menu = self._call.player.played.get(action.node, {})
        self._call.event(
            "consent", {"node": action.node, "decision": action.decision, "digit": action.digit}
        )
        self._save_consent(
            action.decision, action.digit, at, {"menu": menu, "notices": list(self._notices)}
        )

    def _save_consent(
        self, decision: str, digit: str | None, digit_at: str | None, evidence: dict[str, Any]
    ) -> None:
        call = self._call
        row = {
            "call_id": call.id,
            "contact_id": call.contact_id,
            "number": call.number_id,
            "flow_id": call.flow_def.id,
            "flow_version": call.flow_def.version,
            "consent_mode": call.policy.consent_mode,
            "decision": decision,
            "digit": digit,
            "digit_at": digit_at,
            "evidence": evidence,
        }
        call.journal.consent(row)

    # -- lines and agents ---------------------------------------------------------------

    def _ring(self, action: Ring) -> None:
        call = self._call
        call.line, call.team, call.decision = action.line, action.team, action.decision
        call.declined.clear()
        call.caller.send_message({"type": "ringing", "line": action.line})
        call.event(
            "ringing", {"line": action.line, "team": action.team, "record": action.decision.record}
        )
        self._save_decision(action.line, action.team, action.decision)
        call.sb.request_agent(call, action.team)

    def _save_decision(self, line: str, team: str | None, decision: RecordingDecision) -> None:
        call = self._call
        call.line, call.decision = line, decision
        call.journal.decision(line, team, asdict(decision))

    def _stop_ringing(self) -> None:
        call = self._call
        call.timers.pop(OFFER, None)
        call.timers.pop(BOT_ANSWER, None)
        call.sb.cancel_request(call)
        if call.seat is not None and not call.bridged:
            seat, call.seat = call.seat, None
            seat.withdraw()
            call.sb.seat_released(seat)

    def _bridge(self, action: Bridge) -> None:
        call = self._call
        seat = call.seat
        assert seat is not None
        call.bridged = True
        seat.connect(call)
        if isinstance(seat, BotSeat):
            call.timers[BOT_MAX] = call.tick_number + ticks_for(seat.max_call_s)
        call.caller.send_message({"type": "connected", "line": action.line, "agent": seat.name})
        call.event("connected", {"line": action.line, "agent": seat.name, "bot": seat.is_bot})
        call.journal.connected(seat.user_id, seat.name)

    # -- the recording ------------------------------------------------------------------

    def _start_recording(self, action: StartRecording) -> None:
        call = self._call
        rec_id = new_id("r")
        day = call.started_at[:10].replace("-", "/")
        relative = f"{day}/{rec_id}.wav"
        path = call.sb.records.recordings_dir / relative
        rate = call.caller.sample_rate
        call.recording = Recording(call.sb.recorder, rec_id, path, rate, call.sb.records.sealing)
        call.sb.metrics.recording_started()
        call.recording_ids.append(rec_id)
        call.indicate({"type": "recording", "state": "on"})
        if action.transcribe:
            call.indicate({"type": "transcription", "state": "on"})
        if action.paused:
            self.pause_recording("flow")
        call.event("recording", {"state": "on", "recording_id": rec_id})
        row = {
            "id": rec_id,
            "call_id": call.id,
            "path": relative,
            "status": "recording",
            "started_at": now_iso(),
            "sample_rate": rate,
            "channels": 2,
            "format": "wav/pcm_s16le",
            "transcribe": int(action.transcribe),
            "expires_at": expiry(call.number.retention_days),
        }
        call.journal.recording_started(row)

    def pause_recording(self, reason: str) -> bool:
        """Pause the live recording (silence is written); False if nothing changed."""
        call = self._call
        if call.recording is None or not call.recording.pause(reason):
            return False
        call.indicate({"type": "recording", "state": "paused"})
        call.event("recording", {"state": "paused", "reason": reason})
        return True

    def resume_recording(self) -> bool:
        call = self._call
        if call.recording is None or not call.recording.resume():
            return False
        call.indicate({"type": "recording", "state": "on"})
        call.event("recording", {"state": "on"})
        return True

    def stop_recording(self, *, later: bool = False) -> Recording | None:
        """Stop the recording; the journal closes it (or, ``later``, it is returned to close)."""
        call = self._call
        rec = call.recording
        if rec is None:
            return None
        call.recording = None
        call.sb.metrics.recording_ended()
        call.indicate({"type": "recording", "state": "off"})
        if call.decision is not None and call.decision.transcribe:
            call.indicate({"type": "transcription", "state": "off"})
        call.event("recording", {"state": "off", "recording_id": rec.id})
        if later:
            return rec
        call.journal.recording_stopped(rec)
        return None

    def recording_failed(self, rec: Recording) -> None:
        """The recording's file could not be written: end it there, and say so."""
        call = self._call
        call.recording = None
        call.sb.metrics.recording_ended()
        call.sb.metrics.recording_truncated()
        call.indicate({"type": "recording", "state": "off"})
        if call.decision is not None and call.decision.transcribe:
            call.indicate({"type": "transcription", "state": "off"})
        call.indicate(
            {
                "type": "error",
                "code": "recording_failed",
                "message": (
                    f"the recording stopped: the server could not write it ({rec.failed}); "
                    "the call goes on unrecorded"
                ),
            }
        )
        call.event("recording", {"state": "off", "recording_id": rec.id, "reason": "write_failed"})
        log.error("call %s: recording %s stopped: %s", call.id, rec.id, rec.failed)
        call.journal.recording_stopped(rec)
