"""Transcription: offline speech recognition of finished recordings, where allowed.

This module owns three things (DESIGN.md part 6):

* **The recogniser.** pocketsphinx, whose English model ships in its wheel,
  decodes each channel of a recording (caller left, agent right) offline.
  Recordings are 8 or 16 kHz; the acoustic model is 16 kHz, so 8 kHz audio is
  resampled with :func:`media.resample.resample` (anti-aliased, not sample
  doubling). A voice-activity detector cuts each channel into utterances, and
  each utterance becomes one segment with its times and a confidence (the mean
  word posterior). Paused spans (``recordings.pauses``: live pauses,
  ``pause_recording`` nodes and sensitive gathers) are cut out before anything
  is decoded, so no word is ever recognised inside one.
* **Redaction.** Spoken card numbers and any run of six or more digits,
  written as digits or spoken as number words ("four one one one ..."), are
  replaced by ``[redacted]`` before the text leaves the worker process. A run
  is found across a whole channel, not per segment, so a card number read out
  in groups with pauses between them is still one run.
* **The worker.** A durable queue in the store (``transcription_jobs``): a
  trigger enqueues a recording with ``transcribe = 1`` the moment it is
  finished (complete, or interrupted and repaired), and :class:`TranscriptionWorker`
  works the queue off in a bounded :class:`~concurrent.futures.ProcessPoolExecutor`
  (at most one process per spare core, each scheduled only when a core would
  otherwise idle), so decoding never runs on the event loop and yields the CPU
  to live calls. A restart resumes what was pending or running; a failed job is retried up to
  :data:`MAX_ATTEMPTS` times, then marked failed; a job whose recording was
  deleted is dropped.

Only numbers whose language has a model can transcribe (:func:`model_for`,
:func:`check_languages`): a recogniser for the wrong language produces
confident garbage, which is worse than no transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ivr.config import NumberConfig
from ivr.errors import IvrError, NotFound
from ivr.store import Store
from media.frame import Pcm
from media.resample import resample
from media.wavfile import read_stereo

log = logging.getLogger("ivr.transcribe")

ENGINE = "pocketsphinx"
MODEL_RATE = 16000  # the shipped acoustic model's sample rate
FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate (-frate)
# Primary language subtag (BCP 47) -> model folder inside the pocketsphinx wheel.
MODELS: Mapping[str, str] = {"en": "en-us"}
MAX_ATTEMPTS = 3
REDACTED = "[redacted]"
MIN_DIGITS = 6  # a run of this many digits or more is redacted
PAUSE_GUARD_S = 0.02  # one frame either side of a pause is never decoded
NOISE_FLOOR = 48.0  # RMS of the added noise: about -57 dBFS, a quiet telephone line
MAX_UTTERANCE_S = 30.0  # longer speech regions are decoded in pieces, bounding memory
POLL_S = 1.0
IDLE_POOL_S = 60.0  # an idle pool's processes are ended after this long

Channel = Literal["caller", "agent"]
CHANNELS: tuple[Channel, ...] = ("caller", "agent")


class TranscriptionError(IvrError):
    """A recording could not be transcribed."""


class NoModel(TranscriptionError):
    """No speech recognition model ships for the language."""


# -- languages -----------------------------------------------------------------------


def model_for(language: str) -> str | None:
    """The model for a BCP 47 tag (``en``, ``en-US``, ``en-GB``), or None if none ships."""
    return MODELS.get(language.split("-", 1)[0].strip().lower())


def check_languages(numbers: Mapping[str, NumberConfig]) -> list[str]:
    """One message per number that has transcription on but no model for its language."""
    return [
        f"numbers.{number_id}.transcription: no speech recognition model for language "
        f"{number.language!r} (models ship for: {', '.join(sorted(MODELS))}); "
        "switch transcription off for this number"
        for number_id, number in sorted(numbers.items())
        if number.transcription and model_for(number.language) is None
    ]


# -- redaction -----------------------------------------------------------------------

# Digits each number word stands for. Homophones the recogniser writes for
# digits ("for", "to", "won", "ate", "oh") count only inside a run with at
# least three unambiguous digits, so "go to the shop for two hours" is left alone.
_UNITS = {
    "zero": 1,
    "one": 1,
    "two": 1,
    "three": 1,
    "four": 1,
    "five": 1,
    "six": 1,
    "seven": 1,
    "eight": 1,
    "nine": 1,
    "ten": 2,
    "eleven": 2,
    "twelve": 2,
    "thirteen": 2,
    "fourteen": 2,
    "fifteen": 2,
    "sixteen": 2,
    "seventeen": 2,
    "eighteen": 2,
    "nineteen": 2,
    "twenty": 2,
    "thirty": 2,
    "forty": 2,
    "fifty": 2,
    "sixty": 2,
    "seventy": 2,
    "eighty": 2,
    "ninety": 2,
    "hundred": 2,
    "thousand": 3,
    "million": 6,
    "double": 1,  # "double four": the four counts the other one
    "triple": 2,
}
_TENS = {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
_ONES = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
_WEAK = {"oh": 1, "o": 1, "to": 1, "too": 1, "for": 1, "fore": 1, "won": 1, "ate": 1, "nought": 1}
# Words people put between the groups of a card number; they join two runs.
_FILLERS = {"uh", "um", "er", "ah", "and", "then", "dash", "space", "hyphen", "comma", "is"}
_MAX_FILLERS = 2
_DIGITS = re.compile(r"[0-9][0-9 ./-]*")


def _digits(token: str, previous: str | None) -> tuple[int, bool] | None:
    """(digits, unambiguous) that a token stands for, or None if it is not a number."""
    bare = token.lower().strip(".,;:!?\"'()[]")
    if bare and _DIGITS.fullmatch(bare):
        return sum(c.isdigit() for c in bare), True
    if bare in _UNITS:
        if previous in _TENS and bare in _ONES:
            return 0, True  # "twenty three" is two digits, not three
        return _UNITS[bare], True
    if bare in _WEAK:
        return _WEAK[bare], False
    return None


def redaction_mask(tokens: Sequence[str]) -> list[bool]:
    """Which tokens to redact: runs of number words (and fillers between them) of 6+ digits.

    A run is a stretch of number tokens where at most two filler words ("uh",
    "and", "dash") separate one group from the next, so "four one one one uh
    one one one one ..." is one run, as a card number read out in groups is.
    """
    mask = [False] * len(tokens)
    i = 0
    while i < len(tokens):
        first = _digits(tokens[i], None)
        if first is None:
            i += 1
            continue
        start = end = i  # the run is tokens[start:end + 1]
        total, strong = first[0], first[0] if first[1] else 0
        j = i + 1
        while j < len(tokens):
            got = _digits(tokens[j], tokens[j - 1].lower())
            if got is not None:
                total += got[0]
                strong += got[0] if got[1] else 0
                end = j
                j += 1
                continue
            k = j
            while k < len(tokens) and k - j < _MAX_FILLERS and tokens[k].lower() in _FILLERS:
                k += 1
            if k > j and k < len(tokens) and _digits(tokens[k], None) is not None:
                j = k
                continue
            break
        if total >= MIN_DIGITS and strong >= MIN_DIGITS // 2:
            for n in range(start, end + 1):
                mask[n] = True
        i = end + 1
    return mask


def _join(tokens: Sequence[str], mask: Sequence[bool]) -> str:
    out: list[str] = []
    for token, hidden in zip(tokens, mask, strict=True):
        if not hidden:
            out.append(token)
        elif not out or out[-1] != REDACTED:
            out.append(REDACTED)
    return " ".join(out)


def redact(text: str) -> str:
    """``text`` with every spoken or written run of 6+ digits replaced by ``[redacted]``."""
    tokens = text.split()
    return _join(tokens, redaction_mask(tokens))


# -- the recogniser (runs inside worker processes) --------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One utterance of one channel, as stored."""

    channel: Channel
    start_s: float
    end_s: float
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the worker process hands back: redacted segments and what it cost."""

    engine: str
    model: str
    language: str
    segments: tuple[Segment, ...]
    audio_s: float
    cpu_s: float


def _pocketsphinx() -> Any:
    # Imported by name, in the worker processes only: the server never loads
    # the recogniser, and the package has no type information.
    return importlib.import_module("pocketsphinx")


class Recogniser:
    """A pocketsphinx decoder for one model, and the voice-activity detector it needs."""

    def __init__(self, model: str) -> None:
        ps = _pocketsphinx()
        self.model = model
        root = Path(ps.get_model_path(model))
        self._ps = ps
        self._decoder = ps.Decoder(
            hmm=str(root / model),
            lm=str(root / f"{model}.lm.bin"),
            dict=str(root / f"cmudict-{model}.dict"),
            samprate=MODEL_RATE,
            loglevel="FATAL",
        )

    def utterances(self, pcm: Pcm) -> Iterator[tuple[float, Pcm]]:
        """(start_s, samples) of each stretch of speech in 16 kHz ``pcm``."""
        endpointer = self._ps.Endpointer(sample_rate=MODEL_RATE)
        step = int(endpointer.frame_bytes) // 2
        # Silence after the end lets the detector close a last utterance by itself.
        padded = np.concatenate([pcm, np.zeros(int(MODEL_RATE * 0.5), dtype=np.int16)])
        speech: list[bytes] = []
        for at in range(0, len(padded), step):
            frame = padded[at : at + step].tobytes()
            got = (
                endpointer.process(frame)
                if len(frame) == step * 2
                else endpointer.end_stream(frame)
            )
            if got is not None:
                speech.append(got)
                if not endpointer.in_speech:
                    yield from self._pieces(float(endpointer.speech_start), speech)
                    speech = []
        if speech:
            yield from self._pieces(float(endpointer.speech_start), speech)

    @staticmethod
    def _pieces(start_s: float, speech: list[bytes]) -> Iterator[tuple[float, Pcm]]:
        samples = np.frombuffer(b"".join(speech), dtype=np.int16)
        size = int(MAX_UTTERANCE_S * MODEL_RATE)
        for at in range(0, len(samples), size):
            yield start_s + at / MODEL_RATE, samples[at : at + size]

    def words(self, pcm: Pcm, offset_s: float, until_s: float) -> list[Word]:
        """The words of one utterance, timed from ``offset_s`` and never past ``until_s``.

        Fillers (silence, breath, noise) are left out.
        """
        d = self._decoder
        d.start_utt()
        d.process_raw(with_noise_floor(pcm).tobytes(), full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            return []
        out = []
        for seg in d.seg():
            word = str(seg.word)
            if word.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], ++NOISE++
                continue
            out.append(
                Word(
                    text=re.sub(r"\(\d+\)$", "", word),  # "read(2)": an alternative pronunciation
                    start_s=round(min(offset_s + seg.start_frame / FRAMES_PER_SECOND, until_s), 2),
                    end_s=round(
                        min(offset_s + (seg.end_frame + 1) / FRAMES_PER_SECOND, until_s), 2
                    ),
                    probability=min(max(float(seg.prob), 0.0), 1.0),
                )
            )
        return out


def with_noise_floor(pcm: Pcm) -> Pcm:
    """``pcm`` plus faint white noise (:data:`NOISE_FLOOR`), the same for the same input.

    Recordings hold digital silence (a quiet leg, a softphone's muted
    microphone, synthetic speech between words). The model's features (log
    filter-bank energies with noise removal and cepstral mean normalisation)
    degenerate on exact zeros, and the decoder then loses whole words around
    them; the noise floor of a quiet telephone line keeps them well defined.
    On ``bench/wer_bench.py`` (espeak-ng speech at 8 kHz) the word error rate
    is 93% without it and about 61% with it.
    """
    rng = np.random.default_rng(len(pcm))
    noisy = pcm + rng.normal(0.0, NOISE_FLOOR, len(pcm))
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


_recognisers: dict[str, Recogniser] = {}


def recogniser(model: str) -> Recogniser:
    """This process's recogniser for ``model``, loaded once."""
    if model not in _recognisers:
        _recognisers[model] = Recogniser(model)
    return _recognisers[model]


