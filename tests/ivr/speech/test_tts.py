"""Tests of ivr.speech.tts: espeak-ng rendering, its cache, the shipped prompts, hold music."""

from __future__ import annotations

import os
import shutil
import stat
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ivr.errors import TtsError
from ivr.speech import tts

PROMPTS = Path(__file__).resolve().parents[3] / "prompts"
SHIPPED = (
    "notice_en",
    "consent_menu_en",
    "notice_fr",
    "consent_menu_fr",
    "notice_sales_en",
    "welcome_desk_en",
    "welcome_private_en",
    "bot_greeting_en",
    "bot_greeting_fr",
    "no_agent_en",
    "no_agent_fr",
    "hold",
)
CONSENT_PAIRS = (("notice_en", "consent_menu_en"), ("notice_fr", "consent_menu_fr"))

needs_espeak = pytest.mark.skipif(not tts.espeak_available(), reason="espeak-ng not installed")


def read_wav(path: Path) -> tuple[npt.NDArray[np.int16], int, int, int]:
    """Samples, rate, channels and sample width of a PCM WAV."""
    with wave.open(str(path), "rb") as f:
        frames = f.readframes(f.getnframes())
        return (
            np.frombuffer(frames, dtype="<i2").astype(np.int16),
            f.getframerate(),
            f.getnchannels(),
            f.getsampwidth(),
        )


def dbfs(level: float) -> float:
    return 20.0 * float(np.log10(level / 32767.0))


def rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))


def tone_level(x: npt.NDArray[np.float64], rate: int, freq: float) -> float:
    """Amplitude of ``freq`` in ``x``, by correlation over a whole number of cycles."""
    t = np.arange(x.size) / rate
    return float(2.0 * np.abs(np.mean(x * np.exp(-2j * np.pi * freq * t))))


def counting_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put an espeak-ng wrapper first and alone on PATH; return its call log."""
    real = shutil.which("espeak-ng")
    assert real is not None
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    wrapper = bin_dir / "espeak-ng"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    log.touch()
    monkeypatch.setenv("PATH", str(bin_dir))
    return log


# --- render ------------------------------------------------------------------


@needs_espeak
def test_render_speaks_a_phrase() -> None:
    """A short phrase is loud enough, not clipped and about as long as it takes to say."""
    samples, rate = tts.render("Press one to continue.", "en-us", 16000)
    assert samples.dtype == np.int16
    assert samples.ndim == 1
    assert rate == 22050  # espeak's native rate; resampling is the caller's
    assert 0.8 < samples.size / rate < 3.0
    assert dbfs(rms(samples)) > -40.0
    assert np.count_nonzero(np.abs(samples.astype(np.int32)) > 1000) > rate // 10


@needs_espeak
def test_render_speed_changes_length() -> None:
    text = "This call may be recorded."
    slow, _ = tts.render(text, "en-us", speed_wpm=120)
    fast, _ = tts.render(text, "en-us", speed_wpm=240)
    assert slow.size > 1.5 * fast.size


@needs_espeak
def test_render_text_starting_with_dash_is_spoken_not_an_option() -> None:
    samples, rate = tts.render("-w oops", "en-us")
    assert samples.size > rate // 4


@needs_espeak
def test_render_unknown_voice_reports_espeak_error() -> None:
    with pytest.raises(TtsError, match=r"voice 'xx-nosuch'.*does not exist"):
        tts.render("hello", "xx-nosuch")


@needs_espeak
@pytest.mark.parametrize("text", ["", "   \n "])
def test_render_empty_text_is_refused(text: str) -> None:
    with pytest.raises(TtsError, match="empty"):
        tts.render(text, "en-us")


@needs_espeak
@pytest.mark.parametrize("speed", [79, 451])
def test_render_speed_out_of_range_is_refused(speed: int) -> None:
    with pytest.raises(TtsError, match="speed"):
        tts.render("hello", "en-us", speed_wpm=speed)


def test_missing_espeak_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not tts.espeak_available()
    with pytest.raises(TtsError, match=r"apt-get install espeak-ng") as info:
        tts.render("hello", "en-us", 16000)
    assert "Debian package espeak-ng" in str(info.value)
    with pytest.raises(TtsError, match="espeak-ng"):
        tts.render_cached("hello", "en-us", tmp_path / "cache")


def test_parse_wav_takes_streamed_data_to_the_end() -> None:
    """espeak-ng's --stdout header carries placeholder sizes; the data runs to EOF."""
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    header = (
        b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
        b"\x22\x56\x00\x00\x44\xac\x00\x00\x02\x00\x10\x00data\x00\xf0\xff\x7f"
    )
    samples, rate = tts._parse_wav(header + pcm.astype("<i2").tobytes())
    assert rate == 22050
    assert samples.tolist() == pcm.tolist()
    with pytest.raises(TtsError):
        tts._parse_wav(b"not a wav at all")


