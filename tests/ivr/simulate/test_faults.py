"""Faults on purpose: frames lost, a caller who stops reading, a failing disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from ivr.cli import main
from ivr.config import load_config
from ivr.errors import StorageUnavailable
from ivr.load.scenario import load_scenario
from ivr.simulate.cases import load_cases, run_case
from ivr.simulate.run import simulate
from ivr.simulate.switch import Switch
from tests.conftest import read_recording_file


def recorded_call(switch: Switch) -> object:
    call = switch.dial("+15550100")
    call.wait_prompt("consent")
    call.press("1")
    call.wait_connected()
    return call


def test_lost_frames_are_silence_in_a_recording_that_keeps_the_call_s_time(
    tmp_path: Path,
) -> None:
    with Switch.open(load_config(None), data_dir=tmp_path) as switch:
        call = switch.dial("+15550100")
        call.wait_prompt("consent")
        call.press("1")
        call.wait_connected()
        call.lose_frames(50)
        call.talk(4)
        call.hangup()
        assert call.recorded
        (rec,) = call.outcome.recordings
    wav = next((tmp_path / "recordings").rglob("*.wav"))
    audio, rate = read_recording_file(wav, tmp_path / "keys")
    frames = audio[: len(audio) // 160 * 160, 0].reshape(-1, 160)
    talking = int(np.count_nonzero(np.any(frames != 0, axis=1)))
    # 200 talk frames sent, about half lost: the rest recorded, the lost ones silent,
    # and the file as long as the call was recorded (its time line kept).
    assert 60 <= talking <= 140
    assert rec["duration_s"] == pytest.approx(len(audio) / rate, abs=0.001)
    assert len(audio) / rate >= 4.0


def test_a_caller_who_stops_reading_leaves_the_switch_counting_unsent_audio() -> None:
    with Switch.open(load_config(None)) as switch:
        call = switch.dial("+15550100")
        call.wait_prompt("consent")
        call.press("2")
        call.wait_connected()
        heard = call.frames_heard
        call.stop_reading()
        call.talk(2)
        call.hangup()
        assert call.frames_heard == heard
        stats = call.outcome.stats
        assert stats is not None
        assert stats["frames_unsent"] >= 90  # two seconds the caller never read
        assert call.line == "private"


def test_records_refused_during_a_store_outage_are_written_once_it_ends() -> None:
    with Switch.open(load_config(None)) as switch:
        call = switch.dial("+15550100")
        call.wait_prompt("consent")
        switch.fail_store(3)
        call.press("1")  # the consent evidence is written while the disk fails
        call.wait_connected()
        call.talk(3)
        call.hangup()
        assert call.consent == "granted"
        assert call.recorded


def test_no_call_is_placed_while_the_store_refuses_writes() -> None:
    with Switch.open(load_config(None)) as switch:
        switch.fail_store(5)
        with pytest.raises(StorageUnavailable):
            switch.dial("+15550100")
        switch.run_for(6)
        call = switch.dial("+15550100")  # the disk is back
        call.wait_prompt("consent")
        call.hangup()
        assert call.reason == "caller"


def test_fault_steps_in_a_case(tmp_path: Path) -> None:
    f = tmp_path / "faults.yaml"
    f.write_text(
        "cases:\n"
        "  - name: lossy and deaf, still recorded after consent\n"
        '    dial: "+15550100"\n'
        "    steps:\n"
        '      - {wait_prompt: consent}\n      - {press: "1"}\n      - wait_connected\n'
        "      - {lose_frames: 20}\n      - {fail_store: 2}\n      - {talk: 2}\n"
        "      - stop_reading\n      - {talk: 1}\n      - hangup\n"
        "    expect: {recorded: true, consent: granted, line: recorded}\n"
    )
    (case,) = load_cases(f).cases
    result = run_case(load_config(None), case)
    assert result.passed, result.failures


def test_a_scenario_s_faults_show_in_its_report(tmp_path: Path) -> None:
    spec = {
        "name": "faulty",
        "to": "+15550100",
        "calls": 30,
        "concurrency": 30,
        "arrival": {"rate_cps": 3},
        "talk": {"seconds": 3.0},
        "seed": 5,
        "mix": {"consent": 1, "refuse": 1},
        "faults": {"store_outage": {"at_s": 4, "for_s": 3}},
        "objectives": {"calls_failed": {"max": 0}},
    }
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(spec))
    report = simulate(load_scenario(path, {}), load_config(None)).report()
    assert report["passed"] is False
    failed = report["outcomes"]["failed"]
    refused = [f for f in failed if f["outcome"] == "error_storage_unavailable"]
    assert refused, failed  # calls dialled during the outage were refused, and say why
    assert len(refused) < 30  # ... and only those
    assert any("faults injected" in n for n in report["run"]["notes"])
    # The calls that were placed are verified as usual (none of them lost a frame).
    assert report["verification"]["mismatches"] == []
    # Callers who all stop reading once answered never hear the menu: none is recorded.
    spec.update(
        calls=6,
        concurrency=6,
        call_timeout_s=40,
        faults={"stop_reading_percent": 100, "stop_reading_after_s": 0.5},
    )
    path.write_text(yaml.safe_dump(spec))
    deaf = simulate(load_scenario(path, {}), load_config(None)).report()
    assert {f["outcome"] for f in deaf["outcomes"]["failed"]} == {"timeout"}
    assert len(deaf["outcomes"]["failed"]) == 6
    # ivr load refuses a scenario with faults: only the simulator injects them.
    assert main(["load", str(path), "--url", "http://127.0.0.1:9", "--no-verify"]) == 2
