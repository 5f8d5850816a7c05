"""RTCP (RFC 3550 section 6): known compound bytes, every malformation, reports both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.errors import InvalidField, MalformedRtcp
from ivr.transport.rtp.receiver import RtpReceiver
from ivr.transport.rtp.report import RtcpSession
from ivr.transport.rtp.rtcp import (
    REPORT_INTERVAL_S,
    Goodbye,
    OtherRtcp,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_rtcp,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
    report_interval_s,
)
from ivr.transport.rtp.sender import RtpSender
from tests.ivr.transport.rtp.helpers import FORMATS, audio_packets, tone

# An SR with one report block, then an SDES with a CNAME, laid out by hand
# from sections 6.4.1 and 6.5.
SR_SDES = (
    bytes.fromhex(
        # SR: V=2 P=0 RC=1, PT=200, length 12 (13 words)
        "81 c8 00 0c"
        "de ad be ef"  # SSRC of sender
        "e5 f1 a2 b3 80 00 00 00"  # NTP timestamp: 0xE5F1A2B3.5 s
        "00 01 e2 40"  # RTP timestamp 123456
        "00 00 00 64"  # sender's packet count 100
        "00 00 3e 80"  # sender's octet count 16000
        "11 22 33 44"  # SSRC_1: the source reported on
        "19 00 00 14"  # fraction lost 25/256, cumulative lost 20
        "00 00 04 af"  # extended highest sequence number 1199
        "00 00 00 3b"  # interarrival jitter 59
        "a2 b3 c0 00"  # LSR
        "00 01 80 00"  # DLSR: 1.5 s in 1/65536 s
        # SDES: V=2 P=0 SC=1, PT=202, length 6 (7 words)
        "81 ca 00 06"
        "de ad be ef"  # SSRC
        "01 0f"  # CNAME, 15 octets
    )
    + b"ivr@example.org"
    + bytes.fromhex("00 00 00")
)  # null item type, then padding to 32 bits

BLOCK = ReportBlock(0x11223344, 25, 20, 1199, 59, 0xA2B3C000, 0x18000)
SR = SenderReport(0xDEADBEEF, SenderInfo(0xE5F1A2B3_80000000, 123456, 100, 16000), (BLOCK,))
SDES = SourceDescription((SdesChunk(0xDEADBEEF, ((1, b"ivr@example.org"),)),))


def test_an_sr_and_sdes_compound_builds_to_the_known_bytes() -> None:
    assert build_rtcp([SR, SDES]) == SR_SDES


def test_the_known_compound_parses_to_its_fields() -> None:
    sr, sdes = parse_rtcp(SR_SDES)
    assert sr == SR
    assert sdes == SDES
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == "ivr@example.org"


def test_a_cname_that_fills_its_last_word_still_gets_a_null_word() -> None:
    # 4 (SSRC) + 2 + 2 = 8 octets of items: the terminating null needs a word of its own.
    sdes = SourceDescription((SdesChunk(1, ((1, b"ab"),)),)).to_bytes()
    assert sdes == bytes.fromhex("81 ca 00 03 00 00 00 01 01 02 61 62 00 00 00 00")
    assert parse_rtcp(sdes)[0] == SourceDescription((SdesChunk(1, ((1, b"ab"),)),))


def test_a_receiver_report_and_bye_with_a_reason() -> None:
    rr = ReceiverReport(0x01020304, (ReportBlock(5, 0, -1, 7, 0),))
    bye = Goodbye((0x01020304,), "bye")
    data = build_rtcp([rr, bye])
    assert data[:4] == bytes.fromhex("81 c9 00 07")
    assert data[12:16] == bytes.fromhex("00 ff ff ff")  # -1 in 24-bit two's complement
    assert data[32:] == bytes.fromhex("81 cb 00 02 01 02 03 04 03") + b"bye"
    assert parse_rtcp(data) == (rr, bye)


def test_unknown_packet_types_are_kept() -> None:
    app = OtherRtcp(204, 3, b"name\x00\x00\x00\x01")
    assert parse_rtcp(build_rtcp([ReceiverReport(1), app])) == (ReceiverReport(1), app)


def test_padding_in_the_last_packet_is_removed() -> None:
    data = bytes.fromhex("a1 cb 00 02 00 00 00 09 00 00 00 04")  # BYE, P=1, 4 octets of padding
    assert parse_rtcp(data) == (Goodbye((9,)),)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "whole 32-bit words"),
        (SR_SDES[:-1], "whole 32-bit words"),
        (bytes([0x41]) + SR_SDES[1:], "version 1"),
        (SR_SDES[:55] + bytes([0x07]) + SR_SDES[56:], "claims"),  # SDES one word too long
        (bytes([0xA1]) + SR_SDES[1:], "padding in a packet that is not the last"),
        (bytes.fromhex("a0 cb 00 01 00 00 00 00"), "padding count 0"),
        (bytes.fromhex("a0 cb 00 01 00 00 00 09"), "padding count 9"),
        (bytes.fromhex("82 c9 00 01 00 00 00 01"), "2 report blocks do not fit"),
        (bytes.fromhex("81 c8 00 01 00 00 00 01"), "1 report blocks do not fit"),
        (bytes.fromhex("81 ca 00 01 00 00 00 01"), "terminating null"),
        (bytes.fromhex("81 ca 00 02 00 00 00 01 01 09 61 62"), "runs past"),
        (bytes.fromhex("82 ca 00 02 00 00 00 01 00 00 00 00"), "chunk 2 of 2"),
        (bytes.fromhex("82 cb 00 01 00 00 00 01"), "2 SSRCs do not fit"),
        (bytes.fromhex("81 cb 00 02 00 00 00 01 09 61 62 63"), "reason of 9"),
        (bytes.fromhex("80 00 00 00"), "not RTCP"),  # an RTP-like second octet
    ],
)
def test_malformed_rtcp_is_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(MalformedRtcp, match=why):
        parse_rtcp(data)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReportBlock(1, 256, 0, 0, 0),
        lambda: ReportBlock(1, 0, 0x800000, 0, 0),
        lambda: ReportBlock(1 << 32, 0, 0, 0, 0),
        lambda: SenderInfo(1 << 64, 0, 0, 0),
        lambda: SenderInfo(0, 0, -1, 0),
        lambda: ReceiverReport(1, (BLOCK,) * 32).to_bytes(),
    ],
)
def test_fields_out_of_range_are_refused(build: object) -> None:
    with pytest.raises(InvalidField):
        build()  # type: ignore[operator]


@given(st.binary(max_size=120))
def test_any_bytes_give_packets_or_malformed_rtcp(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except MalformedRtcp:
        return
    assert packets


blocks = st.builds(
    ReportBlock,
    ssrc=st.integers(0, 2**32 - 1),
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=st.integers(0, 2**32 - 1),
    jitter=st.integers(0, 2**32 - 1),
    last_sr=st.integers(0, 2**32 - 1),
    delay_since_last_sr=st.integers(0, 2**32 - 1),
)
rtcp_packets = st.one_of(
    st.builds(
        SenderReport,
        st.integers(0, 2**32 - 1),
        st.builds(
            SenderInfo,
            st.integers(0, 2**64 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
        ),
        st.lists(blocks, max_size=3).map(tuple),
    ),
    st.builds(ReceiverReport, st.integers(0, 2**32 - 1), st.lists(blocks, max_size=3).map(tuple)),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                st.integers(0, 2**32 - 1),
                st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=20)), max_size=3).map(
                    tuple
                ),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        Goodbye,
        st.lists(st.integers(0, 2**32 - 1), max_size=3).map(tuple),
        st.none() | st.text(max_size=20),
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_build_then_parse_gives_the_packets_back(packets: list[object]) -> None:
    assert parse_rtcp(build_rtcp(packets)) == tuple(packets)  # type: ignore[arg-type]


def test_ntp_time_is_seconds_since_1900_in_32_32_fixed_point() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(1.5) == ((2_208_988_800 + 1) << 32) | 0x80000000
    assert ntp_middle(ntp_timestamp(1.5)) == ((2_208_988_801 & 0xFFFF) << 16) | 0x8000


def test_the_report_interval_is_spread_around_5s() -> None:
    assert REPORT_INTERVAL_S == 5.0
    assert report_interval_s(0.0) == 2.5
    assert report_interval_s(0.5) == 5.0
    assert report_interval_s(0.999) < 7.5


# ------------------------------------------------------------ the session


def test_a_receiver_only_sends_an_rr_with_its_block_and_cname() -> None:
    rx = RtpReceiver(FORMATS)
    packets = audio_packets(10)
    for i, packet in enumerate(packets):
        if i != 4:
            rx.receive(packet.to_bytes(), 0.02 * i)
    session = RtcpSession(ssrc=0xABCD, cname="ivr-1@example.org")
    rr, sdes = parse_rtcp(session.build(ntp_timestamp(1000.0), receiver=rx))
    assert isinstance(rr, ReceiverReport)
    assert rr.ssrc == 0xABCD
    (block,) = rr.blocks
    assert (block.ssrc, block.cumulative_lost, block.highest_sequence) == (packets[0].ssrc, 1, 1009)
    assert block.fraction_lost == 256 // 10
    assert (block.last_sr, block.delay_since_last_sr) == (0, 0)  # no SR heard yet
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == "ivr-1@example.org"


def test_a_sender_sends_an_sr_with_its_counts_then_rr_once_it_stops() -> None:
    tx = RtpSender(0, ssrc=0xABCD, sequence=1, timestamp=5000)
    for i in range(3):
        tx.push(tone(160, i))
    session = RtcpSession(0xABCD, "ivr")
    now = ntp_timestamp(1000.0)
    sr = parse_rtcp(session.build(now, sender=tx))[0]
    assert sr == SenderReport(0xABCD, SenderInfo(now, 5000 + 480, 3, 480))
    # Section 6.4: still a sender in the next report, not in the one after.
    assert isinstance(parse_rtcp(session.build(now, sender=tx))[0], SenderReport)
    assert isinstance(parse_rtcp(session.build(now, sender=tx))[0], ReceiverReport)


def test_lsr_dlsr_and_the_round_trip_follow_section_6_4_1() -> None:
    ours = RtcpSession(0xAAAA, "ivr")
    theirs_ssrc = 0xBBBB
    rx = RtpReceiver(FORMATS)
    rx.receive(audio_packets(1, ssrc=theirs_ssrc)[0].to_bytes(), 0.0)
    # The peer's SR reaches us at t=100.0; we report 0.25 s later.
    peer_sr = SenderReport(theirs_ssrc, SenderInfo(ntp_timestamp(99.9), 0, 1, 160))
    ours.receive(build_rtcp([peer_sr]), arrival_ntp=ntp_timestamp(100.0))
    rr = parse_rtcp(ours.build(ntp_timestamp(100.25), receiver=rx))[0]
    assert isinstance(rr, ReceiverReport)
    assert rr.blocks[0].last_sr == ntp_middle(ntp_timestamp(99.9))
    assert rr.blocks[0].delay_since_last_sr == pytest.approx(0.25 * 65536, abs=1)
    # Our SR went out at t=200.0; the peer held it 0.3 s; its RR arrives at 200.42:
    # round trip = 200.42 - 200.0 - 0.3 = 0.12 s.
    block = ReportBlock(0xAAAA, 64, 7, 3000, 80, ntp_middle(ntp_timestamp(200.0)), 19661)
    ours.receive(build_rtcp([ReceiverReport(theirs_ssrc, (block,))]), ntp_timestamp(200.42))
    report = ours.peer_report
    assert report is not None
    assert (report.cumulative_lost, report.loss_percent, report.jitter_ms) == (7, 25.0, 10.0)
    assert report.round_trip_s == pytest.approx(0.12, abs=1e-4)


def test_the_peers_cname_and_bye_are_kept_and_ours_is_sent_last() -> None:
    session = RtcpSession(1, "ivr")
    peer = build_rtcp(
        [
            ReceiverReport(2),
            SourceDescription((SdesChunk(2, ((1, b"phone@10.0.0.9"),)),)),
            Goodbye((2,), "hangup"),
        ]
    )
    session.receive(peer, ntp_timestamp(0.0))
    assert session.peer_cname == "phone@10.0.0.9"
    assert session.peer_bye == Goodbye((2,), "hangup")
    assert session.peer_report is None  # the peer said nothing about us
    ours = parse_rtcp(session.build(ntp_timestamp(1.0), bye="call ended"))
    assert [type(p).__name__ for p in ours] == ["ReceiverReport", "SourceDescription", "Goodbye"]
    assert ours[2] == Goodbye((1,), "call ended")
