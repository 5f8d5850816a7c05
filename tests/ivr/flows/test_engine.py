"""The sans-I/O flow engine: events in, actions out, no event loop and no time.

Every flow here goes through the real validator (:func:`ivr.config.validate_flow`)
from a small dict, and every test compares the actions emitted exactly.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from unittest.mock import ANY

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ivr.flows.decision
from ivr.errors import InvalidState
from ivr.flows import (
    MENU_TIMER,
    RING_TIMER,
    Action,
    AgentAnswered,
    AgentHungUp,
    Bridge,
    CallAnswered,
    CallerHungUp,
    CallFlow,
    CancelTimer,
    DigitReceived,
    Event,
    Flow,
    Hangup,
    LogConsent,
    LogNotice,
    NumberPolicy,
    Play,
    PlaybackFinished,
    RecordingDecision,
    Ring,
    StartRecording,
    StartTimer,
    StopPlayback,
    StopRecording,
    StopRinging,
    TimerExpired,
    TtsPrompt,
    prompt_id,
    sample_draw,
    validate_flow,
)

# ------------------------------------------------------------------- helpers


def make_flow(data: dict[str, Any], flow_id: str = "f") -> Flow:
    """A flow built through the real validator; the test fails if it is refused."""
    flow, problems = validate_flow(flow_id, data)
    assert problems == []
    assert flow is not None
    return flow


def drive(flow: CallFlow, *events: Event) -> list[Action]:
    """Feed events in order and return every action they produced."""
    for event in events:
        flow.receive(event)
    return flow.actions_to_take()


def policy(
    *,
    recording: bool = True,
    transcription: bool = True,
    consent_mode: Literal["opt_in", "notice"] = "opt_in",
    record_percent: int = 100,
    draw: float = 50.0,
) -> NumberPolicy:
    return NumberPolicy(recording, transcription, consent_mode, record_percent, draw)


OPT_IN = policy()
NOTICE = policy(consent_mode="notice")

# The consent flow of issue 2, with distinct timeouts so that the right one shows.
CONSENT_DATA: dict[str, Any] = {
    "start": "notice",
    "nodes": {
        "notice": {
            "type": "message",
            "prompt": "notice_en",
            "notice": ["recording", "ai"],
            "next": "consent",
        },
        "consent": {
            "type": "menu",
            "prompt": "consent_menu_en",
            "options": {
                "1": {"next": "recorded", "consent": "granted"},
                "2": {"next": "private", "consent": "refused"},
            },
            "timeout_s": 5,
            "retries": 2,
            "on_timeout": "private",
            "on_invalid": "consent",
        },
        "recorded": {
            "type": "ring",
            "team": "support",
            "record": True,
            "timeout_s": 30,
            "on_no_answer": "bye",
        },
        "private": {
            "type": "ring",
            "team": "support",
            "record": False,
            "timeout_s": 20,
            "on_no_answer": "bye",
        },
        "bye": {"type": "hangup"},
    },
}
CONSENT = make_flow(CONSENT_DATA, "consent_en")


def with_node(data: dict[str, Any], node_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of flow data with one node's fields changed (None removes a field)."""
    nodes = {k: dict(v) for k, v in data["nodes"].items()}
    node = nodes.setdefault(node_id, {})
    for key, value in changes.items():
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return {**data, "nodes": nodes}


# A menu with retries, a way out and a way back, and goodbyes that show the reason.
MENU_DATA: dict[str, Any] = {
    "start": "menu",
    "nodes": {
        "menu": {
            "type": "menu",
            "prompt": "menu_prompt",
            "options": {"1": {"next": "info"}, "2": {"next": "bye"}},
            "timeout_s": 4,
            "retries": 2,
            "on_timeout": "gone",
        },
        "info": {"type": "message", "prompt": "info_prompt", "next": "menu"},
        "bye": {"type": "hangup"},
        "gone": {"type": "hangup"},
    },
}
MENU = make_flow(MENU_DATA, "menu")


def at_menu_waiting(flow_def: Flow = MENU, pol: NumberPolicy = OPT_IN) -> CallFlow:
    flow = CallFlow(flow_def, pol)
    drive(flow, CallAnswered(), PlaybackFinished("menu"))
    assert flow.phase == "waiting"
    return flow


def at_consent_waiting(pol: NumberPolicy = OPT_IN, flow_def: Flow = CONSENT) -> CallFlow:
    flow = CallFlow(flow_def, pol)
    drive(flow, CallAnswered(), PlaybackFinished("notice"), PlaybackFinished("consent"))
    assert flow.phase == "waiting"
    return flow


def ringing(line: str, pol: NumberPolicy = OPT_IN) -> CallFlow:
    flow = at_consent_waiting(pol)
    drive(flow, DigitReceived({"recorded": "1", "private": "2"}[line]))
    assert (flow.phase, flow.node) == ("ringing", line)
    return flow


def the_ring(actions: list[Action]) -> Ring:
    rings = [a for a in actions if isinstance(a, Ring)]
    assert len(rings) == 1, actions
    return rings[0]


# --------------------------------------------------------------------- start


def test_new_call_waits_for_answer() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    assert (flow.phase, flow.node, flow.decision, flow.notices) == ("new", "", None, ())
    assert flow.actions_to_take() == []


def test_answer_plays_the_start_node() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    assert drive(flow, CallAnswered()) == [Play("notice_en", "notice")]
    assert (flow.phase, flow.node) == ("playing", "notice")


def test_actions_are_drained_once() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    flow.receive(CallAnswered())
    assert flow.actions_to_take() == [Play("notice_en", "notice")]
    assert flow.actions_to_take() == []


