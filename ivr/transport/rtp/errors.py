"""Errors of the RTP, RTCP and SDP core.

Tree::

    IvrError
    └── RtpError
        ├── MalformedPacket   bytes that are not an RTP packet (RFC 3550 section 5.1, A.1)
        │   └── MalformedEvent  a telephone-event payload that is not whole 4-byte
        │                       event blocks (RFC 4733 section 2.3)
        ├── MalformedRtcp     bytes that are not a compound RTCP packet (RFC 3550 A.2)
        ├── SdpError          a session description that cannot be parsed; names its line
        ├── OfferAnswerError  an answer that does not fit our offer (RFC 3264 section 6)
        ├── NoCommonCodec     nothing in an offer or answer we can take: SIP answers 488
        └── InvalidField      our own misuse: a header field out of range (also a ValueError)

The parsers raise only these on any input (hypothesis tests feed them
arbitrary bytes). The receive path swallows malformed datagrams and counts
them, so one bad packet from the network never ends a call.
"""

from __future__ import annotations

from ivr.errors import IvrError


class RtpError(IvrError):
    """Root of every error raised by :mod:`ivr.transport.rtp`."""


class MalformedPacket(RtpError):
    """A datagram that fails the RTP header checks of RFC 3550 section 5.1 and A.1."""


class MalformedEvent(MalformedPacket):
    """A telephone-event payload that is not a whole number of 4-byte blocks (RFC 4733)."""


class MalformedRtcp(RtpError):
    """A datagram that fails the compound RTCP checks of RFC 3550 section 6 and A.2."""


class SdpError(RtpError):
    """A session description that cannot be parsed (RFC 4566).

    ``line_number`` counts from 1 (0 when the fault is the whole body, such
    as its size), and ``line`` is the offending text, so a SIP log shows
    exactly what the peer sent.
    """

    def __init__(self, message: str, line_number: int = 0, line: str = "") -> None:
        where = f"line {line_number} {line[:80]!r}: " if line_number else ""
        super().__init__(f"{where}{message}")
        self.line_number = line_number
        self.line = line


class OfferAnswerError(RtpError):
    """An answer that breaks RFC 3264 against our offer (for example, other m-lines)."""


class NoCommonCodec(RtpError):
    """No stream of the offer (or answer) can be used: the SIP side answers 488.

    RFC 3261 section 21.4.26 (488 Not Acceptable Here) is the answer to an
    offer whose media we cannot take; the message says, m-line by m-line, why.
    """


class InvalidField(RtpError, ValueError):
    """A value that does not fit its header field, given by our own code."""
