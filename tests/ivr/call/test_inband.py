"""G.711 calls and in-band DTMF end to end: tones drive the flow and are masked in recordings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from ivr.server.keys import store_key
from media import dtmf, g711
from media.frame import Pcm
from tests.conftest import AppFactory, Caller, noise_frames, read_recording


def frames_of(pcm: Pcm, n: int = 160) -> list[Pcm]:
    pad = (-len(pcm)) % n
    x = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
    return list(x.reshape(-1, n))


def quiet_noise(count: int, seed: int) -> list[Pcm]:
    """Speech-level noise frames that never look like a tone."""
    return [(f // 8).astype(np.int16) for f in noise_frames(count, seed=seed)]


async def send_pcmu(caller: Caller, frames: list[Pcm]) -> None:
    """Send PCM frames G.711-encoded at real-time pace, and wait until they are sent."""
    encoded = [g711.ulaw_encode(f) for f in frames]
    start = asyncio.get_running_loop().time()
    for i, f in enumerate(encoded):
        delay = start + i * 0.02 - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        await caller.send_bytes(f.tobytes())


async def test_pcmu_caller_presses_1_in_band_and_the_tone_is_masked(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    answered = await caller.dial("+15550100", codec="pcmu")
    assert answered["codec"] == "pcmu"
    await caller.wait_for("prompt", event="start", node="consent")
    assert all(len(f) == 160 for f in caller.frames)  # G.711: 160 bytes per frame
    # "1" as a tone in the audio: no dtmf message at all.
    press = frames_of(
        np.concatenate(
            [dtmf.generate("1", 120, 8000, level_dbm0=-10), np.zeros(800, dtype=np.int16)]
        )
    )
    await send_pcmu(caller, press)
    connected = await caller.wait_for("connected", timeout=5)
    assert connected["line"] == "recorded"
    # Recorded: talk, press "5" in-band mid-call (a sensitive key), talk again.
    before, after = quiet_noise(25, 1), quiet_noise(25, 2)
    tone = frames_of(dtmf.generate("5", 200, 8000, level_dbm0=-8))
    await send_pcmu(caller, [*before, *tone, *after])
    await asyncio.sleep(0.2)
    hangup = await caller.hangup()
    await caller.closed_wait()
    store = client.app[store_key]
    call = await store.calls.get(answered["call_id"])
    events = [e.public() for e in await store.calls.events(call.id)]
    assert [e["source"] for e in events if e["type"] == "dtmf"] == ["inband", "inband"]
    rec = await store.recordings.get(hangup["stats"]["recording_id"])
    audio, rate = read_recording(store, rec)
    left = audio[:, 0]
    assert rate == 8000
    # Nothing of the tone can be found again ...
    assert dtmf.detect(left, 8000) == []
    # ... the masked span is silent, and the talk around it is the decoded audio sent.
    decoded_before = np.concatenate([g711.ulaw_decode(g711.ulaw_encode(f)) for f in before])
    start = next(
        i for i in range(len(left) - 160) if np.array_equal(left[i : i + 160], decoded_before[:160])
    )
    heard = left[start : start + len(decoded_before)]
    # The onset estimate may err a few samples early: the mask then takes a little
    # of the talk before the tone (at most 5 ms), never leaves the tone's start.
    slack = 40
    assert np.array_equal(heard[:-slack], decoded_before[:-slack])
    tail = heard[-slack:]
    assert all(t in (0, d) for t, d in zip(tail, decoded_before[-slack:], strict=True))
    tone_span = left[start + len(decoded_before) : start + len(decoded_before) + 1600]
    assert not tone_span.any()


async def test_a_digit_sent_both_ways_at_once_counts_once(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    answered = await caller.dial("+15550100")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "9"})  # invalid: the menu plays again
    tone = frames_of(dtmf.generate("9", 100, 8000))
    for f in tone:
        await caller.send_bytes(f.astype("<i2").tobytes())
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    # One invalid key (retries: 1 left), so the menu is offered again, not given up.
    await caller.wait_for("prompt", nth=2, event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    assert (await caller.wait_for("connected"))["line"] == "recorded"
    await caller.hangup()
    await caller.closed_wait()
    events = [e.public() for e in await client.app[store_key].calls.events(answered["call_id"])]
    digits = [(e["digit"], e["source"]) for e in events if e["type"] == "dtmf"]
    assert digits == [("9", "message"), ("1", "message")]