def test_flow_starting_at_a_menu_plays_its_prompt() -> None:
    flow = CallFlow(MENU, OPT_IN)
    assert drive(flow, CallAnswered()) == [Play("menu_prompt", "menu")]
    assert (flow.phase, flow.node) == ("playing", "menu")


def test_flow_starting_at_a_bare_hangup_ends_at_once() -> None:
    flow = CallFlow(make_flow({"start": "bye", "nodes": {"bye": {"type": "hangup"}}}), OPT_IN)
    assert drive(flow, CallAnswered()) == [Hangup("flow")]
    assert flow.phase == "ended"


def test_tts_prompt_is_played_by_its_content_id() -> None:
    tts = {"tts": "Welcome to support.", "voice": "en-gb"}
    flow_def = make_flow(
        {
            "start": "hello",
            "nodes": {
                "hello": {"type": "message", "prompt": tts, "next": "bye"},
                "bye": {"type": "hangup"},
            },
        }
    )
    actions = drive(CallFlow(flow_def, OPT_IN), CallAnswered())
    expected_id = prompt_id(TtsPrompt(tts="Welcome to support.", voice="en-gb"))
    assert expected_id.startswith("tts-")
    assert actions == [Play(expected_id, "hello")]


# ------------------------------------------------------------------- message


def test_message_then_next() -> None:
    flow_def = make_flow(
        {
            "start": "hello",
            "nodes": {
                "hello": {"type": "message", "prompt": "hello_prompt", "next": "then"},
                "then": {"type": "message", "prompt": "then_prompt", "next": "bye"},
                "bye": {"type": "hangup"},
            },
        }
    )
    flow = CallFlow(flow_def, OPT_IN)
    drive(flow, CallAnswered())
    # No notice on the node: nothing is logged, the next node plays.
    assert drive(flow, PlaybackFinished("hello")) == [Play("then_prompt", "then")]
    assert (flow.phase, flow.node) == ("playing", "then")
    assert drive(flow, PlaybackFinished("then")) == [Hangup("flow")]
    assert flow.notices == ()


def test_notice_is_logged_when_played_to_the_end() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, CallAnswered())
    assert drive(flow, PlaybackFinished("notice")) == [
        LogNotice("notice", "notice_en", ("recording", "ai")),
        Play("consent_menu_en", "consent"),
    ]
    assert flow.notices == ("recording", "ai")


def test_notice_is_not_logged_when_the_caller_leaves_during_it() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, CallAnswered())
    assert drive(flow, CallerHungUp()) == [StopPlayback("notice"), Hangup("caller")]
    assert flow.notices == ()


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_digits_are_ignored_during_a_message(digit: str) -> None:
    """A notice cannot be skipped: digits neither stop it nor choose an option."""
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, CallAnswered())
    assert drive(flow, DigitReceived(digit), DigitReceived("1")) == []
    assert (flow.phase, flow.node, flow.notices) == ("playing", "notice", ())
    # The notice still counts when it then plays to its end.
    assert drive(flow, PlaybackFinished("notice")) == [
        LogNotice("notice", "notice_en", ("recording", "ai")),
        Play("consent_menu_en", "consent"),
    ]


def test_notices_accumulate_in_order_without_repeats() -> None:
    flow_def = make_flow(
        {
            "start": "rec",
            "nodes": {
                "rec": {
                    "type": "message",
                    "prompt": "p_rec",
                    "notice": ["recording"],
                    "next": "ai",
                },
                "ai": {
                    "type": "message",
                    "prompt": "p_ai",
                    "notice": ["ai", "recording"],
                    "next": "line",
                },
                "line": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
                "bye": {"type": "hangup"},
            },
        }
    )
    flow = CallFlow(flow_def, NOTICE)
    drive(flow, CallAnswered())
    assert drive(flow, PlaybackFinished("rec")) == [
        LogNotice("rec", "p_rec", ("recording",)),
        Play("p_ai", "ai"),
    ]
    actions = drive(flow, PlaybackFinished("ai"))
    assert actions[0] == LogNotice("ai", "p_ai", ("ai", "recording"))
    assert flow.notices == ("recording", "ai")
    assert the_ring(actions).decision.notices == ("recording", "ai")


# ---------------------------------------------------------------------- menu


def test_menu_prompt_end_starts_the_timer() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, CallAnswered(), PlaybackFinished("notice"))
    assert drive(flow, PlaybackFinished("consent")) == [StartTimer(MENU_TIMER, 5.0)]
    assert (flow.phase, flow.node) == ("waiting", "consent")


def test_barge_in_stops_the_prompt_and_takes_the_option() -> None:
    """A digit during the menu prompt: no timer runs yet, so none is cancelled."""
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, CallAnswered(), PlaybackFinished("notice"))
    assert drive(flow, DigitReceived("2")) == [
        StopPlayback("consent"),
        LogConsent("consent", "consent_menu_en", "2", "refused"),
        Ring("private", "support", ANY),
        Play("hold", "private", loop=True),
        StartTimer(RING_TIMER, 20.0),
    ]
    assert (flow.phase, flow.node) == ("ringing", "private")


def test_barge_in_with_an_unmapped_digit_replays_the_menu() -> None:
    flow = CallFlow(MENU, OPT_IN)
    drive(flow, CallAnswered())
    assert drive(flow, DigitReceived("9")) == [StopPlayback("menu"), Play("menu_prompt", "menu")]
    assert (flow.phase, flow.node) == ("playing", "menu")


