"""Rows of calls and what hangs off them: events, consent, recordings, QA notes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict

RecordingStatus = Literal["recording", "complete", "interrupted", "truncated"]
CallTransport = Literal["ws", "sip"]


# -- calls, events, consent ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCall:
    """A call's row as it is created, before anything has happened on it."""

    id: str
    number: str
    contact_id: str | None
    flow_id: str
    flow_version: str
    codec: str
    sample_rate: int
    started_at: str
    client_ref: str | None = None
    transport: CallTransport = "ws"
    sip_call_id: str | None = None  # the SIP Call-ID header of a call over SIP
    node_id: str | None = None  # the node that holds the call (ivr.store.nodes)


class CallFields(TypedDict, total=False):
    """What a call's row takes later (:meth:`ivr.store.calls.CallRepository.update`)."""

    connected_at: str | None
    ended_at: str | None
    end_reason: str | None
    line: str | None
    team: str | None
    agent_id: str | None
    agent_name: str | None
    recording_decision: dict[str, Any] | None
    stats: dict[str, Any] | None
    consent_decision: str | None
    client_ref: str | None
    media: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class CallRow:
    """A call with its caller's number (``contact``; None once erased)."""

    id: str
    number: str
    contact_id: str | None
    contact: str | None
    flow_id: str
    flow_version: str
    codec: str
    sample_rate: int
    client_ref: str | None
    started_at: str
    connected_at: str | None
    ended_at: str | None
    end_reason: str | None
    line: str | None
    team: str | None
    agent_id: str | None
    agent_name: str | None
    recording_decision: dict[str, Any] | None
    stats: dict[str, Any] | None
    consent_decision: str | None
    subject_erased: bool
    transport: str = "ws"
    sip_call_id: str | None = None
    media: dict[str, Any] | None = None  # RTP and RTCP figures of a SIP call


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of a call's timeline; ``id`` orders them and pages them."""

    id: int
    call_id: str
    at: str
    type: str
    data: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """The event as the API shows it: ``at``, ``type`` and the data's own keys."""
        return {"at": self.at, "type": self.type, **self.data}


@dataclass(frozen=True, slots=True)
class NewConsent:
    """Consent evidence (or a notice that stands for it) as the call path hands it over."""

    call_id: str
    contact_id: str | None
    number: str
    flow_id: str
    flow_version: str
    consent_mode: str
    decision: str
    digit: str | None
    digit_at: str | None
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConsentRow:
    id: str
    call_id: str
    contact_id: str | None
    number: str
    flow_id: str
    flow_version: str
    consent_mode: str
    decision: str
    digit: str | None
    digit_at: str | None
    evidence: dict[str, Any]
    created_at: str

    def public(self) -> dict[str, Any]:
        """Every column, the evidence decoded: what the API and exports show."""
        return asdict(self)


# -- recordings and QA notes -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRecording:
    """A recording's row as it starts (status ``recording``), before its audio is closed."""

    id: str
    call_id: str
    path: str
    status: RecordingStatus
    started_at: str
    sample_rate: int
    channels: int
    format: str
    transcribe: bool = False
    expires_at: str | None = None


class RecordingEnd(TypedDict, total=False):
    """What a recording's row takes when its file is closed (or repaired)."""

    status: RecordingStatus
    ended_at: str
    duration_s: float
    sha256: str
    size_bytes: int
    pauses: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    truncated_at_s: float
    truncated_reason: str


@dataclass(frozen=True, slots=True)
class RecordingRow:
    """A recording with what the API shows of its call (agent, number, line, contact)."""

    id: str
    call_id: str
    path: str
    status: RecordingStatus
    started_at: str
    ended_at: str | None
    duration_s: float | None
    sample_rate: int
    channels: int
    format: str
    sha256: str | None
    size_bytes: int | None
    transcribe: bool
    expires_at: str | None
    score: int | None
    tags: list[str]
    pauses: list[dict[str, Any]]
    gaps: list[dict[str, Any]]
    truncated_at_s: float | None
    truncated_reason: str | None
    agent_id: str | None = None
    agent_name: str | None = None
    number: str | None = None
    line: str | None = None
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class NoteRow:
    """A QA note on a recording; ``author_id`` becomes a pseudonym when its author is erased."""

    id: str
    recording_id: str
    author_id: str | None
    text: str
    at: str