def speech_spans(
    duration_s: float, pauses: Sequence[tuple[float, float | None]]
) -> list[tuple[float, float]]:
    """The parts of ``[0, duration_s]`` outside every pause (and its guard)."""
    spans: list[tuple[float, float]] = []
    at = 0.0
    for start, end in sorted((s, duration_s if e is None else e) for s, e in pauses):
        cut_from, cut_to = max(start - PAUSE_GUARD_S, 0.0), min(end + PAUSE_GUARD_S, duration_s)
        if cut_from > at:
            spans.append((at, cut_from))
        at = max(at, cut_to)
    if at < duration_s:
        spans.append((at, duration_s))
    return spans


def channel_segments(channel: Channel, utterances: list[list[Word]]) -> list[Segment]:
    """Redact across the whole channel, then make one segment per utterance."""
    words = [w for u in utterances for w in u]
    mask = iter(redaction_mask([w.text for w in words]))
    out = []
    for u in utterances:
        hidden = [next(mask) for _ in u]
        if not u:
            continue
        out.append(
            Segment(
                channel=channel,
                start_s=u[0].start_s,
                end_s=u[-1].end_s,
                text=_join([w.text for w in u], hidden),
                confidence=round(sum(w.probability for w in u) / len(u), 3),
            )
        )
    return out