def test_digit_after_the_prompt_cancels_the_timer_first() -> None:
    flow = at_consent_waiting()
    assert drive(flow, DigitReceived("1")) == [
        CancelTimer(MENU_TIMER),
        LogConsent("consent", "consent_menu_en", "1", "granted"),
        Ring("recorded", "support", ANY),
        Play("hold", "recorded", loop=True),
        StartTimer(RING_TIMER, 30.0),
    ]


def test_option_without_consent_logs_no_consent() -> None:
    flow = at_menu_waiting()
    assert drive(flow, DigitReceived("1")) == [CancelTimer(MENU_TIMER), Play("info_prompt", "info")]


def test_consent_granted_then_refused_keeps_the_last_choice() -> None:
    data = {
        "start": "first",
        "nodes": {
            "first": {
                "type": "menu",
                "prompt": "p1",
                "options": {"1": {"next": "second", "consent": "granted"}},
                "on_timeout": "bye",
            },
            "second": {
                "type": "menu",
                "prompt": "p2",
                "options": {"2": {"next": "line", "consent": "refused"}},
                "on_timeout": "bye",
            },
            "line": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
            "bye": {"type": "hangup"},
        },
    }
    flow = CallFlow(make_flow(data), OPT_IN)
    drive(flow, CallAnswered())
    assert drive(flow, DigitReceived("1")) == [
        StopPlayback("first"),
        LogConsent("first", "p1", "1", "granted"),
        Play("p2", "second"),
    ]
    actions = drive(flow, DigitReceived("2"))
    assert actions[:2] == [StopPlayback("second"), LogConsent("second", "p2", "2", "refused")]
    decision = the_ring(actions).decision
    assert (decision.consent, decision.record) == ("refused", False)


def test_invalid_digit_replays_the_menu_without_on_invalid() -> None:
    flow = at_menu_waiting()
    assert drive(flow, DigitReceived("9")) == [CancelTimer(MENU_TIMER), Play("menu_prompt", "menu")]
    assert drive(flow, PlaybackFinished("menu")) == [StartTimer(MENU_TIMER, 4.0)]


def test_invalid_digit_goes_to_on_invalid() -> None:
    data = with_node(MENU_DATA, "menu", on_invalid="sorry")
    data = with_node(data, "sorry", type="message", prompt="sorry_prompt", next="menu")
    flow = at_menu_waiting(make_flow(data))
    assert drive(flow, DigitReceived("7")) == [
        CancelTimer(MENU_TIMER),
        Play("sorry_prompt", "sorry"),
    ]
    assert drive(flow, PlaybackFinished("sorry")) == [Play("menu_prompt", "menu")]


def test_on_invalid_detours_count_against_the_menu_retries() -> None:
    data = with_node(MENU_DATA, "menu", on_invalid="sorry", retries=1)
    data = with_node(data, "sorry", type="message", prompt="sorry_prompt", next="menu")
    flow = at_menu_waiting(make_flow(data))
    drive(flow, DigitReceived("7"), PlaybackFinished("sorry"), PlaybackFinished("menu"))
    # The second invalid key exhausts retries=1: on_timeout, not on_invalid.
    assert drive(flow, DigitReceived("7")) == [CancelTimer(MENU_TIMER), Hangup("timeout")]


def test_timeout_replays_the_menu_not_on_invalid() -> None:
    data = with_node(MENU_DATA, "menu", on_invalid="sorry")
    data = with_node(data, "sorry", type="message", prompt="sorry_prompt", next="menu")
    flow = at_menu_waiting(make_flow(data))
    assert drive(flow, TimerExpired(MENU_TIMER)) == [Play("menu_prompt", "menu")]


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_invalid_keys_exhaust_the_retries(retries: int) -> None:
    flow = at_menu_waiting(make_flow(with_node(MENU_DATA, "menu", retries=retries)))
    for _ in range(retries):
        assert drive(flow, DigitReceived("#")) == [
            CancelTimer(MENU_TIMER),
            Play("menu_prompt", "menu"),
        ]
        drive(flow, PlaybackFinished("menu"))
    assert drive(flow, DigitReceived("#")) == [CancelTimer(MENU_TIMER), Hangup("timeout")]
    assert flow.phase == "ended"


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_timeouts_exhaust_the_retries(retries: int) -> None:
    flow = at_menu_waiting(make_flow(with_node(MENU_DATA, "menu", retries=retries)))
    for _ in range(retries):
        assert drive(flow, TimerExpired(MENU_TIMER)) == [Play("menu_prompt", "menu")]
        assert drive(flow, PlaybackFinished("menu")) == [StartTimer(MENU_TIMER, 4.0)]
    assert drive(flow, TimerExpired(MENU_TIMER)) == [Hangup("timeout")]


def test_invalid_keys_and_timeouts_share_the_count() -> None:
    flow = at_menu_waiting()  # retries: 2
    drive(flow, TimerExpired(MENU_TIMER), PlaybackFinished("menu"))
    drive(flow, DigitReceived("5"), PlaybackFinished("menu"))
    assert drive(flow, TimerExpired(MENU_TIMER)) == [Hangup("timeout")]


def test_barge_in_invalid_keys_count_too() -> None:
    flow = CallFlow(make_flow(with_node(MENU_DATA, "menu", retries=1)), OPT_IN)
    drive(flow, CallAnswered())
    assert drive(flow, DigitReceived("8")) == [StopPlayback("menu"), Play("menu_prompt", "menu")]
    assert drive(flow, DigitReceived("8")) == [StopPlayback("menu"), Hangup("timeout")]


def test_exhausted_consent_menu_goes_to_on_timeout_line() -> None:
    flow = at_consent_waiting()
    drive(flow, TimerExpired(MENU_TIMER), PlaybackFinished("consent"))
    drive(flow, DigitReceived("9"), PlaybackFinished("consent"))
    actions = drive(flow, TimerExpired(MENU_TIMER))
    assert actions == [
        Ring("private", "support", ANY),
        Play("hold", "private", loop=True),
        StartTimer(RING_TIMER, 20.0),
    ]
    decision = the_ring(actions).decision
    assert (decision.consent, decision.record) == (None, False)


