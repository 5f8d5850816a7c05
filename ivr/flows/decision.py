"""The recording decision: every factor of it, and the sampling draw.

A leg is recorded only if the number's recording is on, the line records,
consent holds (per the number's mode), the call falls in the sample
(``record_percent``, decided deterministically from the call id) and it is
not paused. :class:`RecordingDecision` keeps each factor, so anyone allowed
can see why a call was or was not recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class RecordingDecision:
    """Every factor of the decision to record a line, and the outcome."""

    line: str
    number_recording: bool
    line_records: bool
    consent_mode: str
    consent: str | None  # "granted", "refused" or None (never asked)
    notices: tuple[str, ...]
    record_percent: int
    sample_draw: float  # in [0, 100): the call falls in the sample when draw < percent
    in_sample: bool
    record: bool
    transcribe: bool
    reasons: tuple[str, ...]


def sample_draw(call_id: str) -> float:
    """The call's deterministic sampling draw in [0, 100), from its id.

    The same id always gives the same draw, so a decision can be re-derived
    and audited later; distinct random ids are uniform over [0, 100).
    """
    digest = hashlib.sha256(call_id.encode()).digest()
    # 53 bits: exactly representable, so the top draw stays below 100.
    return (int.from_bytes(digest[:8], "big") >> 11) / 2**53 * 100.0


@dataclass(frozen=True, slots=True)
class NumberPolicy:
    """The number's settings that the engine needs, fixed when the call starts."""

    recording: bool
    transcription: bool
    consent_mode: Literal["opt_in", "notice"]
    record_percent: int
    sample_draw: float
    blocked: str | None = None
    """Why this caller must not be recorded at all (they objected), or None."""