# --- cache -------------------------------------------------------------------


def test_cache_key_is_canonical_and_distinguishes_inputs() -> None:
    key = tts.tts_cache_key("Hello  there", "en-us", 160)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert key == tts.tts_cache_key(" Hello there\n", "en-us", 160)
    # NFC: a precomposed and a decomposed "é" are the same text.
    assert tts.tts_cache_key("Désolé", "fr", 160) == tts.tts_cache_key(
        "De\u0301sole\u0301", "fr", 160
    )
    others = {
        tts.tts_cache_key("Hello there!", "en-us", 160),
        tts.tts_cache_key("Hello there", "en-gb", 160),
        tts.tts_cache_key("Hello there", "en-us", 170),
    }
    assert key not in others
    assert len(others) == 3


@needs_espeak
def test_render_cached_runs_espeak_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = counting_espeak(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    first = tts.render_cached("Your call is important to us.", "en-us", cache)
    calls = log.read_text().splitlines()
    assert sum("--stdout" in c for c in calls) == 1
    mtime = first.stat().st_mtime_ns

    again = tts.render_cached("Your call is important to us.", "en-us", cache)
    assert again == first
    assert log.read_text().splitlines() == calls  # espeak-ng not run at all
    assert first.stat().st_mtime_ns == mtime

    assert first.parent == cache
    assert first.name == tts.tts_cache_key("Your call is important to us.", "en-us", 160) + ".wav"
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary left
    samples, rate, channels, width = read_wav(first)
    assert (rate, channels, width) == (22050, 1, 2)
    assert dbfs(rms(samples)) > -40.0

    tts.render_cached("Your call is important to us.", "en-us", cache, speed_wpm=200)
    assert sum("--stdout" in c for c in log.read_text().splitlines()) == 2


@needs_espeak
def test_render_cached_failure_leaves_no_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(TtsError):
        tts.render_cached("hello", "xx-nosuch", cache)
    assert not cache.exists() or list(cache.iterdir()) == []


# --- prompt files ------------------------------------------------------------


def test_parse_prompt_text_defaults_and_header() -> None:
    plain = tts.parse_prompt_text("a", "Hello\nthere.\n")
    assert plain == tts.PromptText(name="a", text="Hello there.")
    assert (plain.kind, plain.voice, plain.speed_wpm) == ("speech", "en-us", 160)
    fr = tts.parse_prompt_text("b", "# voice: fr, speed: 175\nBonjour.\n")
    assert (fr.voice, fr.speed_wpm, fr.text) == ("fr", 175, "Bonjour.")
    music = tts.parse_prompt_text("hold", "# kind: music, seconds: 6\nA description.\n")
    assert (music.kind, music.seconds) == ("music", 6.0)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("# colour: blue\nHi", "unknown header key"),
        ("# voice\nHi", "not 'key: value'"),
        ("# speed: fast\nHi", "invalid literal"),
        ("# speed: 20\nHi", "speed 20"),
        ("# kind: jingle\nHi", "kind must be"),
        ("# voice: fr\n\n", "no text"),
    ],
)
def test_parse_prompt_text_refuses_bad_headers(content: str, match: str) -> None:
    with pytest.raises(TtsError, match=f"prompt p: .*{match}"):
        tts.parse_prompt_text("p", content)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_prompt_text_parses(name: str) -> None:
    prompt = tts.read_prompt_text(PROMPTS / f"{name}.txt")
    assert prompt.name == name
    assert prompt.text
    if name == "hold":
        assert prompt.kind == "music"
    else:
        assert prompt.kind == "speech"
        assert prompt.voice == ("fr" if name.endswith("_fr") else "en-us")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_prompt_wav_format(name: str) -> None:
    samples, rate, channels, width = read_wav(PROMPTS / f"{name}.wav")
    assert (rate, channels, width) == (16000, 1, 2)
    assert 1.0 < samples.size / rate < 10.0
    if name != "hold":
        assert -3.5 < dbfs(float(np.max(np.abs(samples.astype(np.int32))))) < -2.5
        # -45 dBFS: below the renderer's -40 dB-under-the-peak silence threshold.
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 180)
        assert loud[0] <= 0.1 * rate
        assert samples.size - 1 - loud[-1] <= 0.1 * rate


