"""Repacketisation: payloads placed by RTP timestamp, cut into the switch's 20 ms frames.

A peer packs 10, 20, 30 or 40 ms of G.711 in a packet (or whatever it
likes: the size of the payload says, one octet per sample); the switch
takes 160-octet frames, each one 20 ms at 8 kHz (``media.frame``), exactly
what a WebSocket caller sends. :class:`FrameAssembler` keeps a running
position on the RTP timeline (the timestamp of the next sample it expects)
and lays each released packet at its own timestamp:

* at the position: appended;
* after it, by at most ``max_fill_samples``: the hole (a lost packet) is
  filled with silence first, so the frames after it stay where they belong
  and the leg plays the loss as silence instead of shifting the call;
* after it by more, or at the start of a talkspurt (the marker bit, RFC
  3551 section 4.1, or after comfort noise): the sender was silent in real
  time, and the leg has already played that silence as an empty buffer, so
  filling it would only add delay. The part-built frame is completed with
  silence and a new frame grid starts at the packet;
* before it: the part already played (overlap, a retransmission) is cut
  off, and a packet wholly behind is dropped; audio a jump backwards larger
  than ``max_fill_samples`` is a sender that reset its timestamps, and
  restarts the grid.

Silence spans are placed the same way, without octets to copy: a
telephone-event's packets cover the time from the event's timestamp for its
duration (RFC 4733 section 2.3), and what a receiver renders for them is its
own choice; we render silence, so a key press never reaches a recording as
audio, and the frames after it keep their place.
"""

from __future__ import annotations

import numpy as np

from ivr.transport.rtp.errors import InvalidField
from ivr.transport.rtp.sequence import TIMESTAMP_MOD, timestamp_delta
from media import g711

FRAME_SAMPLES = 160  # 20 ms at 8 kHz: media.frame.samples_per_frame(8000)
DEFAULT_MAX_FILL_SAMPLES = 800  # 100 ms: gaps up to this are losses, filled with silence
PCMU = "pcmu"
PCMA = "pcma"
SILENCE = {PCMU: g711.ULAW_SILENCE, PCMA: g711.ALAW_SILENCE}


def transcode(payload: bytes, source: str, target: str) -> bytes:
    """G.711 octets from one law to the other (or unchanged, if the same).

    RFC 3264 section 6.1 lets a peer send any format of the answer, and a
    re-INVITE may leave only the other law; a leg keeps its codec, so the
    edges translate. Through 16-bit PCM, as G.711's own tables do.
    """
    if source == target:
        return payload
    codes = np.frombuffer(payload, dtype=np.uint8)
    if source == PCMU:
        return bytes(g711.alaw_encode(g711.ulaw_decode(codes)).tobytes())
    return bytes(g711.ulaw_encode(g711.alaw_decode(codes)).tobytes())


