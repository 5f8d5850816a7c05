"""Transcription: redaction, the recogniser on real speech, the durable queue, and the app.

Speech is rendered with espeak-ng (slow and clear) and recognised by the real
pocketsphinx model; the queue runs on a real store in a temporary folder with
real WAV files; the end-to-end test calls the real app.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr import privacy
from ivr.config import NumberConfig
from ivr.server.keys import store_key, switchboard_key
from ivr.speech import tts
from ivr.speech.redaction import REDACTED, redact
from ivr.speech.transcribe import (
    Word,
    channel_segments,
    check_languages,
    model_for,
    speech_spans,
    transcribe_samples,
)
from ivr.speech.worker import MAX_ATTEMPTS, TranscriptionWorker, default_processes
from ivr.stamp import new_id, now_iso
from ivr.store import NewCall, Store
from media.frame import Pcm
from media.resample import resample
from tests.conftest import AppFactory, Caller, add_user

needs_espeak = pytest.mark.skipif(not tts.espeak_available(), reason="espeak-ng not installed")

# Recognised reliably from espeak-ng's en-us voice at 110-140 wpm over 8 kHz.
SENTENCE = "good morning, I have a problem with my computer"
CONTENT_WORDS = {"good", "morning", "problem", "computer"}
OTHER_SENTENCE = "I would like to pay my bill"


def speech(text: str, rate: int = 8000) -> Pcm:
    samples, native = tts.render(text, "en-us", speed_wpm=120)
    return resample(samples, native, rate)


def words_of(text: str) -> set[str]:
    return set(text.lower().split())


# -- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "my card number is four one one one one one one one one one one one one one one one",
            f"my card number is {REDACTED}",
        ),
        # Read out in groups, with fillers between them: still one card number.
        (
            "it is four one one one uh one one one one and one one one one then one one one one ok",
            f"it is {REDACTED} ok",
        ),
        # The recogniser writes "for" and "to" for digits; inside a run they are digits too.
        ("for one one one to one two please", f"{REDACTED} please"),
        ("call me on 555 1234 today", f"call me on {REDACTED} today"),
        ("the card is 4111-1111-1111-1111", f"the card is {REDACTED}"),
        ("twenty three forty five sixty seven", REDACTED),
        ("one two three four five six", REDACTED),
        # Five digits is not a run of six.
        ("one two three four five", "one two three four five"),
        ("twenty twenty one", "twenty twenty one"),
        # Homophones alone are words, not digits.
        ("i went to the shop for two hours", "i went to the shop for two hours"),
        ("i have two kids and one dog for ten years", "i have two kids and one dog for ten years"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_card_number_split_across_utterances_is_redacted_in_both() -> None:
    """Redaction runs over the whole channel: each utterance alone has only four digits."""

    def utterance(start_s: float, text: str) -> list[Word]:
        return [
            Word(w, start_s + i * 0.3, start_s + i * 0.3 + 0.25, 0.9)
            for i, w in enumerate(text.split())
        ]

    segments = channel_segments(
        "caller",
        [
            utterance(1.0, "the number is four one one one"),
            utterance(4.0, "one one one one"),
            utterance(7.0, "thank you"),
        ],
    )
    assert [s.text for s in segments] == ["the number is [redacted]", REDACTED, "thank you"]
    assert [s.start_s for s in segments] == [1.0, 4.0, 7.0]
    assert all(not any(c.isdigit() for c in s.text) for s in segments)


def test_speech_spans_cut_out_every_pause_with_a_guard() -> None:
    assert speech_spans(10.0, []) == [(0.0, 10.0)]
    spans = speech_spans(10.0, [(2.0, 3.0), (6.0, None)])
    assert spans == [(0.0, 1.98), (3.02, 5.98)]
    assert speech_spans(10.0, [(0.0, 10.0)]) == []


def test_only_languages_with_a_model_can_transcribe() -> None:
    assert model_for("en") == model_for("en-US") == model_for("en-gb") == "en-us"
    assert model_for("fr") is None
    numbers = {
        "+15550100": NumberConfig(name="a", flow="f", transcription=True),
        "+33100000000": NumberConfig(name="b", flow="f", transcription=True, language="fr"),
        "+33100000001": NumberConfig(name="c", flow="f", transcription=False, language="fr"),
    }
    [problem] = check_languages(numbers)
    assert problem.startswith("numbers.+33100000000.transcription:")
    assert "'fr'" in problem


# -- the recogniser on real speech ---------------------------------------------------------


@needs_espeak
def test_both_channels_are_transcribed_and_a_paused_span_never_is() -> None:
    """Speech inside a pause (here not even silenced) yields no word; outside it, it does."""
    rate = 8000
    quiet = np.zeros(rate // 2, dtype=np.int16)
    said, paused = speech(SENTENCE, rate), speech(OTHER_SENTENCE, rate)
    caller = np.concatenate([quiet, said, quiet, paused, quiet])
    agent = np.concatenate([quiet, quiet, said, np.zeros(len(caller) - len(said) - rate, np.int16)])
    pause = ((len(said) + rate) / rate, (len(said) + rate + len(paused)) / rate)
    stereo = np.stack([caller, agent], axis=1)

    transcript = transcribe_samples(stereo, rate, [pause], "en")

    assert transcript.engine == "pocketsphinx"
    assert transcript.model == "en-us"
    assert transcript.audio_s == pytest.approx(len(caller) / rate, abs=0.01)
    assert transcript.cpu_s > 0
    by_channel = {
        ch: " ".join(s.text for s in transcript.segments if s.channel == ch)
        for ch in ("caller", "agent")
    }
    assert len(words_of(by_channel["caller"]) & CONTENT_WORDS) >= 2, by_channel
    assert len(words_of(by_channel["agent"]) & CONTENT_WORDS) >= 2, by_channel
    for s in transcript.segments:
        assert s.end_s > s.start_s
        assert 0.0 <= s.confidence <= 1.0
        assert s.end_s <= pause[0] or s.start_s >= pause[1], s  # a pause covers both channels
    # The paused sentence is recognisable when not paused, and absent when it is.
    paused_words = {"would", "like", "pay", "bill"}
    unpaused = transcribe_samples(stereo, rate, [], "en")
    heard = " ".join(s.text for s in unpaused.segments if s.channel == "caller")
    assert words_of(heard) & paused_words, heard
    assert not words_of(by_channel["caller"]) & paused_words, by_channel


# -- the durable queue on a real store ---------------------------------------------------


NUMBER = "+15550100"
NUMBERS: Mapping[str, NumberConfig] = {
    NUMBER: NumberConfig(name="Support", flow="f", transcription=True),
    "+15550101": NumberConfig(name="Sales", flow="f", transcription=False),
}


async def add_recording(
    store: Store,
    audio: Pcm | bytes,
    *,
    number: str = NUMBER,
    rate: int = 8000,
    contact_id: str | None = None,
    expires_at: str | None = None,
) -> str:
    """A finished recording (a real stereo WAV, caller left) of a call to ``number``."""
    call_id, rec_id = new_id("c"), new_id("r")
    await store.calls.create(
        NewCall(
            id=call_id,
            number=number,
            contact_id=contact_id,
            flow_id="f",
            flow_version="v1",
            codec="pcm_s16le",
            sample_rate=rate,
            started_at=now_iso(),
        )
    )
    relative = f"test/{rec_id}.wav"
    path = store.recordings_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(audio, bytes):
        path.write_bytes(audio)
    else:
        sf.write(str(path), np.stack([audio, np.zeros_like(audio)], axis=1), rate, subtype="PCM_16")
    await store.create_recording(
        {
            "id": rec_id,
            "call_id": call_id,
            "path": relative,
            "status": "recording",
            "started_at": now_iso(),
            "sample_rate": rate,
            "channels": 2,
            "format": "wav/pcm_s16le",
            "transcribe": 1,
            "expires_at": expires_at,
        }
    )
    await store.finish_recording(rec_id, status="complete", ended_at=now_iso())
    return rec_id


async def job_state(store: Store, rec_id: str) -> str | None:
    """The state of a recording's transcription job (None: it has none)."""
    job = await store.transcripts.job(rec_id)
    return None if job is None else job.state


