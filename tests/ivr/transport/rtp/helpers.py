"""Streams of RTP packets for the tests: G.711 audio, telephone-events, comfort noise."""

from __future__ import annotations

from ivr.transport.rtp.events import TelephoneEvent
from ivr.transport.rtp.packet import RtpPacket

SSRC = 0x11223344
FORMATS = {0: "pcmu", 8: "pcma", 101: "telephone-event", 13: "cn"}
ULAW_SILENCE_FRAME = b"\xff" * 160


def tone(n: int, seed: int) -> bytes:
    """``n`` mu-law octets that are not silence and differ from packet to packet."""
    return bytes((seed * 31 + i) % 254 for i in range(n))


def audio_packets(
    count: int,
    samples: int = 160,
    *,
    first_seq: int = 1000,
    first_ts: int = 80_000,
    ssrc: int = SSRC,
    pt: int = 0,
) -> list[RtpPacket]:
    return [
        RtpPacket(
            payload_type=pt,
            sequence=(first_seq + i) % 65536,
            timestamp=(first_ts + samples * i) % (1 << 32),
            ssrc=ssrc,
            payload=tone(samples, i),
            marker=i == 0,
        )
        for i in range(count)
    ]


def event_packets(
    code: int,
    timestamp: int,
    durations: list[int],
    *,
    first_seq: int,
    ssrc: int = SSRC,
    ends: int = 3,
) -> list[RtpPacket]:
    """A press as RFC 4733 section 2.5.1 sends it: updates, then the end ``ends`` times."""
    blocks = [TelephoneEvent(code, False, 10, d) for d in durations[:-1]]
    blocks += [TelephoneEvent(code, True, 10, durations[-1])] * ends
    return [
        RtpPacket(101, (first_seq + i) % 65536, timestamp, ssrc, b.to_bytes(), marker=i == 0)
        for i, b in enumerate(blocks)
    ]