class FrameAssembler:
    """Turns timestamped payloads into whole frames of ``frame_samples`` octets."""

    __slots__ = (
        "_next_ts",
        "_partial",
        "concealed_samples",
        "frame_samples",
        "frames",
        "max_fill_samples",
        "padded_samples",
        "resyncs",
        "silence",
        "trimmed_samples",
    )

    def __init__(
        self,
        silence: int,
        frame_samples: int = FRAME_SAMPLES,
        max_fill_samples: int = DEFAULT_MAX_FILL_SAMPLES,
    ) -> None:
        if not 0 <= silence <= 255 or frame_samples < 1 or max_fill_samples < 0:
            raise InvalidField("a frame assembler needs a silence octet and a frame size")
        self.silence = silence
        self.frame_samples = frame_samples
        self.max_fill_samples = max_fill_samples
        self._next_ts: int | None = None
        self._partial = bytearray()
        self.frames = 0  # whole frames handed out
        self.concealed_samples = 0  # silence put in place of lost audio
        self.padded_samples = 0  # silence completing a frame at a talkspurt's end
        self.trimmed_samples = 0  # audio dropped because it had already been placed
        self.resyncs = 0  # new frame grids (talkspurts, timestamp jumps)

    @property
    def position(self) -> int | None:
        """The RTP timestamp of the next sample expected (None before the first)."""
        return self._next_ts

    def audio(self, timestamp: int, payload: bytes, *, restart: bool = False) -> list[bytes]:
        """Place a payload of one octet per sample at ``timestamp``; return whole frames."""
        out: list[bytes] = []
        skip = self._place(timestamp, len(payload), restart, out, backwards=True)
        if skip < len(payload):
            self._append(payload[skip:], out)
        return out

    def is_next(self, timestamp: int, size: int) -> bool:
        """True if a payload of ``size`` at ``timestamp`` is exactly the next whole frame.

        Nothing part-built, no gap: :meth:`audio` would hand out the payload
        itself. Then :meth:`take_next` does what it would, without the placing
        (the receive path's common case).
        """
        return not self._partial and self._next_ts == timestamp and size == self.frame_samples

    def take_next(self) -> None:
        """After :meth:`is_next`: the frame is handed out whole."""
        assert self._next_ts is not None
        self._next_ts = (self._next_ts + self.frame_samples) % TIMESTAMP_MOD
        self.frames += 1

    def silent(self, timestamp: int, samples: int, *, restart: bool = False) -> list[bytes]:
        """Place ``samples`` of silence at ``timestamp`` (a telephone-event's span)."""
        out: list[bytes] = []
        skip = self._place(timestamp, samples, restart, out, backwards=False)
        remaining = samples - skip
        if remaining > self.max_fill_samples:
            # More than a gap's worth at once (an event whose updates were
            # lost): the leg has played it as an empty buffer already.
            self._pad(out)
            self._next_ts = (timestamp + samples) % TIMESTAMP_MOD
            self.resyncs += 1
        elif remaining > 0:
            self._append(bytes([self.silence]) * remaining, out)
        return out

    def flush(self) -> list[bytes]:
        """Complete a part-built frame with silence (a talkspurt ended); keep the grid."""
        out: list[bytes] = []
        self._pad(out)
        return out

    def reset(self) -> list[bytes]:
        """Flush and forget the position: the next payload starts a new grid (a new source)."""
        out = self.flush()
        self._next_ts = None
        return out

    def _place(
        self, timestamp: int, length: int, restart: bool, out: list[bytes], *, backwards: bool
    ) -> int:
        """Move to ``timestamp``; return how many leading samples are already placed.

        Only audio may move the grid ``backwards``: a silence span keeps its
        event's timestamp in every packet, so its repeated end packets fall
        far behind once audio has resumed, and are simply dropped.
        """
        if self._next_ts is None:
            self._next_ts = timestamp
            return 0
        gap = timestamp_delta(timestamp, self._next_ts)
        if gap > 0:
            if restart or gap > self.max_fill_samples:
                self._pad(out)
                self._next_ts = timestamp
                self.resyncs += 1
            else:
                self.concealed_samples += gap
                self._append(bytes([self.silence]) * gap, out)
            return 0
        behind = -gap
        if behind < length:
            self.trimmed_samples += behind
            return behind
        if backwards and behind > self.max_fill_samples:
            self._pad(out)
            self._next_ts = timestamp
            self.resyncs += 1
            return 0
        self.trimmed_samples += length
        return length

    def _pad(self, out: list[bytes]) -> None:
        if self._partial:
            missing = self.frame_samples - len(self._partial)
            self.padded_samples += missing
            self._append(bytes([self.silence]) * missing, out)

    def _append(self, data: bytes, out: list[bytes]) -> None:
        assert self._next_ts is not None
        self._partial += data
        self._next_ts = (self._next_ts + len(data)) % TIMESTAMP_MOD
        size = self.frame_samples
        whole = len(self._partial) // size
        for i in range(whole):
            out.append(bytes(self._partial[i * size : (i + 1) * size]))
        if whole:
            del self._partial[: whole * size]
            self.frames += whole