async def wait_jobs(store: Store, rec_ids: list[str], timeout_s: float = 40.0) -> dict[str, Any]:
    """Every job's row once none is pending or running (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = {r: await store.transcripts.job(r) for r in rec_ids}
        if all(j is not None and j.state not in ("pending", "running") for j in jobs.values()):
            return {r: asdict(j) for r, j in jobs.items() if j is not None}
        assert time.monotonic() < deadline, f"jobs not finished in {timeout_s} s: {jobs}"
        await asyncio.sleep(0.2)


@needs_espeak
async def test_a_restart_with_jobs_pending_finishes_them_and_drops_a_deleted_one(
    tmp_path: Path, database: str | None
) -> None:
    store = Store(tmp_path / "data", database)
    await store.open()
    clip = np.concatenate([np.zeros(4000, np.int16), speech(SENTENCE), np.zeros(4000, np.int16)])
    interrupted = await add_recording(store, clip)
    pending = await add_recording(store, clip, rate=8000)
    deleted = await add_recording(store, clip)
    # Finishing a recording to transcribe queued it, in the same statement.
    assert await job_state(store, pending) == "pending"
    # A server was working on the first job when it died; the third was deleted
    # by something that left its job behind.
    claimed = await store.claim_transcription()
    assert claimed is not None
    assert claimed["recording_id"] == interrupted
    await store.recordings.delete(deleted)
    await store.close()

    store = Store(tmp_path / "data", database)  # the restart
    await store.open()
    worker = TranscriptionWorker(store, NUMBERS, poll_s=0.2)
    worker.start()
    try:
        jobs = await wait_jobs(store, [interrupted, pending, deleted])
    finally:
        await worker.stop()
    assert jobs[interrupted]["state"] == "done"
    assert jobs[interrupted]["attempts"] == 2  # the crashed attempt counts
    assert jobs[pending]["state"] == "done"
    assert jobs[deleted]["state"] == "dropped"
    assert "deleted" in jobs[deleted]["last_error"]
    for rec_id in (interrupted, pending):
        transcript = await store.transcripts.get(rec_id)
        assert transcript is not None
        assert transcript.engine == "pocketsphinx"
        assert transcript.model == "en-us"
        text = " ".join(s.text for s in transcript.segments if s.channel == "caller")
        assert len(words_of(text) & CONTENT_WORDS) >= 2, text
        assert all(s.engine == "pocketsphinx" for s in transcript.segments)
    assert await store.transcripts.get(deleted) is None
    await store.close()


@needs_espeak
async def test_a_stop_mid_job_puts_it_back_without_counting_the_attempt(
    tmp_path: Path, database: str | None
) -> None:
    store = Store(tmp_path / "data", database)
    await store.open()
    said = speech(SENTENCE)
    rec_id = await add_recording(store, np.concatenate([said, np.zeros(8000, np.int16)] * 4))
    worker = TranscriptionWorker(store, NUMBERS, poll_s=0.1)
    worker.start()
    deadline = time.monotonic() + 10
    while await job_state(store, rec_id) != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the worker process is starting or decoding
    started = time.monotonic()
    await worker.stop()
    assert time.monotonic() - started < 5  # a decode in progress is ended, not waited for
    job = await store.transcripts.job(rec_id)
    assert job is not None
    assert (job.state, job.attempts) == ("pending", 0)
    assert await store.transcripts.get(rec_id) is None

    worker = TranscriptionWorker(store, NUMBERS, poll_s=0.1)
    worker.start()
    try:
        jobs = await wait_jobs(store, [rec_id])
    finally:
        await worker.stop()
    assert (jobs[rec_id]["state"], jobs[rec_id]["attempts"]) == ("done", 1)
    await store.close()


@needs_espeak
async def test_a_recording_deleted_while_it_is_transcribed_leaves_nothing(
    tmp_path: Path, database: str | None
) -> None:
    store = Store(tmp_path / "data", database)
    await store.open()
    said = speech(SENTENCE)
    rec_id = await add_recording(store, np.concatenate([said, np.zeros(8000, np.int16)] * 3))
    worker = TranscriptionWorker(store, NUMBERS, poll_s=0.1)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while await job_state(store, rec_id) != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await store.recordings.delete(rec_id)
        jobs = await wait_jobs(store, [rec_id])
    finally:
        await worker.stop()
    assert jobs[rec_id]["state"] == "dropped"
    # Whether the deletion beat the worker process to the file or came while it
    # decoded, nothing is stored; the second case, made certain:
    segment = {"channel": "caller", "start_s": 0, "end_s": 1, "text": "hi", "confidence": 1}
    head = {"engine": "pocketsphinx", "model": "en-us", "language": "en", "audio_s": 1, "cpu_s": 1}
    assert await store.save_transcript(rec_id, head, [segment]) is False
    assert await store.transcripts.get(rec_id) is None
    assert await count(store, "SELECT COUNT(*) FROM transcript_segments") == 0
    assert await count(store, "SELECT COUNT(*) FROM transcripts") == 0
    await store.close()


async def test_a_failing_job_is_tried_a_bounded_number_of_times(
    tmp_path: Path, database: str | None
) -> None:
    store = Store(tmp_path / "data", database)
    await store.open()
    broken = await add_recording(store, b"RIFF, but not a WAV file at all")
    switched_off = await add_recording(store, np.zeros(8000, np.int16), number="+15550101")
    worker = TranscriptionWorker(store, NUMBERS, processes=64, poll_s=0.2)
    assert worker.processes == default_processes()  # one per spare core, at most
    worker.start()
    try:
        jobs = await wait_jobs(store, [broken, switched_off])
    finally:
        await worker.stop()
    assert jobs[broken]["state"] == "failed"
    assert jobs[broken]["attempts"] == MAX_ATTEMPTS
    assert "AudioFileError" in jobs[broken]["last_error"]
    assert jobs[switched_off]["state"] == "dropped"
    assert await store.transcripts.get(broken) is None
    await store.close()


async def test_transcripts_follow_their_recording_into_exports_erasures_and_purges(
    tmp_path: Path, database: str | None
) -> None:
    store = Store(tmp_path / "data", database)
    await store.open()
    quiet = np.zeros(8000, np.int16)
    caller = await store.calls.contact_id("+15557770001")
    other = await store.calls.contact_id("+15557770002")
    kept = await add_recording(store, quiet, contact_id=caller)
    expired = await add_recording(store, quiet, contact_id=other, expires_at="2000-01-01T00:00:00Z")
    head = {"engine": "pocketsphinx", "model": "en-us", "language": "en", "audio_s": 1, "cpu_s": 1}
    for rec_id in (kept, expired):
        segment = {
            "channel": "caller",
            "start_s": 0.1,
            "end_s": 0.9,
            "text": rec_id,
            "confidence": 1,
        }
        assert await store.save_transcript(rec_id, head, [segment])
        assert await job_state(store, rec_id) == "done"

    since, until = privacy.default_window()
    out = tmp_path / "export.zip"
    manifest = await privacy.export(
        store, privacy.ExportRequest("contact", "+15557770001", since, until), out
    )
    assert manifest["counts"]["transcripts"] == 1
    with zipfile.ZipFile(out) as zf:
        body = zf.read(f"transcripts/{kept}.json")
        names = zf.namelist()
    [entry] = [f for f in manifest["files"] if f["path"] == f"transcripts/{kept}.json"]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest()
    assert json.loads(body)["segments"][0]["text"] == kept
    assert f"transcripts/{expired}.json" not in names

    purged = await privacy.purge_expired(store, datetime.now(UTC))
    assert (purged["recordings"], purged["transcripts"]) == (1, 1)
    assert await store.transcripts.get(expired) is None

    receipt = await privacy.erase(store, "contact", "+15557770001", None)
    assert receipt["erased"]["recordings"] == 1
    assert receipt["erased"]["transcripts"] == 1
    for table in ("transcripts", "transcript_segments", "transcription_jobs"):
        assert await count(store, f"SELECT COUNT(*) FROM {table}") == 0, table
    await store.close()


# -- end to end on the real app ---------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def count(store: Store, sql: str, *args: Any) -> int:
    async with store.transaction() as db:
        row = await db.one(sql, args)
    assert row is not None
    return int(row[0])


def frames_of(samples: Pcm, rate: int = 8000) -> list[Pcm]:
    n = rate // 50
    padded = np.concatenate([samples, np.zeros(-len(samples) % n, np.int16)])
    return [padded[i : i + n] for i in range(0, len(padded), n)]


async def speak_and_hang_up(
    client: TestClient[web.Request, web.Application],
    new_caller: Callable[..., Caller],
    number: str,
    digit: str | None,
    frames: list[Pcm],
) -> Caller:
    caller = new_caller(client)
    await caller.dial(number)
    if digit is not None:
        await caller.wait_for("prompt", event="start", node="consent")
        await caller.send({"type": "dtmf", "digits": digit})
    await caller.wait_for("connected")
    caller.start_audio(frames)
    await asyncio.sleep(len(frames) * 0.02 + 0.3)
    await caller.hangup()
    await caller.closed_wait()
    return caller


@needs_espeak
async def test_a_caller_who_presses_1_and_speaks_is_transcribed_and_no_one_else(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    supervisor = await add_user(client, "sup@example.com", "supervisor")
    silence = [np.zeros(160, np.int16)] * 25
    frames = silence + frames_of(speech(SENTENCE)) + silence
    consented, refused, off, private = await asyncio.gather(
        speak_and_hang_up(client, new_caller, "+15550100", "1", frames),
        speak_and_hang_up(client, new_caller, "+15550100", "2", frames),
        speak_and_hang_up(client, new_caller, "+15550101", None, frames),  # transcription off
        speak_and_hang_up(client, new_caller, "+15550199", None, frames),  # recording off
    )
    assert consented.of_type("transcription")[-2:] == [
        {"type": "transcription", "state": "on"},
        {"type": "transcription", "state": "off"},
    ]
    for caller in (refused, off, private):
        assert {m["state"] for m in caller.of_type("transcription")} == {"off"}
    rec_id = consented.of_type("hangup")[0]["stats"]["recording_id"]
    off_rec = off.of_type("hangup")[0]["stats"]["recording_id"]
    assert rec_id is not None
    assert off_rec is not None
    assert refused.of_type("hangup")[0]["stats"]["recording_id"] is None
    assert private.of_type("hangup")[0]["stats"]["recording_id"] is None

    url = f"/v1/recordings/{rec_id}/transcript"
    deadline = time.monotonic() + 40
    while True:
        resp = await client.get(url, headers=bearer(supervisor))
        if resp.status == 200:
            break
        body = await resp.json()
        assert resp.status == 404, body
        assert body["error"]["code"] == "no_transcript", body
        assert body["error"].get("state") in ("pending", "running"), body
        assert time.monotonic() < deadline, "no transcript within 40 s"
        await asyncio.sleep(0.5)
    transcript = await resp.json()
    assert transcript["engine"] == "pocketsphinx"
    assert transcript["model"] == "en-us"
    caller_text = " ".join(s["text"] for s in transcript["segments"] if s["channel"] == "caller")
    assert len(words_of(caller_text) & CONTENT_WORDS) >= 2, transcript
    for s in transcript["segments"]:
        assert set(s) == {"channel", "start_s", "end_s", "text", "confidence", "engine", "model"}
    meta = await (await client.get(f"/v1/recordings/{rec_id}", headers=bearer(supervisor))).json()
    assert meta["transcript_available"] is True

    # Transcription off for the number: recorded, never queued, never transcribed.
    store = client.app[store_key]
    assert await store.transcripts.job(off_rec) is None
    resp = await client.get(f"/v1/recordings/{off_rec}/transcript", headers=bearer(supervisor))
    assert resp.status == 404
    assert (await resp.json())["error"] == {
        "code": "no_transcript",
        "message": "this recording has no transcript",
    }
    listed = await (await client.get("/v1/recordings", headers=bearer(supervisor))).json()
    available = {r["id"]: r["transcript_available"] for r in listed["items"]}
    assert available == {rec_id: True, off_rec: False}
    assert await count(store, "SELECT COUNT(*) FROM transcripts") == 1

    # The transcript goes with its recording.
    resp = await client.delete(f"/v1/recordings/{rec_id}", headers=bearer(supervisor))
    assert resp.status == 204
    assert await store.transcripts.get(rec_id) is None
    segments = "SELECT COUNT(*) FROM transcript_segments WHERE recording_id = ?"
    assert await count(store, segments, rec_id) == 0


# -- languages: no model, no transcription ---------------------------------------------


async def test_transcription_cannot_be_switched_on_for_a_language_without_a_model(
    start_app: AppFactory,
) -> None:
    client = await start_app()
    admin = await add_user(client, "adm@example.com", "admin")
    sb = client.app[switchboard_key]
    sb.set_number("+15550101", sb.numbers["+15550101"].model_copy(update={"language": "fr"}))
    resp = await client.patch(
        "/v1/numbers/+15550101", headers=bearer(admin), json={"transcription": True}
    )
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["field"] == "transcription"
    assert "'fr'" in error["message"]
    assert "cannot be switched on" in error["message"]
    assert sb.numbers["+15550101"].transcription is False
    # Other changes to the number still go through, and English numbers can switch on.
    resp = await client.patch(
        "/v1/numbers/+15550101", headers=bearer(admin), json={"record_percent": 50}
    )
    assert resp.status == 200
    for on in (False, True):
        resp = await client.patch(
            "/v1/numbers/+15550100", headers=bearer(admin), json={"transcription": on}
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["transcription"] is on


async def test_a_numbers_language_from_the_config_is_the_live_one(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    data = json.loads(json.dumps(config_data))
    data["numbers"]["+15550101"]["language"] = "fr"
    client = await start_app(data)
    assert client.app[switchboard_key].numbers["+15550101"].language == "fr"
