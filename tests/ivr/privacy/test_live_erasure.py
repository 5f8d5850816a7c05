"""Erasure of a caller who is on a call now: the recording stops, goes, and stays blocked.

Run on the simulator's switch (the real switchboard, sessions, recorder and
store, in virtual time), with the erasure use case the API runs.
"""

from __future__ import annotations

from pathlib import Path

from ivr.config import load_config
from ivr.services import privacy
from ivr.services.context import Context
from ivr.simulate.switch import Call, Switch

CALLER = "+15557654321"


def recorded_call(switch: Switch, caller: str = CALLER) -> Call:
    call = switch.dial("+15550100", caller=caller)
    call.wait_prompt("consent")
    call.press("1")
    call.wait_connected()
    return call


def context(switch: Switch) -> Context:
    assert switch.store is not None
    return Context(store=switch.store, switchboard=switch.switchboard)


def test_a_caller_erased_mid_call_stays_connected_unrecorded_and_nothing_remains(
    tmp_path: Path,
) -> None:
    with Switch.open(load_config(None), data_dir=tmp_path) as switch:
        call = recorded_call(switch)
        call.talk(3)
        assert [m for m in call.messages if m["type"] == "recording"][-1]["state"] == "on"
        receipt = switch._run(privacy.erase(context(switch), None, "contact", CALLER))
        assert receipt["erased"]["live_recordings_stopped"] == 1
        assert receipt["erased"]["recordings"] == 1
        assert receipt["recording_blocked"] is True
        # The caller saw the recording stop, and is still on the call.
        assert [m for m in call.messages if m["type"] == "recording"][-1]["state"] == "off"
        assert not call.ended.is_set()
        call.talk(2)
        call.hangup()
        assert call.reason == "caller"
        assert not call.recorded
        assert call.outcome.recordings == []
        decision = call.decision
        assert decision is not None
        assert decision["record"] is False
        assert any("erased during the call" in r for r in decision["reasons"])
    # Not a byte of it on disk: no WAV, no .partial renamed back by its writer.
    assert list((tmp_path / "recordings").rglob("*.wav*")) == []


def test_the_next_call_of_an_erased_caller_is_not_recorded_until_the_block_is_lifted() -> None:
    with Switch.open(load_config(None)) as switch:
        first = recorded_call(switch)
        first.hangup()
        assert first.recorded
        switch._run(privacy.erase(context(switch), None, "contact", CALLER))
        again = recorded_call(switch)  # consents again: the objection still stands
        again.talk(1)
        again.hangup()
        assert not again.recorded
        decision = again.decision
        assert decision is not None
        assert any(
            "objected to recording" in r and "lifts the block" in r for r in decision["reasons"]
        )
        other = recorded_call(switch, caller="+15550001111")  # someone else is recorded
        other.hangup()
        assert other.recorded
        listed = switch._run(privacy.blocks(context(switch), None))
        assert len(listed) == 1
        assert listed[0]["lifted_at"] is None
        assert CALLER not in str(listed)  # a pseudonym, never the number
        lifted = switch._run(privacy.lift_block(context(switch), None, CALLER))
        assert lifted["pseudonym"] == listed[0]["pseudonym"]
        after = recorded_call(switch)
        after.hangup()
        assert after.recorded


def test_erasing_a_caller_who_is_ringing_keeps_the_line_from_recording() -> None:
    config = load_config(None)
    with Switch.open(config) as switch:
        call = switch.dial("+15550100", caller=CALLER)
        call.wait_prompt("consent")
        call.press("1")
        call.wait_prompt("recorded")  # ringing the recorded line: the bot answers in 2 s
        switch._run(privacy.erase(context(switch), None, "contact", CALLER))
        call.wait_connected()
        call.talk(1)
        call.hangup()
        assert call.line == "recorded"
        assert not call.recorded


def test_the_command_lifts_a_block_once(tmp_path: Path) -> None:
    from ivr.cli import main

    with Switch.open(load_config(None), data_dir=tmp_path) as switch:
        recorded_call(switch).hangup()
        switch._run(privacy.erase(context(switch), None, "contact", CALLER))
    assert main(["unblock", "--contact", CALLER, "--data", str(tmp_path)]) == 0
    assert main(["unblock", "--contact", CALLER, "--data", str(tmp_path)]) == 1  # none left
    assert main(["unblock", "--contact", "555", "--data", str(tmp_path)]) == 1


def test_an_agent_erased_mid_call_leaves_no_name_in_the_call_s_events() -> None:
    with Switch.open(load_config(None)) as switch:
        person = switch.add_person("desk", answer_after_s=0.5)
        call = switch.dial("+15550102", caller=CALLER)
        call.wait_prompt("consent")
        call.press("1")
        call.wait_connected()
        call.talk(1)
        assert person.seat is not None
        name, agent_id = person.seat.name, person.seat.user_id
        receipt = switch._run(privacy.erase(context(switch), None, "agent", agent_id))
        assert receipt["erased"]["live_recordings_stopped"] == 1
        call.talk(1)
        call.hangup()
        assert not call.recorded
        assert switch.store is not None
        events = switch._run(switch.store.calls.events(call.id))
        assert events  # the timeline is saved...
        assert name not in str([e.data for e in events])  # ...without the erased agent's name
        assert any(e.data.get("agent", "").startswith("ps_") for e in events)
