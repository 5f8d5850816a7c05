"""A call leg: one party's audio in and out, over some transport.

Inbound frames go through a small jitter buffer (docs/protocol.md: at most 200 ms
per leg). The media clock takes one frame per tick once the buffer is primed
(two frames deep); a tick that finds it empty plays silence, counts a late
frame and primes again. A frame arriving while the buffer is full pushes out
the oldest one (counted as dropped), so latency stays bounded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from media.errors import BadFrame
from media.frame import PTIME_MS, Codec, Pcm

MAX_JITTER_FRAMES = 10  # 200 ms
PRIME_FRAMES = 2  # 40 ms of playout delay


class Transport(Protocol):
    """What a leg needs from the wire. Every method returns at once."""

    def send_audio(self, payload: bytes) -> bool:
        """Queue one encoded frame; False if it was dropped (the peer is not reading)."""

    def send_message(self, message: dict[str, Any]) -> None:
        """Queue one control message."""

    def close(self, code: int) -> None:
        """Close the connection with a WebSocket close code."""


@dataclass(slots=True)
class LegStats:
    frames_sent: int = 0
    frames_received: int = 0
    frames_late: int = 0
    frames_dropped: int = 0
    frames_malformed: int = 0
    frames_unsent: int = 0

    def snapshot(self) -> dict[str, int]:
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_late": self.frames_late,
            "frames_dropped": self.frames_dropped,
            "frames_malformed": self.frames_malformed,
            "frames_unsent": self.frames_unsent,
        }


class Leg:
    """One party of a call, as the media clock sees it."""

    def __init__(self, codec: Codec, transport: Transport | None) -> None:
        self.codec = codec
        self.transport = transport
        self.stats = LegStats()
        self._inbound: deque[Pcm] = deque()
        self._primed = False
        self.silence_wire = codec.encode(np.zeros(codec.samples_per_frame, dtype=np.int16))

    def reset(self) -> None:
        """Start a new call on this leg: empty buffer, fresh counters."""
        self.stats = LegStats()
        self._inbound.clear()
        self._primed = False

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def receive_audio(self, payload: bytes) -> None:
        """Take one frame from the wire; :class:`BadFrame` if its size is wrong."""
        try:
            pcm = self.codec.decode(payload)
        except BadFrame:
            self.stats.frames_malformed += 1
            raise
        self.stats.frames_received += 1
        if len(self._inbound) >= MAX_JITTER_FRAMES:
            self._inbound.popleft()
            self.stats.frames_dropped += 1
        self._inbound.append(pcm)

    def take_inbound(self) -> Pcm | None:
        """This tick's inbound frame, or None for silence."""
        if not self._primed:
            if len(self._inbound) < PRIME_FRAMES:
                return None
            self._primed = True
        if self._inbound:
            return self._inbound.popleft()
        self.stats.frames_late += 1
        self._primed = False
        return None

    def send_wire(self, payload: bytes) -> None:
        if self.transport is None:
            return
        if self.transport.send_audio(payload):
            self.stats.frames_sent += 1
        else:
            self.stats.frames_unsent += 1

    def send_pcm(self, pcm: Pcm | None) -> None:
        self.send_wire(self.silence_wire if pcm is None else self.codec.encode(pcm))

    def send_message(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.send_message(message)

    def answered(self, call_id: str) -> None:
        """Tell this leg's party that ``call_id`` is up, in this leg's codec and rate.

        docs/protocol.md: ``answered``, then the indicators' state until the
        call says otherwise, ``recording`` and ``transcription`` both ``off``.
        A caller gets this when the call is placed, a person agent when they
        answer; from then on audio flows both ways.
        """
        self.send_message(
            {
                "type": "answered",
                "call_id": call_id,
                "codec": self.codec.name,
                "rate": self.sample_rate,
                "ptime": PTIME_MS,
            }
        )
        self.send_message({"type": "recording", "state": "off"})
        self.send_message({"type": "transcription", "state": "off"})
