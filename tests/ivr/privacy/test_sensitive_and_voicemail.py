"""Sensitive input and voicemail, end to end on the real app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivr.server.keys import store_key
from tests.conftest import AppFactory, Caller, add_user, noise_frames, read_recording

CARD = "4111111111111111"


def with_payment_line(config_data: dict[str, Any]) -> dict[str, Any]:
    config_data["flows"]["payment"] = {
        "start": "notice",
        "nodes": {
            "notice": {
                "type": "message",
                "prompt": "notice",
                "notice": ["recording"],
                "next": "card",
            },
            "card": {
                "type": "gather",
                "prompt": "menu",
                "max_digits": 16,
                "sensitive": True,
                "next": "vm",
                "on_timeout": "bye",
                "timeout_s": 3,
            },
            "vm": {"type": "voicemail", "prompt": "bye", "record": True, "max_length_s": 5},
            "bye": {"type": "hangup"},
        },
    }
    config_data["numbers"]["+15550103"] = {
        "name": "Payments",
        "flow": "payment",
        "recording": True,
        "transcription": False,
        "record_percent": 100,
        "retention_days": 30,
        "consent_mode": "notice",
    }
    return config_data


async def test_sensitive_digits_are_kept_out_of_everything(
    start_app: AppFactory,
    new_caller: Callable[..., Caller],
    tmp_path: Path,
    config_data: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await start_app(with_payment_line(config_data))
    sup = await add_user(client, "sup@example.com", "supervisor")
    caller = new_caller(client)
    answered = await caller.dial("+15550103")
    await caller.wait_for("prompt", event="start", node="card")
    await caller.send({"type": "dtmf", "digits": CARD})
    await caller.wait_for("recording", state="on")  # the voicemail records
    caller.start_audio(noise_frames(30))
    await asyncio.sleep(0.7)
    await caller.send({"type": "dtmf", "digits": "#"})
    hangup = await caller.wait_for("hangup")
    assert hangup["reason"] == "flow"
    await caller.closed_wait()
    call = await (
        await client.get(
            f"/v1/calls/{answered['call_id']}", headers={"Authorization": f"Bearer {sup}"}
        )
    ).text()
    assert CARD not in call
    assert '"gathered"' in call
    assert '"count": 16' in call
    await client.close()
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert CARD.encode() not in path.read_bytes(), path
            assert CARD[:8].encode() not in path.read_bytes(), path
    assert CARD not in caplog.text


async def test_voicemail_is_recorded_with_the_callers_audio(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    client = await start_app(with_payment_line(config_data))
    caller = new_caller(client)
    await caller.dial("+15550103")
    await caller.wait_for("prompt", event="start", node="card")
    await caller.send({"type": "dtmf", "digits": "12#"})
    await caller.wait_for("recording", state="on")
    sent = noise_frames(25, seed=9)
    caller.start_audio(sent)
    hangup = await caller.wait_for("hangup", timeout=10)  # max_length_s: 5
    await caller.closed_wait()
    store = client.app[store_key]
    rec = await store.recordings.get(hangup["stats"]["recording_id"])
    assert rec.line == "vm"
    assert rec.agent_id is None
    audio, rate = read_recording(store, rec)
    assert 4.9 <= len(audio) / rate <= 5.1
    frames = audio[: len(audio) // 160 * 160, 0].reshape(-1, 160)
    heard = [f for f in frames if f.any()]
    assert len(heard) >= 20
    assert all(any(np.array_equal(f, s) for s in sent) for f in heard)
    assert not audio[:, 1].any()  # nobody on the agent side