def test_hangup_after_exhausted_retries_says_timeout_after_a_goodbye() -> None:
    data = with_node(MENU_DATA, "menu", on_timeout="sorry", retries=0)
    data = with_node(data, "sorry", type="message", prompt="sorry_prompt", next="gone")
    data = with_node(data, "gone", prompt="goodbye")
    flow = at_menu_waiting(make_flow(data))
    assert drive(flow, TimerExpired(MENU_TIMER)) == [Play("sorry_prompt", "sorry")]
    assert drive(flow, PlaybackFinished("sorry")) == [Play("goodbye", "gone")]
    assert drive(flow, PlaybackFinished("gone")) == [Hangup("timeout")]


def test_valid_option_resets_the_attempts() -> None:
    flow = at_menu_waiting()  # retries: 2
    drive(flow, DigitReceived("9"), PlaybackFinished("menu"))
    drive(flow, TimerExpired(MENU_TIMER), PlaybackFinished("menu"))
    # One more miss would end the call; a valid option starts the count afresh.
    drive(flow, DigitReceived("1"), PlaybackFinished("info"), PlaybackFinished("menu"))
    for _ in range(2):
        assert drive(flow, TimerExpired(MENU_TIMER)) == [Play("menu_prompt", "menu")]
        drive(flow, PlaybackFinished("menu"))
    assert drive(flow, TimerExpired(MENU_TIMER)) == [Hangup("timeout")]


def test_valid_option_after_a_timeout_branch_hangs_up_with_reason_flow() -> None:
    data = with_node(MENU_DATA, "menu", on_timeout="second", retries=0)
    data = with_node(
        data,
        "second",
        type="menu",
        prompt="second_prompt",
        options={"0": {"next": "bye"}},
        on_timeout="gone",
    )
    flow = at_menu_waiting(make_flow(data))
    assert drive(flow, TimerExpired(MENU_TIMER)) == [Play("second_prompt", "second")]
    assert drive(flow, DigitReceived("0")) == [StopPlayback("second"), Hangup("flow")]


# ---------------------------------------------------------------------- ring


def test_ring_offers_the_call_and_plays_hold_music() -> None:
    data = with_node(CONSENT_DATA, "recorded", hold="jazz", timeout_s=45)
    flow = at_consent_waiting(flow_def=make_flow(data))
    actions = drive(flow, DigitReceived("1"))
    assert actions[2:] == [
        Ring("recorded", "support", ANY),
        Play("jazz", "recorded", loop=True),
        StartTimer(RING_TIMER, 45.0),
    ]
    assert flow.decision == the_ring(actions).decision


# Each row: how the call reaches the line, the number's policy, and the expected
# decision (every field but the reasons). The flow's first node carries the notices.
_DECISION_NODES: dict[str, Any] = {
    "choose": {
        "type": "menu",
        "prompt": "choose_prompt",
        "options": {
            "1": {"next": "recorded", "consent": "granted"},
            "2": {"next": "recorded", "consent": "refused"},
            "3": {"next": "recorded"},
            "4": {"next": "private", "consent": "granted"},
        },
        "on_timeout": "private",
    },
    "recorded": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
    "private": {"type": "ring", "team": "t", "record": False, "on_no_answer": "bye"},
    "bye": {"type": "hangup"},
}


def decision_for(notice: list[str], digit: str, pol: NumberPolicy) -> RecordingDecision:
    """Answer, hear the intro to its end, press ``digit``: the decision of the line."""
    intro = {"type": "message", "prompt": "intro", "notice": notice, "next": "choose"}
    flow_def = make_flow({"start": "intro", "nodes": {"intro": intro, **_DECISION_NODES}})
    flow = CallFlow(flow_def, pol)
    drive(flow, CallAnswered(), PlaybackFinished("intro"))
    actions = drive(flow, DigitReceived(digit))
    decision = the_ring(actions).decision
    assert flow.decision == decision
    return decision


BOTH = ["recording", "ai"]


@dataclass(frozen=True)
class Case:
    notice: list[str]
    digit: str
    pol: NumberPolicy
    record: bool
    transcribe: bool
    consent: str | None
    in_sample: bool = True
    reason: str | None = None  # a word the reasons must contain, for a failing factor


DECISION_CASES = {
    "opt_in granted: recorded and transcribed": Case(BOTH, "1", OPT_IN, True, True, "granted"),
    "number switch off": Case(
        BOTH, "1", policy(recording=False), False, False, "granted", reason="switched off"
    ),
    "line does not record": Case(
        BOTH, "4", OPT_IN, False, False, "granted", reason="does not record"
    ),
    "opt_in refused": Case(BOTH, "2", OPT_IN, False, False, "refused", reason="refused"),
    "opt_in never asked": Case(BOTH, "3", OPT_IN, False, False, None, reason="never granted"),
    "notice mode, notice played": Case(BOTH, "3", NOTICE, True, True, None),
    "notice mode, only the ai notice": Case(
        ["ai"], "3", NOTICE, False, False, None, reason="notice"
    ),
    "notice mode, no notice": Case([], "3", NOTICE, False, False, None, reason="notice"),
    "transcription off": Case(BOTH, "1", policy(transcription=False), True, False, "granted"),
    "no ai notice, no transcript": Case(["recording"], "1", OPT_IN, True, False, "granted"),
    "ai notice but not recorded, no transcript": Case(
        BOTH, "2", OPT_IN, False, False, "refused", reason="refused"
    ),
    "draw below percent is in": Case(
        BOTH, "1", policy(record_percent=30, draw=29.99), True, True, "granted"
    ),
    "draw equal to percent is out": Case(
        BOTH, "1", policy(record_percent=30, draw=30.0), False, False, "granted", False, "30%"
    ),
    "draw above percent is out": Case(
        BOTH, "1", policy(record_percent=30, draw=30.01), False, False, "granted", False, "30%"
    ),
    "0% never, even at draw 0": Case(
        BOTH, "1", policy(record_percent=0, draw=0.0), False, False, "granted", False, "0%"
    ),
    "100% always, even at the top draw": Case(
        BOTH,
        "1",
        policy(record_percent=100, draw=math.nextafter(100.0, 0.0)),
        True,
        True,
        "granted",
    ),
}


