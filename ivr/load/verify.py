"""After the run: every call checked against its behaviour, through the server's REST API.

For each call the runner saw answered, :func:`verify_calls` reads
``GET /v1/calls/{id}`` (its recording decision, its recordings, how it
ended) and, where the behaviour must be recorded, the recording and its
audio. A recorded call must have exactly one recording whose caller channel
(left) holds exactly the talk frames the caller sent, as the server decodes
them (for G.711, the decoded audio), in order and contiguous, and whose
duration matches both the file and the frames the caller received while the
recording indicator was on. A call that must not be recorded must have no
recording and a decision that says so. A call the number's sampling left out
(``in_sample: false``) is counted apart, not as a failure.

Matching frames: the server records the caller sample-exactly into the left
channel on its 20 ms clock, writing digital silence for a tick whose caller
frame was missing or late. So the non-silent 20 ms frames of the left channel,
in order, must be the caller's non-silent talk frames, one for one
(:func:`check_caller_channel`).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import numpy as np
import numpy.typing as npt
import soundfile as sf

from ivr.load.audio import WireCodec, expected_talk, heard
from ivr.load.caller import CallResult
from ivr.load.errors import RequestFailed, ServerUnusable
from media.frame import Pcm

PARALLEL = 8
DURATION_SLACK_FRAMES = 3  # caller-observed span vs frames in the file
AGENT_HANGUP_TAIL_FRAMES = 15  # frames in flight or in the jitter buffer when the agent left


@dataclass(slots=True)
class CallCheck:
    """The verdict on one call."""

    index: int
    behaviour: str
    call_id: str | None
    outcome: str  # ok, sampled_out, mismatch, unverified
    problems: list[str] = field(default_factory=list)
    recording_id: str | None = None


@dataclass(slots=True)
class Verification:
    """Every call's verdict."""

    checks: list[CallCheck]

    @property
    def mismatches(self) -> list[CallCheck]:
        return [c for c in self.checks if c.outcome == "mismatch"]

    def counts(self) -> dict[str, dict[str, int]]:
        """behaviour -> outcome -> calls."""
        out: dict[str, Counter[str]] = {}
        for c in self.checks:
            out.setdefault(c.behaviour, Counter())[c.outcome] += 1
        return {b: dict(sorted(n.items())) for b, n in sorted(out.items())}


class Reader(Protocol):
    """What verification reads of a call and its recordings (the REST API's answers)."""

    async def json(self, path: str) -> dict[str, Any]:
        """``GET /v1/calls/{id}`` or ``GET /v1/recordings/{id}``; :class:`ApiFailed` if not 200."""

    async def audio(self, recording_id: str) -> bytes:
        """``GET /v1/recordings/{id}/audio``: the WAV file's bytes."""


