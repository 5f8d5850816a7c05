"""Recordings and transcripts at rest: sealed, served exactly, shredded with their keys."""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.server.keys import store_key
from ivr.store.keyring import KeyDestroyed, Keyring
from ivr.store.transcripts import SEALED
from media.sealed import open_audio, sealed_key_id
from tests.conftest import AppFactory, Caller, add_user, noise_frames, read_recording
from tests.ivr.privacy.test_privacy_ops import bearer

CONTACT = "+15557770011"


async def recorded_call(
    client: TestClient[web.Request, web.Application],
    new_caller: Callable[..., Caller],
    frm: str = CONTACT,
    number: str = "+15550100",
    seed: int = 1,
) -> tuple[str, list[np.ndarray]]:
    """A call that consents and talks: its recording id and the frames it sent."""
    sent = noise_frames(150, seed=seed)  # 3 s: chunks of one second each, and their boundaries
    caller = new_caller(client)
    await caller.dial(number, frm=frm)
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await caller.wait_for("connected")
    caller.start_audio(sent)
    await asyncio.sleep(3.2)
    hangup = await caller.hangup()
    await caller.closed_wait()
    rec_id = hangup["stats"]["recording_id"]
    assert rec_id
    return rec_id, sent


async def transcript_ready(
    client: TestClient[web.Request, web.Application], token: str, rec_id: str
) -> dict[str, Any]:
    for _ in range(300):
        resp = await client.get(f"/v1/recordings/{rec_id}/transcript", headers=bearer(token))
        if resp.status == 200:
            body: dict[str, Any] = await resp.json()
            return body
        await asyncio.sleep(0.2)
    raise AssertionError("no transcript in 60 s")


def every_file(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()]


