"""The journal: what a call writes about itself, in order, off the media clock.

The session hands the journal facts as they happen (consent given, the
recording decision, the agent connected, a recording started or finished,
the call ended) with plain synchronous calls, from the media clock's tick.
Each fact becomes one unit of work on a queue; one task per call works the
queue off in order, so the store sees a call's facts in the order they
happened and the tick never waits on the disk.

A fact the disk refuses (:class:`ivr.errors.StorageUnavailable`: full,
failing) is kept, in order, and tried again with a backoff until it is
written: every unit is one transaction in the store, so trying again is
safe. Anything else that fails is logged and dropped, so that one bad row
cannot hold a call's other facts back forever.

The journal writes through :class:`CallRecords`, the part of the store the
call path needs. The call path holds no SQL, and does not import the store.
Once a recording's file is closed and its row saved as finished (which is
what queues it for transcription), ``on_recording_finished`` hears of it:
the server wakes the transcription worker with it, without the call path
knowing of speech.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ivr import eventloop
from ivr.call.recorder import DataKeys, FinishedRecording, Recording
from ivr.errors import StorageUnavailable
from ivr.stamp import now_iso

log = logging.getLogger("ivr.call")

# Backoff between tries of a write the disk refused.
RETRY_FIRST_S = 0.25
RETRY_MOST_S = 5.0

Op = Callable[[], Awaitable[None]]


class StorageState(Protocol):
    """Whether the store's writes are failing now (:class:`ivr.store.StorageHealth`)."""

    @property
    def failing(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class CallRecords(Protocol):
    """The part of the store a call writes through (:class:`ivr.store.Store` has it)."""

    @property
    def recordings_dir(self) -> Path:
        """Where recording files go; a recording's row keeps its path relative to it."""

    @property
    def sealing(self) -> DataKeys | None:
        """The keyring new recordings are sealed with; None: they are written clear."""

    @property
    def health(self) -> StorageState: ...

    async def update_call(self, call_id: str, **fields: Any) -> None: ...

    async def add_events(self, rows: list[tuple[str, str, str, str]]) -> None: ...

    async def add_consent(self, consent: Mapping[str, Any]) -> str: ...

    async def create_recording(self, rec: Mapping[str, Any]) -> None: ...

    async def finish_recording(self, recording_id: str, **fields: Any) -> None: ...


class Journal:
    """One call's facts, written in order by one task; ``saved`` once all are."""

    def __init__(
        self,
        records: CallRecords,
        call_id: str,
        on_recording_finished: Callable[[str], None] | None = None,
    ) -> None:
        self._records = records
        self.call_id = call_id
        self._on_recording_finished = on_recording_finished
        self._ops: asyncio.Queue[Op | None] = asyncio.Queue()
        self.saved = asyncio.Event()
        self._closed = False  # the last fact is handed over
        self._task = asyncio.get_running_loop().create_task(self._work(), name=f"journal-{call_id}")

    @property
    def failing(self) -> bool:
        """The store's writes fail now: what waits here may wait long."""
        return self._records.health.failing

    # -- facts -------------------------------------------------------------------

    def consent(self, row: Mapping[str, Any]) -> None:
        """Consent evidence (or a notice that stands for it), and the call's outcome."""
        records, call_id, decision = self._records, self.call_id, row["decision"]

        async def save() -> None:
            await records.add_consent(row)
            await records.update_call(call_id, consent_decision=decision)

        self._ops.put_nowait(save)

    def decision(self, line: str, team: str | None, decision: Mapping[str, Any]) -> None:
        """The line reached and the recording decision, factor by factor."""
        self._update(line=line, team=team, recording_decision=dict(decision))

    def connected(self, agent_id: str | None, agent_name: str) -> None:
        self._update(connected_at=now_iso(), agent_id=agent_id, agent_name=agent_name)

    def recording_started(self, row: Mapping[str, Any]) -> None:
        """The recording's row, written before the audio it governs is closed."""
        records = self._records

        async def save() -> None:
            await records.create_recording(row)

        self._ops.put_nowait(save)

    def recording_stopped(self, rec: Recording) -> None:
        """Close ``rec``'s file and save how it ended: complete, or truncated where it stopped."""
        records = self._records
        closed: list[FinishedRecording] = []

        async def finish() -> None:
            if not closed:  # the file is closed once; saving its row may be tried again
                closed.append(await rec.close())
            done = closed[0]
            fields: dict[str, Any] = {
                "status": "complete" if done.error is None else "truncated",
                "ended_at": now_iso(),
                "duration_s": done.duration_s,
                "sha256": done.sha256,
                "size_bytes": done.size_bytes,
                "pauses": json.dumps(rec.pauses),
                "gaps": json.dumps(rec.gaps),
            }
            if done.error is not None:
                fields["truncated_at_s"] = round(done.duration_s, 3)
                fields["truncated_reason"] = done.error[:200]
            await records.finish_recording(rec.id, **fields)
            self._recording_finished(rec.id)

        self._ops.put_nowait(finish)

    def mark(self) -> asyncio.Event:
        """An event set once every fact handed over so far is saved (at once if all are)."""
        done = asyncio.Event()
        if self.saved.is_set() or self._closed:
            # After the last fact: ``saved`` says when everything is.
            self._task.add_done_callback(lambda _: done.set())
            if self._task.done():
                done.set()
            return done

        async def reached() -> None:
            done.set()

        self._ops.put_nowait(reached)
        return done

    def _recording_finished(self, recording_id: str) -> None:
        if self._on_recording_finished is None:
            return
        try:
            self._on_recording_finished(recording_id)
        except Exception:  # a listener's failure is not the recording's
            log.exception("call %s: on_recording_finished failed", self.call_id)

    def ended(
        self,
        fields: Mapping[str, Any],
        events: list[tuple[str, str, dict[str, Any]]],
        recording: Recording | None,
    ) -> None:
        """The call is over: its row and timeline, then the open recording's close; the last fact.

        The row and the timeline go before the audio is finished: a disk that
        fails while the file is closed must not cost the call its records.
        """
        self._update(**fields)
        records, call_id = self._records, self.call_id

        async def save_events() -> None:
            await records.add_events(
                [(call_id, at, kind, json.dumps(data)) for at, kind, data in events]
            )

        self._ops.put_nowait(save_events)
        if recording is not None:
            self.recording_stopped(recording)
        self._ops.put_nowait(None)
        self._closed = True

    def _update(self, **fields: Any) -> None:
        records, call_id = self._records, self.call_id

        async def save() -> None:
            await records.update_call(call_id, **fields)

        self._ops.put_nowait(save)

    # -- the writer --------------------------------------------------------------

    async def _work(self) -> None:
        while (op := await self._ops.get()) is not None:
            await self._save(op)
        self.saved.set()

    async def _save(self, op: Op) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                await op()
                return
            except StorageUnavailable:
                if eventloop.cancelling():
                    raise asyncio.CancelledError from None
                # Logged once by the store's health; kept here, in order, until
                # the disk is back.
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST_S)
            except Exception:
                log.exception("call %s: saving to the store failed", self.call_id)
                return
