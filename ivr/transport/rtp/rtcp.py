"""RTCP packets (RFC 3550 section 6): sender and receiver reports, SDES, BYE; compound packets.

Every RTCP packet starts with the same 4 octets (section 6.4.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|    RC   |      PT       |             length            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

``length`` is the packet's size in 32-bit words minus one, so packets stack
in one datagram, a *compound* packet (section 6.1): what we send is always
a report (SR if we sent audio lately, else RR) and an SDES with our CNAME,
and a BYE last when we leave. :func:`parse_rtcp` checks what appendix A.2
checks (version 2 everywhere, padding only in the last packet, lengths
adding up exactly to the datagram) and each packet's own layout; any other
packet type (APP, XR, feedback) is kept as :class:`OtherRtcp`. A compound
whose first packet is not a report is accepted (RFC 5506 reduced-size
RTCP): a lone BYE still tells us the peer left.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ivr.transport.rtp.errors import InvalidField, MalformedRtcp

RTCP_VERSION = 2
SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204
RTCP_TYPES = range(192, 224)  # RFC 5761 section 4: the octet RTP never has there
CNAME = 1  # SDES item type (section 6.5.1)
MAX_COUNT = 31  # the 5-bit RC / SC field
REPORT_INTERVAL_S = 5.0  # the usual minimum interval of section 6.2, for a two-party call
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01, the NTP epoch (section 4)

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IIIII")
_BLOCK = struct.Struct("!IIIIII")
_U32 = 0xFFFFFFFF


def ntp_timestamp(unix_s: float) -> int:
    """A 64-bit NTP timestamp (32.32 fixed point seconds since 1900) for a Unix time."""
    seconds = math.floor(unix_s)
    fraction = min(round((unix_s - seconds) * (1 << 32)), _U32)
    return (((seconds + NTP_UNIX_OFFSET_S) & _U32) << 32) | fraction


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR form (section 6.4.1)."""
    return (ntp >> 16) & _U32


