"""The engine's list of branches taken (CallFlow.path), and the proof's list of those allowed."""

from __future__ import annotations

from typing import Any

from ivr.flows import (
    GATHER_TIMER,
    MENU_TIMER,
    CallAnswered,
    CallFlow,
    DigitReceived,
    PlaybackFinished,
    Step,
    TimerExpired,
    compliance,
)
from tests.ivr.flows.test_engine import OPT_IN, make_flow

DATA: dict[str, Any] = {
    "start": "menu",
    "nodes": {
        "menu": {
            "type": "menu",
            "prompt": "consent_menu_en",
            "options": {"1": {"next": "pause"}},
            "timeout_s": 5,
            "retries": 1,
            "on_timeout": "bye",
            "on_invalid": "help",
        },
        "help": {"type": "message", "prompt": "notice_en", "next": "menu"},
        "pause": {"type": "pause_recording", "reason": "card", "next": "card"},
        "card": {
            "type": "gather",
            "prompt": "notice_en",
            "max_digits": 4,
            "timeout_s": 5,
            "next": "bye",
            "on_timeout": "bye",
        },
        "bye": {"type": "hangup"},
    },
}


def test_the_path_names_each_branch_as_the_proof_does() -> None:
    flow = make_flow(DATA)
    call = CallFlow(flow, OPT_IN)
    call.receive(CallAnswered())
    call.receive(PlaybackFinished("menu"))
    call.receive(DigitReceived("7"))  # invalid: to the help message
    call.receive(PlaybackFinished("help"))
    call.receive(PlaybackFinished("menu"))
    call.receive(TimerExpired(MENU_TIMER))  # the one retry is spent: on_timeout
    assert call.path == [
        Step("menu", "help", "invalid"),
        Step("help", "menu", "next"),
        Step("menu", "bye", "timeout"),
    ]
    allowed = set(compliance.branches(flow))
    assert set(call.path) <= allowed


def test_a_pass_through_node_and_a_gather_without_digits_are_listed() -> None:
    flow = make_flow(DATA)
    call = CallFlow(flow, OPT_IN)
    call.receive(CallAnswered())
    call.receive(DigitReceived("1"))  # barge-in on the menu
    call.receive(PlaybackFinished("card"))
    call.receive(TimerExpired(GATHER_TIMER))
    assert call.path == [
        Step("menu", "pause", "option", "1"),
        Step("pause", "card", "next"),
        Step("card", "bye", "no_digits"),
    ]
    assert [s.describe() for s in call.path] == [
        "menu -[key 1]-> pause",
        "pause -[next]-> card",
        "card -[no digits]-> bye",
    ]


def test_branches_lists_every_edge_once_from_reachable_nodes() -> None:
    flow = make_flow(DATA)
    got = compliance.branches(flow)
    assert len(got) == len(set(got))
    assert Step("menu", "menu", "retry") in got
    assert Step("menu", "help", "invalid") in got
    assert Step("card", "bye", "next") in got
    assert {s.source for s in got} == {"menu", "help", "pause", "card"}
