"""Repacketisation: any ptime to whole 20 ms frames, placed by timestamp."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.framing import FrameAssembler

SILENCE = 0xFF  # mu-law


def audio(n: int, seed: int) -> bytes:
    """``n`` octets that differ from silence and from each other's position."""
    return bytes((seed * 37 + i) % 255 for i in range(n))


def run(assembler: FrameAssembler, packets: list[tuple[int, bytes]]) -> list[bytes]:
    out: list[bytes] = []
    for ts, payload in packets:
        out += assembler.audio(ts, payload)
    return out


def test_20ms_packets_are_20ms_frames_unchanged() -> None:
    payloads = [audio(160, i) for i in range(5)]
    frames = run(FrameAssembler(SILENCE), [(1000 + 160 * i, p) for i, p in enumerate(payloads)])
    assert frames == payloads


def test_10ms_packets_are_joined_in_pairs() -> None:
    payloads = [audio(80, i) for i in range(6)]
    assembler = FrameAssembler(SILENCE)
    out = [assembler.audio(80 * i, p) for i, p in enumerate(payloads)]
    assert [len(frames) for frames in out] == [0, 1, 0, 1, 0, 1]
    assert out[1] == [payloads[0] + payloads[1]]


def test_30ms_packets_give_three_frames_for_every_two() -> None:
    payloads = [audio(240, i) for i in range(4)]
    assembler = FrameAssembler(SILENCE)
    out = [assembler.audio(240 * i, p) for i, p in enumerate(payloads)]
    assert [len(frames) for frames in out] == [1, 2, 1, 2]
    assert b"".join(f for frames in out for f in frames) == b"".join(payloads)


def test_40ms_packets_are_split_in_two() -> None:
    payload = audio(320, 1)
    assert FrameAssembler(SILENCE).audio(0, payload) == [payload[:160], payload[160:]]


def test_a_lost_packet_is_a_silent_frame_in_its_place_not_a_shift() -> None:
    p = [audio(160, i) for i in range(4)]
    frames = run(FrameAssembler(SILENCE), [(0, p[0]), (160, p[1]), (480, p[3])])
    assert frames == [p[0], p[1], bytes([SILENCE]) * 160, p[3]]


def test_a_lost_10ms_packet_keeps_the_frame_grid() -> None:
    p = [audio(80, i) for i in range(4)]
    assembler = FrameAssembler(SILENCE)
    frames = run(assembler, [(0, p[0]), (80, p[1]), (240, p[3])])
    assert frames == [p[0] + p[1], bytes([SILENCE]) * 80 + p[3]]
    assert assembler.concealed_samples == 80


def test_a_talkspurt_after_silence_starts_a_new_grid_without_filling() -> None:
    assembler = FrameAssembler(SILENCE)
    first = audio(240, 1)
    out = assembler.audio(0, first)
    assert out == [first[:160]]
    # The sender was quiet for 60 ms and marks the next packet (RFC 3551 4.1).
    second = audio(160, 2)
    out = assembler.audio(240 + 480, second, restart=True)
    assert out == [first[160:] + bytes([SILENCE]) * 80, second]
    assert assembler.concealed_samples == 0
    assert assembler.padded_samples == 80
    assert assembler.resyncs == 1


def test_a_gap_longer_than_the_fill_limit_is_not_filled() -> None:
    assembler = FrameAssembler(SILENCE, max_fill_samples=800)
    assembler.audio(0, audio(160, 1))
    assert assembler.audio(160 + 801, audio(160, 2)) == [audio(160, 2)]
    assert assembler.audio(160 + 801 + 160 + 800, audio(160, 3))[:5] == [bytes([SILENCE]) * 160] * 5


def test_overlap_is_cut_and_a_packet_wholly_behind_is_dropped() -> None:
    assembler = FrameAssembler(SILENCE)
    a, b = audio(160, 1), audio(160, 2)
    assert assembler.audio(0, a) == [a]
    assert assembler.audio(80, b) == []  # the first 80 samples were already played
    assert assembler.audio(0, a) == []  # wholly behind
    assert assembler.flush() == [b[80:] + bytes([SILENCE]) * 80]
    assert assembler.trimmed_samples == 80 + 160


