"""CPU cost of writing recordings: block writes (the recorder) vs frame-by-frame writes.

Feeds 20 ms stereo frames for many concurrent recordings, as the media clock
would, as fast as the machine allows, and measures the process CPU time
(the recorder's I/O thread included) per second of recorded audio. Both
ways run in the same process, side by side, each repeated; medians are
printed. Target (issue: media): under 1% of a core per 100 recorded calls;
sealed (encrypted at rest, the default) at most 1.3x the CPU of clear.

Every recording is opened, written for ``--seconds`` of audio and closed
(renamed, its SHA-256 taken), so the per-file costs are spread over that
length: the default, 60 s, is a short bridged call; 10 s shows the worst
case of very short recordings.

    .venv/bin/python bench/recording_bench.py [--calls 500] [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ivr.call.recorder import RecorderPool, Recording
from ivr.store.keyring import Keyring
from media.frame import samples_per_frame
from media.wavfile import RecordingWriter

RATE = 8000


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(-3000, 3000, samples_per_frame(RATE), dtype=np.int16) for _ in range(n)]


MAIN_THREAD: list[float] = []


async def blocks(folder: Path, calls: int, seconds: float, keys: Keyring | None = None) -> float:
    """The recorder as the server runs it: one-second blocks on one I/O thread.

    With ``keys``, sealed (AES-256-GCM, a data key made per file), as the server does by default.
    """
    pool = RecorderPool()
    source = frames(50)
    start = time.process_time()
    main = time.thread_time()
    recs = [Recording(pool, f"r{i}", folder / f"b{i}.wav", RATE, keys) for i in range(calls)]
    for t in range(int(seconds * 50)):
        f = source[t % 50]
        for rec in recs:
            rec.add(f, f)
    MAIN_THREAD.append(time.thread_time() - main)  # what the media clock's thread pays
    await asyncio.gather(*(rec.close() for rec in recs))
    pool.shutdown()
    return time.process_time() - start


def per_frame(folder: Path, calls: int, seconds: float) -> float:
    """The naive way: every 20 ms frame written (and the header made true) at once."""
    source = frames(50)
    stereo = [np.stack([f, f], axis=1) for f in source]
    start = time.process_time()
    writers = [RecordingWriter(folder / f"f{i}.wav", RATE) for i in range(calls)]
    for t in range(int(seconds * 50)):
        block = stereo[t % 50]
        for w in writers:
            w.write(block)
    for w in writers:
        w.close()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    audio_s = args.calls * args.seconds
    block_cpu: list[float] = []
    sealed_cpu: list[float] = []
    frame_cpu: list[float] = []
    ratios: list[float] = []
    for _ in range(args.repeats):
        # Side by side, in alternating order (ABBA), so that the page cache's
        # writeback of one run does not always land on the same other.
        for sealed in (False, True) if len(ratios) % 2 == 0 else (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                keys = Keyring(Path(tmp) / "keys") if sealed else None
                cpu = asyncio.run(blocks(Path(tmp), args.calls, args.seconds, keys))
                (sealed_cpu if sealed else block_cpu).append(cpu)
        ratios.append(sealed_cpu[-1] / block_cpu[-1])
        with tempfile.TemporaryDirectory() as tmp:
            frame_cpu.append(per_frame(Path(tmp), args.calls, args.seconds))
    b, f = statistics.median(block_cpu), statistics.median(frame_cpu)
    s = statistics.median(sealed_cpu)
    print(
        f"{args.calls} concurrent recordings x {args.seconds:g} s of 8 kHz stereo, "
        f"median of {args.repeats}"
    )
    for name, cpu in (
        ("block writes (recorder)", b),
        ("block writes, sealed", s),
        ("frame-by-frame writes", f),
    ):
        per_s = cpu / audio_s
        print(
            f"  {name:26s} {cpu:7.3f} s CPU = {per_s * 1e3:7.3f} ms CPU per s of audio "
            f"= {per_s * 100 * 100:6.2f}% of a core per 100 recorded calls"
        )
    print(f"  frame-by-frame / block = {f / b:.1f}x")
    print(
        f"  sealed / clear = {statistics.median(ratios):.2f}x CPU per recorded call (median of "
        f"the {args.repeats} side-by-side pairs: {', '.join(f'{r:.2f}' for r in ratios)}; "
        "target: at most 1.3x)"
    )
    main = statistics.median(MAIN_THREAD) / audio_s
    print(
        f"  of the recorder's cost, on the event loop's thread: {main * 1e3:.3f} ms per s of "
        f"audio = {main * 100 * 100:.2f}% of a core per 100 recorded calls (the rest is the "
        f"I/O thread: writes, header updates, the SHA-256 of each file at its close)"
    )


if __name__ == "__main__":
    main()