async def test_no_byte_of_a_recording_lies_in_clear_and_the_api_serves_the_exact_wav(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    sup = await add_user(client, "sup@example.com", "supervisor")
    rec_id, sent = await recorded_call(client, new_caller)
    transcript = await transcript_ready(client, sup, rec_id)  # a worker process decrypted it
    assert transcript["segments"] is not None
    store = client.app[store_key]
    row = await store.recordings.get(rec_id)
    resp = await client.get(f"/v1/recordings/{rec_id}/audio", headers=bearer(sup))
    assert resp.status == 200
    wav = await resp.read()
    assert len(wav) == row.size_bytes
    assert hashlib.sha256(wav).hexdigest() == row.sha256  # the checksum is the plain WAV's
    audio, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    assert rate == 8000
    assert np.array_equal(audio, read_recording(store, row)[0])
    caller = audio[: len(audio) // 160 * 160, 0].reshape(-1, 160)
    heard = [f for f in sent if any(np.array_equal(f, r) for r in caller)]
    assert len(heard) >= 120  # the caller's frames are in the recording...
    # ... and nowhere in clear on disk: not as raw samples, not as WAV data.
    data = wav[44:]
    runs = [data[i : i + 64] for i in range(0, len(data), 4001)]
    needles = [f.tobytes() for f in heard] + [r for r in runs if len(set(r)) > 16]  # not silence
    needles += [wav[:44], b"RIFF"]
    assert len(needles) >= 122
    path = store.recording_path(row.path)
    assert sealed_key_id(path) == rec_id
    for folder in (tmp_path / "data", tmp_path / "data-keys"):
        for where, content in every_file(folder):
            for needle in needles:
                assert needle not in content, (where, needle[:8])
    # The keys are beside the data folder, not in it.
    assert (tmp_path / "data-keys" / "kek").is_dir()
    assert not list((tmp_path / "data").rglob("kek_*"))
    # A Range request decrypts only what it covers (here across a chunk's end), exactly.
    assert len(wav) > 70000
    part = await client.get(
        f"/v1/recordings/{rec_id}/audio", headers={**bearer(sup), "Range": "bytes=30000-70999"}
    )
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 30000-70999/{len(wav)}"
    assert await part.read() == wav[30000:71000]
    # Transcript texts are sealed in the database; the API shows them in clear. (The
    # worker found no words in noise: a segment is saved as the worker saves one.)
    phrase = "my account number is seven seven one"
    meta = {"engine": "pocketsphinx", "model": "en-us", "language": "en", "audio_s": 3.0}
    segment = {"channel": "caller", "start_s": 0.5, "end_s": 2.0, "text": phrase}
    assert await store.save_transcript(
        rec_id, {**meta, "cpu_s": 0.1}, [{**segment, "confidence": 0.9}]
    )
    resp = await client.get(f"/v1/recordings/{rec_id}/transcript", headers=bearer(sup))
    transcript = await resp.json()
    texts = await store.db.execute_fetchall(
        "SELECT text FROM transcript_segments WHERE recording_id = ?", (rec_id,)
    )
    assert texts
    assert all(str(t[0]).startswith(SEALED) for t in texts)
    assert [s["text"] for s in transcript["segments"]] == [phrase]
    for where, content in every_file(tmp_path / "data"):
        assert phrase.encode() not in content, where
    await client.close()


async def test_a_backup_restored_after_an_erasure_yields_no_audio(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    sup = await add_user(client, "sup@example.com", "supervisor")
    rec_id, _ = await recorded_call(client, new_caller)
    kept_id, _ = await recorded_call(client, new_caller, frm="+15557770012", seed=2)
    await transcript_ready(client, sup, rec_id)
    store = client.app[store_key]
    row = await store.recordings.get(rec_id)
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "data", backup)  # the data folder, database and all

    resp = await client.post(
        "/v1/privacy/erasures", headers=bearer(admin), json={"contact": CONTACT}
    )
    assert resp.status == 201
    erased = (await resp.json())["erased"]
    assert erased["recordings"] == 1
    assert erased["data_keys_destroyed"] == 2  # the recording's and its transcript's

    # Restore the copied recording files into the data folder: none can be read.
    final = store.recording_path(row.path)
    assert not final.exists()
    shutil.copy(backup / "recordings" / row.path, final)
    try:
        store.recording_audio(row.path)
        raise AssertionError("a restored recording was readable")
    except KeyDestroyed:
        pass
    resp = await client.get(f"/v1/recordings/{rec_id}/audio", headers=bearer(sup))
    assert resp.status == 404
    # Nor with the old database either: the key folder no longer holds its key.
    ring = Keyring(tmp_path / "data-keys")
    copied = backup / "recordings" / row.path
    try:
        open_audio(copied, ring.key)
        raise AssertionError("the backup's recording was readable")
    except KeyDestroyed:
        pass
    # The other caller's recording plays as before.
    other = await client.get(f"/v1/recordings/{kept_id}/audio", headers=bearer(sup))
    assert other.status == 200
    await client.close()


async def test_delete_and_retention_destroy_the_data_keys(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    first, _ = await recorded_call(client, new_caller)
    second, _ = await recorded_call(client, new_caller, seed=3)
    store = client.app[store_key]
    assert store.keys.has(first)
    assert store.keys.has(second)
    resp = await client.delete(f"/v1/recordings/{first}", headers=bearer(admin))
    assert resp.status == 204
    assert not store.keys.has(first)
    await store.db.execute(
        "UPDATE recordings SET expires_at = '2000-01-01T00:00:00Z' WHERE id = ?", (second,)
    )
    await store.db.commit()
    resp = await client.post("/v1/privacy/retention/run", headers=bearer(admin))
    assert resp.status == 200, await resp.text()
    run = await resp.json()
    assert run["recordings"] == 1
    assert run["data_keys_destroyed"] >= 1
    assert not store.keys.has(second)
    await client.close()


async def test_with_encryption_off_new_recordings_are_clear_and_sealed_ones_still_play(
    start_app: AppFactory,
    new_caller: Callable[..., Caller],
    tmp_path: Path,
    config_data: dict[str, Any],
) -> None:
    client = await start_app()
    sup = await add_user(client, "sup@example.com", "supervisor")
    sealed_id, _ = await recorded_call(client, new_caller)
    await client.close()
    client = await start_app({**config_data, "encryption": {"enabled": False}})
    sup = await add_user(client, "sup2@example.com", "supervisor")
    clear_id, _ = await recorded_call(client, new_caller, seed=4)
    store = client.app[store_key]
    clear_row = await store.recordings.get(clear_id)
    assert store.recording_path(clear_row.path).read_bytes()[:4] == b"RIFF"
    for rec_id in (sealed_id, clear_id):
        resp = await client.get(f"/v1/recordings/{rec_id}/audio", headers=bearer(sup))
        assert resp.status == 200
        row = await store.recordings.get(rec_id)
        assert hashlib.sha256(await resp.read()).hexdigest() == row.sha256
    await client.close()
