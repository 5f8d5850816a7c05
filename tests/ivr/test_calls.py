"""Calls end to end: real WebSockets on loopback against the real app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ivr.app import store_key
from tests.conftest import AppFactory, Caller, noise_frames


def recording_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "recordings").rglob("*.wav*"))


async def consent_call(
    start_app: AppFactory, new_caller: Callable[..., Caller], digit: str, tmp_path: Path
) -> tuple[Caller, dict[str, Any], Any]:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550100")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": digit})
    await caller.wait_for("connected", timeout=5)
    caller.start_audio(noise_frames(40))
    await asyncio.sleep(0.9)
    hangup = await caller.hangup()
    return caller, hangup, client


async def test_press_1_records_exactly_what_the_caller_sent(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    caller, hangup, client = await consent_call(start_app, new_caller, "1", tmp_path)
    assert (
        caller.of_type("recording")[-2:]
        == [{"type": "recording", "state": "on"}, {"type": "recording", "state": "off"}]
        or {"type": "recording", "state": "on"} in caller.messages
    )
    assert {"type": "transcription", "state": "on"} in caller.messages
    rec_id = hangup["stats"]["recording_id"]
    assert rec_id is not None
    await caller.closed_wait()
    store = client.app[store_key]
    rec = await store.get_recording(rec_id)
    assert rec["status"] == "complete"
    audio, rate = sf.read(str(store.recording_path(rec["path"])), dtype="int16", always_2d=True)
    assert rate == 8000
    assert audio.shape[1] == 2
    left = audio[:, 0]
    frames = left[: len(left) // 160 * 160].reshape(-1, 160)
    heard = [f for f in frames if np.any(f)]
    sent = noise_frames(40)
    # Every non-silent recorded frame is a frame the caller sent, in order, without gaps.
    first = next(i for i, f in enumerate(sent) if np.array_equal(f, heard[0]))
    assert len(heard) >= 25
    for k, f in enumerate(heard):
        assert np.array_equal(f, sent[first + k]), f"frame {k} differs"
    # The right channel holds the bot's greeting (a 660 Hz tone), not silence.
    assert np.abs(audio[:, 1]).max() > 1000
    assert rec["sha256"]
    assert rec["duration_s"] == len(audio) / 8000


async def test_press_2_gives_no_recording(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    caller, hangup, client = await consent_call(start_app, new_caller, "2", tmp_path)
    assert hangup["stats"]["recording_id"] is None
    assert {"type": "recording", "state": "on"} not in caller.messages
    await caller.closed_wait()
    assert recording_files(tmp_path / "data") == []
    calls, _ = await client.app[store_key].list_calls()
    decision = calls[0]["recording_decision"]
    assert decision["record"] is False
    assert decision["consent"] == "refused"