def report_interval_s(unit_random: float, interval_s: float = REPORT_INTERVAL_S) -> float:
    """The next report's delay, randomised to 0.5-1.5 times the interval (section 6.3.1).

    ``unit_random`` is in [0, 1), drawn by the driver; the spread keeps
    participants from sending their reports in step.
    """
    return interval_s * (0.5 + unit_random)


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidField(f"RTCP {name} must be {low}..{high}, not {value}")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception figures about one source (section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8 bits, lost / expected in the last interval, times 256
    cumulative_lost: int  # 24 bits signed
    highest_sequence: int  # extended: cycles and the highest sequence number
    jitter: int  # timestamp units
    last_sr: int = 0  # middle 32 bits of the last SR's NTP time from that source; 0 if none
    delay_since_last_sr: int = 0  # in 1/65536 s

    def __post_init__(self) -> None:
        _check("fraction lost", self.fraction_lost, 0, 255)
        _check("cumulative lost", self.cumulative_lost, -0x800000, 0x7FFFFF)
        for name in ("ssrc", "highest_sequence", "jitter", "last_sr", "delay_since_last_sr"):
            _check(name, getattr(self, name), 0, _U32)

    def to_bytes(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(
            self.ssrc,
            lost,
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The sender information of an SR: one instant on two clocks, and our totals."""

    ntp_timestamp: int  # 64 bits
    rtp_timestamp: int
    packet_count: int  # sent as their value modulo 2**32
    octet_count: int  # payload octets only

    def __post_init__(self) -> None:
        _check("NTP timestamp", self.ntp_timestamp, 0, (1 << 64) - 1)
        _check("RTP timestamp", self.rtp_timestamp, 0, _U32)
        if self.packet_count < 0 or self.octet_count < 0:
            raise InvalidField("an SR's packet and octet counts are never negative")


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    sender: SenderInfo
    blocks: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        info = self.sender
        body = struct.pack("!I", self.ssrc) + _SENDER_INFO.pack(
            info.ntp_timestamp >> 32,
            info.ntp_timestamp & _U32,
            info.rtp_timestamp,
            info.packet_count & _U32,  # section 6.4.1: the counts wrap
            info.octet_count & _U32,
        )
        return _packet(SR, len(self.blocks), body + b"".join(b.to_bytes() for b in self.blocks))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    blocks: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(b.to_bytes() for b in self.blocks)
        return _packet(RR, len(self.blocks), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...]  # (item type, text octets), in order

    @property
    def cname(self) -> str | None:
        for kind, text in self.items:
            if kind == CNAME:
                return text.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    def to_bytes(self) -> bytes:
        body = b""
        for chunk in self.chunks:
            part = struct.pack("!I", chunk.ssrc)
            for kind, text in chunk.items:
                _check("SDES item type", kind, 1, 255)
                _check("SDES item length", len(text), 0, 255)
                part += bytes([kind, len(text)]) + text
            # Section 6.5: a null octet ends the items, and more pad to 32 bits.
            part += bytes(4 - len(part) % 4)
            body += part
        return _packet(SDES, len(self.chunks), body)


@dataclass(frozen=True, slots=True)
class Goodbye:
    ssrcs: tuple[int, ...]
    reason: str | None = None

    def to_bytes(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode()[:255]
            body += bytes([len(text)]) + text
            body += bytes(-len(body) % 4)
        return _packet(BYE, len(self.ssrcs), body)


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """A packet type we do not read (APP, XR, feedback): kept, never an error."""

    packet_type: int
    count: int
    body: bytes

    def to_bytes(self) -> bytes:
        return _packet(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | OtherRtcp


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    _check("count", count, 0, MAX_COUNT)
    if len(body) % 4:
        raise InvalidField(f"an RTCP body is whole 32-bit words, not {len(body)} octets")
    header = _HEADER.pack((RTCP_VERSION << 6) | count, packet_type, len(body) // 4)
    return header + body


def build_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """A compound packet: the packets one after the other (section 6.1)."""
    return b"".join(p.to_bytes() for p in packets)


def parse_rtcp(data: bytes) -> tuple[RtcpPacket, ...]:
    """Every packet of a compound RTCP datagram; :class:`MalformedRtcp` if any is broken."""
    size = len(data)
    if size < 4 or size % 4:
        raise MalformedRtcp(f"a compound RTCP packet is whole 32-bit words, not {size} octets")
    out: list[RtcpPacket] = []
    offset = 0
    while offset < size:
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTCP_VERSION:
            raise MalformedRtcp(f"RTCP version {first >> 6} at octet {offset}, not 2")
        if packet_type not in RTCP_TYPES:
            raise MalformedRtcp(f"packet type {packet_type} at octet {offset} is not RTCP")
        end = offset + 4 * (words + 1)
        if end > size:
            raise MalformedRtcp(f"packet at octet {offset} claims {end - offset} of {size} octets")
        body_end = end
        if first & 0x20:
            if end != size:
                raise MalformedRtcp("padding in a packet that is not the last (appendix A.2)")
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - 4:
                raise MalformedRtcp(f"padding count {padding} does not fit its packet")
            body_end -= padding
        out.append(_parse_one(packet_type, first & 0x1F, data[offset + 4 : body_end]))
        offset = end
    return tuple(out)


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type in (SR, RR):
        fixed = 4 + (_SENDER_INFO.size if packet_type == SR else 0)
        if len(body) < fixed + count * _BLOCK.size:
            raise MalformedRtcp(f"{count} report blocks do not fit a {len(body) + 4}-octet report")
        (ssrc,) = struct.unpack_from("!I", body)
        # Octets past the blocks are profile-specific extensions (section 6.4.1): skipped.
        blocks = tuple(ReportBlock.parse(body, fixed + i * _BLOCK.size) for i in range(count))
        if packet_type == RR:
            return ReceiverReport(ssrc, blocks)
        msw, lsw, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 4)
        return SenderReport(ssrc, SenderInfo((msw << 32) | lsw, rtp_ts, packets, octets), blocks)
    if packet_type == SDES:
        return _parse_sdes(count, body)
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise MalformedRtcp(f"{count} SSRCs do not fit a {len(body) + 4}-octet BYE")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = None
        rest = body[4 * count :]
        if rest:
            if rest[0] > len(rest) - 1:
                raise MalformedRtcp(f"a BYE reason of {rest[0]} octets does not fit")
            reason = rest[1 : 1 + rest[0]].decode("utf-8", "replace")
        return Goodbye(tuple(ssrcs), reason)
    return OtherRtcp(packet_type, count, bytes(body))


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[SdesChunk] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise MalformedRtcp(f"SDES chunk {len(chunks) + 1} of {count} is missing")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if offset >= len(body):
                raise MalformedRtcp("an SDES chunk without its terminating null octet")
            kind = body[offset]
            if kind == 0:  # the end of the items, then padding to the next word
                offset += 4 - offset % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise MalformedRtcp(f"SDES item type {kind} runs past its packet")
            length = body[offset + 1]
            items.append((kind, bytes(body[offset + 2 : offset + 2 + length])))
            offset += 2 + length
        if offset > len(body):
            raise MalformedRtcp("an SDES chunk's padding runs past its packet")
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))
