"""Errors of the softswitch: one tree, rooted at :class:`IvrError`.

Most of the tree is defined here; a class that belongs to one package is
defined there, derives from a class of this tree, and is named below with
its module. Tree::

    IvrError
    ├── InvalidConfig      bad data at load time: carries the file and the path inside it
    │   └── InvalidScenario    (ivr.load.errors) a load scenario that cannot be run
    ├── InvalidState       our own misuse of the flow engine (also an AssertionError)
    ├── TtsError           text could not be rendered to speech
    ├── StoreError         the database or the recordings folder refused an operation
    │   ├── NotFound       no such object (or one this user may not see)
    │   └── StorageUnavailable  a write failed for want of a working disk (full, I/O
    │                      error); nothing of it was kept, and it may be tried again
    ├── AuthError          bad credentials or token
    ├── Busy               (ivr.call.switchboard) the server is at its call limit, or stopping
    ├── ProtocolError      (ivr.transport.protocol) a WebSocket message the server cannot
    │                      take; carries the protocol's error code (docs/protocol.md)
    ├── TranscriptionError (ivr.speech.transcribe) a recording could not be transcribed
    │   └── NoModel        no speech model ships for the number's language
    ├── LoadError          (ivr.load.errors) a load run that cannot go on
    │   └── ServerUnusable     the server is unreachable, refuses to sign in, answers no call
    ├── RequestFailed      (ivr.load.errors) one request of the load runner failed; it goes on
    │   ├── HandshakeFailed    (ivr.load.wsclient) no WebSocket upgrade (a ConnectionError too)
    │   ├── ProtocolViolation  (ivr.load.wsclient) the server broke RFC 6455 (a ConnectionError too)
    │   └── ApiFailed          (ivr.load.verify) an API read was not answered 200
    ├── ApiError           (ivr.api.base) a refused API request, with its HTTP status
    └── SubjectNotFound    (ivr.privacy.subject) no data about the erasure's or export's subject

``ApiError`` and ``SubjectNotFound`` are listed where they belong; they are
to derive from :class:`IvrError` with the store and API side's next change.
``media`` keeps a tree of its own (:class:`media.errors.MediaError`): it sits
below ``ivr`` and never imports it.

A caller pressing a wrong key or saying nothing is a branch of the flow, never
an exception. These errors become HTTP statuses or WebSocket close codes only
at the edges (``ivr.api``, ``ivr.transport``).
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
