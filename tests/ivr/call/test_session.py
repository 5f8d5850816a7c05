"""The session driver on a manual media clock with a fake transport: exact ticks, no sleeping."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from ivr.call.clock import MediaClock
from ivr.call.leg import Leg
from ivr.call.prompt import PromptLibrary
from ivr.call.recorder import RecorderPool
from ivr.call.session import CallSession
from ivr.call.switchboard import Switchboard
from ivr.store import NewCall, Store
from media.frame import codec
from tests.conftest import PROMPT_MS, build_config


class FakeTransport:
    """Records what the session sends: the edge of a unit test, not our own class."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.messages: list[dict[str, Any]] = []
        self.audio: list[bytes] = []
        self.closed_with: int | None = None

    def send_audio(self, payload: bytes) -> bool:
        if self.fail:
            raise RuntimeError("the transport broke")
        self.audio.append(payload)
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def close(self, code: int) -> None:
        self.closed_with = code

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]


@pytest.fixture
async def board(server_database: str | None, tmp_path: Path, config_data: dict[str, Any]) -> Any:
    config = build_config(config_data, tmp_path)
    store = Store(tmp_path / "data", server_database)  # IVR_TEST_SERVER_BACKEND
    await store.open()
    prompts = PromptLibrary.load(config.prompts, tmp_path / "cache", "test")
    pool = RecorderPool()
    sb = Switchboard(config, store, prompts, MediaClock(), pool)
    yield sb
    await sb.shutdown()
    pool.shutdown()
    await store.close()


def store_of(sb: Switchboard) -> Store:
    """The real store the board's calls write through."""
    assert isinstance(sb.records, Store)
    return sb.records


async def new_call(
    sb: Switchboard, number: str = "+15550100", fail: bool = False
) -> tuple[CallSession, FakeTransport]:
    t = FakeTransport(fail)
    n = sb.numbers[number]
    contact = await store_of(sb).calls.contact_id("+15557654321")
    session = CallSession(
        sb,
        call_id=f"c_test{len(sb.calls)}",
        number_id=number,
        number=n,
        flow=sb.flows[n.flow],
        caller=Leg(codec("pcm_s16le", 8000), t),
        caller_number="+15557654321",
        contact_id=contact,
    )
    await store_of(sb).calls.create(
        NewCall(
            id=session.id,
            number=number,
            contact_id=contact,
            flow_id=n.flow,
            flow_version="x",
            codec="pcm_s16le",
            sample_rate=8000,
            started_at=session.started_at,
        )
    )
    sb.call_started(session)
    session.start()
    return session, t


def ticks(sb: Switchboard, n: int) -> None:
    for _ in range(n):
        sb.clock.tick()


async def test_a_prompt_takes_exactly_its_frames(board: Switchboard) -> None:
    _session, t = await new_call(board)
    notice_frames = PROMPT_MS["notice"] // 20
    ticks(board, notice_frames - 1)
    assert {
        "type": "prompt",
        "event": "end",
        "prompt": "notice",
        "node": "notice",
        "interrupted": False,
    } not in t.messages
    ticks(board, 1)
    assert {
        "type": "prompt",
        "event": "end",
        "prompt": "notice",
        "node": "notice",
        "interrupted": False,
    } in t.messages
    assert t.messages[-1] == {
        "type": "prompt",
        "event": "start",
        "prompt": "menu",
        "node": "consent",
    }
    assert len(t.audio) == notice_frames
    prompt = board.prompts.get("notice")
    assert t.audio == prompt.wire_frames(codec("pcm_s16le", 8000))


async def test_menu_timeout_fires_on_its_tick(board: Switchboard) -> None:
    _session, t = await new_call(board)
    ticks(board, (PROMPT_MS["notice"] + PROMPT_MS["menu"]) // 20)
    assert t.messages[-1]["event"] == "end"
    timeout_ticks = round(0.3 * 50)  # the menu's timeout_s
    ticks(board, timeout_ticks - 1)
    assert t.messages[-1]["event"] == "end"
    ticks(board, 1)
    assert t.messages[-1] == {
        "type": "prompt",
        "event": "start",
        "prompt": "menu",
        "node": "consent",
    }


async def test_bot_answers_after_its_delay_and_recording_follows(board: Switchboard) -> None:
    session, t = await new_call(board)
    ticks(board, PROMPT_MS["notice"] // 20 + 2)
    session.digits("1")
    assert t.kinds()[-3:] == ["prompt", "ringing", "prompt"]  # menu cut, ringing, hold
    ticks(board, 1)  # the bot's 40 ms delay is two ticks
    assert "connected" not in t.kinds()
    ticks(board, 1)
    assert t.messages[-4:] == [
        {
            "type": "prompt",
            "event": "end",
            "prompt": "hold",
            "node": "recorded",
            "interrupted": True,
        },
        {"type": "connected", "line": "recorded", "agent": "support bot 1"},
        {"type": "recording", "state": "on"},
        {"type": "transcription", "state": "on"},
    ]
    assert session.recording is not None
    session.caller_hangup()
    await session.wait_finished()
    assert t.messages[-1]["type"] == "hangup"
    assert t.messages[-1]["reason"] == "caller"
    assert t.closed_with == 1000
    rec = await store_of(board).recordings.get(session.recording_ids[0])
    assert rec.status == "complete"


async def test_a_crash_in_one_call_ends_only_that_call(board: Switchboard) -> None:
    broken, bt = await new_call(board, fail=True)
    healthy, ht = await new_call(board)
    ticks(board, 3)
    assert bt.messages[-1]["type"] == "hangup"
    assert bt.messages[-1]["reason"] == "error"
    await broken.wait_finished()
    assert bt.closed_with == 1011
    assert not healthy.ended
    assert len(ht.audio) == 3


async def test_a_finished_call_is_freed_without_the_cycle_collector(board: Switchboard) -> None:
    """No reference cycle through the session: its objects go with their last reference.

    With cycles, every finished call waited for a full collection, which the
    server runs rarely (and which walks every live call when it does).
    """
    session, t = await new_call(board)
    ticks(board, 30)
    session.digits("2")  # refuse: a prompt, a decision, consent evidence
    ticks(board, 30)
    session.caller_hangup()
    await session.wait_finished()
    ticks(board, 2)
    assert t.closed_with is not None
    parts = [weakref.ref(x) for x in (session, session.actions, session.caller, session.flow)]
    gc.disable()
    try:
        del session
        for _ in range(3):  # let the closing task and its callbacks finish
            await asyncio.sleep(0)
        alive = [r() for r in parts if r() is not None]
        assert alive == []
    finally:
        gc.enable()
