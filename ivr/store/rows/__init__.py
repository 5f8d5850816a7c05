"""The typed rows the repositories take and return: frozen dataclasses, no SQL.

Each row is one table's columns as the rest of the softswitch reads them:
booleans as ``bool``, JSON columns decoded (a call's ``recording_decision``
and ``stats``, a recording's ``tags``, ``pauses`` and ``gaps``, consent
``evidence``, event ``data``). Joined fields are named as the API names them
(a call's or recording's ``contact`` is the caller's number). A PostgreSQL
backend returns the same rows, so nothing above the store knows the database.

By aggregate: :mod:`~ivr.store.rows.people` (users, tokens, the catalog),
:mod:`~ivr.store.rows.calls` (calls, events, consent, recordings, notes),
:mod:`~ivr.store.rows.jobs` (transcription, privacy jobs, audit, analytics).
"""

from ivr.store.rows.calls import (
    CallFields,
    CallRow,
    CallTransport,
    ConsentRow,
    EventRow,
    NewCall,
    NewConsent,
    NewRecording,
    NoteRow,
    RecordingEnd,
    RecordingRow,
    RecordingStatus,
)
from ivr.store.rows.jobs import (
    AuditEntry,
    CallTotals,
    ClaimedJob,
    ErasureJobRow,
    ErasureScope,
    ExpiredRecording,
    JobRow,
    JobState,
    Kind,
    NewSegment,
    NewTranscript,
    NodeRow,
    NodeState,
    PresenceRow,
    PresenceState,
    RetentionRun,
    SegmentRow,
    TranscriptRow,
    Usage,
)
from ivr.store.rows.people import (
    ROLES,
    Credentials,
    FlowRow,
    FlowVersion,
    NumberRow,
    Role,
    Source,
    TeamRow,
    TokenSession,
    User,
    UserRow,
)

__all__ = [
    "ROLES",
    "AuditEntry",
    "CallFields",
    "CallRow",
    "CallTotals",
    "CallTransport",
    "ClaimedJob",
    "ConsentRow",
    "Credentials",
    "ErasureJobRow",
    "ErasureScope",
    "EventRow",
    "ExpiredRecording",
    "FlowRow",
    "FlowVersion",
    "JobRow",
    "JobState",
    "Kind",
    "NewCall",
    "NewConsent",
    "NewRecording",
    "NewSegment",
    "NewTranscript",
    "NodeRow",
    "NodeState",
    "NoteRow",
    "NumberRow",
    "PresenceRow",
    "PresenceState",
    "RecordingEnd",
    "RecordingRow",
    "RecordingStatus",
    "RetentionRun",
    "Role",
    "SegmentRow",
    "Source",
    "TeamRow",
    "TokenSession",
    "TranscriptRow",
    "Usage",
    "User",
    "UserRow",
]
