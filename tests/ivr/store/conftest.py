"""A real store on each backend, and small builders of the rows calls make.

Every test that takes ``store`` runs twice: on SQLite in a temporary folder,
and on PostgreSQL in a schema of its own (the ``database`` fixture of
``tests/conftest.py``; skipped without ``IVR_TEST_POSTGRES``, failed in CI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.stamp import new_id, now_iso
from ivr.store import NewCall, NewRecording, Store


@pytest.fixture
async def store(tmp_path: Path, database: str | None) -> AsyncIterator[Store]:
    s = Store(tmp_path / "data", database)
    await s.open()
    yield s
    await s.close()


def storage_failure(store: Store, message: str) -> Exception:
    """The error the backend's driver raises when the disk refuses a write."""
    failure = store.dialect.storage_failures[0]
    return failure(message)


async def a_call(
    store: Store,
    *,
    number: str = "+15550100",
    caller: str | None = "+15557654321",
    started_at: str | None = None,
    sip_call_id: str | None = None,
    node_id: str | None = None,
) -> str:
    """A call's first row, from ``caller`` to ``number`` (over SIP with ``sip_call_id``)."""
    contact = None if caller is None else await store.calls.contact_id(caller)
    call_id = new_id("c")
    await store.calls.create(
        NewCall(
            id=call_id,
            number=number,
            contact_id=contact,
            flow_id="consent",
            flow_version="v1",
            codec="pcm_s16le",
            sample_rate=8000,
            started_at=started_at or now_iso(),
            client_ref="ref-1",
            transport="ws" if sip_call_id is None else "sip",
            sip_call_id=sip_call_id,
            node_id=node_id,
        )
    )
    return call_id


async def a_recording(
    store: Store,
    call_id: str,
    *,
    transcribe: bool = False,
    expires_at: str | None = None,
    started_at: str | None = None,
    finish: bool = True,
) -> str:
    """A recording of ``call_id`` with a small file; finished ``complete`` unless ``finish``."""
    rec_id = new_id("r")
    relative = f"t/{rec_id}.wav"
    path = store.recordings_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(40))
    await store.recordings.create(
        NewRecording(
            id=rec_id,
            call_id=call_id,
            path=relative,
            status="recording",
            started_at=started_at or now_iso(),
            sample_rate=8000,
            channels=2,
            format="wav/pcm_s16le",
            transcribe=transcribe,
            expires_at=expires_at,
        )
    )
    if finish:
        await store.recordings.finish(
            rec_id, status="complete", ended_at=now_iso(), duration_s=1.5, size_bytes=44
        )
    return rec_id
