"""RFC 4733 telephone-events: known bytes, and one press per key press whatever the network does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.errors import InvalidField, MalformedEvent
from ivr.transport.rtp.events import (
    DigitPressed,
    DigitReleased,
    DigitTracker,
    TelephoneEvent,
    build_events,
    event_code,
    parse_events,
)
from ivr.transport.rtp.packet import RtpPacket, parse_packet

# Digit 5 at -10 dBm0, 20 ms updates at 8 kHz, as section 2.5.1 sends it:
# a first packet with the marker bit and duration 160, updates at 320 and
# 480, and the end (E bit) at 640 sent three times, all with the event's
# start as their RTP timestamp (48000 = 0xBB80). PT 101 -> 0x65 (0xE5 with M).
# Each payload: event 0x05; E|R|volume = 0x0A (0x8A with E); duration.
TE_PACKETS = [
    bytes.fromhex("80 e5 03 e8 00 00 bb 80 12 34 56 78 05 0a 00 a0"),
    bytes.fromhex("80 65 03 e9 00 00 bb 80 12 34 56 78 05 0a 01 40"),
    bytes.fromhex("80 65 03 ea 00 00 bb 80 12 34 56 78 05 0a 01 e0"),
    bytes.fromhex("80 65 03 eb 00 00 bb 80 12 34 56 78 05 8a 02 80"),
    bytes.fromhex("80 65 03 ec 00 00 bb 80 12 34 56 78 05 8a 02 80"),
    bytes.fromhex("80 65 03 ed 00 00 bb 80 12 34 56 78 05 8a 02 80"),
]


def test_the_packets_of_a_press_parse_to_their_fields() -> None:
    packets = [parse_packet(p) for p in TE_PACKETS]
    assert [p.marker for p in packets] == [True] + [False] * 5
    assert {p.payload_type for p in packets} == {101}
    assert {p.timestamp for p in packets} == {48000}
    events = [parse_events(p.payload)[0] for p in packets]
    assert [e.duration for e in events] == [160, 320, 480, 640, 640, 640]
    assert [e.end for e in events] == [False, False, False, True, True, True]
    assert {(e.digit, e.volume_dbm0) for e in events} == {("5", -10)}


def test_the_packets_of_a_press_are_built_byte_for_byte() -> None:
    built = [
        RtpPacket(
            payload_type=101,
            sequence=1000 + i,
            timestamp=48000,
            ssrc=0x12345678,
            payload=TelephoneEvent(5, end=duration == 640, volume=10, duration=duration).to_bytes(),
            marker=i == 0,
        ).to_bytes()
        for i, duration in enumerate([160, 320, 480, 640, 640, 640])
    ]
    assert built == TE_PACKETS


def test_the_reserved_bit_is_ignored() -> None:
    assert parse_events(bytes.fromhex("0b 4a 00 a0")) == (TelephoneEvent(11, False, 10, 160),)


@pytest.mark.parametrize(("digit", "code"), [("0", 0), ("9", 9), ("*", 10), ("#", 11), ("a", 12)])
def test_digits_map_to_event_codes(digit: str, code: int) -> None:
    assert event_code(digit) == code
    assert TelephoneEvent(code).digit == digit.upper()


def test_flash_and_other_events_are_not_digits() -> None:
    assert TelephoneEvent(16).digit is None
    with pytest.raises(InvalidField):
        event_code("E")


@pytest.mark.parametrize("payload", [b"", b"\x05\x0a\x00", b"\x05\x0a\x00\xa0\x01"])
def test_payloads_that_are_not_whole_blocks_are_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_events(payload)


@given(st.binary(max_size=40))
def test_any_payload_gives_events_or_malformed_event(payload: bytes) -> None:
    try:
        events = parse_events(payload)
    except MalformedEvent:
        return
    without_r = bytes(b & ~0x40 if i % 4 == 1 else b for i, b in enumerate(payload))
    assert build_events(events) == without_r


def observe(tracker: DigitTracker, packets: list[bytes], at: float = 0.0) -> list[object]:
    out: list[object] = []
    for raw in packets:
        packet = parse_packet(raw)
        out += tracker.observe(packet.timestamp, parse_events(packet.payload), at)
    return out


def test_a_press_is_one_press_and_one_release() -> None:
    out = observe(DigitTracker(), TE_PACKETS)
    assert out == [
        DigitPressed("5", 48000, -10),
        DigitReleased("5", 48000, 640, 80, -10, ended=True),
    ]


def test_retransmitted_starts_and_swapped_packets_count_once() -> None:
    order = [TE_PACKETS[i] for i in (0, 0, 2, 1, 0, 4, 3, 5, 2)]
    out = observe(DigitTracker(), order)
    assert out == [
        DigitPressed("5", 48000, -10),
        DigitReleased("5", 48000, 640, 80, -10, ended=True),
    ]


def test_a_press_whose_start_was_lost_is_reported_at_its_first_packet() -> None:
    out = observe(DigitTracker(), TE_PACKETS[3:])
    assert out == [
        DigitPressed("5", 48000, -10),
        DigitReleased("5", 48000, 640, 80, -10, ended=True),
    ]


def press(ts: int, code: int, durations: list[int], end: bool = True) -> list[bytes]:
    packets = []
    for i, duration in enumerate(durations):
        last = end and i == len(durations) - 1
        event = TelephoneEvent(code, end=last, volume=10, duration=duration)
        packets.append(RtpPacket(101, i, ts, 1, event.to_bytes(), marker=i == 0).to_bytes())
    return packets


def test_the_same_digit_at_a_new_timestamp_is_a_new_press() -> None:
    out = observe(DigitTracker(), press(1000, 1, [160, 320]) + press(9000, 1, [160, 320]))
    assert [type(e).__name__ for e in out] == ["DigitPressed", "DigitReleased"] * 2
    assert [e.timestamp for e in out if isinstance(e, DigitPressed)] == [1000, 9000]


def test_a_late_copy_of_an_earlier_press_is_ignored() -> None:
    first, second = press(1000, 1, [160, 320]), press(9000, 2, [160, 320])
    out = observe(DigitTracker(), first + second + first[:1])
    assert [e.digit for e in out if isinstance(e, DigitPressed)] == ["1", "2"]


def test_a_new_press_ends_one_whose_end_packets_were_lost() -> None:
    out = observe(DigitTracker(), press(1000, 3, [160, 320], end=False) + press(9000, 4, [160]))
    assert out[1] == DigitReleased("3", 1000, 320, 40, -10, ended=False)
    assert out[2] == DigitPressed("4", 9000, -10)


def test_a_press_without_end_packets_ends_after_the_timeout() -> None:
    tracker = DigitTracker()
    observe(tracker, press(1000, 7, [160, 320], end=False), at=10.0)
    assert tracker.expire(10.2) == []
    assert tracker.expire(10.6) == [DigitReleased("7", 1000, 320, 40, -10, ended=False)]
    assert tracker.expire(20.0) == []
    assert observe(tracker, press(1000, 7, [480]), at=20.0) == []  # its late end adds nothing


def test_a_long_event_in_segments_is_one_press() -> None:
    # Section 2.5.1.3: past 0xFFFF the event goes on with a new timestamp.
    segment1 = press(1000, 0, [160, 0xFFFF], end=False)
    segment2 = press(1000 + 0xFFFF, 0, [160, 8000])
    out = observe(DigitTracker(), segment1 + segment2)
    assert out == [
        DigitPressed("0", 1000, -10),
        DigitReleased("0", 1000, 0xFFFF + 8000, (0xFFFF + 8000) // 8, -10, ended=True),
    ]


def test_events_packed_in_one_packet_follow_each_other() -> None:
    # Sections 2.5.1.5 / 2.5.2.4: "1" ended (400 long), then "2" starting at +400.
    blocks = (TelephoneEvent(1, True, 10, 400), TelephoneEvent(2, False, 10, 160))
    out = DigitTracker().observe(5000, blocks, 0.0)
    assert out == [
        DigitPressed("1", 5000, -10),
        DigitReleased("1", 5000, 400, 50, -10, ended=True),
        DigitPressed("2", 5400, -10),
    ]


def test_flash_is_not_a_press() -> None:
    assert DigitTracker().observe(0, (TelephoneEvent(16, True, 0, 800),), 0.0) == []


@given(
    st.lists(st.sampled_from(range(len(TE_PACKETS))), min_size=1, max_size=20),
)
def test_any_loss_repeat_or_swap_of_a_press_reports_one_press(order: list[int]) -> None:
    out = observe(DigitTracker(), [TE_PACKETS[i] for i in order])
    presses = [e for e in out if isinstance(e, DigitPressed)]
    releases = [e for e in out if isinstance(e, DigitReleased)]
    assert presses == [DigitPressed("5", 48000, -10)]
    assert len(releases) == (1 if any(i >= 3 for i in order) else 0)
    assert all(r.duration == 640 for r in releases if r.ended)
