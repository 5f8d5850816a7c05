"""A leg's jitter buffer and counters (docs/protocol.md, "the jitter buffer"), frame by frame.

The buffer absorbs network jitter (RFC 3550, section 6.4.1) with a fixed
playout delay: playout starts at two frames, a tick that finds it empty plays
silence and primes again, a full buffer drops its oldest frame. No event
loop: a leg is plain data, and the transport is a fake that records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ivr.call.leg import MAX_JITTER_FRAMES, PRIME_FRAMES, Leg
from media.errors import BadFrame
from media.frame import codec
from media.g711 import ulaw_encode
from tests.conftest import noise_frames


class Wire:
    """The transport: records what the leg sends, and refuses audio when told to."""

    def __init__(self) -> None:
        self.audio: list[bytes] = []
        self.messages: list[dict[str, Any]] = []
        self.reading = True

    def send_audio(self, payload: bytes) -> bool:
        if not self.reading:
            return False
        self.audio.append(payload)
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def close(self, code: int) -> None:
        raise AssertionError("a leg never closes its transport")


FRAMES = noise_frames(30)


def wire(i: int) -> bytes:
    return FRAMES[i].astype("<i2").tobytes()


def leg() -> Leg:
    return Leg(codec("pcm_s16le", 8000), Wire())


def test_the_constants_are_the_protocols() -> None:
    assert (MAX_JITTER_FRAMES, PRIME_FRAMES) == (10, 2)  # 200 ms deep, 40 ms of playout delay


def test_playout_starts_once_two_frames_are_buffered() -> None:
    a = leg()
    assert a.take_inbound() is None  # nothing yet: silence, and not late
    a.receive_audio(wire(0))
    assert a.take_inbound() is None  # one frame is not enough
    a.receive_audio(wire(1))
    for i in (0, 1):
        frame = a.take_inbound()
        assert frame is not None
        assert np.array_equal(frame, FRAMES[i])
    assert a.stats.frames_late == 0
    assert a.stats.frames_received == 2


def test_an_empty_buffer_after_playout_is_late_and_primes_again() -> None:
    a = leg()
    for i in range(3):
        a.receive_audio(wire(i))
    assert [a.take_inbound() is not None for _ in range(3)] == [True, True, True]
    assert a.take_inbound() is None  # empty while playing: late
    assert a.stats.frames_late == 1
    assert a.take_inbound() is None  # waiting for two frames again: silence, not late
    assert a.stats.frames_late == 1
    a.receive_audio(wire(3))
    assert a.take_inbound() is None
    a.receive_audio(wire(4))
    frame = a.take_inbound()
    assert frame is not None
    assert np.array_equal(frame, FRAMES[3])
    assert a.stats.frames_late == 1


def test_a_frame_into_a_full_buffer_pushes_out_the_oldest() -> None:
    a = leg()
    for i in range(MAX_JITTER_FRAMES + 3):
        a.receive_audio(wire(i))
    assert a.stats.frames_dropped == 3
    assert a.stats.frames_received == MAX_JITTER_FRAMES + 3  # dropped ones were received
    heard = [a.take_inbound() for _ in range(MAX_JITTER_FRAMES)]
    assert all(f is not None and np.array_equal(f, FRAMES[3 + k]) for k, f in enumerate(heard))
    assert a.take_inbound() is None
    assert a.stats.frames_late == 1


@pytest.mark.parametrize("size", [0, 1, 319, 321, 640])
def test_a_frame_of_the_wrong_size_is_refused_and_counted(size: int) -> None:
    a = leg()
    with pytest.raises(BadFrame):
        a.receive_audio(bytes(size))
    assert a.stats.frames_malformed == 1
    assert a.stats.frames_received == 0
    a.receive_audio(wire(0))
    a.receive_audio(wire(1))
    assert a.take_inbound() is not None  # a bad frame takes no place in the buffer


def test_a_g711_leg_decodes_what_it_buffers() -> None:
    a = Leg(codec("pcmu", 8000), Wire())
    encoded = ulaw_encode(FRAMES[0])
    with pytest.raises(BadFrame):
        a.receive_audio(FRAMES[0].astype("<i2").tobytes())  # 320 bytes: linear PCM is wrong here
    a.receive_audio(encoded.tobytes())
    a.receive_audio(encoded.tobytes())
    frame = a.take_inbound()
    assert frame is not None
    assert frame.dtype == np.int16
    assert len(frame) == 160
    assert np.array_equal(a.codec.encode(frame), encoded.tobytes())


def test_sending_counts_what_went_out_and_what_a_slow_peer_missed() -> None:
    a = leg()
    w = a.transport
    assert isinstance(w, Wire)
    a.send_pcm(FRAMES[0])
    a.send_pcm(None)
    w.reading = False
    a.send_pcm(FRAMES[1])
    assert (a.stats.frames_sent, a.stats.frames_unsent) == (2, 1)
    assert w.audio == [wire(0), a.silence_wire]
    assert a.silence_wire == bytes(320)
    assert Leg(codec("pcmu", 8000), None).silence_wire == b"\xff" * 160  # G.711 mu-law silence


def test_a_leg_without_a_transport_sends_nothing_and_counts_nothing() -> None:
    a = Leg(codec("pcm_s16le", 8000), None)
    a.send_pcm(FRAMES[0])
    a.send_message({"type": "x"})
    assert a.stats.snapshot() == dict.fromkeys(
        (
            "frames_sent",
            "frames_received",
            "frames_late",
            "frames_dropped",
            "frames_malformed",
            "frames_unsent",
        ),
        0,
    )


def test_reset_starts_a_new_call_on_the_leg() -> None:
    a = leg()
    for i in range(4):
        a.receive_audio(wire(i))
    a.take_inbound()
    a.reset()
    assert a.stats.frames_received == 0
    assert a.take_inbound() is None  # empty and not primed: silence, not late
    assert a.stats.frames_late == 0


def test_answered_tells_the_codec_and_rate_then_both_indicators_off() -> None:
    a = Leg(codec("pcm_s16le", 16000), Wire())
    a.answered("c_1")
    assert isinstance(a.transport, Wire)
    assert a.transport.messages == [
        {"type": "answered", "call_id": "c_1", "codec": "pcm_s16le", "rate": 16000, "ptime": 20},
        {"type": "recording", "state": "off"},
        {"type": "transcription", "state": "off"},
    ]
