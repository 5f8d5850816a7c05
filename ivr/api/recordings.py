"""``/v1/recordings``: list, metadata, audio (Range), transcript, QA notes/score/tags, deletion."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr.access.policy import Action, permits, scope
from ivr.api.base import (
    ApiError,
    Route,
    audit_of,
    query_limit,
    query_time,
    read_model,
    refuse_object,
    require,
    store_of,
)
from ivr.e164 import is_e164
from ivr.errors import NotFound, StoreError
from ivr.store import RecordingRow, Store, TranscriptRow, User
from ivr.store.keyring import KeyDestroyed
from media.errors import AudioFileError
from media.sealed import Audio


async def recording_out(store: Store, rec: RecordingRow, *, notes: bool = False) -> dict[str, Any]:
    """A recording as the API shows it, with its latest consent and (``notes``) its QA notes."""
    consents = await store.calls.consents(rec.call_id)
    out = {
        "id": rec.id,
        "call_id": rec.call_id,
        "agent_id": rec.agent_id,
        "agent_name": rec.agent_name,
        "contact": rec.contact,
        "number": rec.number,
        "line": rec.line,
        "status": rec.status,
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
        "duration_s": rec.duration_s,
        "sample_rate": rec.sample_rate,
        "channels": rec.channels,
        "format": rec.format,
        "sha256": rec.sha256,
        "size_bytes": rec.size_bytes,
        "consent": consents[-1].public() if consents else None,
        "transcript_available": await store.transcripts.exists(rec.id),
        "score": rec.score,
        "tags": rec.tags,
        "pauses": rec.pauses,
        "gaps": rec.gaps,
        "truncated_at_s": rec.truncated_at_s,
        "truncated_reason": rec.truncated_reason,
    }
    if notes:
        out["notes"] = [asdict(n) for n in await store.recordings.notes(rec.id)]
    return out


async def list_recordings(request: web.Request) -> web.Response:
    user = await require(request, "recordings.read")
    own = scope(user, "recordings.read") == "own"
    q = request.query
    agent_id = q.get("agent_id")
    contact = q.get("contact")
    if contact is not None and not is_e164(contact):
        raise ApiError(
            422, "invalid", "'contact' must be an E.164 number like +15550100", field="contact"
        )
    store = store_of(request)
    if own and agent_id is not None and agent_id != user.id:
        items: list[RecordingRow] = []
        nxt = None
    else:
        try:
            items, nxt = await store.recordings.page(
                agent_id=user.id if own else agent_id,
                contact=contact,
                since=query_time(request, "since"),
                until=query_time(request, "until"),
                cursor=q.get("cursor"),
                limit=query_limit(request),
            )
        except StoreError as exc:
            raise ApiError(422, "invalid", f"cursor: {exc}", field="cursor") from None
    await audit_of(request).record(
        user, "recordings.list", "ok", object_type="recording", detail={"count": len(items)}
    )
    return web.json_response({"items": [await recording_out(store, r) for r in items], "next": nxt})


async def visible_recording(
    request: web.Request, action: Action
) -> tuple[User, Store, RecordingRow]:
    """The recording of the path, if the user may see it; else the 404 that hides it."""
    user = await require(request, action)
    store = store_of(request)
    rec_id = request.match_info["recording_id"]
    try:
        rec = await store.recordings.get(rec_id)
    except NotFound:
        raise await refuse_object(request, user, action, "recording", rec_id) from None
    # A recording still being written is not there yet for anyone.
    if rec.status == "recording" or not permits(user, action, {"agent_id": rec.agent_id}):
        raise await refuse_object(request, user, action, "recording", rec_id)
    return user, store, rec


async def get_recording(request: web.Request) -> web.Response:
    user, store, rec = await visible_recording(request, "recordings.read")
    await audit_of(request).record(
        user, "recordings.read", "ok", object_type="recording", object_id=rec.id
    )
    return web.json_response(await recording_out(store, rec, notes=True))


async def recording_audio(request: web.Request) -> web.StreamResponse:
    user, store, rec = await visible_recording(request, "recordings.audio")
    try:
        audio = await asyncio.to_thread(
            store.recording_audio, rec.path, expect_bytes=rec.size_bytes
        )
    except KeyDestroyed:
        raise ApiError(404, "not_found", "the recording's data key is destroyed") from None
    except NotFound:
        raise ApiError(404, "not_found", "the recording's file is missing") from None
    except AudioFileError as exc:
        log.error("recording %s cannot be served: %s", rec.id, exc)
        raise ApiError(500, "damaged", "the recording's file is damaged") from None
    await audit_of(request).record(
        user,
        "recordings.audio",
        "ok",
        object_type="recording",
        object_id=rec.id,
        detail={"range": request.headers.get("Range", "")[:64]},
    )
    try:
        return await send_audio(request, audio, "audio/wav")
    finally:
        audio.close()


log = logging.getLogger("ivr.api")
_BYTE_RANGE = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)", re.ASCII)
_CHUNK = 1 << 16


def byte_range(header: str | None, size: int, if_range: str | None = None) -> range | None:
    """The bytes a ``Range`` header asks for, by RFC 9110 section 14; None for the whole file.

    - No header, a unit other than ``bytes`` (section 14.2: ignored), an
      ``If-Range`` (section 13.1.5: this server sends no validators, so none
      can match, and the whole file is sent), or more than one range (section
      14.2 lets a server ignore the field; the whole file is simpler than
      multipart/byteranges): None, a 200 with the whole file.
    - One satisfiable range (section 14.1.2): ``first-last`` or ``first-``
      with ``first`` inside the file (``last`` past the end means the end),
      or ``-n`` with ``n`` at least 1 (the last ``n`` bytes, or all of them).
    - Anything else is refused with 416 (section 15.5.17): an invalid
      ranges-specifier (section 14.1.1: a ``last`` before its ``first``, no
      digits, other text), ``first`` at or past the end, or ``-0``, which asks
      for no bytes at all.
    """
    if header is None or if_range is not None:
        return None
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    specs = [s.strip() for s in spec.split(",") if s.strip()]  # RFC 9110 5.6.1: empty items
    if len(specs) > 1:
        return None
    shown = header[:64]
    found = _BYTE_RANGE.fullmatch(specs[0]) if specs else None
    if found is None:
        raise _unsatisfiable(f"Range {shown!r} is not a byte range (bytes=first-last)", size)
    first, last, suffix = found.groups()
    if suffix is not None:
        if int(suffix) == 0 or size == 0:
            raise _unsatisfiable(f"Range {shown!r} asks for no bytes", size)
        return range(max(size - int(suffix), 0), size)
    if last and int(last) < int(first):
        raise _unsatisfiable(f"Range {shown!r} ends before it starts", size)
    if int(first) >= size:
        raise _unsatisfiable(f"Range {shown!r} starts past the end ({size} bytes)", size)
    end = min(int(last) + 1, size) if last else size
    return range(int(first), end)


def _unsatisfiable(message: str, size: int) -> ApiError:
    # RFC 9110 section 15.5.17: a 416 says the current length in Content-Range.
    return ApiError(
        416, "range_not_satisfiable", message, headers={"Content-Range": f"bytes */{size}"}
    )


async def send_audio(request: web.Request, audio: Audio, content_type: str) -> web.StreamResponse:
    """Stream a recording's plain WAV, whole (200) or one byte range (206); see :func:`byte_range`.

    Read (and, for a sealed file, decrypted: only the chunks the range
    covers) off the event loop in 64 KiB pieces, so a long recording never
    stalls it and never sits whole in memory.
    """
    size = audio.size
    wanted = byte_range(request.headers.get("Range"), size, request.headers.get("If-Range"))
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "private, no-store",
        "Accept-Ranges": "bytes",  # RFC 9110 section 14.3
    }
    if wanted is None:
        wanted = range(size)
        status = 200
    else:
        status = 206
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.stop - 1}/{size}"
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(wanted)
    await resp.prepare(request)
    pos, end = wanted.start, wanted.stop
    try:
        while pos < end:
            try:
                chunk = await asyncio.to_thread(audio.read_at, pos, min(_CHUNK, end - pos))
            except (AudioFileError, OSError) as exc:
                log.error("a recording stopped being readable mid-way: %s", exc)
                break  # the client sees a short body
            if not chunk:
                break  # the file shrank under us: the client sees a short body
            await resp.write(chunk)
            pos += len(chunk)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client left mid-way (a seek in the player): nothing to answer
    return resp


def transcript_out(transcript: TranscriptRow) -> dict[str, Any]:
    """A transcript as the API shows it: segments in time order, both channels."""
    return {
        "recording_id": transcript.recording_id,
        "engine": transcript.engine,
        "model": transcript.model,
        "language": transcript.language,
        "audio_s": transcript.audio_s,
        "created_at": transcript.created_at,
        "segments": [asdict(s) for s in transcript.segments],
    }


_NO_TRANSCRIPT = {
    "pending": "this recording's transcript is not ready yet",
    "running": "this recording's transcript is not ready yet",
    "failed": "this recording could not be transcribed",
}


async def recording_transcript(request: web.Request) -> web.Response:
    user, store, rec = await visible_recording(request, "recordings.transcript")
    transcript = await store.transcripts.get(rec.id)
    await audit_of(request).record(
        user,
        "recordings.transcript",
        "ok",
        object_type="recording",
        object_id=rec.id,
        detail={"found": transcript is not None},
    )
    if transcript is None:
        job = await store.transcripts.job(rec.id)
        if job is None:
            raise ApiError(404, "no_transcript", "this recording has no transcript")
        message = _NO_TRANSCRIPT.get(job.state, "this recording has no transcript")
        raise ApiError(404, "no_transcript", message, state=job.state)
    return web.json_response(transcript_out(transcript))


class RecordingPatch(BaseModel):
    """QA fields: a note to add, a score (0-100, or null to clear), the tags."""

    model_config = ConfigDict(extra="forbid", strict=True)
    note: str | None = Field(default=None, min_length=1, max_length=10000)
    score: int | None = Field(default=None, ge=0, le=100)
    tags: list[str] | None = Field(default=None, max_length=50)


async def patch_recording(request: web.Request) -> web.Response:
    user, store, rec = await visible_recording(request, "recordings.annotate")
    body = await read_model(request, RecordingPatch)
    if body.tags is not None and any(not 1 <= len(t) <= 64 for t in body.tags):
        raise ApiError(422, "invalid", "tags: each tag has 1 to 64 characters", field="tags")
    clear = "score" in body.model_fields_set and body.score is None
    await store.recordings.annotate(
        rec.id,
        score=body.score,
        clear_score=clear,
        tags=sorted(set(body.tags)) if body.tags is not None else None,
    )
    if body.note is not None:
        await store.recordings.add_note(rec.id, user.id, body.note)
    await audit_of(request).record(
        user,
        "recordings.annotate",
        "ok",
        object_type="recording",
        object_id=rec.id,
        detail={"fields": sorted(body.model_fields_set)},
    )
    return web.json_response(
        await recording_out(store, await store.recordings.get(rec.id), notes=True)
    )


async def delete_recording(request: web.Request) -> web.Response:
    user, store, rec = await visible_recording(request, "recordings.delete")
    await store.transcripts.delete(rec.id)
    await store.recordings.delete(rec.id)
    await audit_of(request).record(
        user, "recordings.delete", "ok", object_type="recording", object_id=rec.id
    )
    return web.Response(status=204)


ROUTES: list[Route] = [
    ("GET", "/v1/recordings", list_recordings),
    ("GET", "/v1/recordings/{recording_id}", get_recording),
    ("PATCH", "/v1/recordings/{recording_id}", patch_recording),
    ("DELETE", "/v1/recordings/{recording_id}", delete_recording),
    ("GET", "/v1/recordings/{recording_id}/audio", recording_audio),
    ("GET", "/v1/recordings/{recording_id}/transcript", recording_transcript),
]