def transcribe_samples(
    samples: npt.NDArray[np.int16],
    sample_rate: int,
    pauses: Sequence[tuple[float, float | None]],
    language: str,
) -> Transcript:
    """Transcribe a stereo recording (caller left, agent right) outside its pauses."""
    started = time.process_time()
    model = model_for(language)
    if model is None:
        raise NoModel(f"no speech recognition model for language {language!r}")
    rec = recogniser(model)
    duration_s = len(samples) / sample_rate
    spans = speech_spans(duration_s, pauses)
    segments: list[Segment] = []
    for index, channel in enumerate(CHANNELS):
        if samples.shape[1] <= index:
            continue
        audio = np.ascontiguousarray(samples[:, index])
        if sample_rate != MODEL_RATE:
            audio = resample(audio, sample_rate, MODEL_RATE)
        utterances = []
        for span_from, span_to in spans:
            part = audio[round(span_from * MODEL_RATE) : round(span_to * MODEL_RATE)]
            for start_s, pcm in rec.utterances(part):
                utterances.append(rec.words(pcm, span_from + start_s, span_to))
        segments.extend(channel_segments(channel, utterances))
    segments.sort(key=lambda s: (s.start_s, s.channel))
    return Transcript(
        engine=ENGINE,
        model=model,
        language=language,
        segments=tuple(segments),
        audio_s=round(duration_s, 3),
        cpu_s=round(time.process_time() - started, 3),
    )


