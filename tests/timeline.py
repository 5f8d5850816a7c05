"""Checks that a recording holds what a caller sent, in order, on the call's time line.

A caller sends distinct noise frames (``tests.conftest.noise_frames``), so
every 20 ms frame of the recording's caller channel is either silence or one
of them, and can be told apart. On the time line means: each recorded frame
sits where its tick put it, so the offset between its place in the file and
its place in what was sent stays within the jitter buffer's reach (a stall
that the recorder wrote as silence does not shift what comes after).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ivr.call.leg import MAX_JITTER_FRAMES, PRIME_FRAMES
from ivr.store import Store
from media.frame import Pcm
from media.sealed import read_audio


def caller_channel(store: Store, rec: Any, rate: int = 8000) -> npt.NDArray[np.int16]:
    """The recording's caller channel as ``(frames, samples)``; the file is whole frames."""
    with store.recording_audio(rec.path) as audio_file:
        audio, file_rate = read_audio(audio_file)
    assert file_rate == rate
    n = rate // 50
    assert len(audio) % n == 0, f"{len(audio)} samples is not a whole number of frames"
    left: npt.NDArray[np.int16] = audio[:, 0].reshape(-1, n)
    return left


def assert_on_timeline(recorded: npt.NDArray[np.int16], sent: list[Pcm]) -> int:
    """Every non-silent recorded frame is a sent one, in order, none twice, on the time line.

    Returns how many sent frames the recording holds.
    """
    index = {f.tobytes(): j for j, f in enumerate(sent)}
    reach = MAX_JITTER_FRAMES + PRIME_FRAMES + 1
    last = -1
    first_offset: int | None = None
    found = 0
    for i, frame in enumerate(recorded):
        if not frame.any():
            continue
        j = index.get(frame.tobytes())
        assert j is not None, f"recorded frame {i} is not one the caller sent"
        assert j > last, f"recorded frame {i} is sent frame {j}, after {last}: out of order"
        offset = i - j
        if first_offset is None:
            first_offset = offset
        assert abs(offset - first_offset) <= reach, (
            f"recorded frame {i} is sent frame {j}: {offset - first_offset} frames off the "
            f"call's time line"
        )
        last = j
        found += 1
    return found
