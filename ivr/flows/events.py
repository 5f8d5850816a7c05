"""What goes into the flow engine and what comes out: events and actions.

Events are past-tense facts the driver feeds in (:class:`DigitReceived`);
actions are commands it executes (:class:`Play`). Both are frozen
dataclasses, kept apart from the engine as h11 keeps its events, so that a
driver (the call session, a simulator) depends on these and on nothing of
the engine's insides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ivr.flows.decision import RecordingDecision


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call is up; the flow starts."""


@dataclass(frozen=True, slots=True)
class DigitReceived:
    digit: str  # one of "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    node: str  # the node whose prompt played to its end


@dataclass(frozen=True, slots=True)
class TimerExpired:
    name: str


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    agent: str  # display name


@dataclass(frozen=True, slots=True)
class AgentHungUp:
    """The bridged agent (person or bot) left the call."""


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller left the call."""


Event = (
    CallAnswered
    | DigitReceived
    | PlaybackFinished
    | TimerExpired
    | AgentAnswered
    | AgentHungUp
    | CallerHungUp
)


HangupReason = Literal["caller", "agent", "flow", "no_answer", "timeout", "shutdown", "error"]


Via = Literal["next", "option", "retry", "invalid", "timeout", "no_answer", "no_digits", "answered"]
"""How a call left a node: the compliance proof's edge kinds, and a ring ``answered``."""


@dataclass(frozen=True, slots=True)
class Step:
    """One branch a call took: from ``source`` to ``target``, by ``via``.

    ``digit`` is the key of a menu ``option`` (None for any other branch:
    which invalid key was pressed does not matter). A ring answered is a
    step to itself (``via="answered"``): the call stays on that line. The
    engine lists a call's steps (:attr:`ivr.flows.CallFlow.path`); the
    compliance proof lists every step a flow allows
    (:func:`ivr.flows.compliance.branches`), so flow tests can say which a
    suite never took.
    """

    source: str
    target: str
    via: Via
    digit: str | None = None

    def describe(self) -> str:
        how = f"key {self.digit}" if self.via == "option" else self.via.replace("_", " ")
        if self.via == "answered":
            return f"{self.source} (answered)"
        return f"{self.source} -[{how}]-> {self.target}"


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str
    node: str
    loop: bool = False


@dataclass(frozen=True, slots=True)
class StopPlayback:
    node: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class LogNotice:
    """A notice prompt was played to its end (evidence for consent)."""

    node: str
    prompt: str
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LogConsent:
    """The caller chose a menu option that grants or refuses consent."""

    node: str
    prompt: str
    digit: str
    decision: Literal["granted", "refused"]


@dataclass(frozen=True, slots=True)
class Ring:
    """Offer the call to the team's agents."""

    line: str
    team: str
    decision: RecordingDecision


@dataclass(frozen=True, slots=True)
class StopRinging:
    line: str


@dataclass(frozen=True, slots=True)
class Bridge:
    """Connect the caller's audio with the agent who answered."""

    line: str
    agent: str


@dataclass(frozen=True, slots=True)
class StartRecording:
    line: str
    transcribe: bool
    paused: bool = False  # a pause_recording node ran before: start as silence


@dataclass(frozen=True, slots=True)
class PauseRecording:
    reason: str


@dataclass(frozen=True, slots=True)
class ResumeRecording:
    """Resume a recording paused by the flow."""


@dataclass(frozen=True, slots=True)
class Gathered:
    """A gather node collected ``digits`` (never to be logged when ``sensitive``)."""

    node: str
    digits: str
    sensitive: bool


@dataclass(frozen=True, slots=True)
class StartVoicemail:
    """Record the caller's message, if ``decision`` allows it."""

    line: str
    decision: RecordingDecision


@dataclass(frozen=True, slots=True)
class StopRecording:
    line: str


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: HangupReason


Action = (
    Play
    | StopPlayback
    | StartTimer
    | CancelTimer
    | LogNotice
    | LogConsent
    | Ring
    | StopRinging
    | Bridge
    | StartRecording
    | StopRecording
    | PauseRecording
    | ResumeRecording
    | Gathered
    | StartVoicemail
    | Hangup
)