def transcribe_file(
    path: str, pauses: Sequence[tuple[float, float | None]], language: str
) -> Transcript:
    """Transcribe a recording file; what the worker processes run."""
    samples, rate = read_stereo(Path(path))
    return transcribe_samples(samples, rate, pauses, language)


PR_SET_PDEATHSIG = 1  # prctl(2), from <linux/prctl.h>
PARENT_POLL_S = 0.5  # how often the fallback watcher looks at the parent


def _child_init(parent: int) -> None:
    """Make a worker process yield the CPU to everything else and die with the server.

    ``SCHED_IDLE`` (Linux, sched(7)) runs the process only when a core would
    otherwise idle, so a decode waits for the media clock and the calls rather
    than the other way round; elsewhere the lowest ``nice`` priority is the
    nearest thing. Ctrl-C is the server's. ``parent`` is the server's pid: a
    worker must not outlive it, even a ``kill -9`` of it (:func:`_die_with_parent`).
    """
    with contextlib.suppress(OSError):
        os.nice(19)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def _die_with_parent(parent: int, *, prctl: bool = sys.platform.startswith("linux")) -> None:
    """End this process when ``parent`` dies, however it dies.

    On Linux the kernel sends SIGKILL on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``). The signal is tied to the parent thread
    that started the worker: the pool starts workers from the thread that
    submits jobs, the event loop's, which lives as long as the server.
    Elsewhere, or if ``prctl`` fails, a daemon thread watches ``os.getppid()``
    and exits when it changes. Either way, a parent that died before this ran
    is caught by looking at ``os.getppid()`` once armed. ``prctl=False``
    uses the watcher alone (as on other platforms).
    """
    armed = False
    if prctl:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(1)
    if not armed:
        threading.Thread(
            target=_watch_parent, args=(parent,), name="parent-watch", daemon=True
        ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


# -- the worker (in the server) --------------------------------------------------------


def default_processes() -> int:
    """One process per spare core, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def _pauses(raw: str | None) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    for p in json.loads(raw or "[]"):
        end = p.get("end_s")
        out.append((float(p["start_s"]), None if end is None else float(end)))
    return out


class TranscriptionWorker:
    """Works off the store's transcription queue in a bounded process pool.

    ``numbers`` is the live mapping of number settings (the switchboard's): a
    job whose number no longer has transcription on is dropped, and the
    number's language picks the model. ``processes`` is capped at one per
    spare core; the pool is started at the first job and ended after
    :data:`IDLE_POOL_S` without one.
    """

    def __init__(
        self,
        store: Store,
        numbers: Mapping[str, NumberConfig],
        *,
        processes: int | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.store = store
        self.numbers = numbers
        self.processes = max(1, min(processes or default_processes(), default_processes()))
        self.poll_s = poll_s
        self._slots = asyncio.Semaphore(self.processes)
        self._pool: ProcessPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle_since = time.monotonic()

    def start(self) -> None:
        """Resume the queue and keep working it off until :meth:`stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="transcription")

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking jobs; a job cut short goes back to the queue for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in list(self._jobs):
            job.cancel()
        for job in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await self._close_pool()

    async def _run(self) -> None:
        resumed = await self.store.requeue_transcriptions()
        found = await self.store.enqueue_transcriptions()
        if resumed or found:
            log.info("transcription: %d job(s) resumed, %d queued", resumed, found)
        while True:
            await self._slots.acquire()
            try:
                job = await self.store.claim_transcription()
            except Exception:
                self._slots.release()
                log.exception("transcription: the queue could not be read; trying again")
                await asyncio.sleep(self.poll_s)
                continue
            if job is None:
                self._slots.release()
                await self._idle()
                continue
            task = asyncio.get_running_loop().create_task(
                self._work(job), name=f"transcribe-{job['recording_id']}"
            )
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    async def _idle(self) -> None:
        idle_s = time.monotonic() - self._idle_since
        if not self._jobs and self._pool is not None and idle_s > IDLE_POOL_S:
            await self._close_pool()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_s)
        self._wake.clear()

    async def _work(self, job: dict[str, Any]) -> None:
        rec_id = job["recording_id"]
        try:
            await self._transcribe(job)
        except asyncio.CancelledError:
            # Shutting down: not the job's fault, so the attempt is not counted.
            await self.store.finish_transcription(rec_id, "pending", refund=True)
            raise
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            self._slots.release()
            self._idle_since = time.monotonic()
            self._wake.set()

    async def _transcribe(self, job: dict[str, Any]) -> None:
        rec_id = job["recording_id"]
        if job["path"] is None:
            await self.store.finish_transcription(rec_id, "dropped", "the recording was deleted")
            return
        number = self.numbers.get(job["number"])
        if number is None or not number.transcription:
            await self.store.finish_transcription(
                rec_id, "dropped", "transcription is off for the number"
            )
            return
        if model_for(number.language) is None:
            await self.store.finish_transcription(
                rec_id, "failed", f"no speech recognition model for language {number.language!r}"
            )
            return
        try:
            path = self.store.recording_path(job["path"])
        except NotFound:
            path = None
        if path is None or not path.is_file():
            await self.store.finish_transcription(rec_id, "dropped", "the recording's file is gone")
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor(), transcribe_file, str(path), _pauses(job["pauses"]), number.language
        )
        transcript: Transcript = await future
        # Defence in depth: the worker redacted across the channel already.
        segments = [
            {
                "channel": s.channel,
                "start_s": s.start_s,
                "end_s": s.end_s,
                "text": redact(s.text),
                "confidence": s.confidence,
            }
            for s in transcript.segments
        ]
        saved = await self.store.save_transcript(
            rec_id,
            {
                "engine": transcript.engine,
                "model": transcript.model,
                "language": transcript.language,
                "audio_s": transcript.audio_s,
                "cpu_s": transcript.cpu_s,
            },
            segments,
        )
        if not saved:
            await self.store.finish_transcription(
                rec_id, "dropped", "the recording was deleted while it was transcribed"
            )
            return
        log.info(
            "transcribed %s: %d segment(s), %.1f s of audio in %.1f s of CPU",
            rec_id,
            len(segments),
            transcript.audio_s,
            transcript.cpu_s,
        )

    async def _failed(self, job: dict[str, Any], exc: BaseException) -> None:
        rec_id = job["recording_id"]
        if isinstance(exc, BrokenProcessPool):
            await self._close_pool()  # a process died (killed, out of memory): start afresh
        error = f"{type(exc).__name__}: {exc}"[:500]
        final = job["attempts"] >= MAX_ATTEMPTS
        log.warning(
            "transcription of %s failed (attempt %d of %d): %s",
            rec_id,
            job["attempts"],
            MAX_ATTEMPTS,
            error,
        )
        try:
            await self.store.finish_transcription(rec_id, "failed" if final else "pending", error)
        except Exception:
            log.exception("transcription: could not record the failure of %s", rec_id)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                # Spawned, not forked: the server has threads (the store's, the
                # recorder's) whose locks a forked child would inherit held.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_init,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_end_pool, pool)


def _end_pool(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down now, ending a decode in progress rather than waiting for it."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(5)
