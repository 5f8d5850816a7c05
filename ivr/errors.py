"""Errors of the softswitch.

Tree::

    IvrError
    ├── InvalidConfig      bad data at load time: carries the file and the path inside it
    ├── InvalidState       our own misuse of the flow engine (also an AssertionError)
    ├── TtsError           text could not be rendered to speech
    ├── StoreError         the database or the recordings folder refused an operation
    │   ├── NotFound       no such object (or one this user may not see)
    │   └── StorageUnavailable  a write failed for want of a working disk (full, I/O
    │                      error); nothing of it was kept, and it may be tried again
    ├── TranscriptionError (ivr.speech.transcribe) a recording could not be transcribed
    │   └── NoModel        no speech model ships for the number's language
    └── AuthError          bad credentials or token

A caller pressing a wrong key or saying nothing is a branch of the flow, never
an exception. These errors become HTTP statuses or WebSocket close codes only
at the edges (``ivr.api``, ``ivr.transport.ws``).
"""

from __future__ import annotations

from dataclasses import dataclass


class IvrError(Exception):
    """Root of every error raised by ivr."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.message}"


class InvalidConfig(IvrError):
    """A config or flow that cannot be used; lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid config {source} ({len(problems)} problem(s)):\n{lines}")


class InvalidState(IvrError, AssertionError):
    """The flow engine was fed an event it cannot take in its current state."""


class TtsError(IvrError):
    """Text could not be rendered to speech."""


class StoreError(IvrError):
    """The store refused an operation."""


class NotFound(StoreError):
    """No such object, or one outside what the asking user may see."""


class StorageUnavailable(StoreError):
    """The database refused a write for want of a working disk (full, I/O error).

    The unit of work was rolled back whole, so trying it again later is safe.
    """


class AuthError(IvrError):
    """Bad credentials, or a token that is missing, unknown or expired."""
