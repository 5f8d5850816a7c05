"""Benchmark: batched in-band DTMF detection against a per-call loop of the same detector.

Prints, for 100, 1,000 and 5,000 calls, the cost per call per 20 ms frame of
:meth:`media.dtmf.DtmfDetector.process` given all calls in one batch, next to
the same detector called once per call (a batch of one) in the same run, the
ratio of the two, and the share of one core that detection takes at 1,000
calls. Targets (issue 3): under 2% of a core at 1,000 calls, and the batch at
least 10 times cheaper per call than the loop.

The inbound audio is synthetic but not idle: every call carries speech-like
noise (band-limited noise in syllable-rate bursts, about -20 dBm0), and one
call in ten sends a DTMF digit every second, so the exact tests and the
per-call timing run on every tick as they would in production.

Then detection as the media clock runs it (:class:`ivr.call.clock.MediaClock`'s
detect phase for 1,000 calls: batching the frames, the detector, and sorting
out what each call gets), once with every caller talking as above and
once as in an IVR, where most callers listen in silence while prompts play
(``--listening``: that share sends digital silence; silent calls skip the
Goertzel product).

Times are CPU time of the benchmark's thread (``time.thread_time``), which is
what "share of a core" means and what other processes on the machine do not
inflate. BLAS is limited to one thread (unless set in the environment) before
numpy loads, so that all the work is on that thread; the detector slices its
product below OpenBLAS's threading cut-off anyway. Run::

    .venv/bin/python bench/dtmf_bench.py [--rate 8000] [--repeats 5] [--listening 0.8]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from ivr.call.clock import Inband, MediaClock  # noqa: E402
from media import dtmf  # noqa: E402
from media.frame import Pcm, samples_per_frame  # noqa: E402

CALL_COUNTS = (100, 1000, 5000)
POOL_SIGNALS = 97  # distinct call signals, reused with different phases
POOL_SECONDS = 2
DIGIT_EVERY_S = 1.0
DIALLING_SHARE = 0.1  # one call in ten sends digits
LISTENING_SHARE = 0.8  # in the IVR mix, callers silent while prompts play
CLOCK_CALLS = 1000
TARGET_CORE_SHARE = 0.02
TARGET_RATIO = 10.0

Frames = npt.NDArray[np.int16]


def speech_like(
    rng: np.random.Generator, seconds: float, sample_rate: int
) -> npt.NDArray[np.float64]:
    """Noise shaped roughly like speech: low-passed, in 4 Hz bursts, about -20 dBm0."""
    count = int(seconds * sample_rate)
    white = rng.standard_normal(count)
    spectrum = np.fft.rfft(white)
    hz = np.fft.rfftfreq(count, 1 / sample_rate)
    spectrum *= 1.0 / (1.0 + (hz / 500.0) ** 2)  # -12 dB/octave above 500 Hz
    shaped = np.fft.irfft(spectrum, count)
    t = np.arange(count) / sample_rate
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.3)), 0, None) ** 2
    shaped *= envelope
    peak_rms = dtmf.DBM0_PEAK / np.sqrt(2) * 10 ** (-20 / 20)
    result: npt.NDArray[np.float64] = shaped * peak_rms / max(float(np.std(shaped)), 1e-9)
    return result


def signal_pool(sample_rate: int, dialling: float = DIALLING_SHARE, seed: int = 7) -> Frames:
    """``POOL_SIGNALS`` call signals of ``POOL_SECONDS`` each, as (signal, frame, sample).

    A share ``dialling`` of them sends a 100 ms digit every ``DIGIT_EVERY_S``.
    """
    rng = np.random.default_rng(seed)
    frame = samples_per_frame(sample_rate)
    frames_per_signal = POOL_SECONDS * sample_rate // frame
    pool = np.zeros((POOL_SIGNALS, frames_per_signal, frame), dtype=np.int16)
    for i in range(POOL_SIGNALS):
        x = speech_like(rng, POOL_SECONDS, sample_rate)
        if rng.random() < dialling:
            for second in np.arange(0, POOL_SECONDS, DIGIT_EVERY_S):
                digit = dtmf.DIGITS[int(rng.integers(16))]
                tone = dtmf.generate(digit, 100, sample_rate, level_dbm0=-8.0)
                start = int((second + rng.uniform(0.1, 0.7)) * sample_rate)
                x[start : start + len(tone)] += tone
        pool[i] = np.clip(np.rint(x), -32768, 32767).astype(np.int16).reshape(-1, frame)
    return pool


def batches(pool: Frames, calls: int, ticks: int) -> list[Frames]:
    """The inbound frames of ``calls`` calls for ``ticks`` ticks, built before timing."""
    signal = np.arange(calls) % len(pool)
    phase = (np.arange(calls) * 37) % pool.shape[1]
    return [pool[signal, (phase + t) % pool.shape[1]] for t in range(ticks)]


def time_batched(sample_rate: int, frames: list[Frames], repeats: int) -> float:
    """Median over repeats of the mean CPU seconds per tick, all calls in one batch."""
    calls = frames[0].shape[0]
    keys = np.arange(calls, dtype=np.int64)
    results = []
    for _ in range(repeats):
        detector = dtmf.DtmfDetector(sample_rate)
        for key in range(calls):
            detector.add(key)
        for batch in frames[:5]:  # warm up: state arrays, caches
            detector.process(keys, batch)
        elapsed = 0.0
        for batch in frames[5:]:
            start = time.thread_time()
            detector.process(keys, batch)
            elapsed += time.thread_time() - start
        results.append(elapsed / (len(frames) - 5))
    return statistics.median(results)


def time_looped(sample_rate: int, frames: list[Frames], repeats: int, ticks: int) -> float:
    """Median over repeats of the mean CPU seconds per tick, one ``process`` call per call."""
    calls = frames[0].shape[0]
    results = []
    for _ in range(repeats):
        detector = dtmf.DtmfDetector(sample_rate)
        for key in range(calls):
            detector.add(key)
        keys = [np.array([key], dtype=np.int64) for key in range(calls)]
        elapsed = 0.0
        for batch in frames[5 : 5 + ticks]:
            rows = [batch[key : key + 1] for key in range(calls)]
            start = time.thread_time()
            for key in range(calls):
                detector.process(keys[key], rows[key])
            elapsed += time.thread_time() - start
        results.append(elapsed / ticks)
    return statistics.median(results)


class Listener:
    """A call as the media clock sees it (``ivr.call.clock.Tickable``), doing nothing."""

    def __init__(self, index: int, sample_rate: int) -> None:
        self.key = f"call-{index}"
        self.sample_rate = sample_rate

    def take_inbound(self) -> Pcm | None:
        return None

    def tick(self, n: int, inbound: Pcm | None, inband: Inband) -> None:
        pass

    def skipped(self, ticks: int) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        raise exc


def time_clock(sample_rate: int, frames: list[Frames], repeats: int) -> float:
    """Median over repeats of the CPU seconds of the clock's detect phase, per tick.

    The phase as :meth:`MediaClock.tick` runs it between collecting the
    frames and handing them over: batching them, detecting, and sorting out
    what each call gets.
    """
    results = []
    ticks = [[row for row in np.ascontiguousarray(batch)] for batch in frames]
    for _ in range(repeats):
        clock = MediaClock()
        for i in range(frames[0].shape[0]):
            clock.add(Listener(i, sample_rate))
        slots, _ = clock._collect()
        for tick in ticks[:5]:
            clock._detect(slots, list(tick))
        elapsed = 0.0
        for tick in ticks[5:]:
            start = time.thread_time()
            clock._detect(slots, list(tick))
            elapsed += time.thread_time() - start
        results.append(elapsed / (len(ticks) - 5))
    return statistics.median(results)


def silenced(frames: list[Frames], share: float, seed: int = 11) -> list[Frames]:
    """``frames`` with a share of the calls sending digital silence throughout."""
    quiet = np.random.default_rng(seed).random(frames[0].shape[0]) < share
    result = []
    for batch in frames:
        batch = batch.copy()
        batch[quiet] = 0
        result.append(batch)
    return result


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=105, help="ticks per batched repeat")
    parser.add_argument(
        "--dialling", type=float, default=DIALLING_SHARE, help="share of calls sending digits"
    )
    parser.add_argument(
        "--listening",
        type=float,
        default=LISTENING_SHARE,
        help="share of silent callers in the IVR mix of the media clock's figure",
    )
    args = parser.parse_args()
    rate: int = args.rate
    pool = signal_pool(rate, args.dialling)
    print(
        f"DTMF detection at {rate} Hz, 20 ms frames, {args.dialling:.0%} of calls dialling; "
        f"median of {args.repeats} repeats; BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}"
    )
    header = ("calls", "batch us/tick", "batch us/call", "loop us/call", "ratio")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (6, 14, 14, 13, 7), strict=True)))
    at_1000 = 0.0
    ratio_1000 = 0.0
    for calls in CALL_COUNTS:
        frames = batches(pool, calls, args.ticks)
        batched = time_batched(rate, frames, args.repeats)
        loop_ticks = max(3, 20_000 // calls)
        looped = time_looped(rate, frames, args.repeats, min(loop_ticks, len(frames) - 5))
        ratio = looped / batched
        print(
            f"{calls:>6} {batched * 1e6:>14.1f} {batched / calls * 1e6:>14.3f} "
            f"{looped / calls * 1e6:>13.2f} {ratio:>6.0f}x"
        )
        if calls == 1000:
            at_1000, ratio_1000 = batched, ratio
    share = at_1000 / 0.020
    print(
        f"1000 calls: detection uses {share:.2%} of one core "
        f"(target < {TARGET_CORE_SHARE:.0%}: {'met' if share < TARGET_CORE_SHARE else 'NOT met'}); "
        f"batch is {ratio_1000:.0f}x cheaper per call than the loop "
        f"(target >= {TARGET_RATIO:.0f}x: {'met' if ratio_1000 >= TARGET_RATIO else 'NOT met'})"
    )
    talking = batches(pool, CLOCK_CALLS, args.ticks)
    for name, frames in (
        ("every caller talking", talking),
        (f"{args.listening:.0%} listening in silence", silenced(talking, args.listening)),
    ):
        share = time_clock(rate, frames, args.repeats) / 0.020
        verdict = "met" if share < TARGET_CORE_SHARE else "NOT met"
        print(
            f"media clock, {CLOCK_CALLS} calls, {name}: the detect phase uses {share:.2%} "
            f"of one core (target < {TARGET_CORE_SHARE:.0%}: {verdict})"
        )


if __name__ == "__main__":
    main()
