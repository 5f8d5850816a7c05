"""The whole switch in virtual time: real calls, real recordings, the same every time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ivr.config import load_config
from ivr.errors import InvalidConfig
from ivr.simulate.switch import FlowTestFailure, Switch
from ivr.store.keyring import Keyring
from media.sealed import open_audio
from tests.conftest import read_recording_file


def test_a_consenting_caller_is_recorded_in_a_real_stereo_file(tmp_path: Path) -> None:
    with Switch.open(load_config(None), data_dir=tmp_path) as switch:
        call = switch.dial("+15550100")
        call.wait_prompt("consent")
        call.press("1")
        call.wait_connected()
        call.talk(3)
        call.hangup()
        assert call.line == "recorded"
        assert call.consent == "granted"
        assert call.recorded
        (rec,) = call.outcome.recordings
        rows = [r for r in switch.calls if r is call]
        assert rows
    path = next((tmp_path / "recordings").rglob("*.wav"))
    audio, rate = read_recording_file(path, tmp_path / "keys")
    assert audio.shape[1] == 2
    assert rate == 8000
    # Three seconds of talk after the bridge, and the bot's answer delay before it.
    assert 3.0 <= len(audio) / rate <= 6.0
    with open_audio(path, Keyring(tmp_path / "keys").key) as plain:
        assert rec["sha256"] == hashlib.sha256(plain.read_at(0, plain.size)).hexdigest()
    assert rec["duration_s"] == pytest.approx(len(audio) / rate, abs=0.001)


def test_the_same_seed_gives_the_same_calls_and_another_seed_other_ids(tmp_path: Path) -> None:
    def one(seed: int, folder: Path) -> tuple[str, list[str], float, str | None]:
        with Switch.open(load_config(None), seed=seed, data_dir=folder) as switch:
            call = switch.dial("+15550100")
            call.wait_connected()  # silence: the menu twice again, then the private line
            call.hangup()
            return call.id, [s.describe() for s in call.path], switch.now, call.line

    a = one(1, tmp_path / "a")
    b = one(1, tmp_path / "b")
    c = one(2, tmp_path / "c")
    assert a == b
    assert c[0] != a[0]
    assert c[1:] == a[1:]  # the flow does not depend on the seed; the ids do


def test_waiting_for_a_prompt_the_call_never_reaches_names_the_path() -> None:
    with Switch.open(load_config(None)) as switch:
        call = switch.dial("+15550101")  # sales: no menu
        with pytest.raises(
            FlowTestFailure, match=r"prompt of node 'consent'.*notice -\[next\]-> line"
        ):
            call.wait_prompt("consent", within_s=20)


def test_dialling_an_unknown_number_says_so() -> None:
    with (
        Switch.open(load_config(None)) as switch,
        pytest.raises(FlowTestFailure, match="not a number"),
    ):
        switch.dial("+15559999999")


def test_a_flow_the_proof_refuses_does_not_open(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BROKEN)
    with pytest.raises(InvalidConfig, match="default_branch"), Switch.open(load_config(config)):
        pass


BROKEN = """
numbers:
  "+15550100":
    name: Broken
    flow: broken
    recording: true
    consent_mode: opt_in
teams:
  support: {bots: 2}
flows:
  broken:
    start: notice
    nodes:
      notice: {type: message, prompt: notice_en, notice: [recording], next: consent}
      consent:
        type: menu
        prompt: consent_menu_en
        options:
          "1": {next: recorded, consent: granted}
          "2": {next: private, consent: refused}
        timeout_s: 5
        retries: 0
        on_timeout: recorded
      recorded: {type: ring, team: support, record: true, timeout_s: 30, on_no_answer: bye}
      private: {type: ring, team: support, record: false, timeout_s: 30, on_no_answer: bye}
      bye: {type: hangup, prompt: no_agent_en}
"""


def test_a_simulated_person_answers_a_desk_call_and_can_hang_up_first() -> None:
    with Switch.open(load_config(None)) as switch:
        person = switch.add_person("desk", answer_after_s=1.5, hangup_after_s=2.0)
        call = switch.dial("+15550102")
        call.wait_prompt("consent")
        asked = switch.now
        call.press("1")
        call.wait_connected()
        assert switch.now - asked >= 1.5 - 1e-6  # the person took their time to answer
        assert (call.connected_to or "").startswith("Person")
        call.wait_end()
        assert call.reason == "agent"
        assert call.recorded
        assert (person.offers, person.calls) == (1, 1)
        with pytest.raises(FlowTestFailure, match="no team"):
            switch.add_person("nobody")
