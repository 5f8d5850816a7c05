"""TEMPORARY placeholder written by the core engineer so the core can run.

helper-1 owns this file and replaces it entirely with the real resampler.
"""

from __future__ import annotations

from math import gcd

import numpy as np

from media.frame import Pcm


def _taps(up: int, down: int, n: int = 32) -> np.ndarray:
    cutoff = 0.5 / max(up, down)
    k = np.arange(-n * max(up, down), n * max(up, down) + 1)
    h = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(len(k), 8.0)
    taps: np.ndarray = h * up / h.sum()
    return taps


def resample(x: Pcm, from_rate: int, to_rate: int) -> Pcm:
    if from_rate == to_rate:
        return x.copy()
    g = gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    y = np.zeros(len(x) * up)
    y[::up] = x
    h = _taps(up, down)
    z = np.convolve(y, h)[len(h) // 2 :][: len(y)][::down]
    out_len = round(len(x) * to_rate / from_rate)
    z = z[:out_len]
    return np.clip(np.round(z), -32768, 32767).astype(np.int16)


class StreamResampler:
    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate, self.to_rate = from_rate, to_rate
        g = gcd(from_rate, to_rate)
        self.up, self.down = to_rate // g, from_rate // g
        self.h = _taps(self.up, self.down)
        self.hist = np.zeros(len(self.h) - 1)

    def process(self, frame: Pcm) -> Pcm:
        y = np.zeros(len(frame) * self.up)
        y[:: self.up] = frame
        full = np.concatenate([self.hist, y])
        z = np.convolve(full, self.h, mode="valid")
        self.hist = full[-(len(self.h) - 1) :]
        z = z[:: self.down]
        return np.clip(np.round(z), -32768, 32767).astype(np.int16)
