"""Errors of the SIP signalling core.

Tree::

    IvrError
    └── SipError
        ├── BadMessage     the peer sent bytes that are not an acceptable SIP message;
        │                  carries the status to answer with (400 almost always) and a
        │                  reason naming the header at fault ("Bad Via: no branch")
        ├── SipStateError  our own misuse: the driver or the application asked for
        │                  something the state does not allow (also an AssertionError,
        │                  like ivr.errors.InvalidState)
        └── CallGone       the application decided about a call that has ended
                           meanwhile (cancelled, hung up, timed out): a race, not a bug

The split follows h11 (RemoteProtocolError / LocalProtocolError): what a peer
does wrong is answered on the wire and counted, never raised past the core;
what we do wrong is raised, loudly.
"""

from __future__ import annotations

from ivr.errors import IvrError


class SipError(IvrError):
    """Root of the SIP core's errors; ``status`` is the SIP status a response would carry."""

    status: int = 500


class BadMessage(SipError):
    """Bytes from the network that the parser refuses.

    ``status`` and ``reason`` are ready for a status line (RFC 3261 section
    21.4.1: 400 Bad Request; 505 for another SIP version, 513 for an
    oversize message). ``start_line`` and ``headers`` are what could be read
    of the message before the fault (canonical names, unfolded values), so
    that the core can still build the error response when the headers it
    echoes (Via, From, To, Call-ID, CSeq) are intact.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        start_line: str = "",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.start_line = start_line
        self.headers = headers


class SipStateError(SipError, AssertionError):
    """The driver or the application asked for something the current state cannot do."""


class CallGone(SipError):
    """A decision arrived for a call that no longer exists.

    The application decides asynchronously: a CANCEL or a BYE may end the
    call between the event and the answer. The driver may ignore this.
    """

    status = 481
