"""Calls end to end: real WebSockets on loopback against the real app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ivr.server.keys import store_key
from tests.conftest import AppFactory, Caller, noise_frames, read_recording, read_recording_file


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
    rec = await store.recordings.get(rec_id)
    assert rec.status == "complete"
    audio, rate = read_recording(store, rec)
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
    assert rec.sha256
    assert rec.duration_s == len(audio) / 8000


async def test_press_2_gives_no_recording(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    caller, hangup, client = await consent_call(start_app, new_caller, "2", tmp_path)
    assert hangup["stats"]["recording_id"] is None
    assert {"type": "recording", "state": "on"} not in caller.messages
    await caller.closed_wait()
    assert recording_files(tmp_path / "data") == []
    calls, _ = await client.app[store_key].calls.page()
    decision = calls[0].recording_decision
    assert decision["record"] is False
    assert decision["consent"] == "refused"


async def run_to_end(caller: Caller, timeout: float = 10.0) -> dict[str, Any]:
    hangup = await caller.wait_for("hangup", timeout=timeout)
    await caller.closed_wait()
    return hangup


async def test_silence_ends_on_the_line_without_recording(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550100")
    connected = await caller.wait_for("connected", timeout=5)
    assert connected["line"] == "private"
    starts = [m for m in caller.of_type("prompt") if m["event"] == "start"]
    assert [m["node"] for m in starts][:3] == ["notice", "consent", "consent"]  # 1 retry
    hangup = await caller.hangup()
    assert hangup["stats"]["recording_id"] is None
    await caller.closed_wait()
    assert recording_files(tmp_path / "data") == []


async def test_invalid_keys_until_retries_run_out_give_no_recording(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550100")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "9"})  # invalid: the menu again (retries: 1)
    await caller.wait_for("prompt", event="end", node="consent", interrupted=True)
    await caller.wait_for("prompt", nth=2, event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "7"})  # invalid again: retries are used up
    connected = await caller.wait_for("connected", timeout=5)
    assert connected["line"] == "private"
    hangup = await caller.hangup()
    assert hangup["stats"]["recording_id"] is None
    await caller.closed_wait()
    assert recording_files(tmp_path / "data") == []


async def test_barge_in_stops_the_menu_prompt(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550100")
    await caller.wait_for("prompt", event="start", node="consent")
    await caller.send({"type": "dtmf", "digits": "1"})
    end = await caller.wait_for("prompt", event="end", node="consent")
    assert end["interrupted"] is True
    assert (await caller.wait_for("ringing"))["line"] == "recorded"


async def test_digits_during_the_notice_are_ignored(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550100")
    await caller.send({"type": "dtmf", "digits": "1"})
    end = await caller.wait_for("prompt", event="end", node="notice")
    assert end["interrupted"] is False
    await caller.wait_for("prompt", event="start", node="consent")
    assert not caller.of_type("ringing")


async def test_notice_mode_records_after_the_notice(
    start_app: AppFactory, new_caller: Callable[..., Caller]
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550101")
    await caller.wait_for("connected", timeout=5)
    assert {"type": "recording", "state": "on"} in caller.messages
    notice_end = caller.messages.index(
        next(m for m in caller.of_type("prompt") if m["node"] == "notice" and m["event"] == "end")
    )
    assert caller.messages.index({"type": "recording", "state": "on"}) > notice_end
    caller.start_audio(noise_frames(10))
    await asyncio.sleep(0.3)
    hangup = await caller.hangup()
    assert hangup["stats"]["recording_id"]
    await caller.closed_wait()
    call = await client.app[store_key].calls.get(
        (await client.app[store_key].calls.page())[0][0].id
    )
    consents = await client.app[store_key].calls.consents(call.id)
    assert [c.decision for c in consents] == ["notice"]
    assert consents[0].evidence["notices"][0]["prompt"] == "notice"


async def test_private_number_never_records(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    caller = new_caller(client)
    await caller.dial("+15550199")
    await caller.wait_for("connected", timeout=5)
    hangup = await caller.hangup()
    assert hangup["stats"]["recording_id"] is None
    await caller.closed_wait()
    assert recording_files(tmp_path / "data") == []
    call = (await client.app[store_key].calls.page())[0][0]
    decision = call.recording_decision
    assert decision is not None
    assert decision["number_recording"] is False
    assert decision["record"] is False
    assert "recording is switched off for this number" in decision["reasons"]


async def _sampled_calls(
    start_app: AppFactory,
    new_caller: Callable[..., Caller],
    config_data: dict[str, Any],
    percent: int,
    count: int,
) -> tuple[int, list[float]]:
    config_data["numbers"]["+15550101"]["record_percent"] = percent
    client = await start_app(config_data)

    async def one() -> tuple[bool, float]:
        caller = new_caller(client)
        await caller.dial("+15550101")
        await caller.wait_for("connected", timeout=10)
        hangup = await caller.hangup()
        await caller.closed_wait()
        return hangup["stats"]["recording_id"] is not None, 0.0

    recorded = 0
    for start in range(0, count, 25):
        results = await asyncio.gather(*(one() for _ in range(min(25, count - start))))
        recorded += sum(r for r, _ in results)
    calls, _ = await client.app[store_key].calls.page(limit=500)
    draws = [(c.recording_decision or {})["sample_draw"] for c in calls]
    return recorded, draws


async def test_record_percent_0_never_and_100_always(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    recorded, _ = await _sampled_calls(start_app, new_caller, config_data, 0, 10)
    assert recorded == 0
    recorded, _ = await _sampled_calls(start_app, new_caller, config_data, 100, 10)
    assert recorded == 10


async def test_record_percent_hits_its_share_within_a_binomial_bound(
    start_app: AppFactory, new_caller: Callable[..., Caller], config_data: dict[str, Any]
) -> None:
    n, p = 100, 0.3
    recorded, draws = await _sampled_calls(start_app, new_caller, config_data, 30, n)
    # Each decision follows its own logged draw ...
    assert recorded == sum(d < 30 for d in draws)
    # ... and the share is within 4 standard deviations of 30 % (fails by chance ~1e-4).
    sd = (n * p * (1 - p)) ** 0.5
    assert abs(recorded - n * p) <= 4 * sd, recorded


async def test_fifty_concurrent_calls_complete(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    sent = noise_frames(15, seed=7)

    async def one(i: int) -> dict[str, Any]:
        caller = new_caller(client)
        await caller.dial("+15550100", frm=f"+1555700{i:04d}")
        await caller.wait_for("prompt", event="start", node="consent")
        await caller.send({"type": "dtmf", "digits": "1" if i % 2 else "2"})
        await caller.wait_for("connected", timeout=10)
        caller.start_audio(sent)
        await asyncio.sleep(0.4)
        hangup = await caller.hangup()
        await caller.closed_wait()
        return hangup

    hangups = await asyncio.gather(*(one(i) for i in range(50)))
    assert all(h["reason"] == "caller" for h in hangups)
    recorded = [h["stats"]["recording_id"] for h in hangups if h["stats"]["recording_id"]]
    assert len(recorded) == 25
    store = client.app[store_key]
    for rec_id in recorded:
        rec = await store.recordings.get(rec_id)
        assert rec.status == "complete"
        audio, _ = read_recording(store, rec)
        assert len(audio) > 0
    calls, _ = await store.calls.page(limit=100)
    assert len(calls) == 50
    assert all(c.end_reason == "caller" for c in calls)


async def test_shutdown_ends_calls_and_leaves_complete_recordings(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    client = await start_app()
    callers = []
    for i in range(4):
        caller = new_caller(client)
        await caller.dial("+15550101", frm=f"+1555800{i:04d}")
        callers.append(caller)
    for caller in callers:
        await caller.wait_for("connected", timeout=5)
        caller.start_audio(noise_frames(200, seed=3))
    await asyncio.sleep(0.5)
    store = client.app[store_key]
    await client.server.close()  # runs on_shutdown, as SIGINT/SIGTERM would
    for caller in callers:
        hangup = await caller.wait_for("hangup")
        assert hangup["reason"] == "shutdown"
        await caller.closed_wait()
        assert caller.close_code == 1001
    files = recording_files(tmp_path / "data")
    assert len(files) == 4
    assert all(f.suffix == ".wav" for f in files)  # no .partial left behind
    for f in files:
        audio, rate = read_recording_file(f, tmp_path / "data-keys")
        assert rate == 8000
        assert len(audio) >= 8000 * 0.3
    del store
