"""Rows of the work done on recordings and subjects, and of what is counted.

Transcription (jobs, transcripts, segments), privacy jobs (erasures,
retention runs), the audit log, and the read-only aggregates of analytics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ivr.store.rows.calls import RecordingStatus

JobState = Literal["pending", "running", "done", "failed", "dropped"]
Kind = Literal["contact", "agent"]
"""Whom a privacy operation is about: a caller's number, or an agent (a user id)."""


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


NodeState = Literal["ready", "draining", "stopped"]
PresenceState = Literal["not_ready", "ready", "offered", "busy"]


@dataclass(frozen=True, slots=True)
class PresenceRow:
    """An agent signed in on a node, as that node last published it."""

    seat_id: str
    node_id: str
    user_id: str
    name: str
    teams: tuple[str, ...]
    state: PresenceState
    updated_at: str


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One ``ivr serve`` process sharing the store: who it is and when it last spoke.

    ``alive`` is computed when read: a node whose heartbeat is older than the
    timeout given (or that stopped) is not.
    """

    id: str
    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    state: NodeState
    calls: int
    alive: bool
    url: str | None = None