class Api:
    """The few REST calls verification needs, with a bearer token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    async def json(self, path: str) -> dict[str, Any]:
        async with self.session.get(self.base + path, headers=self.headers) as resp:
            if resp.status != 200:
                raise ApiFailed(resp.status, path)
            data: dict[str, Any] = await resp.json()
            return data

    async def audio(self, recording_id: str) -> bytes:
        path = f"/v1/recordings/{recording_id}/audio"
        async with self.session.get(self.base + path, headers=self.headers) as resp:
            if resp.status != 200:
                raise ApiFailed(resp.status, path)
            return await resp.read()


class ApiFailed(RequestFailed):
    """An API read answered with another status than 200."""

    def __init__(self, status: int, path: str) -> None:
        super().__init__(f"GET {path}: HTTP {status}")
        self.status = status


async def login(session: aiohttp.ClientSession, base_url: str, email: str, password: str) -> str:
    """A bearer token; :class:`ServerUnusable` if the server is unreachable or says no."""
    url = base_url.rstrip("/") + "/v1/auth/login"
    try:
        async with session.post(url, json={"email": email, "password": password}) as resp:
            status, text = resp.status, await resp.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServerUnusable(f"cannot reach {base_url}: {exc or type(exc).__name__}") from exc
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("token"), str):
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message", "") if isinstance(error, dict) else ""
        why = f"HTTP {status} {message}".rstrip()
        raise ServerUnusable(f"cannot sign in as {email} at {base_url}: {why}")
    token: str = body["token"]
    return token


def frames_of(channel: npt.NDArray[np.int16], samples_per_frame: int) -> npt.NDArray[np.int16]:
    """A channel cut into whole 20 ms frames, ``(frames, samples)``."""
    whole = len(channel) // samples_per_frame * samples_per_frame
    return channel[:whole].reshape(-1, samples_per_frame)


def check_caller_channel(
    left: npt.NDArray[np.int16],
    sent: Sequence[Pcm],
    samples_per_frame: int,
    *,
    complete: bool = True,
    tail_slack: int = 0,
    lead_ignore: Sequence[Pcm] = (),
    silence: Pcm | None = None,
) -> str | None:
    """None if the non-silent frames of ``left`` are ``sent``'s non-silent frames, one for one.

    With ``complete=False`` the recording may stop early (the agent hung up):
    it must then hold a prefix of ``sent`` missing at most ``tail_slack``
    frames. Recorded frames at the start equal to one of ``lead_ignore`` (the
    tail of an in-band DTMF tone, sent just before the recording started) are
    skipped. ``silence`` is what the codec makes of the caller's silence (not
    digital zero for G.711 A-law, which has no zero level): such frames are
    silent too.
    """
    frames = frames_of(left, samples_per_frame)
    audible = np.any(frames != 0, axis=1)
    if silence is not None and np.any(silence):
        audible &= np.any(frames != silence, axis=1)
    heard = frames[audible]
    expected = [
        f for f in sent if np.any(f) and (silence is None or not np.array_equal(f, silence))
    ]
    skip = 0
    while skip < len(heard) and any(np.array_equal(heard[skip], t) for t in lead_ignore):
        skip += 1
    heard = heard[skip:]
    for i, frame in enumerate(heard):
        if i >= len(expected):
            return (
                f"caller channel: {len(heard)} frames of audio, but only {len(expected)} were sent"
            )
        if not np.array_equal(frame, expected[i]):
            where = next((j for j, e in enumerate(expected) if np.array_equal(frame, e)), None)
            got = f"sent frame {where}" if where is not None else "audio never sent"
            return f"caller channel: talk frame {i} of {len(expected)} holds {got}"
    missing = len(expected) - len(heard)
    if missing > (0 if complete else tail_slack):
        return f"caller channel: {missing} of the {len(expected)} frames sent are not recorded"
    return None


async def _check(
    api: Reader,
    r: CallResult,
    codec: WireCodec,
    talk_file_pcm: Pcm | None,
    tone_frames: Sequence[Pcm],
) -> CallCheck:
    check = CallCheck(r.index, r.behaviour, r.call_id, "ok")
    if r.call_id is None:
        check.outcome = "unverified"
        check.problems.append(f"never answered ({r.outcome})")
        return check
    problems = check.problems
    try:
        call = await api.json(f"/v1/calls/{r.call_id}")
    except ApiFailed as exc:
        check.outcome = "mismatch"
        problems.append(f"the server has no record of the call ({exc})")
        return check
    if r.hangup_reason is not None and call.get("end_reason") != r.hangup_reason:
        problems.append(
            f"the server says it ended with {call.get('end_reason')!r}, "
            f"the caller was told {r.hangup_reason!r}"
        )
    decision = call.get("recording_decision") or {}
    recordings: list[str] = list(call.get("recordings") or [])
    expected = r.expect_recorded
    if expected is None:
        check.outcome = "unverified"
        return check
    if expected and decision.get("in_sample") is False:
        expected = False
        check.outcome = "sampled_out"
    if not expected:
        if recordings:
            problems.append(
                f"recorded ({', '.join(recordings)}), but the {r.kind} caller must not be"
            )
        if decision.get("record"):
            problems.append("the recording decision says record")
        if r.recording_seen:
            problems.append("the caller was shown the recording indicator")
    else:
        if not decision.get("record"):
            why = "; ".join(decision.get("reasons", [])) or "no decision"
            problems.append(f"not recorded: {why}")
        if len(recordings) != 1:
            problems.append(f"{len(recordings)} recordings, expected exactly one")
        else:
            check.recording_id = recordings[0]
            await _check_recording(
                api, r, recordings[0], codec, talk_file_pcm, tone_frames, problems
            )
    if problems:
        check.outcome = "mismatch"
    return check


async def _check_recording(
    api: Reader,
    r: CallResult,
    recording_id: str,
    codec: WireCodec,
    talk_file_pcm: Pcm | None,
    tone_frames: Sequence[Pcm],
    problems: list[str],
) -> None:
    stats_id = (r.stats or {}).get("recording_id")
    if stats_id != recording_id:
        problems.append(f"hangup stats name recording {stats_id}, the API {recording_id}")
    try:
        rec = await api.json(f"/v1/recordings/{recording_id}")
        wav = await api.audio(recording_id)
    except ApiFailed as exc:
        problems.append(f"recording {recording_id}: {exc}")
        return
    if rec.get("status") != "complete":
        problems.append(f"recording status {rec.get('status')!r}, not 'complete'")
    try:
        audio, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        problems.append(f"the audio is not a readable WAV: {exc}")
        return
    if rate != codec.sample_rate or audio.shape[1] != 2:
        problems.append(
            f"audio is {audio.shape[1]} channel(s) at {rate} Hz, expected 2 at {codec.sample_rate}"
        )
        return
    n = codec.samples_per_frame
    seconds = len(audio) / rate
    if abs(float(rec.get("duration_s") or 0.0) - seconds) > 1.0 / rate:
        problems.append(f"duration_s {rec.get('duration_s')} but the file holds {seconds:.3f} s")
    if r.recording_frames is not None:
        slack = (
            DURATION_SLACK_FRAMES + int((r.stats or {}).get("frames_unsent", 0)) + r.frames_missing
        )
        recorded = len(audio) // n
        if abs(recorded - r.recording_frames) > slack:
            problems.append(
                f"the recording holds {recorded} frames, but the caller heard "
                f"{r.recording_frames} frames while it was on"
            )
    sent = expected_talk(
        codec, r.talk_frames, None if talk_file_pcm is not None else r.seed, talk_file_pcm
    )
    complete = r.kind != "agent_hangup"
    problem = check_caller_channel(
        np.ascontiguousarray(audio[:, 0]),
        sent,
        n,
        complete=complete,
        tail_slack=AGENT_HANGUP_TAIL_FRAMES,
        lead_ignore=tone_frames,
        silence=heard(codec, np.zeros(n, dtype=np.int16)),
    )
    if problem:
        problems.append(problem)


async def verify_calls(
    api: Reader,
    results: Sequence[CallResult],
    codec: WireCodec,
    *,
    talk_file_pcm: Pcm | None = None,
    tone_frames: Sequence[Pcm] = (),
) -> Verification:
    """Check every call; at most ``PARALLEL`` requests at once."""
    sem = asyncio.Semaphore(PARALLEL)

    async def one(r: CallResult) -> CallCheck:
        async with sem:
            try:
                return await _check(api, r, codec, talk_file_pcm, tone_frames)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return CallCheck(
                    r.index, r.behaviour, r.call_id, "mismatch", [f"API failed: {exc}"]
                )

    checks = await asyncio.gather(*(one(r) for r in results))
    return Verification(sorted(checks, key=lambda c: c.index))
