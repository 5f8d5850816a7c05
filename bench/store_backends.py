"""The store's cost per call on SQLite and on PostgreSQL: wall time and this process's CPU.

Each simulated call writes what a real call's journal writes at least: its
row, its contact, the answer, five events and the end. Prints one line per
backend. PostgreSQL's server CPU is not in the figure (it is another
process); the issue's target (server CPU per call on PostgreSQL at most 1.1x
SQLite's) is about the whole softswitch, whose media path costs far more per
call than these writes.

Run: ``python bench/store_backends.py --database postgresql://... [--calls 500]``
(under ``pg_virtualenv -t``, ``--database postgresql://`` is enough).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from ivr.stamp import new_id, now_iso
from ivr.store import NewCall, Store


async def one_call(store: Store) -> None:
    call_id = new_id("c")
    await store.calls.create(
        NewCall(
            id=call_id,
            number="+15550100",
            contact_id=await store.calls.contact_id("+15557654321"),
            flow_id="consent",
            flow_version="v1",
            codec="pcm_s16le",
            sample_rate=8000,
            started_at=now_iso(),
        )
    )
    await store.calls.update(call_id, connected_at=now_iso(), team="support")
    await store.add_events([(call_id, now_iso(), "dtmf", '{"digit": "1"}')] * 5)
    await store.calls.update(call_id, ended_at=now_iso(), end_reason="hangup")


async def measure(database: str | None, calls: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder), database)
        await store.open()
        try:
            await one_call(store)  # warm up: connections, prepared statements
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                await one_call(store)
            return time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a postgresql:// URL (else SQLite only)")
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.database:
        backends.append(("postgresql", args.database))
    for name, database in backends:
        wall, cpu = await measure(database, args.calls)
        print(
            f"{name:<10} {args.calls} calls: {1000 * wall / args.calls:.2f} ms wall, "
            f"{1000 * cpu / args.calls:.2f} ms CPU of this process per call"
        )


if __name__ == "__main__":
    asyncio.run(main())
