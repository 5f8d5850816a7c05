"""The send path: 20 ms frames to packets at the negotiated ptime, hold, key presses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.transport.rtp.errors import InvalidField
from ivr.transport.rtp.events import DigitPressed, DigitReleased, parse_events
from ivr.transport.rtp.packet import parse_packet
from ivr.transport.rtp.receiver import RtpReceiver
from ivr.transport.rtp.sender import RtpSender
from tests.ivr.transport.rtp.helpers import FORMATS, tone


def sender(
    ptime_ms: int = 20, event_payload_type: int | None = None, events: range = range(16)
) -> RtpSender:
    return RtpSender(
        0,
        ssrc=0xDEADBEEF,
        sequence=0x1234,
        timestamp=123456,
        ptime_ms=ptime_ms,
        event_payload_type=event_payload_type,
        events=events,
    )


def test_the_first_packets_are_the_known_bytes() -> None:
    tx = sender()
    first = tx.push(b"\xff" * 160)
    second = tx.push(b"\xff" * 160)
    # Section 5.1 by hand: 0x80; M=1 PT=0 -> 0x80, then M=0 -> 0x00; seq
    # 0x1234, 0x1235; timestamps 123456 (0x0001E240) and 123616 (0x0001E2E0).
    assert first == [bytes.fromhex("80 80 12 34 00 01 e2 40 de ad be ef") + b"\xff" * 160]
    assert second == [bytes.fromhex("80 00 12 35 00 01 e2 e0 de ad be ef") + b"\xff" * 160]
    assert (tx.packets_sent, tx.octets_sent) == (2, 320)


@pytest.mark.parametrize(
    ("ptime_ms", "per_frame", "samples"),
    [
        (10, [2, 2, 2, 2], 80),
        (20, [1, 1, 1, 1], 160),
        (30, [0, 1, 1, 0, 1, 1], 240),
        (40, [0, 1, 0, 1], 320),
    ],
)
def test_frames_are_joined_or_split_to_the_ptime(
    ptime_ms: int, per_frame: list[int], samples: int
) -> None:
    tx = sender(ptime_ms)
    frames = [tone(160, i) for i in range(len(per_frame))]
    out = [[parse_packet(d) for d in tx.push(f)] for f in frames]
    assert [len(packets) for packets in out] == per_frame
    packets = [p for packets in out for p in packets]
    assert all(len(p.payload) == samples for p in packets)
    assert [p.timestamp - 123456 for p in packets] == [samples * i for i in range(len(packets))]
    assert [p.sequence - 0x1234 for p in packets] == list(range(len(packets)))
    assert b"".join(p.payload for p in packets) == b"".join(frames)
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)


def test_the_start_values_are_drawn_at_random() -> None:
    asked: list[int] = []

    def randbits(k: int) -> int:
        asked.append(k)
        return (1 << k) - 1 - len(asked)

    tx = RtpSender.start(8, randbits)
    packet = parse_packet(tx.push(b"\xd5" * 160)[0])
    assert asked == [32, 16, 32]  # SSRC, sequence, timestamp (RFC 3550 5.1, 8.1)
    assert (packet.ssrc, packet.sequence, packet.timestamp) == (2**32 - 2, 2**16 - 3, 2**32 - 4)
    assert packet.payload_type == 8


def test_nothing_is_sent_on_hold_and_time_runs_on() -> None:
    tx = sender()
    tx.push(tone(160, 0))
    tx.sending = False
    assert [tx.push(tone(160, i)) for i in range(1, 4)] == [[], [], []]
    tx.sending = True
    packet = parse_packet(tx.push(tone(160, 4))[0])
    assert packet.marker  # a new talkspurt
    assert packet.timestamp == 123456 + 4 * 160  # the timestamp kept running
    assert packet.sequence == 0x1235  # but no sequence number was used


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(InvalidField):
        sender().push(b"\xff" * 320)
    with pytest.raises(InvalidField):
        sender(ptime_ms=60)


def press_packets(tx: RtpSender, ticks: int) -> list[list[bytes]]:
    return [tx.push(tone(160, i)) for i in range(ticks)]


def test_a_key_press_is_sent_as_rfc4733_events_instead_of_audio() -> None:
    tx = sender(event_payload_type=101)
    tx.push(tone(160, 0))
    assert tx.send_digit("7", duration_ms=60, volume=12)
    out = press_packets(tx, 6)
    packets = [[parse_packet(d) for d in tick] for tick in out]
    kinds = [[p.payload_type for p in tick] for tick in packets]
    assert kinds == [[101], [101], [101], [101, 0], [101, 0], [0]]
    events = [(p, parse_events(p.payload)[0]) for tick in packets for p in tick if p.payload_type]
    assert {p.timestamp for p, _ in events} == {123456 + 160}  # the event's start, every packet
    assert [e.duration for _, e in events] == [160, 320, 480, 480, 480]
    assert [e.end for _, e in events] == [False, False, True, True, True]
    assert [p.marker for p, _ in events] == [True, False, False, False, False]
    assert {(e.event, e.volume) for _, e in events} == {(7, 12)}
    audio = [p for tick in packets for p in tick if p.payload_type == 0]
    assert audio[0].timestamp == 123456 + 160 + 480  # audio resumes where the press ended
    sequences = [p.sequence for tick in packets for p in tick]
    assert sequences == list(range(0x1235, 0x1235 + len(sequences)))


def test_a_key_press_at_40ms_is_updated_every_40ms() -> None:
    tx = sender(40, event_payload_type=101)
    tx.send_digit("#", duration_ms=100)
    events = [
        parse_events(parse_packet(d).payload)[0]
        for tick in press_packets(tx, 10)
        for d in tick
        if parse_packet(d).payload_type == 101
    ]
    assert [e.duration for e in events] == [160, 480, 800, 800, 800]


def test_a_key_press_is_refused_when_the_peer_takes_no_events() -> None:
    assert not sender().send_digit("1")
    assert not sender(event_payload_type=101, events=range(10)).send_digit("#")


@settings(max_examples=40)
@given(
    st.sampled_from([10, 20, 30, 40]),
    st.integers(1, 60),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, 65535),
)
def test_frames_to_packets_and_back_is_lossless(
    ptime_ms: int, count: int, timestamp: int, sequence: int
) -> None:
    tx = RtpSender(0, ssrc=5, sequence=sequence, timestamp=timestamp, ptime_ms=ptime_ms)
    rx = RtpReceiver(FORMATS)
    frames = [tone(160, i) for i in range(count)]
    heard: list[bytes] = []
    for i, frame in enumerate(frames):
        for datagram in tx.push(frame):
            heard += rx.receive(datagram, 0.02 * i).frames
    for datagram in tx.flush():
        heard += rx.receive(datagram, 0.02 * count).frames
    heard += rx.poll(100.0).frames
    sent = b"".join(frames)
    got = b"".join(heard)
    assert got[: len(sent)] == sent
    assert set(got[len(sent) :]) <= {0xFF}
    assert len(got) - len(sent) < 160  # at most the padding of a last part-frame


def test_a_key_press_sent_is_one_press_received_and_silence_in_the_frames() -> None:
    tx = RtpSender(0, ssrc=5, sequence=65530, timestamp=(1 << 32) - 400, event_payload_type=101)
    rx = RtpReceiver(FORMATS)
    heard: list[bytes] = []
    digits: list[object] = []
    for i in range(12):
        if i == 2:
            assert tx.send_digit("4", duration_ms=100)
        for datagram in tx.push(tone(160, i)):
            got = rx.receive(datagram, 0.02 * i)
            heard += got.frames
            digits += got.digits
    assert [type(d) for d in digits] == [DigitPressed, DigitReleased]
    released = digits[1]
    assert isinstance(released, DigitReleased)
    assert (released.digit, released.duration_ms, released.ended) == ("4", 100, True)
    assert heard == [tone(160, 0), tone(160, 1)] + [b"\xff" * 160] * 5 + [
        tone(160, i) for i in range(7, 12)
    ]


def test_flush_sends_the_audio_short_of_a_packet() -> None:
    tx = sender(30)
    assert tx.push(tone(160, 0)) == []
    (datagram,) = tx.flush()
    packet = parse_packet(datagram)
    assert (packet.payload, packet.timestamp, packet.marker) == (tone(160, 0), 123456, True)
    assert tx.flush() == []


def test_a_renegotiation_without_events_drops_the_presses_not_yet_sent() -> None:
    tx = sender(event_payload_type=101)
    assert tx.send_digit("1", duration_ms=100)
    assert [parse_packet(d).payload_type for d in tx.push(tone(160, 0))] == [101]
    tx.configure(0, 20)  # a re-INVITE answer without telephone-event
    assert [parse_packet(d).payload_type for d in tx.push(tone(160, 1))] == [0]
    assert not tx.send_digit("2")


steps = st.sampled_from(
    ["frame"] * 8 + ["digit", "hold", "resume", "pcma", "pcmu", "40ms", "flush"]
)


@settings(max_examples=150)
@given(st.lists(steps, min_size=1, max_size=60))
def test_the_fast_path_sends_what_the_general_path_sends(plan: list[str]) -> None:
    fast, general = sender(event_payload_type=101), sender(event_payload_type=101)
    general._plain = False  # the general path only
    sent: list[list[bytes]] = [[], []]
    for i, step in enumerate(plan):
        for k, tx in enumerate((fast, general)):
            if step == "frame":
                sent[k] += tx.push(tone(160, i))
            elif step == "digit":
                tx.send_digit("5", 60)
            elif step in ("hold", "resume"):
                tx.sending = step == "resume"
            elif step == "flush":
                sent[k] += tx.flush()
            else:
                pt, ptime = (8, 20) if step == "pcma" else (0, 40 if step == "40ms" else 20)
                tx.configure(pt, ptime, 101)
            if k == 1:
                general._plain = False
    assert sent[0] == sent[1]
    assert (fast.packets_sent, fast.octets_sent) == (general.packets_sent, general.octets_sent)
