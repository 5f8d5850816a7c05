"""The call flow engine: a sans-I/O state machine.

Events go in (:meth:`CallFlow.receive`), actions come out
(:meth:`CallFlow.actions_to_take`). The engine never sleeps, reads a clock,
opens a file or touches a socket: time reaches it as :class:`TimerExpired`,
the end of a prompt as :class:`PlaybackFinished`. The session driver
(:mod:`ivr.call.session`) executes the actions.

Which events each phase takes is the table ``_HANDLERS``; an event with no
entry for the current phase is a driver bug and raises :class:`InvalidState`
("can't handle X in phase Y"), as h11 does. A caller pressing a wrong key or
saying nothing is a branch of the flow, never an exception.

Semantics worth knowing:

- A ``message`` node cannot be skipped: digits during it are ignored, so a
  notice is always heard in full before a choice is taken.
- A ``menu`` prompt can be interrupted (barge-in): the digit stops it and is
  taken at once. ``retries`` counts how many more times the menu is offered
  after a timeout or an invalid key; when they run out the call goes to
  ``on_timeout``.
- The recording decision is taken when a ``ring`` node is entered, from the
  number's switch, the line's ``record``, consent (``opt_in``: an option with
  ``consent: granted`` was chosen; ``notice``: a ``notice: recording`` node was
  played to its end) and the sample draw.

Why one module of about 500 lines: the phase table and its handlers are one
state machine; events and actions live in :mod:`ivr.flows.events`, the node
models in :mod:`ivr.flows.nodes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ivr.errors import InvalidState
from ivr.flows.decision import NumberPolicy, RecordingDecision
from ivr.flows.events import (
    Action,
    AgentAnswered,
    AgentHungUp,
    Bridge,
    CallAnswered,
    CallerHungUp,
    CancelTimer,
    DigitReceived,
    Event,
    Gathered,
    Hangup,
    HangupReason,
    LogConsent,
    LogNotice,
    PauseRecording,
    Play,
    PlaybackFinished,
    ResumeRecording,
    Ring,
    StartRecording,
    StartTimer,
    StartVoicemail,
    Step,
    StopPlayback,
    StopRecording,
    StopRinging,
    TimerExpired,
    Via,
)
from ivr.flows.nodes import (
    Flow,
    GatherNode,
    HangupNode,
    MenuNode,
    MessageNode,
    PauseRecordingNode,
    ResumeRecordingNode,
    RingNode,
    VoicemailNode,
    prompt_id,
)

MENU_TIMER = "menu"


RING_TIMER = "ring"


GATHER_TIMER = "gather"


VOICEMAIL_TIMER = "voicemail"


Phase = Literal[
    "new", "playing", "waiting", "gathering", "ringing", "connected", "voicemail", "ended"
]


@dataclass(slots=True)
class _State:
    phase: Phase = "new"
    node: str = ""
    attempts: dict[str, int] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    consent: str | None = None
    cause: HangupReason = "flow"
    decision: RecordingDecision | None = None
    recording: bool = False
    paused: bool = False  # by a pause_recording node (or a sensitive gather)
    digits: str = ""  # what the current gather collected so far


class CallFlow:
    """One call's walk through a flow."""

    def __init__(self, flow: Flow, policy: NumberPolicy) -> None:
        self._flow = flow
        self._policy = policy
        self._s = _State()
        self._actions: list[Action] = []
        self.path: list[Step] = []
        """Every branch this call took, in order (:class:`Step`): a flow test's trace."""

    # -- the public verbs ----------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._s.phase

    @property
    def node(self) -> str:
        return self._s.node

    @property
    def decision(self) -> RecordingDecision | None:
        """The recording decision of the last line entered, if any."""
        return self._s.decision

    @property
    def notices(self) -> tuple[str, ...]:
        return tuple(self._s.notices)

    @property
    def sensitive(self) -> bool:
        """True while a ``sensitive`` gather runs: its digits must not be logged."""
        node = self._flow.nodes.get(self._s.node)
        return isinstance(node, GatherNode) and node.sensitive and self._s.phase != "ended"

    def block_recording(self, why: str) -> None:
        """The caller objected (erased while on the call): record nothing from now on.

        A recording running stops (:class:`StopRecording`), the line's decision
        is taken again with ``why`` among its reasons, and no later line
        records. The call itself goes on.
        """
        s = self._s
        self._policy = replace(self._policy, blocked=why)
        if s.recording:
            s.recording = False
            self._emit(StopRecording(s.node))
        if s.decision is not None:
            s.decision = self._decide(s.decision.line, s.decision.line_records)

    def receive(self, event: Event) -> None:
        """Feed one event; its actions are then in :meth:`actions_to_take`."""
        handler = _HANDLERS.get((self._s.phase, type(event)))
        if handler is None:
            raise InvalidState(
                f"can't handle {type(event).__name__} in phase {self._s.phase!r} "
                f"(node {self._s.node!r})"
            )
        handler(self, event)

    def actions_to_take(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # -- transitions ---------------------------------------------------------

    def _emit(self, action: Action) -> None:
        self._actions.append(action)

    def _enter(self, node_id: str, via: Via | None = None, digit: str | None = None) -> None:
        s = self._s
        if via is not None:
            self.path.append(Step(s.node, node_id, via, digit))
        # pause/resume nodes pass straight through; a cycle of them alone would
        # never wait (the compliance check refuses such flows), so stop it here.
        for _ in range(len(self._flow.nodes) + 1):
            node = self._flow.nodes[node_id]
            if isinstance(node, PauseRecordingNode):
                if not s.paused:
                    s.paused = True
                    self._emit(PauseRecording(node.reason))
            elif isinstance(node, ResumeRecordingNode):
                if s.paused:
                    s.paused = False
                    self._emit(ResumeRecording())
            else:
                break
            self.path.append(Step(node_id, node.next, "next"))
            node_id = node.next
        else:
            raise InvalidState(f"flow loops through pause/resume nodes at {node_id!r}")
        s.node = node_id
        if isinstance(node, GatherNode):
            s.digits = ""
            s.phase = "playing"
            if node.sensitive and not s.paused:
                self._emit(PauseRecording("sensitive input"))
            self._emit(Play(prompt_id(node.prompt), node_id))
        elif isinstance(node, VoicemailNode | MessageNode | MenuNode):
            s.phase = "playing"
            self._emit(Play(prompt_id(node.prompt), node_id))
        elif isinstance(node, RingNode):
            decision = self._decide(node_id, node.record)
            s.decision = decision
            s.phase = "ringing"
            self._emit(Ring(node_id, node.team, decision))
            self._emit(Play(prompt_id(node.hold), node_id, loop=True))
            self._emit(StartTimer(RING_TIMER, node.timeout_s))
        else:
            assert isinstance(node, HangupNode)
            if node.prompt is not None:
                s.phase = "playing"
                self._emit(Play(prompt_id(node.prompt), node_id))
            else:
                self._end(s.cause)

    def _end(self, reason: HangupReason) -> None:
        s = self._s
        if s.recording:
            s.recording = False
            self._emit(StopRecording(s.node))
        s.phase = "ended"
        self._emit(Hangup(reason))

    def _decide(self, node_id: str, line_records: bool) -> RecordingDecision:
        p, s = self._policy, self._s
        reasons = []
        if not p.recording:
            reasons.append("recording is switched off for this number")
        if not line_records:
            reasons.append(f"line {node_id!r} does not record")
        if p.consent_mode == "opt_in":
            consent_ok = s.consent == "granted"
            if not consent_ok:
                reasons.append(
                    "the caller refused consent"
                    if s.consent == "refused"
                    else "the caller never granted consent (opt-in)"
                )
        else:
            consent_ok = "recording" in s.notices
            if not consent_ok:
                reasons.append("the recording notice was not played")
        in_sample = p.sample_draw < p.record_percent
        if not in_sample:
            reasons.append(
                f"the call fell outside the {p.record_percent}% sample (draw {p.sample_draw:.2f})"
            )
        if p.blocked:
            reasons.append(p.blocked)
        record = p.recording and line_records and consent_ok and in_sample and not p.blocked
        transcribe = record and p.transcription and "ai" in s.notices
        if record:
            reasons.append(
                f"recorded: switch on, line records, consent holds ({p.consent_mode}), "
                f"draw {p.sample_draw:.2f} < {p.record_percent}%"
            )
        return RecordingDecision(
            line=node_id,
            number_recording=p.recording,
            line_records=line_records,
            consent_mode=p.consent_mode,
            consent=s.consent,
            notices=tuple(s.notices),
            record_percent=p.record_percent,
            sample_draw=p.sample_draw,
            in_sample=in_sample,
            record=record,
            transcribe=transcribe,
            reasons=tuple(reasons),
        )

    def _menu(self) -> MenuNode:
        node = self._flow.nodes[self._s.node]
        assert isinstance(node, MenuNode)
        return node

    def _menu_digit(self, digit: str) -> None:
        s, node = self._s, self._menu()
        option = node.options.get(digit)
        if option is not None:
            s.attempts.pop(s.node, None)
            if option.consent is not None:
                s.consent = option.consent
                self._emit(LogConsent(s.node, prompt_id(node.prompt), digit, option.consent))
            s.cause = "flow"
            self._enter(option.next, "option", digit)
            return
        self._menu_miss(node, node.on_invalid or s.node)

    def _menu_miss(self, node: MenuNode, retry_target: str) -> None:
        s = self._s
        used = s.attempts.get(s.node, 0) + 1
        if used > node.retries:
            s.attempts.pop(s.node, None)
            s.cause = "timeout"
            self._enter(node.on_timeout, "timeout")
        else:
            s.attempts[s.node] = used
            self._enter(retry_target, "retry" if retry_target == s.node else "invalid")

    # -- handlers ------------------------------------------------------------

    def _on_answered(self, event: CallAnswered) -> None:
        self._enter(self._flow.start)

    def _on_playback_finished(self, event: PlaybackFinished) -> None:
        s = self._s
        if event.node != s.node:
            raise InvalidState(
                f"playback of {event.node!r} finished, but the call is at {s.node!r}"
            )
        node = self._flow.nodes[s.node]
        if isinstance(node, MessageNode):
            if node.notice:
                for kind in node.notice:
                    if kind not in s.notices:
                        s.notices.append(kind)
                self._emit(LogNotice(s.node, prompt_id(node.prompt), tuple(node.notice)))
            self._enter(node.next, "next")
        elif isinstance(node, MenuNode):
            s.phase = "waiting"
            self._emit(StartTimer(MENU_TIMER, node.timeout_s))
        elif isinstance(node, HangupNode):
            self._end(s.cause)
        elif isinstance(node, GatherNode):
            s.phase = "gathering"
            self._emit(StartTimer(GATHER_TIMER, node.timeout_s))
        elif isinstance(node, VoicemailNode):
            self._start_voicemail(node)
        else:
            raise InvalidState(f"playback finished at ring node {s.node!r}: hold audio loops")

    # -- gather ----------------------------------------------------------------

    def _gather_digit(self, node: GatherNode, digit: str) -> None:
        s = self._s
        if node.finish_key is not None and digit == node.finish_key:
            self._gather_done(node)
            return
        s.digits += digit
        if len(s.digits) >= node.max_digits:
            self._gather_done(node)
        else:
            s.phase = "gathering"
            self._emit(StartTimer(GATHER_TIMER, node.inter_digit_timeout_s))

    def _gather_done(self, node: GatherNode) -> None:
        s = self._s
        digits, s.digits = s.digits, ""
        # A sensitive gather resumes what it paused; under a pause_recording
        # node's pause it had paused nothing and resumes nothing.
        if node.sensitive and not s.paused:
            self._emit(ResumeRecording())
        if digits:
            self._emit(Gathered(s.node, digits, node.sensitive))
            s.cause = "flow"
            self._enter(node.next, "next")
        else:
            s.cause = "timeout"
            self._enter(node.on_timeout, "no_digits")

    def _on_digit_gathering(self, event: DigitReceived) -> None:
        node = self._flow.nodes[self._s.node]
        assert isinstance(node, GatherNode)
        self._emit(CancelTimer(GATHER_TIMER))
        self._gather_digit(node, event.digit)

    def _on_timer_gathering(self, event: TimerExpired) -> None:
        if event.name != GATHER_TIMER:
            raise InvalidState(f"timer {event.name!r} expired while gathering digits")
        node = self._flow.nodes[self._s.node]
        assert isinstance(node, GatherNode)
        self._gather_done(node)

    # -- voicemail -------------------------------------------------------------

    def _start_voicemail(self, node: VoicemailNode) -> None:
        s = self._s
        decision = self._decide(s.node, node.record)
        s.decision = decision
        s.phase = "voicemail"
        self._emit(StartVoicemail(s.node, decision))
        if decision.record:
            s.recording = True
            self._emit(StartRecording(s.node, decision.transcribe, paused=s.paused))
        self._emit(StartTimer(VOICEMAIL_TIMER, node.max_length_s))

    def _voicemail_done(self) -> None:
        s = self._s
        node = self._flow.nodes[s.node]
        assert isinstance(node, VoicemailNode)
        if s.recording:
            s.recording = False
            self._emit(StopRecording(s.node))
        if node.next is None:
            self._end("flow")
        else:
            self._enter(node.next, "next")

    def _on_digit_voicemail(self, event: DigitReceived) -> None:
        node = self._flow.nodes[self._s.node]
        assert isinstance(node, VoicemailNode)
        if node.finish_key is not None and event.digit == node.finish_key:
            self._emit(CancelTimer(VOICEMAIL_TIMER))
            self._voicemail_done()

    def _on_timer_voicemail(self, event: TimerExpired) -> None:
        if event.name != VOICEMAIL_TIMER:
            raise InvalidState(f"timer {event.name!r} expired during a voicemail")
        self._voicemail_done()

    def _on_digit_playing(self, event: DigitReceived) -> None:
        node = self._flow.nodes[self._s.node]
        if isinstance(node, MenuNode):
            self._emit(StopPlayback(self._s.node))  # barge-in
            self._menu_digit(event.digit)
        elif isinstance(node, GatherNode):
            self._emit(StopPlayback(self._s.node))  # barge-in: the digit counts
            self._gather_digit(node, event.digit)
        # A message or goodbye cannot be skipped: the digit is ignored.

    def _on_digit_waiting(self, event: DigitReceived) -> None:
        self._emit(CancelTimer(MENU_TIMER))
        self._menu_digit(event.digit)

    def _on_digit_ignored(self, event: DigitReceived) -> None:
        pass

    def _on_timer_waiting(self, event: TimerExpired) -> None:
        if event.name != MENU_TIMER:
            raise InvalidState(f"timer {event.name!r} expired while waiting for a digit")
        self._menu_miss(self._menu(), self._s.node)

    def _on_timer_ringing(self, event: TimerExpired) -> None:
        if event.name != RING_TIMER:
            raise InvalidState(f"timer {event.name!r} expired while ringing")
        s = self._s
        node = self._flow.nodes[s.node]
        assert isinstance(node, RingNode)
        self._emit(StopPlayback(s.node))
        self._emit(StopRinging(s.node))
        s.cause = "no_answer"
        self._enter(node.on_no_answer, "no_answer")

    def _on_agent_answered(self, event: AgentAnswered) -> None:
        s = self._s
        assert s.decision is not None
        self._emit(CancelTimer(RING_TIMER))
        self._emit(StopPlayback(s.node))
        self._emit(Bridge(s.node, event.agent))
        self.path.append(Step(s.node, s.node, "answered"))
        s.phase = "connected"
        if s.decision.record:
            s.recording = True
            self._emit(StartRecording(s.node, s.decision.transcribe, paused=s.paused))

    def _on_agent_hung_up(self, event: AgentHungUp) -> None:
        self._end("agent")

    def _on_caller_hung_up(self, event: CallerHungUp) -> None:
        s = self._s
        if s.phase == "waiting":
            self._emit(CancelTimer(MENU_TIMER))
        elif s.phase == "gathering":
            self._emit(CancelTimer(GATHER_TIMER))
        elif s.phase == "voicemail":
            self._emit(CancelTimer(VOICEMAIL_TIMER))
        elif s.phase == "ringing":
            self._emit(CancelTimer(RING_TIMER))
            self._emit(StopPlayback(s.node))
            self._emit(StopRinging(s.node))
        elif s.phase == "playing":
            self._emit(StopPlayback(s.node))
        self._end("caller")


_Handler = Callable[[CallFlow, Any], None]


_HANDLERS: dict[tuple[Phase, type], _Handler] = {
    ("new", CallAnswered): CallFlow._on_answered,
    ("new", CallerHungUp): CallFlow._on_caller_hung_up,
    ("playing", PlaybackFinished): CallFlow._on_playback_finished,
    ("playing", DigitReceived): CallFlow._on_digit_playing,
    ("playing", CallerHungUp): CallFlow._on_caller_hung_up,
    ("waiting", DigitReceived): CallFlow._on_digit_waiting,
    ("waiting", TimerExpired): CallFlow._on_timer_waiting,
    ("waiting", CallerHungUp): CallFlow._on_caller_hung_up,
    ("ringing", AgentAnswered): CallFlow._on_agent_answered,
    ("ringing", TimerExpired): CallFlow._on_timer_ringing,
    ("ringing", DigitReceived): CallFlow._on_digit_ignored,
    ("ringing", CallerHungUp): CallFlow._on_caller_hung_up,
    ("connected", DigitReceived): CallFlow._on_digit_ignored,
    ("connected", AgentHungUp): CallFlow._on_agent_hung_up,
    ("connected", CallerHungUp): CallFlow._on_caller_hung_up,
    ("gathering", DigitReceived): CallFlow._on_digit_gathering,
    ("gathering", TimerExpired): CallFlow._on_timer_gathering,
    ("gathering", CallerHungUp): CallFlow._on_caller_hung_up,
    ("voicemail", DigitReceived): CallFlow._on_digit_voicemail,
    ("voicemail", TimerExpired): CallFlow._on_timer_voicemail,
    ("voicemail", CallerHungUp): CallFlow._on_caller_hung_up,
}
