"""The receive path: packets in, the leg's 20 ms frames and key presses out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.call.leg import Leg
from ivr.transport.rtp.errors import MalformedPacket
from ivr.transport.rtp.events import DigitPressed, DigitReleased
from ivr.transport.rtp.packet import RtpPacket, parse_packet
from ivr.transport.rtp.receiver import RtpReceiver
from media import g711
from media.frame import codec
from tests.ivr.transport.rtp.helpers import (
    FORMATS,
    SSRC,
    ULAW_SILENCE_FRAME,
    audio_packets,
    event_packets,
)


def feed(rx: RtpReceiver, packets: list[RtpPacket], start_s: float = 0.0) -> list[bytes]:
    frames: list[bytes] = []
    for i, packet in enumerate(packets):
        frames += rx.receive(packet.to_bytes(), start_s + 0.02 * i).frames
    return frames


def test_20ms_packets_go_to_the_leg_exactly_like_websocket_frames() -> None:
    packets = audio_packets(5)
    rx = RtpReceiver(FORMATS, "pcmu")
    leg = Leg(codec("pcmu", 8000), transport=None)
    for frame in feed(rx, packets):
        leg.receive_audio(frame)
    assert leg.stats.frames_received == 5
    assert leg.stats.frames_malformed == 0
    heard = [leg.take_inbound() for _ in range(5)]
    for packet, pcm in zip(packets, heard, strict=True):
        assert pcm is not None
        expected = g711.ulaw_decode(np.frombuffer(packet.payload, dtype=np.uint8))
        assert np.array_equal(pcm, expected)


def test_the_last_arrival_is_kept_for_a_media_timeout() -> None:
    rx = RtpReceiver(FORMATS)
    assert rx.last_arrival_s is None
    rx.receive(b"junk", 1.0)
    assert rx.last_arrival_s is None  # only RTP counts
    feed(rx, audio_packets(3), start_s=5.0)
    assert rx.last_arrival_s == 5.04


def test_swapped_packets_are_played_in_order() -> None:
    p = audio_packets(4)
    frames = feed(RtpReceiver(FORMATS), [p[0], p[2], p[1], p[3]])
    assert frames == [x.payload for x in p]


def test_a_lost_packet_becomes_silence_in_its_place_once_given_up() -> None:
    p = audio_packets(5)
    rx = RtpReceiver(FORMATS, window=8, max_delay_s=0.06)
    frames = feed(rx, [p[0], p[1], p[3], p[4]])
    assert frames == [p[0].payload, p[1].payload]  # waiting for p[2]
    frames += rx.poll(0.04 + 0.059).frames
    assert len(frames) == 2
    frames += rx.poll(0.04 + 0.06).frames
    assert frames == [p[0].payload, p[1].payload, ULAW_SILENCE_FRAME, p[3].payload, p[4].payload]
    stats = rx.statistics()
    assert (stats.lost, stats.skipped, stats.concealed_ms) == (1, 1, 20.0)


def test_a_lost_packet_is_given_up_when_the_window_has_passed_it() -> None:
    p = audio_packets(8)
    rx = RtpReceiver(FORMATS, window=4)
    frames = feed(rx, [p[0], *p[2:6]])
    assert frames == [p[0].payload, ULAW_SILENCE_FRAME] + [x.payload for x in p[2:6]]


def test_duplicates_and_late_packets_never_reach_the_leg() -> None:
    p = audio_packets(8)
    rx = RtpReceiver(FORMATS, window=2)
    frames = feed(rx, [p[0], p[1], p[1], p[3], p[4], p[2], p[5]])
    played = [p[0].payload, p[1].payload, ULAW_SILENCE_FRAME, p[3].payload, p[4].payload]
    assert frames == [*played, p[5].payload]
    stats = rx.statistics()
    assert (stats.duplicates, stats.late) == (1, 1)
    assert stats.packets == 7  # appendix A.1 counts duplicates and late ones as received
    assert stats.lost == -1  # 6 expected, 7 received


def test_a_new_ssrc_takes_over_after_two_packets_in_sequence_and_the_call_goes_on() -> None:
    old = audio_packets(3)
    new = audio_packets(3, first_seq=50_000, first_ts=9_000_000, ssrc=0xCAFE)
    rx = RtpReceiver(FORMATS)
    frames = feed(rx, old)
    assert rx.receive(new[0].to_bytes(), 0.06).frames == ()  # on probation
    assert rx.ssrc == SSRC
    frames += rx.receive(new[1].to_bytes(), 0.08).frames
    assert rx.ssrc == 0xCAFE
    frames += feed(rx, new[2:], 0.1)
    assert frames == [x.payload for x in old + new]  # nothing of either source lost
    stats = rx.statistics()
    assert (stats.sources, stats.packets, stats.expected, stats.lost) == (2, 6, 6, 0)


def test_one_stray_packet_of_another_ssrc_does_not_take_the_call() -> None:
    p = audio_packets(4)
    stray = dataclasses.replace(p[1], ssrc=0xBAD, sequence=7)
    frames = feed(rx := RtpReceiver(FORMATS), [p[0], stray, p[1], p[2], p[3]])
    assert frames == [x.payload for x in p]
    assert rx.ssrc == SSRC
    assert rx.statistics().unproven == 0  # still a candidate; counted once replaced
    rx.receive(dataclasses.replace(stray, sequence=100).to_bytes(), 1.0)
    assert rx.statistics().unproven == 1


def test_comfort_noise_is_silence_and_the_next_talkspurt_is_not_delayed() -> None:
    first = audio_packets(3)
    cn = RtpPacket(13, 1003, 80_000 + 480, SSRC, b"\x40")  # RFC 3389: noise level 64 -dBov
    # 200 ms later the caller talks again (no marker bit, as some phones do).
    later = audio_packets(2, first_seq=1004, first_ts=80_000 + 480 + 1600)
    later = [dataclasses.replace(x, marker=False) for x in later]
    rx = RtpReceiver(FORMATS)
    frames = feed(rx, [*first, cn, *later])
    assert frames == [x.payload for x in first + later]
    assert rx.statistics().comfort_noise == 1
    assert rx.statistics().concealed_ms == 0


def test_a_key_press_is_one_digit_silence_in_the_frames_and_never_audio() -> None:
    before = audio_packets(2)
    press = event_packets(5, 80_320, [160, 320, 480], first_seq=1002)
    after = audio_packets(2, first_seq=1007, first_ts=80_320 + 480)
    after = [dataclasses.replace(x, marker=False) for x in after]
    rx = RtpReceiver(FORMATS)
    frames: list[bytes] = []
    digits: list[object] = []
    for i, packet in enumerate([*before, *press, *after]):
        got = rx.receive(packet.to_bytes(), 0.02 * i)
        frames += got.frames
        digits += got.digits
    assert digits == [
        DigitPressed("5", 80_320, -10),
        DigitReleased("5", 80_320, 480, 60, -10, ended=True),
    ]
    assert frames == [before[0].payload, before[1].payload] + [ULAW_SILENCE_FRAME] * 3 + [
        x.payload for x in after
    ]
    assert rx.statistics().telephone_events == 5


def test_a_press_survives_a_change_of_source() -> None:
    press = event_packets(9, 80_000, [160, 320, 480, 640], first_seq=1000)
    moved = event_packets(9, 80_000, [480, 640], first_seq=7000, ssrc=0xCAFE, ends=2)
    rx = RtpReceiver(FORMATS)
    digits: list[object] = []
    for i, packet in enumerate(press[:2] + moved):
        digits += rx.receive(packet.to_bytes(), 0.02 * i).digits
    assert rx.ssrc == 0xCAFE
    assert digits == [
        DigitPressed("9", 80_000, -10),
        DigitReleased("9", 80_000, 640, 80, -10, ended=True),
    ]


def test_the_other_law_is_transcoded_to_the_legs() -> None:
    pcma = audio_packets(2, pt=8)
    frames = feed(RtpReceiver(FORMATS, "pcmu"), pcma)
    for packet, frame in zip(pcma, frames, strict=True):
        heard = g711.ulaw_decode(np.frombuffer(frame, dtype=np.uint8)).astype(np.int32)
        sent = g711.alaw_decode(np.frombuffer(packet.payload, dtype=np.uint8)).astype(np.int32)
        assert np.max(np.abs(heard - sent)) <= np.maximum(64, np.abs(sent) // 16).max()
    assert frames[0] != pcma[0].payload


def test_payload_types_not_negotiated_are_counted_and_their_time_is_filled() -> None:
    p = audio_packets(3)
    rx = RtpReceiver(FORMATS)
    frames = feed(rx, [p[0], dataclasses.replace(p[1], payload_type=18), p[2]])
    assert frames == [p[0].payload, ULAW_SILENCE_FRAME, p[2].payload]
    assert rx.statistics().unknown_payload == 1


def test_30ms_packets_end_with_their_last_10ms_once_the_stream_pauses() -> None:
    p = audio_packets(3, samples=240)
    rx = RtpReceiver(FORMATS, max_delay_s=0.06)
    frames = feed(rx, p)
    assert b"".join(frames) == b"".join(x.payload for x in p)[:640]
    assert rx.poll(0.04 + 0.05).frames == ()
    tail = rx.poll(0.04 + 0.06).frames
    assert tail == (p[2].payload[160:] + b"\xff" * 80,)  # 720 samples: 4 frames and 80


def ticks(rx: RtpReceiver, start_s: float, end_s: float) -> list[bytes]:
    """Poll every 20 ms from ``start_s`` up to ``end_s``, as the media clock does."""
    frames: list[bytes] = []
    t = start_s
    while t <= end_s + 1e-9:
        frames += rx.poll(t).frames
        t += 0.02
    return frames


def test_a_stalled_loop_does_not_cut_a_30ms_packet_whose_successor_is_still_unread() -> None:
    # The loop stalls 90 ms after the third packet: no polls, no reads. Its first
    # tick afterwards runs before the socket is read, so the stream looks idle
    # for 90 ms; the part-built frame must wait, or the next packet's first
    # samples land in a frame already handed out (a frame altered in place).
    p = audio_packets(8, samples=240)
    rx = RtpReceiver(FORMATS, max_delay_s=0.06)
    frames = feed(rx, p[:3], start_s=0.0) + ticks(rx, 0.0, 0.04)
    assert rx.poll(0.04 + 0.09).frames == ()  # the first tick after the stall: waits
    assert rx.listening_since_s == 0.04 + 0.09
    frames += feed(rx, p[3:], start_s=0.131)  # the socket is read: they were there
    frames += ticks(rx, 0.14, 0.4)
    assert b"".join(frames) == b"".join(x.payload for x in p)  # 1920 samples: 12 frames
    assert rx.statistics().concealed_ms == 0.0


def test_after_a_stall_a_gap_is_waited_for_as_long_again() -> None:
    p = audio_packets(5)
    rx = RtpReceiver(FORMATS, window=8, max_delay_s=0.06)
    frames = feed(rx, [p[0], p[1], p[3]]) + ticks(rx, 0.0, 0.04)
    assert rx.poll(0.2).frames == ()  # stalled 160 ms with p[2] held: not given up yet
    frames += rx.receive(p[2].to_bytes(), 0.201).frames  # it was in the socket
    assert frames == [p[0].payload, p[1].payload, p[2].payload, p[3].payload]
    assert rx.statistics().skipped == 0


def test_after_a_stall_silence_still_ends_the_talkspurt_once_really_heard() -> None:
    p = audio_packets(3, samples=240)
    rx = RtpReceiver(FORMATS, max_delay_s=0.06)
    feed(rx, p)
    ticks(rx, 0.0, 0.04)
    assert rx.poll(0.2).frames == ()  # stalled: nothing came, but it may be unread
    assert ticks(rx, 0.22, 0.24) == []  # 40 ms heard: not yet
    assert rx.poll(0.26).frames == (p[2].payload[160:] + b"\xff" * 80,)


def test_sequence_and_timestamp_wrap_with_a_swap_across_them() -> None:
    p = audio_packets(6, first_seq=65533, first_ts=(1 << 32) - 480)
    frames = feed(RtpReceiver(FORMATS), [p[0], p[1], p[3], p[2], p[5], p[4]])
    assert frames == [x.payload for x in p]


@given(st.lists(st.binary(max_size=60), max_size=30))
def test_any_datagrams_are_counted_never_raised(datagrams: list[bytes]) -> None:
    rx = RtpReceiver(FORMATS)
    frames: list[bytes] = []
    unparseable = 0
    for i, datagram in enumerate(datagrams):
        try:
            parse_packet(datagram)
        except MalformedPacket:
            unparseable += 1
        frames += rx.receive(datagram, i * 0.02).frames
        frames += rx.poll(i * 0.02 + 0.01).frames
    stats = rx.statistics()
    assert stats.malformed >= unparseable
    assert stats.packets + stats.unproven <= len(datagrams) - unparseable
    assert all(len(frame) == 160 for frame in frames)


wild_packets = st.builds(
    RtpPacket,
    payload_type=st.sampled_from([0, 8, 13, 101, 18]),
    sequence=st.integers(0, 40) | st.integers(0, 65535),
    timestamp=st.integers(0, 4000) | st.integers(0, (1 << 32) - 1),
    ssrc=st.sampled_from([1, 2]),
    payload=st.binary(max_size=400),
    marker=st.booleans(),
)


@given(st.lists(wild_packets, max_size=40))
def test_any_stream_of_valid_packets_gives_only_whole_frames(packets: list[RtpPacket]) -> None:
    rx = RtpReceiver(FORMATS)
    frames: list[bytes] = []
    for i, packet in enumerate(packets):
        frames += rx.receive_packet(packet, i * 0.02).frames
        frames += rx.poll(i * 0.02 + 0.01).frames
    frames += rx.poll(len(packets) * 0.02 + 1.0).frames
    assert all(len(frame) == 160 for frame in frames)
    assert rx.statistics().frames == len(frames)


@settings(max_examples=60)
@given(st.integers(1, 8), st.data())
def test_any_permutation_within_the_window_gives_the_frames_in_order(
    window: int, data: st.DataObject
) -> None:
    p = audio_packets(40, first_seq=data.draw(st.integers(0, 65535)))
    arrival = [p[0]]
    for i in range(1, len(p), window):
        arrival += data.draw(st.permutations(p[i : i + window]))
    rx = RtpReceiver(FORMATS, window=window)
    frames = feed(rx, arrival)
    assert frames == [x.payload for x in p]
    assert rx.statistics().lost == 0


def test_statistics_follow_appendix_a_on_a_scripted_loss_and_jitter_pattern() -> None:
    # 200 packets of 20 ms; every 10th lost; arrivals delayed by a repeating
    # pattern of network delays (ms). The receiver's loss must equal
    # appendix A.3's expected - received, and its jitter the A.8 recursion.
    delays_ms = [4, 9, 4, 22, 4, 4, 15, 4]
    p = audio_packets(200)
    rx = RtpReceiver(FORMATS, window=16)
    jitter = 0.0
    previous: tuple[float, int] | None = None
    for i, packet in enumerate(p):
        if i % 10 == 5:
            continue
        arrival = 0.02 * i + delays_ms[i % len(delays_ms)] / 1000
        rx.receive(packet.to_bytes(), arrival)
        if previous is not None:
            d = (arrival - previous[0]) * 8000 - (packet.timestamp - previous[1])
            jitter += (abs(d) - jitter) / 16
        previous = (arrival, packet.timestamp)
    stats = rx.statistics()
    # Appendix A.3: expected = extended_max - base_seq + 1 = 1199 - 1000 + 1;
    # 20 of the 200 (i = 5, 15, ..., 195) never came.
    assert stats.expected == 200
    assert stats.packets == 180
    assert stats.lost == 20
    assert stats.jitter == pytest.approx(jitter)
    assert stats.jitter_ms == pytest.approx(jitter / 8)
    report = rx.report()
    assert report is not None
    ssrc, block = report
    assert ssrc == SSRC
    assert block.fraction_lost == (20 << 8) // 200  # the first interval is the whole call
    assert rx.statistics().fraction_lost == block.fraction_lost
    assert block.cumulative_lost == 20
    assert block.extended_highest == 1199
    assert block.jitter == int(jitter)


# The fast path (a plain 20 ms packet in the leg's law, next in sequence and
# time) against the general one: a stream mostly of such packets, bent here
# and there as a network and a sender bend it.
bends = st.sampled_from(
    ["none"] * 6 + ["swap", "duplicate", "drop", "marker", "cn", "event", "pcma", "30ms",
                    "ssrc", "csrc", "stall"]
)  # fmt: skip


def bent_stream(first_seq: int, plan: list[str]) -> list[tuple[RtpPacket, float]]:
    out: list[tuple[RtpPacket, float]] = []
    seq, ts, ssrc, t = first_seq, 80_000, SSRC, 0.0
    for i, bend in enumerate(plan):
        samples = 240 if bend == "30ms" else 160
        pt = {"cn": 13, "event": 101, "pcma": 8}.get(bend, 0)
        payload = (
            bytes([1, 10, 0, 160])
            if pt == 101
            else bytes((i + k) % 256 for k in range(samples))
            if pt != 13
            else b"\x40"
        )
        if bend == "ssrc":
            ssrc ^= 0x55
        packet = RtpPacket(pt, seq % 65536, ts % (1 << 32), ssrc, payload, marker=bend == "marker",
                           csrcs=(7,) if bend == "csrc" else ())  # fmt: skip
        t += 0.09 if bend == "stall" else 0.02
        if bend != "drop":
            out.append((packet, t))
        if bend == "duplicate":
            out.append((packet, t + 0.001))
        if bend == "swap" and len(out) >= 2:
            out[-1], out[-2] = (out[-2][0], out[-1][1]), (out[-1][0], out[-2][1])
        seq += 1
        ts += samples
    return out


@settings(max_examples=150)
@given(st.sampled_from([1000, 65530, 65535]), st.lists(bends, min_size=1, max_size=60))
def test_the_fast_path_gives_what_the_general_path_gives(first_seq: int, plan: list[str]) -> None:
    fast, general = RtpReceiver(FORMATS), RtpReceiver(FORMATS)
    got: list[list[object]] = [[], []]
    for datagram, t in ((p.to_bytes(), t) for p, t in bent_stream(first_seq, plan)):
        got[0].append(fast.receive(datagram, t))
        got[1].append(general.receive_packet(parse_packet(datagram), t))
        got[0].append(fast.poll(t + 0.005))
        got[1].append(general.poll(t + 0.005))
    assert got[0] == got[1]
    assert fast.statistics() == general.statistics()


def test_a_plain_packet_in_order_takes_the_fast_path_and_others_do_not() -> None:
    p = audio_packets(4)
    rx = RtpReceiver(FORMATS)
    assert rx._next_frame(p[0].to_bytes(), 0.0) is None  # the first packet: no source yet
    rx.receive(p[0].to_bytes(), 0.0)
    assert rx._next_frame(p[1].to_bytes(), 0.02) == p[1].payload
    assert rx._next_frame(p[3].to_bytes(), 0.06) is None  # a gap
    assert rx._next_frame(dataclasses.replace(p[2], marker=True).to_bytes(), 0.04) is None
    assert rx._next_frame(dataclasses.replace(p[2], payload_type=8).to_bytes(), 0.04) is None
    assert rx.statistics().packets == 2  # the refusals changed nothing