def test_timestamps_jumping_back_far_restart_the_grid() -> None:
    assembler = FrameAssembler(SILENCE)
    assembler.audio(100_000, audio(160, 1))
    again = audio(160, 2)
    assert assembler.audio(5, again) == [again]
    assert assembler.resyncs == 1


def test_the_timeline_goes_on_across_a_timestamp_wrap() -> None:
    p = [audio(160, i) for i in range(4)]
    start = (1 << 32) - 320
    packets = [((start + 160 * i) % (1 << 32), x) for i, x in enumerate(p) if i != 2]
    frames = run(FrameAssembler(SILENCE), packets)
    assert frames == [p[0], p[1], bytes([SILENCE]) * 160, p[3]]


def test_a_silence_span_covers_what_is_new_only() -> None:
    assembler = FrameAssembler(SILENCE)
    assembler.audio(0, audio(160, 1))
    # An event from 160 on, its updates 160, 320, 320 (end) samples long.
    assert assembler.silent(160, 160) == [bytes([SILENCE]) * 160]
    assert assembler.silent(160, 320) == [bytes([SILENCE]) * 160]
    assert assembler.silent(160, 320) == []
    after = audio(160, 2)
    assert assembler.audio(480, after) == [after]


def test_a_silence_span_larger_than_the_fill_limit_jumps_instead() -> None:
    assembler = FrameAssembler(SILENCE, max_fill_samples=800)
    assembler.audio(0, audio(160, 1))
    assert assembler.silent(160, 8000) == []
    assert assembler.position == 160 + 8000


@given(
    st.sampled_from([80, 160, 240, 320]),
    st.integers(1, 40),
    st.integers(0, (1 << 32) - 1),
)
def test_contiguous_packets_of_any_ptime_are_frames_of_the_same_audio(
    samples: int, count: int, start: int
) -> None:
    payloads = [audio(samples, i) for i in range(count)]
    packets = [((start + samples * i) % (1 << 32), p) for i, p in enumerate(payloads)]
    assembler = FrameAssembler(SILENCE)
    frames = run(assembler, packets) + assembler.flush()
    assert all(len(f) == 160 for f in frames)
    joined = b"".join(frames)
    sent = b"".join(payloads)
    assert joined[: len(sent)] == sent
    assert joined[len(sent) :] == bytes([SILENCE]) * (len(joined) - len(sent))
    assert len(joined) - len(sent) < 160


@given(st.lists(st.integers(1, 400), min_size=1, max_size=30), st.integers(0, (1 << 32) - 1))
def test_packets_of_any_size_lose_nothing(sizes: list[int], start: int) -> None:
    assembler = FrameAssembler(SILENCE)
    ts, sent, frames = start, b"", []
    for i, size in enumerate(sizes):
        payload = audio(size, i)
        frames += assembler.audio(ts, payload)
        sent += payload
        ts = (ts + size) % (1 << 32)
    joined = b"".join(frames + assembler.flush())
    assert joined.startswith(sent)
    assert assembler.concealed_samples == assembler.trimmed_samples == 0


def test_an_events_repeated_end_far_behind_the_audio_is_dropped_not_replayed() -> None:
    # The end packet of an event keeps the event's timestamp; once the audio
    # has resumed and moved on by more than the fill limit, a late copy of it
    # must not pull the grid back and play its silence again.
    assembler = FrameAssembler(SILENCE, max_fill_samples=800)
    assembler.audio(0, audio(160, 1))
    assert len(assembler.silent(160, 800)) == 5
    assert len(assembler.audio(960, audio(480, 2))) == 3
    assert assembler.silent(160, 800) == []
    assert assembler.position == 960 + 480
    assert assembler.resyncs == 0
