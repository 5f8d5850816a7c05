"""``ivr serve`` with its garbage collections timed, and optionally another generation-0 threshold.

For ``bench/capacity.py``: runs the server as ``python -m ivr serve`` does,
with a :data:`gc.callbacks` hook that notes every collection (wall-clock
time, generation, pause) and writes them as JSON to ``--stats`` when the
server stops, so that the bench can tell whether collections fall on the
media clock's path. ``--gen0 N`` sets the generation-0 threshold (CPython's
default is 700) before the server starts.

    python bench/gc_serve.py --stats FILE [--gen0 N] -- serve --config ...
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--gen0", type=int, default=0, help="generation-0 threshold (0: as it is)")
    p.add_argument("argv", nargs="+")
    args = p.parse_args()
    if args.gen0:
        gc.set_threshold(args.gen0, *gc.get_threshold()[1:])
    noted: list[tuple[float, int, float]] = []
    started = [0.0]

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            noted.append((time.time(), int(info["generation"]), time.perf_counter() - started[0]))

    gc.callbacks.append(note)
    from ivr.cli import main as ivr_main

    try:
        return ivr_main(args.argv)
    finally:
        gc.callbacks.remove(note)
        threshold = list(gc.get_threshold())
        args.stats.write_text(json.dumps({"threshold": threshold, "collections": noted}))


if __name__ == "__main__":
    sys.exit(main())
