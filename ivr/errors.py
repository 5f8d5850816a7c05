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
    ├── ServiceError       (ivr.services.errors) a use case refused what it was asked
    │   ├── Invalid / InvalidFlow / NonCompliant   the request, a flow, or the proof
    │   └── Missing / Conflict / Forbidden         no such object, a clash, no right
    ├── ApiError           (ivr.api.base) a refused API request, with its HTTP status
    ├── SubjectNotFound    (ivr.privacy.subject) no data about the erasure's or export's subject
    ├── SipError           (ivr.transport.sip.errors) a SIP message or state the core refuses;
    │   │                  carries the SIP status a response would have
    │   ├── BadMessage     a message that does not parse (400, naming the header)
    │   ├── SipStateError  our own misuse of the SIP core (also an AssertionError)
    │   └── CallGone       the call or dialog no longer exists (481)
    └── RtpError           (ivr.transport.rtp.errors) a packet, SDP or negotiation refused
        ├── MalformedPacket    an RTP datagram that fails the header checks
        │   └── MalformedEvent     a telephone-event payload of the wrong size
        ├── MalformedRtcp      an RTCP datagram that fails the compound checks
        ├── SdpError           a session description that does not parse
        ├── OfferAnswerError   an answer that breaks offer/answer against our offer
        ├── NoCommonCodec      no stream of an offer can be used (488)
        └── InvalidField       our own code gave a value that does not fit (also a ValueError)

Two modules raise private exceptions for their own control flow that never
leave them (``ivr.transport.sip.grammar.Invalid``,
``ivr.transport.rtp.negotiation._Refused``); everything that reaches a caller
is in the tree.

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
