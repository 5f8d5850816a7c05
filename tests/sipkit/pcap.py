"""Read the RTP in a pcap file, such as those SIPp plays with ``play_pcap_audio``.

Classic libpcap files only (magic ``a1b2c3d4`` or its nanosecond twin
``a1b23c4d``, either byte order), with Ethernet, Linux cooked (SLL) or raw
IPv4 link layers, IPv4 and UDP: what SIPp's own pcaps and its pcap player
take. A test that checks what reached the server compares it with
:func:`audio_payload`, the G.711 octets SIPp sends from the file, in order.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.g711 import alaw_decode, ulaw_decode

ETHERNET, RAW, LINUX_SLL = 1, 101, 113


@dataclass(frozen=True)
class PcapRtp:
    time: float  # capture time, seconds
    pt: int
    marker: bool
    seq: int
    ts: int
    ssrc: int
    payload: bytes


def read_rtp(path: Path) -> list[PcapRtp]:
    """Every UDP packet of the file, read as RTP."""
    data = path.read_bytes()
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<"}
    order |= {b"\xa1\xb2\x3c\x4d": ">"}
    if magic not in order:
        raise ValueError(f"{path.name}: not a classic pcap file (magic {magic.hex()})")
    endian = order[magic]
    fraction = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
    link = struct.unpack(endian + "I", data[20:24])[0]
    packets = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, frac, captured, _ = struct.unpack(endian + "IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        rtp = _udp_payload(frame, link)
        if rtp is None or len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        first, second, seq, ts, ssrc = struct.unpack("!BBHII", rtp[:12])
        start = 12 + 4 * (first & 0x0F)
        end = len(rtp) - (rtp[-1] if first & 0x20 else 0)
        packets.append(
            PcapRtp(seconds + frac / fraction, second & 0x7F, bool(second & 0x80), seq, ts, ssrc,
                    rtp[start:end])
        )  # fmt: skip
    return packets


def _udp_payload(frame: bytes, link: int) -> bytes | None:
    if link == ETHERNET:
        ether_type, ip = struct.unpack("!H", frame[12:14])[0], frame[14:]
        if ether_type == 0x8100:  # a VLAN tag
            ether_type, ip = struct.unpack("!H", frame[16:18])[0], frame[18:]
    elif link == LINUX_SLL:
        ether_type, ip = struct.unpack("!H", frame[14:16])[0], frame[16:]
    elif link == RAW:
        ether_type, ip = 0x0800, frame
    else:
        return None
    if ether_type != 0x0800 or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    udp = ip[(ip[0] & 0x0F) * 4 :]
    return udp[8:] if len(udp) >= 8 else None


def audio_payload(path: Path, pt: int) -> bytes:
    """The payloads of type ``pt``, in file order: the audio SIPp sends from the file."""
    return b"".join(p.payload for p in read_rtp(path) if p.pt == pt)


def decoded_audio(path: Path, pt: int) -> npt.NDArray[np.int16]:
    """The file's G.711 audio of type ``pt`` (0 PCMU, 8 PCMA) decoded to 16-bit samples:
    what a recording's caller channel holds after a call that played the file."""
    decode = {0: ulaw_decode, 8: alaw_decode}[pt]
    return decode(np.frombuffer(audio_payload(path, pt), np.uint8))


def ptime_ms(path: Path, pt: int, rate: int = 8000) -> float:
    """Milliseconds per packet, from the timestamp step between packets of type ``pt``."""
    stamps = [p.ts for p in read_rtp(path) if p.pt == pt]
    steps = {(b - a) % 2**32 for a, b in itertools.pairwise(stamps)}
    if len(steps) != 1:
        raise ValueError(f"{path.name}: packets of type {pt} are not evenly spaced: {steps}")
    return steps.pop() * 1000 / rate
