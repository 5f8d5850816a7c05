"""Sample-rate conversion with an anti-alias filter, for whole signals and for streams.

This module owns rate conversion between the rates the switch meets: 8000 and
16000 Hz on calls, 48000 Hz from browsers, and 22050 Hz from espeak-ng. Any
pair of positive integer rates works; the ratio is reduced to ``up / down``.

The converter is the textbook rational resampler (zero-stuff by ``up``,
low-pass, keep every ``down``-th sample) computed as a polyphase FIR, so that
no zero is ever multiplied: pure interpolation (8 to 16 or 48 kHz) is one
``np.convolve`` per phase, decimation by 2 or 3 one convolution at the input
rate, and other ratios gather each output's window of inputs. The prototype
low-pass is a Kaiser-windowed sinc designed with Kaiser's formulas (J. F.
Kaiser, "Nonrecursive digital filter design using the I0-sinh window
function", 1974) for ``STOPBAND_DB`` of attenuation: flat (ripple far below
0.01 dB) up to ``PASSBAND_FRACTION`` of the lower rate's Nyquist frequency,
and at least ``STOPBAND_DB`` down from that Nyquist frequency on, so nothing
folds back into the band (decimation) and no image escapes above it
(interpolation). At 8000 Hz that is flat to 3400 Hz, the top of the
telephone band (ITU-T G.712), and stopped from 4000 Hz.

:func:`resample` converts a whole signal with the filter centred (no delay).
:class:`StreamResampler` converts a stream frame by frame with the same
filter made causal: its output is :func:`resample`'s delayed by
``delay_samples`` output samples, and it emits exactly
``frame_length * to_rate / from_rate`` samples per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from media.errors import UnsupportedRate
from media.frame import Pcm

PASSBAND_FRACTION = 0.85  # of the lower rate's Nyquist frequency: 3400 Hz at 8 kHz
STOPBAND_DB = 80.0  # int16 has ~96 dB of range; 80 dB keeps aliases under its noise
_CHUNK_MACS = 1 << 21  # multiply-adds per einsum call: bounds the gathered matrix
_CONVOLVE_MAX_DOWN = 3  # decimate by convolving at the input rate up to this factor

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Design:
    """A polyphase decomposition of one prototype low-pass."""

    up: int
    down: int
    taps: int  # taps per phase
    centre: int  # index of the prototype's centre tap
    phases: Floats  # (up, taps): phases[p, k] = h[p + k * up]


@lru_cache(maxsize=32)
def _design(from_rate: int, to_rate: int) -> _Design:
    if from_rate <= 0 or to_rate <= 0:
        raise UnsupportedRate(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    common = math.gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    filter_rate = float(from_rate * up)
    stop_hz = min(from_rate, to_rate) / 2.0
    pass_hz = PASSBAND_FRACTION * stop_hz
    # Kaiser's estimates: length from attenuation and transition width, beta from attenuation.
    transition = 2.0 * math.pi * (stop_hz - pass_hz) / filter_rate
    length = math.ceil((STOPBAND_DB - 7.95) / (2.285 * transition)) + 1
    length += 1 - length % 2  # odd, so the centre falls on a tap
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    centre = (length - 1) // 2
    cutoff = (pass_hz + stop_hz) / filter_rate  # -6 dB point, as a fraction of filter_rate
    t = np.arange(length, dtype=np.float64) - centre
    prototype = cutoff * np.sinc(cutoff * t) * np.kaiser(length, beta)
    prototype *= up / prototype.sum()  # unity gain after zero-stuffing by ``up``
    taps = -(-length // up)
    padded = np.zeros(taps * up, dtype=np.float64)
    padded[:length] = prototype
    phases = np.ascontiguousarray(padded.reshape(taps, up).T)
    phases.setflags(write=False)
    return _Design(up, down, taps, centre, phases)


def _filter(design: _Design, x: Floats, x_start: int, first: int, count: int, shift: int) -> Floats:
    """Outputs ``first .. first+count-1``; ``x[j]`` is input sample ``x_start + j``.

    Output ``n`` sits at position ``p = n * down + shift`` of the zero-stuffed
    signal, so it is ``sum_k phases[p % up, k] * x[p // up - k]``. The caller
    guarantees that ``x`` covers every input sample this touches.
    """
    if count <= 0:
        return np.zeros(0, dtype=np.float64)
    if design.up == 1 and design.down <= _CONVOLVE_MAX_DOWN:
        return _decimate(design, x, x_start, first, count, shift)
    if design.down == 1:
        return _interpolate(design, x, x_start, first, count, shift)
    out = np.empty(count, dtype=np.float64)
    lags = np.arange(design.taps)
    chunk = max(1, _CHUNK_MACS // design.taps)
    for start in range(0, count, chunk):
        n = np.arange(first + start, first + min(count, start + chunk), dtype=np.int64)
        position = n * design.down + shift
        newest = position // design.up - x_start
        window = x[newest[:, None] - lags[None, :]]
        coefficients = design.phases[position % design.up]
        out[start : start + len(n)] = np.einsum("ij,ij->i", window, coefficients)
    return out


def _decimate(
    design: _Design, x: Floats, x_start: int, first: int, count: int, shift: int
) -> Floats:
    """:func:`_filter` for ``up == 1``: one convolution, every ``down``-th output kept."""
    newest = first * design.down + shift - x_start
    last = newest + (count - 1) * design.down
    segment = x[newest - design.taps + 1 : last + 1]
    return np.convolve(segment, design.phases[0], mode="valid")[:: design.down]


def _interpolate(
    design: _Design, x: Floats, x_start: int, first: int, count: int, shift: int
) -> Floats:
    """:func:`_filter` for ``down == 1``: one convolution per phase, interleaved."""
    out = np.empty(count, dtype=np.float64)
    for offset in range(min(design.up, count)):
        position = first + offset + shift
        phase = position % design.up
        newest = position // design.up - x_start
        outputs = len(range(offset, count, design.up))
        segment = x[newest - design.taps + 1 : newest + outputs]
        out[offset :: design.up] = np.convolve(segment, design.phases[phase], mode="valid")
    return out


def _to_pcm(y: Floats) -> Pcm:
    rounded = np.rint(y)
    np.minimum(rounded, 32767.0, out=rounded)
    np.maximum(rounded, -32768.0, out=rounded)
    return rounded.astype(np.int16)


def resample(x: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """``x`` at ``from_rate`` converted to ``to_rate``, anti-aliased, clipped to int16.

    The output has ``round(len(x) * to_rate / from_rate)`` samples and no delay:
    output sample ``n`` is the signal at time ``n / to_rate``.
    """
    design = _design(from_rate, to_rate)
    samples = np.asarray(x)
    if from_rate == to_rate:
        return samples.astype(np.int16, copy=True)
    up, down = design.up, design.down
    count = (2 * len(samples) * up + down) // (2 * down)  # round half up
    if count == 0:
        return np.zeros(0, dtype=np.int16)
    # Zero history before the signal and zero future after it.
    before = design.taps + 1
    last_needed = ((count - 1) * down + design.centre) // up
    after = max(0, last_needed - len(samples) + 2)
    padded = np.concatenate([np.zeros(before), samples.astype(np.float64), np.zeros(after)])
    return _to_pcm(_filter(design, padded, -before, 0, count, design.centre))


class StreamResampler:
    """Converts a stream frame by frame, keeping the filter's history between frames.

    Consecutive frames join as if the stream were converted whole: the output
    is exactly :func:`resample` of everything fed so far, delayed by
    :attr:`delay_samples`. A frame of ``k`` input samples yields
    ``k * to_rate / from_rate`` output samples when that is a whole number (a
    20 ms frame gives a 20 ms frame), otherwise the remainder is carried.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._design = _design(from_rate, to_rate)
        d = self._design
        # Smallest delay for which every output needs only inputs already fed.
        self.delay_samples: int = d.centre // d.down
        """Fixed delay of the output, in output samples."""
        self._shift = d.centre - self.delay_samples * d.down
        self._inputs = 0
        self._outputs = 0
        oldest = self._shift // d.up - d.taps + 1
        self._history_start = min(0, oldest)
        self._history: Floats = np.zeros(-self._history_start, dtype=np.float64)

    def process(self, frame: Pcm) -> Pcm:
        """The output samples that ``frame`` completes."""
        d = self._design
        if self.from_rate == self.to_rate:
            return np.asarray(frame).astype(np.int16, copy=True)
        x = np.concatenate([self._history, np.asarray(frame, dtype=np.float64)])
        self._inputs += len(frame)
        end = self._inputs * d.up // d.down
        count = end - self._outputs
        y = _filter(d, x, self._history_start, self._outputs, count, self._shift)
        self._outputs = end
        # Keep only the inputs the next output can still reach.
        keep_from = (self._outputs * d.down + self._shift) // d.up - d.taps + 1
        drop = max(0, keep_from - self._history_start)
        self._history = x[drop:]
        self._history_start += drop
        return _to_pcm(y)