@pytest.mark.parametrize("case", DECISION_CASES.values(), ids=DECISION_CASES.keys())
def test_recording_decision(case: Case) -> None:
    decision = decision_for(case.notice, case.digit, case.pol)
    line = "private" if case.digit == "4" else "recorded"
    expected = RecordingDecision(
        line=line,
        number_recording=case.pol.recording,
        line_records=line == "recorded",
        consent_mode=case.pol.consent_mode,
        consent=case.consent,
        notices=tuple(case.notice),
        record_percent=case.pol.record_percent,
        sample_draw=case.pol.sample_draw,
        in_sample=case.in_sample,
        record=case.record,
        transcribe=case.transcribe,
        reasons=decision.reasons,
    )
    assert decision == expected
    # The reasons explain the outcome: a failing factor is named; a recorded line says so.
    assert decision.reasons
    recorded_reasons = [r for r in decision.reasons if r.startswith("recorded")]
    assert len(recorded_reasons) == (1 if case.record else 0)
    if case.reason is not None:
        assert any(case.reason in r for r in decision.reasons), decision.reasons


def test_every_failing_factor_gives_its_own_reason() -> None:
    pol = policy(recording=False, record_percent=10, draw=90.0)
    decision = decision_for(BOTH, "4", pol)  # line off too; consent granted
    assert decision.record is False
    assert len(decision.reasons) == 3
    pol = policy(recording=False, consent_mode="notice", record_percent=10, draw=90.0)
    decision = decision_for([], "4", pol)
    assert len(decision.reasons) == 4


def test_decision_without_any_notice_node_in_notice_mode() -> None:
    flow_def = make_flow(
        {
            "start": "line",
            "nodes": {
                "line": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
                "bye": {"type": "hangup"},
            },
        }
    )
    actions = drive(CallFlow(flow_def, NOTICE), CallAnswered())
    assert actions == [
        Ring("line", "t", ANY),
        Play("hold", "line", loop=True),
        StartTimer(RING_TIMER, 30.0),
    ]
    decision = the_ring(actions).decision
    assert (decision.record, decision.notices, decision.consent) == (False, (), None)


# --------------------------------------------------------------- agent answers


def test_agent_answers_a_recorded_line() -> None:
    flow = ringing("recorded")
    assert drive(flow, AgentAnswered("Alice")) == [
        CancelTimer(RING_TIMER),
        StopPlayback("recorded"),
        Bridge("recorded", "Alice"),
        StartRecording("recorded", transcribe=True),
    ]
    assert flow.phase == "connected"


def test_agent_answers_a_recorded_line_without_transcription() -> None:
    flow = ringing("recorded", policy(transcription=False))
    assert drive(flow, AgentAnswered("bot-3"))[-1] == StartRecording("recorded", transcribe=False)


@pytest.mark.parametrize(
    ("line", "pol"),
    [
        ("private", OPT_IN),
        ("recorded", policy(recording=False)),
        ("recorded", policy(record_percent=0, draw=0.0)),
    ],
    ids=["line off", "number off", "outside sample"],
)
def test_agent_answers_an_unrecorded_call(line: str, pol: NumberPolicy) -> None:
    flow = ringing(line, pol)
    assert drive(flow, AgentAnswered("Bob")) == [
        CancelTimer(RING_TIMER),
        StopPlayback(line),
        Bridge(line, "Bob"),
    ]


@pytest.mark.parametrize("phase", ["ringing", "connected"])
def test_digits_are_ignored_on_the_line(phase: str) -> None:
    flow = ringing("recorded")
    if phase == "connected":
        drive(flow, AgentAnswered("Alice"))
    assert drive(flow, *(DigitReceived(d) for d in "12#")) == []
    assert flow.phase == phase


# -------------------------------------------------------------- ring timeout


def test_ring_timeout_goes_to_on_no_answer() -> None:
    flow = ringing("recorded")
    assert drive(flow, TimerExpired(RING_TIMER)) == [
        StopPlayback("recorded"),
        StopRinging("recorded"),
        Hangup("no_answer"),
    ]
    assert flow.phase == "ended"


def test_hangup_after_no_answer_says_no_answer_after_its_goodbye() -> None:
    data = with_node(CONSENT_DATA, "bye", prompt="no_agent_en")
    flow = at_consent_waiting(flow_def=make_flow(data))
    drive(flow, DigitReceived("2"))
    assert drive(flow, TimerExpired(RING_TIMER)) == [
        StopPlayback("private"),
        StopRinging("private"),
        Play("no_agent_en", "bye"),
    ]
    assert drive(flow, DigitReceived("1")) == []  # the goodbye cannot be skipped
    assert drive(flow, PlaybackFinished("bye")) == [Hangup("no_answer")]


