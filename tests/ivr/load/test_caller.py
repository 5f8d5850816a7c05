"""Virtual callers and agents as state machines: messages and made-up times in, frames out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.load.audio import SignatureTables, dtmf_frames, wire_codec
from ivr.load.caller import AgentStats, VirtualAgent, VirtualCaller
from ivr.load.metrics import Histogram
from ivr.load.scenario import Agents, parse_scenario, plan

CODEC = wire_codec("pcm_s16le", 8000)
SILENCE = bytes(320)


class FakeConn:
    def __init__(self) -> None:
        self.texts: list[dict[str, Any]] = []
        self.closed_with: int | None = None

    def send_text(self, text: str) -> None:
        self.texts.append(json.loads(text))

    def send_binary(self, data: bytes) -> None:
        raise AssertionError("callers return frames from tick(); the worker sends them")

    def close(self, code: int = 1000) -> None:
        self.closed_with = code

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.texts]


class FakeSink:
    def __init__(self) -> None:
        self.lateness_ms: list[float] = []
        self.samples: dict[str, list[float]] = {}

    def sample(self, metric: str, value_ms: float) -> None:
        self.samples.setdefault(metric, []).append(value_ms)


def make_caller(
    kind: str, inband: bool = False, talk_s: float = 0.1, **behaviour: Any
) -> tuple[VirtualCaller, FakeConn, FakeSink]:
    data: dict[str, Any] = {
        "name": "t",
        "to": "+15550100",
        "calls": 1,
        "concurrency": 1,
        "talk": {"seconds": talk_s, "tail_ms": 40},
        "mix": {kind: {"weight": 1, **behaviour}},
        "call_timeout_s": 30,
        "dtmf": {"mode": "inband" if inband else "message"},
    }
    scenario = parse_scenario(data, "t.yaml", Path("."))
    p = plan(scenario)[0]
    sink = FakeSink()
    tones = {d: dtmf_frames(CODEC, d, 100, -10) for d in "129"} if inband else None
    caller = VirtualCaller(
        p,
        scenario.spec.mix[kind],
        scenario.spec,
        CODEC,
        SignatureTables(CODEC).noise_talk(p.seed),
        tones,
        sink,
        run_start=100.0,
    )
    conn = FakeConn()
    caller.connecting(100.0)
    caller.attach(conn, 100.001)
    return caller, conn, sink


def msg(caller: VirtualCaller, at: float, **m: Any) -> None:
    caller.on_text(json.dumps(m), at)


def answer(caller: VirtualCaller, at: float = 100.004) -> None:
    msg(caller, at, type="answered", call_id="c_1", codec="pcm_s16le", rate=8000, ptime=20)
    msg(caller, at, type="prompt", event="start", prompt="notice", node="notice")


def test_dial_comes_first_with_a_client_ref() -> None:
    caller, conn, _ = make_caller("consent")
    assert conn.texts == [
        {
            "type": "dial",
            "to": "+15550100",
            "from": "+15550000000",
            "codec": "pcm_s16le",
            "rate": 8000,
            "client_ref": "load-t-0",
        }
    ]
    assert caller.tick(100.01) is None  # no audio before 'answered'


def test_a_consenting_caller_presses_1_talks_and_hangs_up() -> None:
    caller, conn, sink = make_caller("consent", press_after_s=0.2)
    answer(caller)
    assert caller.result.answered_ms == pytest.approx(4.0)
    assert sink.samples["setup_answered_ms"] == [pytest.approx(4.0)]
    assert caller.tick(100.02) == SILENCE  # silence while prompts play
    msg(caller, 100.3, type="prompt", event="start", prompt="menu", node="consent")
    caller.tick(100.4)
    assert conn.kinds() == ["dial"]
    caller.tick(100.52)
    assert conn.texts[-1] == {"type": "dtmf", "digits": "1"}
    # The response: the menu stops, the ring starts, then the first frame of hold audio.
    msg(caller, 100.53, type="prompt", event="end", prompt="menu", node="consent", interrupted=True)
    caller.on_binary(SILENCE, 100.535)
    assert caller.result.dtmf_ms == [pytest.approx(15.0)]
    msg(caller, 100.54, type="ringing", line="recorded")
    msg(caller, 100.6, type="connected", line="recorded", agent="bot 1")
    msg(caller, 100.6, type="recording", state="on")
    assert caller.result.ring_ms == pytest.approx(60.0)
    talk = SignatureTables(CODEC).noise_talk(caller.plan.seed)
    sent = [caller.tick(100.6 + 0.02 * i) for i in range(1, 9)]
    assert sent[:5] == [talk.frame(k) for k in range(5)]  # 0.1 s of talk
    assert sent[5:7] == [SILENCE, SILENCE]  # 40 ms of tail
    assert sent[7] is None
    assert conn.texts[-1] == {"type": "hangup"}
    for i in range(3):
        caller.on_binary(SILENCE, 100.6 + 0.02 * i)
    msg(
        caller,
        100.8,
        type="hangup",
        reason="caller",
        stats={"frames_sent": 4, "recording_id": "r_1"},
    )
    assert (caller.result.outcome, caller.result.recording_frames, caller.result.talk_frames) == (
        "ok",
        3,
        5,
    )
    caller.on_close(1000, 100.81)
    assert caller.finished
    assert caller.result.close_code == 1000
    assert caller.result.ended_s == pytest.approx(0.81)
    assert caller.result.frames_missing == 0


def test_lateness_is_measured_against_the_calls_own_schedule() -> None:
    caller, _, _ = make_caller("consent")
    answer(caller)
    for k, delay_ms in enumerate([0, 0, 3, 0, 12, 0]):
        caller.on_binary(SILENCE, 101.0 + 0.02 * k + delay_ms / 1000)
    # An early frame moves the schedule's anchor: what came before is not re-judged.
    caller.on_binary(SILENCE, 101.0 + 0.02 * 6 - 0.002)
    caller.on_binary(SILENCE, 101.0 + 0.02 * 7)
    assert caller.sink.lateness_ms == pytest.approx([0, 0, 3, 0, 12, 0, 0, 2])
    h = Histogram.of(caller.sink.lateness_ms)
    assert h.n == 8
    assert h.max == pytest.approx(12.0)
    assert caller.result.lateness_max_ms == pytest.approx(12.0)
    assert h.count_over(2.5) == 2  # 3 and 12
    assert h.count_over(1.5) == 3  # and the last frame: 2 ms after the new anchor


def test_a_refusing_caller_that_is_cut_off_fails_with_the_reason() -> None:
    caller, conn, _ = make_caller("refuse", press_after_s=0)
    answer(caller)
    msg(caller, 100.3, type="prompt", event="start", prompt="menu", node="consent")
    caller.tick(100.31)
    assert conn.texts[-1] == {"type": "dtmf", "digits": "2"}
    msg(caller, 103.0, type="hangup", reason="no_answer", stats={})
    assert caller.result.outcome == "hangup_no_answer"


def test_an_invalid_caller_presses_at_every_menu() -> None:
    caller, conn, _ = make_caller("invalid", digit="7", press_after_s=0.1)
    answer(caller)
    for i in range(3):
        msg(caller, 101.0 + i, type="prompt", event="start", prompt="menu", node="consent")
        caller.tick(101.2 + i)
    assert [m["digits"] for m in conn.texts if m["type"] == "dtmf"] == ["7", "7", "7"]
    assert caller.result.digits == "777"


def test_an_early_hangup_during_the_notice() -> None:
    caller, conn, _ = make_caller("early_hangup", after_s=0.5)
    answer(caller)
    assert caller.tick(100.4) == SILENCE
    assert caller.tick(100.51) is None
    assert conn.texts[-1] == {"type": "hangup"}
    msg(
        caller, 100.52, type="prompt", event="end", prompt="notice", node="notice", interrupted=True
    )
    msg(caller, 100.52, type="hangup", reason="caller", stats={})
    assert caller.result.outcome == "ok"
    assert caller.result.prompts == [
        ["notice", "notice", "start", 0.0, None],
        ["notice", "notice", "end", 516.0, True],
    ]


def test_an_agent_hangup_caller_talks_until_the_agent_leaves() -> None:
    caller, _conn, _ = make_caller("agent_hangup", wait_s=2)
    answer(caller)
    msg(caller, 100.5, type="prompt", event="start", prompt="menu", node="consent")
    caller.tick(101.1)
    msg(caller, 101.2, type="connected", line="recorded", agent="Ana")
    frames = [caller.tick(101.2 + 0.02 * i) for i in range(1, 30)]
    assert all(f is not None and f != SILENCE for f in frames)  # talk goes on past talk.seconds
    msg(caller, 102.0, type="hangup", reason="agent", stats={})
    assert caller.result.outcome == "ok"
    assert caller.tick(102.02) is None


def test_an_agent_that_never_hangs_up_fails_the_call() -> None:
    caller, conn, _ = make_caller("agent_hangup", wait_s=1)
    answer(caller)
    msg(caller, 100.5, type="prompt", event="start", prompt="menu", node="consent")
    caller.tick(101.1)
    msg(caller, 101.2, type="connected", line="recorded", agent="Ana")
    assert caller.tick(102.3) is None
    assert conn.texts[-1] == {"type": "hangup"}
    msg(caller, 102.4, type="hangup", reason="caller", stats={})
    assert caller.result.outcome == "agent_never_hung_up"


def test_in_band_digits_go_out_as_tone_frames() -> None:
    caller, conn, _sink = make_caller("consent", inband=True, press_after_s=0)
    answer(caller)
    msg(caller, 100.3, type="prompt", event="start", prompt="menu", node="consent")
    tone = dtmf_frames(CODEC, "1", 100, -10)
    sent = [caller.tick(100.32 + 0.02 * i) for i in range(len(tone))]
    assert sent == tone
    assert [m["type"] for m in conn.texts] == ["dial"]  # no dtmf message
    msg(caller, 100.40, type="prompt", event="end", prompt="menu", node="consent", interrupted=True)
    caller.on_binary(SILENCE, 100.41)
    assert caller.result.dtmf_ms == [pytest.approx(90.0)]  # from the first tone frame


def test_a_response_during_the_tone_is_the_only_dtmf_sample() -> None:
    # The server hears an in-band digit ~45 ms into a 100 ms tone and answers
    # while the tone's last frames still go out: those frames must not start a
    # second measurement (which the next message, seconds later, would end).
    caller, _conn, _sink = make_caller("consent", inband=True, press_after_s=0)
    answer(caller)
    msg(caller, 100.3, type="prompt", event="start", prompt="menu", node="consent")
    tone = dtmf_frames(CODEC, "1", 100, -10)
    sent = [caller.tick(100.32 + 0.02 * i) for i in range(3)]
    msg(caller, 100.37, type="prompt", event="end", prompt="menu", node="consent", interrupted=True)
    msg(caller, 100.37, type="ringing")
    caller.on_binary(SILENCE, 100.38)
    sent += [caller.tick(100.38 + 0.02 * i) for i in range(len(tone) - 3)]
    assert sent == tone
    msg(caller, 102.4, type="connected", line="recorded")
    caller.on_binary(SILENCE, 102.41)
    assert caller.result.dtmf_ms == [pytest.approx(60.0)]


def test_server_errors_and_silent_closes_are_failures() -> None:
    caller, conn, _ = make_caller("consent")
    msg(caller, 100.01, type="error", code="bad_codec", message="no pcmu here")
    assert (caller.result.outcome, caller.result.detail) == ("error_bad_codec", "no pcmu here")
    assert conn.closed_with == 1000  # no other dial to send
    assert caller.finished
    caller, _, _ = make_caller("consent")
    answer(caller)
    msg(caller, 100.01, type="error", code="busy", message="full")
    msg(caller, 100.01, type="hangup", reason="error", stats={})
    assert caller.result.outcome == "error_busy"
    caller, _, _ = make_caller("consent")
    answer(caller)
    caller.on_close(None, 100.5)
    assert caller.result.outcome == "closed_None"
    assert "before 'hangup'" in caller.result.detail


def test_a_call_that_never_ends_times_out_and_hangs_up() -> None:
    caller, conn, _ = make_caller("silent")
    answer(caller)
    assert caller.tick(131.0) is None
    assert conn.texts[-1] == {"type": "hangup"}
    assert caller.result.outcome == "timeout"
    assert caller.tick(150.0) is None  # still no close: give up on the connection
    assert conn.closed_with == 1000
    assert caller.finished


def test_a_virtual_agent_answers_and_hangs_up_after_its_delays() -> None:
    stats = AgentStats()
    agent = VirtualAgent(
        Agents(team="desk", answer_after_s=0.5, hangup_after_s=2.0), "tok", stats, CODEC
    )
    conn = FakeConn()
    agent.attach(conn, 10.0)
    assert conn.texts == [{"type": "login", "token": "tok"}]
    agent.on_text(json.dumps({"type": "logged_in", "agent": "Sam", "teams": ["desk"]}), 10.1)
    assert conn.texts[-1] == {"type": "ready"}
    assert agent.ready
    agent.on_text(
        json.dumps(
            {
                "type": "offer",
                "call_id": "c_9",
                "from": "+1555",
                "line": "recorded",
                "recording": True,
            }
        ),
        11.0,
    )
    assert agent.tick(11.4) is None
    assert conn.texts[-1] == {"type": "ready"}
    agent.tick(11.5)
    assert conn.texts[-1] == {"type": "answer", "call_id": "c_9"}
    agent.on_text(json.dumps({"type": "answered", "call_id": "c_9"}), 11.52)
    assert agent.tick(11.6) == SILENCE
    assert agent.tick(13.53) is None
    assert conn.texts[-1] == {"type": "hangup"}
    assert (stats.signed_in, stats.offers, stats.answered, stats.hung_up) == (1, 1, 1, 1)


def test_an_agent_outside_the_team_is_an_error() -> None:
    stats = AgentStats()
    agent = VirtualAgent(Agents(team="desk"), "tok", stats, CODEC)
    conn = FakeConn()
    agent.attach(conn, 0.0)
    agent.on_text(json.dumps({"type": "logged_in", "agent": "Sam", "teams": ["sales"]}), 0.1)
    assert stats.errors == ["not in team desk"]
    assert conn.closed_with == 1000
    assert not agent.ready


# Messages a server may send a caller, in any order (the test drives both callers alike).
SCRIPT_MESSAGES: list[dict[str, Any]] = [
    {"type": "answered", "call_id": "c_1"},
    {"type": "prompt", "event": "start", "prompt": "menu", "node": "consent"},
    {"type": "prompt", "event": "end", "prompt": "menu", "node": "consent", "interrupted": True},
    {"type": "ringing", "line": "recorded"},
    {"type": "connected", "line": "recorded", "agent": "bot 1"},
    {"type": "recording", "state": "on"},
    {"type": "recording", "state": "off"},
    {"type": "hangup", "reason": "caller", "stats": {"frames_sent": 3}},
    {"type": "error", "code": "busy"},
]


@settings(max_examples=500, deadline=None)
@given(
    kind=st.sampled_from(["consent", "refuse", "invalid", "early_hangup", "agent_hangup", "hold"]),
    inband=st.booleans(),
    first=st.lists(st.sampled_from([1, 4]), max_size=2),  # the menu, connected
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.004, 0.02, 0.1, 0.5]),  # time to the step
            # Mostly ticks, then frames and messages (by index), rarely an ending.
            st.sampled_from(["tick"] * 40 + ["frame"] * 4 + [*range(9)] * 2 + ["close"]),
        ),
        max_size=150,
    ),
)
def test_the_tick_fast_path_sends_what_the_general_path_does(
    kind: str, inband: bool, first: list[int], steps: list[tuple[float, Any]]
) -> None:
    options: dict[str, Any] = {"press_after_s": 0.05}
    if kind == "early_hangup":
        options = {"after_s": 0.3}
    elif kind == "agent_hangup":
        options["wait_s"] = 0.5
    fast, fast_conn, _ = make_caller(kind, inband, 1.0, **options)
    slow, slow_conn, _ = make_caller(kind, inband, 1.0, **options)
    slow.tick = slow._tick  # type: ignore[method-assign]  # never the fast path
    now = 100.0
    # Every interesting case is after 'answered'; most after the menu or 'connected'.
    for dt, step in [(0.01, 0), *((0.01, i) for i in first), *steps]:
        now += dt
        for caller in (fast, slow):
            if step == "tick":
                continue
            if step == "frame":
                caller.on_binary(SILENCE, now)
            elif step == "close":
                caller.on_close(1000, now)
            else:
                msg(caller, now, **SCRIPT_MESSAGES[step])
        if step == "tick":
            assert fast.tick(now) == slow.tick(now)
    assert fast_conn.texts == slow_conn.texts
    assert fast_conn.closed_with == slow_conn.closed_with
    assert fast.result == slow.result
    assert (fast.phase, fast.finished) == (slow.phase, slow.finished)
