"""RTP packets (RFC 3550 section 5.1): known bytes, every malformation, any bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.errors import InvalidField, MalformedPacket
from ivr.transport.rtp.packet import RtpPacket, is_rtcp, pack_header, parse_packet

# A PCMU packet written out by hand from the section 5.1 diagram: V=2, P=0,
# X=0, CC=0 -> 0x80; M=0, PT=0 -> 0x00; sequence 0x1234; timestamp
# 0x0001E240 (123456); SSRC 0xDEADBEEF; 160 octets of mu-law silence (0xFF).
PCMU_HEADER = bytes.fromhex("80 00 12 34 00 01 e2 40 de ad be ef")
PCMU_PACKET = PCMU_HEADER + b"\xff" * 160


def test_a_pcmu_packet_parses_to_its_fields() -> None:
    packet = parse_packet(PCMU_PACKET)
    assert packet == RtpPacket(
        payload_type=0, sequence=0x1234, timestamp=123456, ssrc=0xDEADBEEF, payload=b"\xff" * 160
    )


def test_a_pcmu_packet_builds_to_the_same_bytes() -> None:
    packet = RtpPacket(0, 0x1234, 123456, 0xDEADBEEF, b"\xff" * 160)
    assert packet.to_bytes() == PCMU_PACKET


def test_marker_and_payload_type_share_the_second_octet() -> None:
    # M=1, PT=8 (PCMA) -> 0x88
    data = bytes.fromhex("80 88 00 01 00 00 00 a0 00 00 00 01") + b"\xd5" * 80
    packet = parse_packet(data)
    assert packet.marker
    assert packet.payload_type == 8
    assert packet.to_bytes() == data


def test_csrcs_are_listed_and_built() -> None:
    # CC=2 -> 0x82, two CSRC words after the SSRC.
    data = bytes.fromhex("82 00 00 05 00 00 00 00 00 00 00 09 00 00 00 0a 00 00 00 0b") + b"ab"
    packet = parse_packet(data)
    assert packet.csrcs == (10, 11)
    assert packet.payload == b"ab"
    assert packet.to_bytes() == data


def test_the_header_extension_is_skipped() -> None:
    # X=1 -> 0x90; extension: profile 0xBEDE, length 1 word, one word of data.
    data = bytes.fromhex("90 00 00 05 00 00 00 00 00 00 00 09 be de 00 01 01 02 03 04") + b"pay"
    assert parse_packet(data).payload == b"pay"


def test_padding_is_removed_and_counted() -> None:
    # P=1 -> 0xA0; 3 octets of padding, the last one saying 3.
    data = bytes.fromhex("a0 00 00 05 00 00 00 00 00 00 00 09") + b"pay" + b"\x00\x00\x03"
    packet = parse_packet(data)
    assert packet.payload == b"pay"
    assert packet.padding_bytes == 3
    assert packet.to_bytes() == data


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (PCMU_HEADER[:11], "shorter"),
        (bytes([0x40]) + PCMU_HEADER[1:], "version 1"),
        (bytes([0xC0]) + PCMU_HEADER[1:], "version 3"),
        (bytes([0x81]) + PCMU_HEADER[1:], "CSRCs do not fit"),
        (bytes([0x90]) + PCMU_HEADER[1:] + b"\xbe\xde", "length word"),
        (bytes([0x90]) + PCMU_HEADER[1:] + bytes.fromhex("bede0002") + bytes(4), "extension"),
        (bytes([0xA0]) + PCMU_HEADER[1:] + b"ab\x00", "padding count 0"),
        (bytes([0xA0]) + PCMU_HEADER[1:] + b"ab\x04", "padding count 4"),
        (PCMU_HEADER[:1] + bytes([0xC8]) + PCMU_HEADER[2:], "RTCP"),  # an SR's type octet
        (PCMU_HEADER[:1] + bytes([72]) + PCMU_HEADER[2:], "RTCP"),
    ],
)
def test_malformed_packets_are_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket, match=why):
        parse_packet(data)


def test_padding_may_fill_the_whole_payload() -> None:
    data = bytes([0xA0]) + PCMU_HEADER[1:] + b"\x00\x00\x00\x04"
    assert parse_packet(data).payload == b""


@pytest.mark.parametrize(
    "fields",
    [
        {"payload_type": 128},
        {"sequence": 65536},
        {"sequence": -1},
        {"timestamp": 1 << 32},
        {"ssrc": 1 << 32},
        {"csrcs": tuple(range(16))},
        {"csrcs": (1 << 32,)},
        {"padding_bytes": 256},
    ],
)
def test_fields_out_of_range_are_refused_when_building(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    with pytest.raises(InvalidField):
        RtpPacket(**{**base, **fields})  # type: ignore[arg-type]


def test_rtcp_is_told_from_rtp_by_the_second_octet() -> None:
    assert not is_rtcp(PCMU_PACKET)
    marked_96 = bytes.fromhex("80 e0") + PCMU_HEADER[2:]  # M=1, PT=96: 0xE0, just past RTCP
    assert parse_packet(marked_96).payload_type == 96
    assert not is_rtcp(marked_96)
    assert is_rtcp(bytes.fromhex("80 c8 00 06"))  # SR
    assert is_rtcp(bytes.fromhex("81 c9 00 07"))  # RR
    assert is_rtcp(bytes.fromhex("81 cb 00 01"))  # BYE
    assert not is_rtcp(b"\x80")


@given(st.binary(max_size=200))
def test_any_bytes_give_a_packet_or_malformed_packet(data: bytes) -> None:
    try:
        packet = parse_packet(data)
    except MalformedPacket:
        return
    assert len(packet.payload) <= len(data) - 12


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127).filter(lambda pt: not 64 <= pt < 96),
    sequence=st.integers(0, 65535),
    timestamp=st.integers(0, (1 << 32) - 1),
    ssrc=st.integers(0, (1 << 32) - 1),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, (1 << 32) - 1), max_size=15).map(tuple),
    padding_bytes=st.integers(0, 255),
)


@given(packets)
def test_build_then_parse_gives_the_packet_back(packet: RtpPacket) -> None:
    assert parse_packet(packet.to_bytes()) == packet


@given(
    st.one_of(st.integers(0, 63), st.integers(96, 127)),  # not RTCP's range (RFC 5761)
    st.booleans(),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
)
def test_the_senders_packed_header_is_the_packets_own(
    pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes
) -> None:
    packed = pack_header(pt | (0x80 if marker else 0), seq, ts, ssrc) + payload
    assert packed == RtpPacket(pt, seq, ts, ssrc, payload, marker).to_bytes()
    back = parse_packet(packed)
    assert (back.payload_type, back.marker, back.sequence, back.timestamp, back.ssrc) == (
        pt, marker, seq, ts, ssrc,
    )  # fmt: skip
