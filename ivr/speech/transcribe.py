"""Transcription's recogniser: offline speech recognition of a recording's samples.

pocketsphinx, whose English model ships in its wheel, decodes each channel of
a recording (caller left, agent right) offline, in a worker process
(:mod:`ivr.speech.worker` runs these functions there; nothing here touches
the store or the event loop). Recordings are 8 or 16 kHz; the acoustic model
is 16 kHz, so 8 kHz audio is resampled with :func:`media.resample.resample`
(anti-aliased, not sample doubling). A voice-activity detector cuts each
channel into utterances, and each utterance becomes one segment with its
times and a confidence (the mean word posterior). Paused spans
(``recordings.pauses``: live pauses, ``pause_recording`` nodes and sensitive
gathers) are cut out before anything is decoded, so no word is ever
recognised inside one. Digit runs are redacted across each channel
(:mod:`ivr.speech.redaction`) before the transcript leaves the process.

Only numbers whose language has a model can transcribe (:func:`model_for`,
:func:`check_languages`): a recogniser for the wrong language produces
confident garbage, which is worse than no transcript.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ivr.config import NumberConfig
from ivr.errors import IvrError
from ivr.speech.redaction import join_redacted, redaction_mask
from media.frame import Pcm
from media.resample import resample
from media.sealed import SealedAudio, read_audio
from media.wavfile import read_stereo

ENGINE = "pocketsphinx"
MODEL_RATE = 16000  # the shipped acoustic model's sample rate
FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate (-frate)
# Primary language subtag (BCP 47) -> model folder inside the pocketsphinx wheel.
MODELS: Mapping[str, str] = {"en": "en-us"}
PAUSE_GUARD_S = 0.02  # one frame either side of a pause is never decoded
NOISE_FLOOR = 48.0  # RMS of the added noise: about -57 dBFS, a quiet telephone line
MAX_UTTERANCE_S = 30.0  # longer speech regions are decoded in pieces, bounding memory

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


# -- the recogniser ---------------------------------------------------------------------


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
                text=join_redacted([w.text for w in u], hidden),
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
    path: str,
    pauses: Sequence[tuple[float, float | None]],
    language: str,
    key: bytes | None = None,
) -> Transcript:
    """Transcribe a recording file (sealed: with its data ``key``); what worker processes run."""
    if key is None:
        samples, rate = read_stereo(Path(path))
    else:
        with SealedAudio(Path(path), key) as audio:
            samples, rate = read_audio(audio)
    return transcribe_samples(samples, rate, pauses, language)