def test_shipped_prompts_are_all_listed() -> None:
    assert {p.stem for p in PROMPTS.glob("*.txt")} == set(SHIPPED)
    assert {p.stem for p in PROMPTS.glob("*.wav")} == set(SHIPPED)


@pytest.mark.parametrize(("notice", "menu"), CONSENT_PAIRS)
def test_notice_plus_consent_menu_is_under_12_s(notice: str, menu: str) -> None:
    total_s = sum(read_wav(PROMPTS / f"{n}.wav")[0].size / 16000 for n in (notice, menu))
    assert total_s < 12.0


@needs_espeak
def test_render_prompt_dir(tmp_path: Path) -> None:
    (tmp_path / "hi.txt").write_text("# voice: en-us, speed: 170\nHello, and welcome.\n")
    (tmp_path / "loop.txt").write_text("# kind: music, seconds: 2\nMusic.\n")
    (tmp_path / "notes.md").write_text("not a prompt")
    written = tts.render_prompt_dir(tmp_path)
    assert written == [tmp_path / "hi.wav", tmp_path / "loop.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hi.txt",
        "hi.wav",
        "loop.txt",
        "loop.wav",
        "notes.md",
    ]
    speech, rate, channels, width = read_wav(tmp_path / "hi.wav")
    assert (rate, channels, width) == (16000, 1, 2)
    assert 0.7 < speech.size / rate < 3.0
    assert -3.2 < dbfs(float(np.max(np.abs(speech.astype(np.int32))))) < -2.8
    music, rate, _, _ = read_wav(tmp_path / "loop.wav")
    assert (rate, music.size) == (16000, 32000)
    assert os.stat(tmp_path / "hi.wav").st_mode & 0o044 == 0o044  # readable by all


def test_render_prompt_dir_reports_the_bad_file(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("# speed: fast\nHi\n")
    with pytest.raises(TtsError, match="prompt bad:"):
        tts.render_prompt_dir(tmp_path)


# --- hold music --------------------------------------------------------------


def test_hold_music_level_and_length() -> None:
    music = tts.render_hold_music()
    assert music.dtype == np.int16
    assert music.size == 8 * 16000
    assert dbfs(rms(music)) == pytest.approx(-20.0, abs=0.5)
    assert dbfs(float(np.max(np.abs(music.astype(np.int32))))) < -6.0


def test_hold_music_loops_without_a_click() -> None:
    music = tts.render_hold_music(16000, 8.0).astype(np.int32)
    steps = np.abs(np.diff(music))
    # Playback starts from zero, and the wrap from the end to the start is a
    # step like its neighbours (the slope of the waveform), not a jump.
    assert music[0] == 0
    seam_step = abs(int(music[0]) - int(music[-1]))
    assert seam_step <= int(steps.max())
    # Looped twice, the seam's second difference is no worse than anywhere else.
    twice = np.concatenate([music, music])
    curvature = np.abs(np.diff(twice, 2))
    seam = curvature[music.size - 3 : music.size + 1]
    assert int(seam.max()) <= int(curvature.max())
    assert int(seam.max()) <= 2 * int(np.percentile(curvature, 99.9))


def test_hold_music_is_not_silence_anywhere() -> None:
    """Every 250 ms holds sound, so a caller on hold never hears dead air."""
    music = tts.render_hold_music(8000, 8.0)
    blocks = music[: music.size // 2000 * 2000].reshape(-1, 2000)
    levels = [dbfs(rms(b)) for b in blocks]
    assert min(levels) > -35.0


def test_shipped_hold_is_the_synthesised_loop() -> None:
    samples, _, _, _ = read_wav(PROMPTS / "hold.wav")
    fresh = tts.render_hold_music(16000, 8.0)
    assert samples.size == fresh.size
    # numpy's sin may differ in the last bit between CPUs: allow a rounding step.
    assert int(np.max(np.abs(samples.astype(np.int32) - fresh))) <= 2
