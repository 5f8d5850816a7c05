"""Prompts: decoded once for every rate; text prompts rendered once with espeak-ng and cached."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivr.call.prompt import PromptLibrary
from ivr.config import PromptSource
from ivr.errors import InvalidConfig
from ivr.flows import TtsPrompt, prompt_id
from media.frame import codec
from tests.conftest import AppFactory, Caller

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


def test_a_prompt_is_held_at_both_rates_with_the_hash_of_what_is_played(
    prompts_dir: Path, tmp_path: Path
) -> None:
    lib = PromptLibrary.load(
        {"notice": PromptSource("notice", path=prompts_dir / "notice.wav")}, tmp_path, "test"
    )
    p = lib.get("notice")
    assert p.frame_count(8000) == p.frame_count(16000) == 10  # 200 ms
    for rate in (8000, 16000):
        assert p.sha256[rate] == hashlib.sha256(p.pcm[rate].tobytes()).hexdigest()
    frames = p.wire_frames(codec("pcm_s16le", 8000))
    assert frames is p.wire_frames(codec("pcm_s16le", 8000))  # built once, shared
    assert b"".join(frames) == p.pcm[8000].tobytes()


@needs_espeak
async def test_a_text_prompt_is_rendered_once_and_played(
    start_app: AppFactory,
    new_caller: Callable[..., Caller],
    config_data: dict[str, Any],
    tmp_path: Path,
) -> None:
    spec = {"tts": "Welcome to the test line.", "voice": "en-us"}
    config_data["flows"]["sales"]["nodes"]["notice"]["prompt"] = spec
    data = tmp_path / "tts-data"
    client = await start_app(config_data, data_dir=data)
    caller = new_caller(client)
    await caller.dial("+15550101")
    start = await caller.wait_for("prompt", event="start", node="notice")
    assert start["prompt"] == prompt_id(TtsPrompt(tts=spec["tts"], voice=spec["voice"]))
    cached = list((data / "cache" / "tts").glob("*.wav"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    await client.close()
    await start_app(config_data, data_dir=data)  # a second start renders nothing
    assert [p.stat().st_mtime_ns for p in (data / "cache" / "tts").glob("*.wav")] == [mtime]


def test_without_espeak_a_text_prompt_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run here
    src = PromptSource("tts-x", tts=TtsPrompt(tts="Hello there"))
    with pytest.raises(InvalidConfig) as exc:
        PromptLibrary.load({"tts-x": src}, tmp_path / "cache", "test.yaml")
    assert "espeak-ng" in str(exc.value)
    assert "apt-get install espeak-ng" in str(exc.value)
