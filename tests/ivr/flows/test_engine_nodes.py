"""The engine's gather, pause/resume_recording and voicemail nodes (no loop, no time)."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.errors import InvalidState
from ivr.flows import (
    GATHER_TIMER,
    VOICEMAIL_TIMER,
    Action,
    AgentAnswered,
    CallAnswered,
    CallerHungUp,
    CallFlow,
    CancelTimer,
    DigitReceived,
    Event,
    Flow,
    Gathered,
    Hangup,
    NumberPolicy,
    PauseRecording,
    Play,
    PlaybackFinished,
    ResumeRecording,
    StartRecording,
    StartTimer,
    StartVoicemail,
    StopPlayback,
    StopRecording,
    TimerExpired,
    validate_flow,
)


def make(nodes: dict[str, Any], start: str) -> Flow:
    flow, problems = validate_flow("f", {"start": start, "nodes": nodes})
    assert flow is not None, problems
    return flow


def policy(**kw: Any) -> NumberPolicy:
    base: dict[str, Any] = {
        "recording": True,
        "transcription": False,
        "consent_mode": "notice",
        "record_percent": 100,
        "sample_draw": 0.0,
    }
    return NumberPolicy(**{**base, **kw})


def drive(flow: CallFlow, *events: Event) -> list[Action]:
    out: list[Action] = []
    for e in events:
        flow.receive(e)
        out += flow.actions_to_take()
    return out


GATHER: dict[str, Any] = {
    "card": {
        "type": "gather",
        "prompt": "card_prompt",
        "next": "bye",
        "on_timeout": "sorry",
        "max_digits": 4,
        "timeout_s": 5,
        "inter_digit_timeout_s": 2,
        "sensitive": True,
    },
    "bye": {"type": "hangup"},
    "sorry": {"type": "hangup", "prompt": "sorry"},
}


def test_gather_collects_until_max_digits_with_barge_in() -> None:
    flow = CallFlow(make(GATHER, "card"), policy())
    assert drive(flow, CallAnswered()) == [
        PauseRecording("sensitive input"),
        Play("card_prompt", "card"),
    ]
    assert flow.sensitive
    assert drive(flow, DigitReceived("4")) == [StopPlayback("card"), StartTimer(GATHER_TIMER, 2.0)]
    drive(flow, DigitReceived("1"), DigitReceived("1"))
    assert drive(flow, DigitReceived("1")) == [
        CancelTimer(GATHER_TIMER),
        ResumeRecording(),
        Gathered("card", "4111", True),
        Hangup("flow"),
    ]
    assert not flow.sensitive


def test_gather_finish_key_and_inter_digit_timeout() -> None:
    nodes = {**GATHER, "card": {**GATHER["card"], "sensitive": False, "max_digits": 10}}
    flow = CallFlow(make(nodes, "card"), policy())
    drive(flow, CallAnswered(), PlaybackFinished("card"), DigitReceived("1"), DigitReceived("2"))
    assert drive(flow, DigitReceived("#")) == [
        CancelTimer(GATHER_TIMER),
        Gathered("card", "12", False),
        Hangup("flow"),
    ]
    flow = CallFlow(make(nodes, "card"), policy())
    drive(flow, CallAnswered(), PlaybackFinished("card"), DigitReceived("7"))
    assert drive(flow, TimerExpired(GATHER_TIMER)) == [Gathered("card", "7", False), Hangup("flow")]


def test_gather_with_no_digit_goes_to_on_timeout() -> None:
    flow = CallFlow(make(GATHER, "card"), policy())
    drive(flow, CallAnswered(), PlaybackFinished("card"))
    assert drive(flow, TimerExpired(GATHER_TIMER)) == [ResumeRecording(), Play("sorry", "sorry")]
    assert drive(flow, PlaybackFinished("sorry")) == [Hangup("timeout")]


def test_caller_hangs_up_while_gathering() -> None:
    flow = CallFlow(make(GATHER, "card"), policy())
    drive(flow, CallAnswered(), PlaybackFinished("card"))
    assert drive(flow, CallerHungUp()) == [CancelTimer(GATHER_TIMER), Hangup("caller")]


RECORDED_LINE = {
    "notice": {"type": "message", "prompt": "n", "notice": ["recording"], "next": "hush"},
    "hush": {"type": "pause_recording", "next": "line", "reason": "payment"},
    "line": {"type": "ring", "team": "t", "record": True, "on_no_answer": "bye"},
    "bye": {"type": "hangup"},
}


def test_pause_node_passes_through_and_a_later_recording_starts_paused() -> None:
    flow = CallFlow(make(RECORDED_LINE, "notice"), policy())
    drive(flow, CallAnswered())
    actions = drive(flow, PlaybackFinished("notice"))
    assert actions[1] == PauseRecording("payment")  # after the LogNotice
    assert flow.node == "line"
    actions = drive(flow, AgentAnswered("Ana"))
    assert StartRecording("line", False, paused=True) in actions


def test_resume_node_resumes_and_twice_is_once() -> None:
    nodes = {
        "p": {"type": "pause_recording", "next": "r"},
        "r": {"type": "resume_recording", "next": "r2"},
        "r2": {"type": "resume_recording", "next": "bye"},
        "bye": {"type": "hangup"},
    }
    flow = CallFlow(make(nodes, "p"), policy())
    assert drive(flow, CallAnswered()) == [
        PauseRecording("flow"),
        ResumeRecording(),
        Hangup("flow"),
    ]


def test_a_loop_of_pause_and_resume_nodes_is_stopped() -> None:
    nodes = {
        "p": {"type": "pause_recording", "next": "r"},
        "r": {"type": "resume_recording", "next": "p"},
    }
    flow = CallFlow(make(nodes, "p"), policy())
    with pytest.raises(InvalidState, match="loops"):
        drive(flow, CallAnswered())


VOICEMAIL = {
    "notice": {"type": "message", "prompt": "n", "notice": ["recording"], "next": "vm"},
    "vm": {"type": "voicemail", "prompt": "beep", "record": True, "max_length_s": 30},
}


def test_voicemail_records_under_the_line_rules_and_finish_key_ends_it() -> None:
    flow = CallFlow(make(VOICEMAIL, "notice"), policy())
    drive(flow, CallAnswered(), PlaybackFinished("notice"))
    actions = drive(flow, DigitReceived("5"), PlaybackFinished("vm"))  # digit ignored
    assert isinstance(actions[0], StartVoicemail)
    assert actions[0].decision.record
    assert actions[1:] == [StartRecording("vm", False), StartTimer(VOICEMAIL_TIMER, 30.0)]
    assert drive(flow, DigitReceived("1")) == []
    assert drive(flow, DigitReceived("#")) == [
        CancelTimer(VOICEMAIL_TIMER),
        StopRecording("vm"),
        Hangup("flow"),
    ]


def test_voicemail_without_the_notice_does_not_record_and_max_length_ends_it() -> None:
    nodes = {"vm": VOICEMAIL["vm"]}
    flow = CallFlow(make(nodes, "vm"), policy())
    drive(flow, CallAnswered())
    actions = drive(flow, PlaybackFinished("vm"))
    assert isinstance(actions[0], StartVoicemail)
    assert not actions[0].decision.record
    assert "the recording notice was not played" in actions[0].decision.reasons
    assert actions[1:] == [StartTimer(VOICEMAIL_TIMER, 30.0)]
    assert drive(flow, TimerExpired(VOICEMAIL_TIMER)) == [Hangup("flow")]


def test_caller_hangs_up_during_voicemail() -> None:
    flow = CallFlow(make(VOICEMAIL, "notice"), policy())
    drive(flow, CallAnswered(), PlaybackFinished("notice"), PlaybackFinished("vm"))
    assert drive(flow, CallerHungUp()) == [
        CancelTimer(VOICEMAIL_TIMER),
        StopRecording("vm"),
        Hangup("caller"),
    ]
