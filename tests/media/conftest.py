"""Shared fixtures for the media tests: speech rendered by espeak-ng, cached per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from media.dtmf import DBM0_PEAK
from media.frame import Pcm
from media.resample import resample

# Several voices (male and female variants, accents), speeds (words per
# minute) and pitches, so that pitch harmonics and formants sweep across the
# DTMF bands. Female and high-pitched voices put harmonics near 700-1600 Hz.
VOICES = [
    ("en-us", 175, 50),
    ("en-gb", 150, 40),
    ("en-us+f3", 190, 70),
    ("en-gb-scotland", 140, 30),
    ("en-029", 210, 60),
    ("en-us+f4", 160, 90),
    ("en-gb+m3", 230, 20),
    ("en-us+f2", 120, 99),
    ("en+klatt", 170, 50),
    ("en-gb-x-rp+f1", 180, 80),
]

TEXTS = [
    "Thank you for calling. This call may be recorded for quality and training purposes. "
    "Press one to be recorded, or press two for a line without recording. If you know your "
    "party's extension, you may dial it at any time.",
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore, and "
    "the shells she sells are surely seashells. Peter Piper picked a peck of pickled peppers.",
    "Your account number is four seven one nine, two two eight zero. Your balance is three "
    "hundred and sixty five dollars and forty nine cents. Your next payment of one hundred and "
    "twenty dollars is due on the fifth of March.",
    "Please hold while we connect you to the next available agent. Our opening hours are "
    "Monday to Friday, nine in the morning until six in the evening. Calls are answered in "
    "the order they are received.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was "
    "the season of light, it was the season of darkness.",
    "Hello? Yes, hi! I wanted to ask about my order. It hasn't arrived yet, and the tracking "
    "page says it was delivered on Tuesday. Could you check, please? Oh, and my phone number "
    "is oh seven seven nine, eight two three, four five six.",
    "Mmm, well, ahh, let me think about it. Eeeeee. Ooooooh. Wow! Really? No way. Beep beep. "
    "La la la la la. Meow. Hmmmm. Uh huh. Yes. No. Maybe.",
    "To speak to someone about a new claim, say claim or press three. For billing, say billing "
    "or press four. To repeat these options, press star. To return to the main menu, press "
    "the pound key.",
]

SPEECH_DBM0 = -16.0  # active speech level on a telephone line, roughly


@dataclass(frozen=True, slots=True)
class Utterance:
    """One rendered clip: who said it and the samples at the rate asked for."""

    label: str
    sample_rate: int
    pcm: Pcm

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.sample_rate


def _render(directory: Path) -> list[tuple[str, int, Pcm]]:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        message = "espeak-ng is not installed (.ci/setup --test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    clips = []
    for v, (voice, speed, pitch) in enumerate(VOICES):
        for t, text in enumerate(TEXTS):
            if (v + t) % 2:  # half the texts per voice: every text in five voices
                continue
            path = directory / f"{v}-{t}.wav"
            if not path.exists():
                command = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path)]
                subprocess.run([*command, text], check=True, capture_output=True, timeout=60)
            with wave.open(str(path), "rb") as w:
                assert w.getnchannels() == 1
                assert w.getsampwidth() == 2
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
            clips.append((f"{voice} {speed}wpm p{pitch} text{t}", rate, pcm))
    return clips


@pytest.fixture(scope="session")
def espeak_clips(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int, Pcm]]:
    """Every clip as espeak-ng rendered it (22050 Hz), rendered once per session."""
    return _render(tmp_path_factory.mktemp("speech"))


def speech_at(clips: list[tuple[str, int, Pcm]], sample_rate: int) -> list[Utterance]:
    """The clips resampled to ``sample_rate`` and scaled to ``SPEECH_DBM0`` while active."""
    utterances = []
    for label, rate, pcm in clips:
        x = resample(pcm, rate, sample_rate).astype(np.float64)
        active = x[np.abs(x) > 0.01 * np.abs(x).max()]
        gain = DBM0_PEAK / np.sqrt(2) * 10 ** (SPEECH_DBM0 / 20) / np.sqrt(np.mean(active**2))
        scaled = np.clip(np.rint(x * gain), -32768, 32767).astype(np.int16)
        utterances.append(Utterance(label, sample_rate, scaled))
    return utterances


@pytest.fixture(scope="session")
def speech_8k(espeak_clips: list[tuple[str, int, Pcm]]) -> list[Utterance]:
    """The speech corpus at 8000 Hz."""
    return speech_at(espeak_clips, 8000)


@pytest.fixture(scope="session")
def speech_16k(espeak_clips: list[tuple[str, int, Pcm]]) -> list[Utterance]:
    """The speech corpus at 16000 Hz."""
    return speech_at(espeak_clips, 16000)
