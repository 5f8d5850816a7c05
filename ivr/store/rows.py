"""The typed rows the repositories take and return: frozen dataclasses, no SQL.

Each row is one table's columns as the rest of the softswitch reads them:
booleans as ``bool``, JSON columns decoded (a call's ``recording_decision``
and ``stats``, a recording's ``tags``, ``pauses`` and ``gaps``, consent
``evidence``, event ``data``). Joined fields are named as the API names them
(a call's or recording's ``contact`` is the caller's number). A PostgreSQL
backend returns the same rows, so nothing above the store knows the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, TypedDict

Role = Literal["agent", "supervisor", "admin", "owner"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin", "owner")
Source = Literal["config", "api"]
"""Who last set a number, team or flow head: the config file, or the API."""
RecordingStatus = Literal["recording", "complete", "interrupted", "truncated"]
JobState = Literal["pending", "running", "done", "failed", "dropped"]
Kind = Literal["contact", "agent"]
"""Whom a privacy operation is about: a caller's number, or an agent (a user id)."""


# -- users and tokens ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in: the row of ``users`` with their teams (``user_teams``)."""

    id: str
    email: str
    name: str
    role: Role
    teams: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        """The user as the API shows them (never the password hash)."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "teams": list(self.teams),
        }


UserRow = User
"""The same row under the name the other repositories' rows follow."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user and their password hash: only the login needs the hash."""

    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class TokenSession:
    """The user of an unexpired token, and when the token expires (ISO 8601)."""

    user: User
    expires_at: str


# -- the catalog: numbers, teams, flows --------------------------------------------------


@dataclass(frozen=True, slots=True)
class NumberRow:
    """A number's settings as stored (the fields of :class:`ivr.config.NumberConfig`)."""

    id: str
    name: str
    flow: str
    recording: bool
    transcription: bool
    record_percent: int
    retention_days: int
    consent_mode: Literal["opt_in", "notice"]
    language: str
    source: Source
    updated_at: str

    def settings(self) -> dict[str, Any]:
        """The settings alone, as :class:`ivr.config.NumberConfig` takes them."""
        return {
            "name": self.name,
            "flow": self.flow,
            "recording": self.recording,
            "transcription": self.transcription,
            "record_percent": self.record_percent,
            "retention_days": self.retention_days,
            "consent_mode": self.consent_mode,
            "language": self.language,
        }


@dataclass(frozen=True, slots=True)
class TeamRow:
    id: str
    bots: int
    bot_greeting: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One version of a flow; ``definition`` is its decoded JSON."""

    id: str
    version: str
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """A stored version of a flow and when it was first stored."""

    version: str
    created_at: str


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


# -- transcription ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentRow:
    channel: Literal["caller", "agent"]
    start_s: float
    end_s: float
    text: str
    confidence: float
    engine: str
    model: str


@dataclass(frozen=True, slots=True)
class TranscriptRow:
    """A recording's transcript with its segments in time order."""

    recording_id: str
    engine: str
    model: str
    language: str
    audio_s: float
    cpu_s: float
    created_at: str
    segments: tuple[SegmentRow, ...] = ()


@dataclass(frozen=True, slots=True)
class NewSegment:
    """A stretch of speech on one channel, as the recogniser (redacted) gives it."""

    channel: Literal["caller", "agent"]
    start_s: float
    end_s: float
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class NewTranscript:
    """A finished transcription to store; each segment is kept with its engine and model."""

    recording_id: str
    engine: str
    model: str
    language: str
    audio_s: float
    cpu_s: float
    segments: tuple[NewSegment, ...] = ()


@dataclass(frozen=True, slots=True)
class JobRow:
    """A recording's transcription job in the durable queue."""

    recording_id: str
    state: JobState
    attempts: int
    last_error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job just claimed (now running) and its recording's fields; all None if it is gone."""

    recording_id: str
    attempts: int
    path: str | None = None
    pauses: list[dict[str, Any]] | None = None
    status: RecordingStatus | None = None
    sample_rate: int | None = None
    number: str | None = None


# -- privacy jobs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErasureJobRow:
    """An erasure, written before anything is deleted; ``subject`` is forgotten when done."""

    id: str
    kind: Kind
    subject: str | None
    pseudonym: str
    requested_by: str | None
    started_at: str
    finished_at: str | None = None
    receipt: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ErasureScope:
    """What an erasure deletes or pseudonymises: contact ids, call ids, (recording id, path)."""

    contacts: tuple[str, ...]
    calls: tuple[str, ...]
    recordings: tuple[tuple[str, str], ...]

    @property
    def recording_ids(self) -> list[str]:
        return [rec_id for rec_id, _ in self.recordings]


@dataclass(frozen=True, slots=True)
class ExpiredRecording:
    id: str
    path: str
    size_bytes: int | None


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """A retention run's receipt: what it deleted, when, for whom."""

    id: str
    at: str
    requested_by: str | None
    recordings: int
    transcripts: int
    bytes: int


# -- the audit log ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One appended entry of the audit log, with its link (``prev_hash``) and ``hash``."""

    seq: int
    at: str
    actor_id: str | None
    actor_role: str | None
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """The fields the hash covers (:func:`ivr.access.audit.entry_hash`)."""
        return {
            "at": self.at,
            "actor_id": self.actor_id,
            "actor_role": self.actor_role,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "outcome": self.outcome,
            "detail": self.detail,
        }

    def public(self) -> dict[str, Any]:
        """Every column, as ``GET /v1/audit`` shows it."""
        return asdict(self)


# -- analytics (read-only) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallTotals:
    """Counts over a group of calls (``key``: a team, an agent, or ``all``)."""

    key: str
    calls: int
    answered: int
    recorded: int
    consent_asked: int
    consent_granted: int
    average_handle_s: float | None


@dataclass(frozen=True, slots=True)
class Usage:
    """What billing counts over a range of calls; ``storage_bytes`` and ``seats`` are now."""

    minutes: float
    recorded_minutes: float
    storage_bytes: int
    seats: int
