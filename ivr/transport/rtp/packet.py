"""RTP data packets (RFC 3550 section 5.1): bytes to a header and payload, and back.

The fixed header is 12 octets::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

then, if X is set, a header extension (section 5.3.1: 16 bits defined by
the profile, a 16-bit length in 32-bit words, the words), the payload, and,
if P is set, padding whose last octet counts the padding octets, itself
included. We keep what a telephone call needs and skip the extension: no
profile we negotiate defines one, and section 5.3.1 lets a receiver ignore
it. Parsing checks what appendix A.1 lists for header validity; anything
else is payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ivr.transport.rtp.errors import InvalidField, MalformedPacket

RTP_VERSION = 2
HEADER_BYTES = 12
MAX_CSRC = 15
SEQUENCE_MOD = 1 << 16
TIMESTAMP_MOD = 1 << 32
MAX_PAYLOAD_TYPE = 127
# RFC 5761 section 4: payload types 64-95 collide with RTCP packet types
# 192-223 when the marker bit is set, so they are never RTP (appendix A.1
# names SR and RR, 72 and 73, among them).
RTCP_CONFLICT_TYPES = range(64, 96)

FIXED_HEADER = struct.Struct("!BBHII")
_V2_NO_CSRC = RTP_VERSION << 6


def pack_header(marker_and_type: int, sequence: int, timestamp: int, ssrc: int) -> bytes:
    """The 12-byte fixed header of a version-2 packet with no padding, extension or CSRC.

    ``marker_and_type`` is the second octet (0x80 for the marker, or'ed with
    the payload type). Unchecked: for a sender whose fields are in range by
    construction; :class:`RtpPacket` checks them.
    """
    return FIXED_HEADER.pack(_V2_NO_CSRC, marker_and_type, sequence, timestamp, ssrc)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet: header fields, CSRC list and payload (padding and extension removed)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    # Octets of padding to add when built (section 5.1: P bit, count in the
    # last octet); a parsed packet says how many it carried.
    padding_bytes: int = 0

    def __post_init__(self) -> None:
        _check("payload_type", self.payload_type, MAX_PAYLOAD_TYPE)
        _check("sequence", self.sequence, SEQUENCE_MOD - 1)
        _check("timestamp", self.timestamp, TIMESTAMP_MOD - 1)
        _check("ssrc", self.ssrc, TIMESTAMP_MOD - 1)
        _check("padding_bytes", self.padding_bytes, 255)
        if len(self.csrcs) > MAX_CSRC:
            raise InvalidField(f"at most {MAX_CSRC} CSRCs fit the 4-bit CC field")
        for csrc in self.csrcs:
            _check("csrc", csrc, TIMESTAMP_MOD - 1)

    def to_bytes(self) -> bytes:
        """The packet on the wire: header, CSRCs, payload, then any padding."""
        first = (RTP_VERSION << 6) | (0x20 if self.padding_bytes else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [FIXED_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", csrc) for csrc in self.csrcs)
        parts.append(self.payload)
        if self.padding_bytes:
            parts.append(bytes(self.padding_bytes - 1) + bytes([self.padding_bytes]))
        return b"".join(parts)


def _check(name: str, value: int, top: int) -> None:
    if not 0 <= value <= top:
        raise InvalidField(f"RTP {name} must be 0..{top}, not {value}")


def parse_packet(data: bytes) -> RtpPacket:
    """Parse one datagram; :class:`MalformedPacket` if it is not a valid RTP packet.

    Any bytes give either a packet or that error (a hypothesis test holds it
    to this), so the receive path needs no other ``except``.
    """
    size = len(data)
    if size < HEADER_BYTES:
        raise MalformedPacket(f"{size} bytes is shorter than the 12-byte RTP header")
    first, second, sequence, timestamp, ssrc = FIXED_HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise MalformedPacket(f"RTP version {version}, not 2")
    payload_type = second & 0x7F
    if payload_type in RTCP_CONFLICT_TYPES:
        raise MalformedPacket(f"payload type {payload_type} is RTCP's range (RFC 5761 section 4)")
    count = first & 0x0F
    offset = HEADER_BYTES + 4 * count
    if size < offset:
        raise MalformedPacket(f"{count} CSRCs do not fit in {size} bytes")
    csrcs = struct.unpack_from(f"!{count}I", data, HEADER_BYTES)
    if first & 0x10:  # section 5.3.1: skip the extension, checking its length
        if size < offset + 4:
            raise MalformedPacket("the header extension's length word is missing")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
        if size < offset:
            raise MalformedPacket(f"a {words}-word header extension does not fit in {size} bytes")
    end = size
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if padding == 0 or padding > size - offset:
            raise MalformedPacket(f"padding count {padding} does not fit the packet")
        end -= padding
    return RtpPacket(
        payload_type=payload_type,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        padding_bytes=padding,
    )


def is_rtcp(data: bytes) -> bool:
    """True for a datagram that is RTCP when both share one port (RFC 5761 section 4).

    The second octet of RTCP is its packet type, 192..223 for every type in
    use; for RTP it is the marker bit and a payload type, which never lands
    there (payload types 64-95 are kept free for this).
    """
    return len(data) >= 2 and 192 <= data[1] <= 223