def test_no_answer_can_lead_to_a_second_line() -> None:
    data = with_node(CONSENT_DATA, "recorded", on_no_answer="private")
    flow = at_consent_waiting(flow_def=make_flow(data))
    drive(flow, DigitReceived("1"))
    actions = drive(flow, TimerExpired(RING_TIMER))
    assert actions == [
        StopPlayback("recorded"),
        StopRinging("recorded"),
        Ring("private", "support", ANY),
        Play("hold", "private", loop=True),
        StartTimer(RING_TIMER, 20.0),
    ]
    assert flow.decision == the_ring(actions).decision
    assert flow.decision is not None
    assert (flow.decision.line, flow.decision.record) == ("private", False)


# -------------------------------------------------------------------- hangup


def test_hangup_node_without_goodbye() -> None:
    flow = at_menu_waiting()
    assert drive(flow, DigitReceived("2")) == [CancelTimer(MENU_TIMER), Hangup("flow")]
    assert flow.phase == "ended"


def test_hangup_node_with_goodbye() -> None:
    flow = at_menu_waiting(make_flow(with_node(MENU_DATA, "bye", prompt="goodbye")))
    assert drive(flow, DigitReceived("2")) == [CancelTimer(MENU_TIMER), Play("goodbye", "bye")]
    assert (flow.phase, flow.node) == ("playing", "bye")
    assert drive(flow, PlaybackFinished("bye")) == [Hangup("flow")]
    assert flow.phase == "ended"


# ------------------------------------------------------------- hang-ups


GOODBYE_CONSENT = make_flow(with_node(CONSENT_DATA, "bye", prompt="no_agent_en"))


