"""How the app wires the call path to speech: a finished recording reaches the worker's wake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ivr.server.keys import switchboard_key
from tests.conftest import AppFactory, Caller, noise_frames


async def test_a_finished_recording_is_announced_to_the_transcription_worker(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    sb = client.app[switchboard_key]
    wake = sb.on_recording_finished
    assert wake is not None  # set at start-up: the worker's wake
    heard: list[str] = []

    def listening(recording_id: str) -> None:
        heard.append(recording_id)
        wake(recording_id)

    sb.on_recording_finished = listening
    caller = new_caller(client)
    await caller.dial("+15550100")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    await caller.wait_for("connected")
    caller.start_audio(noise_frames(10))
    await asyncio.sleep(0.3)
    hangup = await caller.hangup()
    await caller.closed_wait()  # the socket closes once the recording's row is saved
    assert heard == [hangup["stats"]["recording_id"]]
