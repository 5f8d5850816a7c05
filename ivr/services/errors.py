"""What a use case refuses with: domain errors, turned into HTTP statuses only by the API.

Each error carries the message shown to the client, and where it applies
the field at fault and a list of problems (the flow's or the compliance
proof's). :mod:`ivr.api.base` maps each kind to a status and an error code;
the CLI prints the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ivr.errors import IvrError


class ServiceError(IvrError):
    """A use case refused what it was asked; nothing was changed."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        problems: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.problems = None if problems is None else list(problems)


class Invalid(ServiceError):
    """A value the use case cannot take (a field named, or none)."""


class InvalidFlow(ServiceError):
    """A flow that does not validate: every problem, with its path in the flow."""


class NonCompliant(ServiceError):
    """Settings or a flow the compliance proof refuses: every rule broken, with its path."""


class Missing(ServiceError):
    """No such object (a user, team, number, subject)."""


class Conflict(ServiceError):
    """The change clashes with what exists (a taken e-mail, a team in use, oneself)."""


class Forbidden(ServiceError):
    """The actor may not do this to this object (an Owner's role, another's data)."""