@pytest.mark.parametrize(
    ("setup", "phase", "expected"),
    [
        pytest.param([], "new", [Hangup("caller")], id="new"),
        pytest.param(
            [CallAnswered()],
            "playing",
            [StopPlayback("notice"), Hangup("caller")],
            id="playing-message",
        ),
        pytest.param(
            [CallAnswered(), PlaybackFinished("notice")],
            "playing",
            [StopPlayback("consent"), Hangup("caller")],
            id="playing-menu",
        ),
        pytest.param(
            [CallAnswered(), PlaybackFinished("notice"), PlaybackFinished("consent")],
            "waiting",
            [CancelTimer(MENU_TIMER), Hangup("caller")],
            id="waiting",
        ),
        pytest.param(
            [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1")],
            "ringing",
            [
                CancelTimer(RING_TIMER),
                StopPlayback("recorded"),
                StopRinging("recorded"),
                Hangup("caller"),
            ],
            id="ringing",
        ),
        pytest.param(
            [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1"), AgentAnswered("A")],
            "connected",
            [StopRecording("recorded"), Hangup("caller")],
            id="connected-recorded",
        ),
        pytest.param(
            [CallAnswered(), PlaybackFinished("notice"), DigitReceived("2"), AgentAnswered("A")],
            "connected",
            [Hangup("caller")],
            id="connected-unrecorded",
        ),
        pytest.param(
            [
                CallAnswered(),
                PlaybackFinished("notice"),
                DigitReceived("2"),
                TimerExpired(RING_TIMER),
            ],
            "playing",
            [StopPlayback("bye"), Hangup("caller")],
            id="playing-goodbye",
        ),
    ],
)
def test_caller_hangs_up_in_every_phase(
    setup: list[Event], phase: str, expected: list[Action]
) -> None:
    flow = CallFlow(GOODBYE_CONSENT, OPT_IN)
    drive(flow, *setup)
    assert flow.phase == phase
    assert drive(flow, CallerHungUp()) == expected
    assert flow.phase == "ended"


@pytest.mark.parametrize(
    ("digit", "expected"),
    [
        ("1", [StopRecording("recorded"), Hangup("agent")]),
        ("2", [Hangup("agent")]),
    ],
    ids=["recorded", "unrecorded"],
)
def test_agent_hangs_up(digit: str, expected: list[Action]) -> None:
    flow = at_consent_waiting()
    drive(flow, DigitReceived(digit), AgentAnswered("Alice"))
    assert drive(flow, AgentHungUp()) == expected
    assert flow.phase == "ended"


# -------------------------------------------------------------- misuse


def _ended() -> list[Event]:
    return [CallAnswered(), PlaybackFinished("notice"), DigitReceived("2"), CallerHungUp()]


MISUSE: dict[str, tuple[list[Event], Event]] = {
    "digit before answer": ([], DigitReceived("1")),
    "playback before answer": ([], PlaybackFinished("notice")),
    "timer before answer": ([], TimerExpired(MENU_TIMER)),
    "answered twice": ([CallAnswered()], CallAnswered()),
    "agent answers while playing": ([CallAnswered()], AgentAnswered("A")),
    "agent hangs up while playing": ([CallAnswered()], AgentHungUp()),
    "playback of another node": ([CallAnswered()], PlaybackFinished("consent")),
    "menu timer while playing": ([CallAnswered()], TimerExpired(MENU_TIMER)),
    "playback while waiting": (
        [CallAnswered(), PlaybackFinished("notice"), PlaybackFinished("consent")],
        PlaybackFinished("consent"),
    ),
    "ring timer while waiting": (
        [CallAnswered(), PlaybackFinished("notice"), PlaybackFinished("consent")],
        TimerExpired(RING_TIMER),
    ),
    "agent answers while waiting": (
        [CallAnswered(), PlaybackFinished("notice"), PlaybackFinished("consent")],
        AgentAnswered("A"),
    ),
    "menu timer while ringing": (
        [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1")],
        TimerExpired(MENU_TIMER),
    ),
    "hold music finished while ringing": (
        [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1")],
        PlaybackFinished("recorded"),
    ),
    "agent hangs up while ringing": (
        [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1")],
        AgentHungUp(),
    ),
    "second agent answers": (
        [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1"), AgentAnswered("A")],
        AgentAnswered("B"),
    ),
    "ring timer while connected": (
        [CallAnswered(), PlaybackFinished("notice"), DigitReceived("1"), AgentAnswered("A")],
        TimerExpired(RING_TIMER),
    ),
    "caller hangs up after the end": (_ended(), CallerHungUp()),
    "agent hangs up after the end": (_ended(), AgentHungUp()),
    "digit after the end": (_ended(), DigitReceived("1")),
    "timer after the end": (_ended(), TimerExpired(RING_TIMER)),
    "playback after the end": (_ended(), PlaybackFinished("notice")),
    "answer after the end": (_ended(), CallAnswered()),
}


@pytest.mark.parametrize(("setup", "event"), MISUSE.values(), ids=MISUSE.keys())
def test_event_in_the_wrong_phase_is_refused(setup: list[Event], event: Event) -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, *setup)
    before = (flow.phase, flow.node, flow.decision, flow.notices)
    with pytest.raises(InvalidState) as info:
        flow.receive(event)
    assert isinstance(info.value, AssertionError)
    # The refused event changed nothing and emitted nothing.
    assert (flow.phase, flow.node, flow.decision, flow.notices) == before
    assert flow.actions_to_take() == []


def test_invalid_state_names_the_event_and_the_phase() -> None:
    flow = CallFlow(CONSENT, OPT_IN)
    drive(flow, CallAnswered())
    with pytest.raises(AssertionError, match=r"AgentAnswered.*'playing'"):
        flow.receive(AgentAnswered("A"))


# -------------------------------------------------------------- sample draw


def _random_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def test_sample_draw_is_deterministic() -> None:
    ids = _random_ids(50, seed=1)
    assert [sample_draw(i) for i in ids] == [sample_draw(i) for i in list(ids)]


def test_sample_draw_is_stable_across_processes() -> None:
    """Not Python's salted ``hash()``: another interpreter draws the same."""
    ids = _random_ids(5, seed=2)
    code = (
        "import sys; from ivr.flows import sample_draw; "
        "print([sample_draw(a) for a in sys.argv[1:]])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *ids],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=Path(ivr.flows.decision.__file__).resolve().parents[2],
    ).stdout
    assert out.strip() == repr([sample_draw(i) for i in ids])


def test_sample_draw_is_in_range_and_distinct() -> None:
    ids = _random_ids(20_000, seed=3)
    draws = [sample_draw(i) for i in ids]
    assert all(0.0 <= d < 100.0 for d in draws)
    assert len(set(draws)) == len(ids)


def test_sample_draw_is_uniform() -> None:
    """Chi-square over 20 equal bins: 19 degrees of freedom, p = 0.001 -> 43.82."""
    n, bins = 20_000, 20
    counts = [0] * bins
    for call_id in _random_ids(n, seed=4):
        counts[int(sample_draw(call_id) // (100 / bins))] += 1
    expected = n / bins
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 43.82, counts


@pytest.mark.parametrize("percent", [1, 10, 30, 50, 90, 99])
def test_sample_share_is_binomial(percent: int) -> None:
    n = 10_000
    inside = sum(sample_draw(i) < percent for i in _random_ids(n, seed=percent))
    p = percent / 100
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(inside - n * p) < 4.5 * sigma, inside


def test_sample_draw_ignores_nothing_of_the_id() -> None:
    """Ids that differ only at the end or start still draw differently."""
    base = "call-0000000000"
    variants = [base + c for c in "0123456789"] + [c + base for c in "0123456789"]
    assert len({sample_draw(v) for v in variants}) == len(variants)


class _TopDigest:
    """A stand-in for :mod:`hashlib` whose SHA-256 digest is all ones bits."""

    class _Hash:
        def digest(self) -> bytes:
            return b"\xff" * 32

    @classmethod
    def sha256(cls, data: bytes) -> _TopDigest._Hash:
        return cls._Hash()


def test_sample_draw_stays_below_100_at_the_top_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ivr.flows.decision, "hashlib", _TopDigest)
    draw = sample_draw("any call")
    assert draw < 100.0
    assert draw < policy(record_percent=100).record_percent


# --------------------------------------------------- property: no silent recording


@dataclass
class FakeDriver:
    """The session driver's view: what runs now, so that only legal events are fed.

    It checks every action against what is running (a timer is cancelled only if
    armed, a playback stopped only if playing, Hangup leaves nothing running).
    """

    flow: CallFlow
    log: list[Action] = field(default_factory=list)
    answered: bool = False
    ended: bool = False
    timers: dict[str, float] = field(default_factory=dict)
    playing: Play | None = None
    ringing: str | None = None
    bridged: str | None = None
    recording: str | None = None

    def feed(self, event: Event) -> None:
        if isinstance(event, CallAnswered):
            self.answered = True
        elif isinstance(event, PlaybackFinished):
            self.playing = None
        elif isinstance(event, TimerExpired):
            del self.timers[event.name]
        elif isinstance(event, AgentHungUp):
            self.bridged = None
        self.flow.receive(event)
        for action in self.flow.actions_to_take():
            self._apply(action)
            self.log.append(action)

    def _apply(self, action: Action) -> None:
        assert not self.ended, f"{action} after Hangup"
        if isinstance(action, StartTimer):
            assert action.name not in self.timers
            assert action.seconds > 0
            self.timers[action.name] = action.seconds
        elif isinstance(action, CancelTimer):
            del self.timers[action.name]
        elif isinstance(action, Play):
            assert self.playing is None, f"{action} over {self.playing}"
            self.playing = action
        elif isinstance(action, StopPlayback):
            assert self.playing is not None
            assert self.playing.node == action.node
            self.playing = None
        elif isinstance(action, Ring):
            assert self.ringing is None
            self.ringing = action.line
        elif isinstance(action, StopRinging):
            assert self.ringing == action.line
            self.ringing = None
        elif isinstance(action, Bridge):
            assert self.ringing == action.line
            assert self.bridged is None
            self.ringing, self.bridged = None, action.line
        elif isinstance(action, StartRecording):
            assert self.bridged == action.line
            assert self.recording is None
            self.recording = action.line
        elif isinstance(action, StopRecording):
            assert self.recording == action.line
            self.recording = None
        elif isinstance(action, Hangup):
            assert not self.timers
            assert self.playing is None
            assert self.ringing is None
            assert self.recording is None
            self.ended = True

    def time_events(self) -> list[Event]:
        """What the passing of time alone may bring: prompts ending, timers firing."""
        events: list[Event] = [TimerExpired(name) for name in sorted(self.timers)]
        if self.playing is not None and not self.playing.loop:
            events.append(PlaybackFinished(self.playing.node))
        return events

    def legal_events(self) -> list[Event | None]:
        """Legal events now; ``None`` stands for a digit."""
        if self.ended:
            return []
        if not self.answered:
            return [CallAnswered(), CallerHungUp()]
        events: list[Event | None] = [*self.time_events(), None, CallerHungUp()]
        if self.ringing is not None:
            events.append(AgentAnswered("agent"))
        if self.bridged is not None:
            events.append(AgentHungUp())
        return events


# The consent flow of issue 2 and a harder one: options that reach the recorded
# line with consent refused or never asked, and a goodbye prompt.
HARD_CONSENT = make_flow(
    with_node(
        with_node(
            CONSENT_DATA,
            "consent",
            options={
                "1": {"next": "recorded", "consent": "granted"},
                "2": {"next": "private", "consent": "refused"},
                "3": {"next": "recorded"},
                "4": {"next": "recorded", "consent": "refused"},
                "5": {"next": "notice"},
            },
        ),
        "bye",
        prompt="no_agent_en",
    ),
    "hard",
)

# From any state, with only time passing: the notice, three menu offers (retries: 2)
# of prompt and timer, the ring timer, and the goodbye. The "5" option loops back to
# the notice, but only a digit can take it.
TIME_BOUND = 1 + 3 * 2 + 1 + 1 + 1


# The same flow whose only notice is the AI one: notice mode must never record.
AI_NOTICE_ONLY = make_flow(with_node(CONSENT_DATA, "notice", notice=["ai"]), "ai_only")

DIGITS = st.one_of(st.sampled_from("12345"), st.sampled_from("0123456789*#ABCD"))


def consent_holds(log: list[Action], mode: str) -> bool:
    """Consent as the actions so far prove it: the last consent choice, or the notice."""
    if mode == "opt_in":
        consents = [a for a in log if isinstance(a, LogConsent)]
        return bool(consents) and consents[-1].decision == "granted"
    return any("recording" in a.kinds for a in log if isinstance(a, LogNotice))


@settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=st.data(),
    flow_def=st.sampled_from([CONSENT, HARD_CONSENT, AI_NOTICE_ONLY]),
    pol=st.builds(
        NumberPolicy,
        recording=st.booleans(),
        transcription=st.booleans(),
        consent_mode=st.sampled_from(["opt_in", "notice"]),
        record_percent=st.integers(0, 100),
        sample_draw=st.floats(0.0, 100.0, exclude_max=True),
    ),
    steps=st.integers(0, 40),
)
def test_no_recording_without_consent_and_time_ends_every_call(
    data: st.DataObject, flow_def: Flow, pol: NumberPolicy, steps: int
) -> None:
    driver = FakeDriver(CallFlow(flow_def, pol))
    for _ in range(steps):
        legal = [e for e in driver.legal_events() if not isinstance(e, CallerHungUp)]
        if not legal:
            break
        if data.draw(st.integers(0, 24), label="hang up at 0") == 0:
            driver.feed(CallerHungUp())
            break
        event = data.draw(st.sampled_from(legal))
        driver.feed(DigitReceived(data.draw(DIGITS)) if event is None else event)

    # Only time passes now: the call ends, or rests on a bridged line, in bounded steps.
    if not driver.answered and not driver.ended:
        driver.feed(CallAnswered())
    for _ in range(TIME_BOUND):
        pending = driver.time_events()
        if driver.ended or not pending:
            break
        driver.feed(pending[0])
    assert driver.ended or (not driver.time_events() and driver.bridged is not None)
    if not driver.ended:
        assert driver.flow.phase == "connected"
        driver.feed(AgentHungUp())
    assert driver.ended
    assert driver.flow.phase == "ended"
    assert isinstance(driver.log[-1], Hangup)
    assert sum(isinstance(a, Hangup) for a in driver.log) == 1

    for i, action in enumerate(driver.log):
        earlier = driver.log[:i]
        if isinstance(action, Ring) and action.decision.record:
            assert pol.recording
            assert pol.sample_draw < pol.record_percent
            assert consent_holds(earlier, pol.consent_mode)
        if isinstance(action, StartRecording):
            ring = [a for a in earlier if isinstance(a, Ring)][-1]
            assert ring.decision.record
            assert consent_holds(earlier, pol.consent_mode)
            notices = [a for a in earlier if isinstance(a, LogNotice)]
            assert action.transcribe == (
                pol.transcription and any("ai" in n.kinds for n in notices)
            )
