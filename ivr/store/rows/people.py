"""Rows of users and tokens, and of the catalog: numbers, teams, flows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["agent", "supervisor", "admin", "owner"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin", "owner")
Source = Literal["config", "api"]
"""Who last set a number, team or flow head: the config file, or the API."""


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
