"""Text to speech with espeak-ng, and the renderer of the shipped prompts.

This module owns three things:

- :func:`render` runs ``espeak-ng`` (no shell, text on stdin) and returns its
  samples at espeak's native rate (22050 Hz for its own voices). It does not
  resample: the call path resamples with :mod:`media`.
- :func:`render_cached` renders a flow's ``prompt: {tts: ...}`` once into a
  cache folder, under a SHA-256 of the text, voice, speed and engine version
  (:func:`tts_cache_key`), so a new espeak-ng re-renders and nothing else does.
- :func:`render_prompt_dir` turns every ``prompts/NAME.txt`` into the shipped
  ``prompts/NAME.wav`` (16 kHz mono 16-bit), and :func:`render_hold_music`
  synthesises the hold loop. ``python -m ivr.speech.tts [PROMPTS_DIR]`` runs it.

A prompt's ``.txt`` file may start with one header line of comma-separated
``key: value`` pairs, then the text::

    # voice: fr, speed: 160
    Cet appel peut être enregistré.

Keys: ``voice`` (default ``en-us``), ``speed`` in words per minute (default
160), ``kind`` (``speech``, the default, or ``music`` for the hold loop, whose
text is only a description) and ``seconds`` (the loop length of music).

WAV files and resampling are :mod:`media`'s (:mod:`media.wavfile`,
:func:`media.resample.resample`, the anti-aliased resampler the calls use):
this module has no audio code of its own beyond trimming, fading and levels.

Every failure is :class:`ivr.errors.TtsError`; without espeak-ng its message
names the Debian package to install.

About 440 lines: rendering, the cache and the prompt folder share the header
parsing and the level rules above; none of it is on the call path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from ivr.errors import TtsError
from media.errors import AudioFileError
from media.resample import resample
from media.wavfile import parse_wav_stream, read_mono, write_mono

Samples = npt.NDArray[np.int16]

ESPEAK = "espeak-ng"
MISSING_ESPEAK = (
    "espeak-ng is not installed; install the Debian package espeak-ng (apt-get install espeak-ng)"
)
DEFAULT_VOICE = "en-us"
DEFAULT_SPEED_WPM = 160
MIN_SPEED_WPM = 80  # espeak-ng's own range (espeak-ng(1), option -s)
MAX_SPEED_WPM = 450

PROMPT_SAMPLE_RATE = 16000
"""Rate of the shipped prompt WAVs: the call path resamples once to 8 kHz if needed."""
PROMPT_PEAK_DBFS = -3.0
PROMPT_EDGE_SILENCE_S = 0.1
"""Silence kept before and after the speech of a shipped prompt, at most."""
HOLD_RMS_DBFS = -20.0

_RENDER_TIMEOUT_S = 60.0
_CACHE_FORMAT = 1  # bump when the cached file's layout changes
_FULL_SCALE = 32767.0


def espeak_available() -> bool:
    """Whether ``espeak-ng`` is on ``PATH``."""
    return shutil.which(ESPEAK) is not None


def _espeak_path() -> str:
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise TtsError(MISSING_ESPEAK)
    return exe


@functools.lru_cache(maxsize=8)
def _engine_version(exe: str) -> str:
    """``espeak-ng --version`` without the data path, once per executable."""
    try:
        done = subprocess.run(
            [exe, "--version"], capture_output=True, timeout=_RENDER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/...": the path is the
    # machine's, not the engine's, and must not change the cache key.
    return done.stdout.decode("utf-8", "replace").split("Data at:")[0].strip()


def _canonical_text(text: str) -> str:
    """NFC with runs of whitespace made one space: equal speech, equal key."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def render(
    text: str, voice: str, sample_rate: int | None = None, speed_wpm: int = DEFAULT_SPEED_WPM
) -> tuple[Samples, int]:
    """Speak ``text`` with espeak-ng; return mono int16 samples and their rate.

    The rate is espeak's native one (22050 Hz for its own voices, 16000 for
    mbrola voices); ``sample_rate`` is the rate the caller will resample to,
    accepted for symmetry with the call path and not used here. The text goes
    on stdin, so text that starts with ``-`` is never taken for an option.
    Raises :class:`TtsError` without espeak-ng, for an unknown voice (with
    espeak's message), for a speed outside 80-450 wpm, or for empty text.
    """
    del sample_rate  # resampling belongs to media, see the docstring
    spoken = _canonical_text(text)
    if not spoken:
        raise TtsError("nothing to say: the text is empty")
    if not MIN_SPEED_WPM <= speed_wpm <= MAX_SPEED_WPM:
        raise TtsError(
            f"speed {speed_wpm} wpm is outside espeak-ng's {MIN_SPEED_WPM}-{MAX_SPEED_WPM}"
        )
    exe = _espeak_path()
    argv = [exe, "-v", voice, "-s", str(speed_wpm), "-b", "1", "--stdin", "--stdout"]
    try:
        done = subprocess.run(
            argv,
            input=spoken.encode("utf-8"),
            capture_output=True,
            timeout=_RENDER_TIMEOUT_S,
            check=False,
        )
    except OSError as exc:
        raise TtsError(f"could not run {exe}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise TtsError(f"espeak-ng took longer than {_RENDER_TIMEOUT_S:.0f} s") from exc
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise TtsError(
            f"espeak-ng failed (exit {done.returncode}) with voice {voice!r}: {stderr or '?'}"
        )
    samples, rate = _parse_wav(done.stdout)
    if samples.size == 0:
        raise TtsError(f"espeak-ng produced no audio with voice {voice!r}: {stderr or '?'}")
    return samples, rate


def _parse_wav(data: bytes) -> tuple[Samples, int]:
    """Mono 16-bit PCM from espeak-ng's ``--stdout`` (:func:`media.wavfile.parse_wav_stream`)."""
    try:
        return parse_wav_stream(data)
    except AudioFileError as exc:
        raise TtsError(f"espeak-ng's output cannot be used: {exc}") from exc


def tts_cache_key(text: str, voice: str, speed_wpm: int = DEFAULT_SPEED_WPM) -> str:
    """SHA-256 hex naming the rendering of ``text`` by ``voice`` at ``speed_wpm``.

    The hashed value is canonical JSON of the cache format, the espeak-ng
    version (empty when espeak-ng is missing), the voice, the speed and the
    text (NFC, whitespace collapsed, as :func:`render` speaks it). A new
    engine version therefore names a new file and the prompt is rendered anew.
    """
    exe = shutil.which(ESPEAK)
    engine = _engine_version(exe) if exe is not None else ""
    canonical = json.dumps(
        {
            "engine": engine,
            "format": _CACHE_FORMAT,
            "speed_wpm": speed_wpm,
            "text": _canonical_text(text),
            "voice": voice,
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def render_cached(
    text: str, voice: str, cache_dir: Path, speed_wpm: int = DEFAULT_SPEED_WPM
) -> Path:
    """Render once into ``cache_dir/<key>.wav`` and return that path.

    The file is 16-bit mono WAV at espeak's native rate (the caller resamples).
    When it exists, espeak-ng is not run. It is written to a temporary file in
    the same folder and moved into place with :func:`os.replace`, so readers
    never see half a file and two renderers of the same key cannot clash.
    """
    path = cache_dir / f"{tts_cache_key(text, voice, speed_wpm)}.wav"
    if path.is_file():
        return path
    samples, rate = render(text, voice, speed_wpm=speed_wpm)
    write_wav(path, samples, rate)
    return path


def write_wav(path: Path, samples: Samples, sample_rate: int) -> None:
    """Write mono 16-bit PCM to ``path`` atomically, readable by all (prompts are shared)."""
    try:
        write_mono(path, samples, sample_rate, mode=0o644)
    except AudioFileError as exc:
        raise TtsError(str(exc)) from exc


# --- the shipped prompts ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptText:
    """A parsed ``prompts/NAME.txt``: what to render and how."""

    name: str
    text: str
    kind: Literal["speech", "music"] = "speech"
    voice: str = DEFAULT_VOICE
    speed_wpm: int = DEFAULT_SPEED_WPM
    seconds: float = 8.0  # loop length, for music only


def parse_prompt_text(name: str, content: str) -> PromptText:
    """Parse a prompt ``.txt``: an optional ``# key: value, ...`` line, then text.

    Raises :class:`TtsError` naming the prompt for an unknown key, a bad value,
    or speech with no text.
    """
    lines = content.splitlines()
    header: dict[str, str] = {}
    if lines and lines[0].lstrip().startswith("#"):
        for item in lines[0].lstrip()[1:].split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition(":")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value:
                raise TtsError(f"prompt {name}: header item {item.strip()!r} is not 'key: value'")
            header[key] = value
        lines = lines[1:]
    text = " ".join(" ".join(lines).split())
    unknown = sorted(set(header) - {"voice", "speed", "kind", "seconds"})
    if unknown:
        raise TtsError(f"prompt {name}: unknown header key(s) {', '.join(unknown)}")
    kind = header.get("kind", "speech")
    if kind not in ("speech", "music"):
        raise TtsError(f"prompt {name}: kind must be speech or music, not {kind!r}")
    try:
        speed_wpm = int(header.get("speed", DEFAULT_SPEED_WPM))
        seconds = float(header.get("seconds", 8.0))
    except ValueError as exc:
        raise TtsError(f"prompt {name}: {exc}") from exc
    if not MIN_SPEED_WPM <= speed_wpm <= MAX_SPEED_WPM:
        raise TtsError(
            f"prompt {name}: speed {speed_wpm} is outside {MIN_SPEED_WPM}-{MAX_SPEED_WPM} wpm"
        )
    if not 1.0 <= seconds <= 60.0:
        raise TtsError(f"prompt {name}: seconds must be within 1-60, not {seconds}")
    if kind == "speech" and not text:
        raise TtsError(f"prompt {name}: no text to speak")
    return PromptText(
        name=name,
        text=text,
        kind="music" if kind == "music" else "speech",
        voice=header.get("voice", DEFAULT_VOICE),
        speed_wpm=speed_wpm,
        seconds=seconds,
    )


def read_prompt_text(path: Path) -> PromptText:
    """Read and parse ``path`` (a ``NAME.txt``); see :func:`parse_prompt_text`."""
    return parse_prompt_text(path.stem, path.read_text(encoding="utf-8"))


def render_prompt(prompt: PromptText, sample_rate: int = PROMPT_SAMPLE_RATE) -> Samples:
    """The samples of a shipped prompt at ``sample_rate``.

    Speech is rendered by espeak-ng, resampled, trimmed to at most 100 ms of
    silence at each end and normalised to a -3 dBFS peak; music is
    :func:`render_hold_music`.
    """
    if prompt.kind == "music":
        return render_hold_music(sample_rate, prompt.seconds)
    samples, rate = render(prompt.text, prompt.voice, speed_wpm=prompt.speed_wpm)
    audio = resample(samples, rate, sample_rate).astype(np.float64)
    audio = _trim_silence(audio, round(PROMPT_EDGE_SILENCE_S * sample_rate))
    audio = _fade_edges(audio, round(0.005 * sample_rate))
    return _to_int16(audio, peak_dbfs=PROMPT_PEAK_DBFS)


def render_prompt_dir(prompts_dir: Path) -> list[Path]:
    """Render every ``prompts_dir/NAME.txt`` to ``NAME.wav``; return the WAVs written.

    Output: mono 16-bit PCM at 16000 Hz, each written atomically, in name
    order. A ``# kind: music`` prompt gets the hold loop instead of speech.
    """
    written: list[Path] = []
    for txt in sorted(prompts_dir.glob("*.txt")):
        prompt = read_prompt_text(txt)
        wav = txt.with_suffix(".wav")
        write_wav(wav, render_prompt(prompt), PROMPT_SAMPLE_RATE)
        written.append(wav)
    return written


def _trim_silence(
    x: npt.NDArray[np.float64], keep: int, threshold_db: float = -40.0
) -> npt.NDArray[np.float64]:
    """Cut leading and trailing silence down to at most ``keep`` samples.

    Silence is anything below ``threshold_db`` relative to the peak.
    """
    peak = float(np.max(np.abs(x), initial=0.0))
    if peak == 0.0:
        return x[:0]
    loud = np.flatnonzero(np.abs(x) >= peak * 10.0 ** (threshold_db / 20.0))
    return x[max(0, int(loud[0]) - keep) : int(loud[-1]) + 1 + keep]


def _fade_edges(x: npt.NDArray[np.float64], length: int) -> npt.NDArray[np.float64]:
    """Raised-cosine fade in and out over ``length`` samples: no click at the cuts."""
    n = min(length, x.size // 2)
    if n == 0:
        return x
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    y = x.copy()
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def _to_int16(
    x: npt.NDArray[np.float64], peak_dbfs: float | None = None, rms_dbfs: float | None = None
) -> Samples:
    """Scale to a peak or an RMS level in dBFS, round and clip to int16."""
    level = 0.0
    target = 0.0
    if peak_dbfs is not None:
        level, target = float(np.max(np.abs(x), initial=0.0)), peak_dbfs
    elif rms_dbfs is not None:
        level = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
        target = rms_dbfs
    y = x * (_FULL_SCALE * 10.0 ** (target / 20.0) / level) if level > 0.0 else x
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


# --- hold music --------------------------------------------------------------

# A I-vi-IV-V progression in C major, one chord per quarter of the loop, as
# MIDI note numbers: a bass root, then the arpeggio (up and back down).
_CHORDS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (48, (60, 64, 67, 72, 67, 64)),  # C
    (45, (57, 60, 64, 69, 64, 60)),  # A minor
    (41, (53, 57, 60, 65, 60, 57)),  # F
    (43, (55, 59, 62, 67, 62, 59)),  # G
)


def render_hold_music(sample_rate: int = PROMPT_SAMPLE_RATE, seconds: float = 8.0) -> Samples:
    """Gentle hold music: a slow arpeggio over soft sine chords, as one seamless loop.

    Four chords (C, Am, F, G), each a soft sustained pad with a six-note
    arpeggio over it, at about -20 dBFS RMS. The loop is exactly periodic:
    every partial has a whole number of cycles in the loop (frequencies are
    rounded to a multiple of ``1 / seconds`` Hz, a few cents at most) and is a
    sine of absolute loop time, and every envelope is smooth and wraps around
    the loop's end. So the last sample runs on into the first without a step,
    and the first sample is exactly zero (every ``sin`` is 0 at time 0), which
    makes starting playback click-free too.
    """
    n = round(sample_rate * seconds)
    if n <= 0:
        raise ValueError(f"a hold loop needs a positive length, not {seconds} s")
    loop_s = n / sample_rate
    t = np.arange(n, dtype=np.float64) / sample_rate
    out = np.zeros(n, dtype=np.float64)
    chord_s = loop_s / len(_CHORDS)

    def tone(midi: int) -> npt.NDArray[np.float64]:
        """A soft timbre: the fundamental and two quiet overtones, periodic in the loop."""
        f = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        sound = np.zeros(n, dtype=np.float64)
        for harmonic, gain in ((1, 1.0), (2, 0.12), (3, 0.04)):
            cycles = round(f * harmonic * loop_s)  # whole cycles per loop
            if cycles / loop_s < 0.45 * sample_rate:  # well below Nyquist
                sound += gain * np.sin(2.0 * np.pi * cycles * t / loop_s)
        return sound

    def circular(start_s: float) -> npt.NDArray[np.float64]:
        """Seconds since ``start_s``, wrapped into ``[0, loop)``."""
        return np.mod(t - start_s, loop_s)

    def note_envelope(
        since: npt.NDArray[np.float64], decay_s: float, length_s: float
    ) -> npt.NDArray[np.float64]:
        """Smooth attack, exponential decay, cosine release to zero by ``length_s``."""
        attack_s, release_s = 0.03, 0.4
        env = np.exp(-since / decay_s)
        env *= np.where(since < attack_s, 0.5 - 0.5 * np.cos(np.pi * since / attack_s), 1.0)
        tail = np.clip((since - (length_s - release_s)) / release_s, 0.0, 1.0)
        env *= 0.5 + 0.5 * np.cos(np.pi * tail)
        return np.where(since < length_s, env, 0.0)

    fade_s = min(0.5, chord_s / 2.0)
    for i, (bass, arpeggio) in enumerate(_CHORDS):
        start = i * chord_s
        # Pad: the chord's triad, faded in and out with raised cosines that
        # overlap the neighbours', so adjacent pads cross-fade at constant sum.
        since = circular(start - fade_s / 2.0)
        rise = np.clip(since / fade_s, 0.0, 1.0)
        fall = np.clip((since - chord_s) / fade_s, 0.0, 1.0)
        pad_env = (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 + 0.5 * np.cos(np.pi * fall))
        pad = sum((tone(m) for m in sorted(set(arpeggio))[:3]), np.zeros(n))
        out += 0.10 * pad_env * pad
        out += 0.35 * note_envelope(circular(start), 1.2, min(3.0, loop_s)) * tone(bass)
        step = chord_s / len(arpeggio)
        for j, midi in enumerate(arpeggio):
            env = note_envelope(circular(start + j * step), 0.7, min(2.5, loop_s))
            out += 0.30 * env * tone(midi)
    return _to_int16(out, rms_dbfs=HOLD_RMS_DBFS)


def main(argv: list[str] | None = None) -> int:
    """``python -m ivr.speech.tts [PROMPTS_DIR]``: re-render the shipped prompts."""
    args = sys.argv[1:] if argv is None else argv
    prompts_dir = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "prompts"
    try:
        written = render_prompt_dir(prompts_dir)
    except TtsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for wav in written:
        samples, rate = read_mono(wav)
        print(f"{wav}  {len(samples) / rate:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
