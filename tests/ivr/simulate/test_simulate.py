"""``ivr simulate``: the load scenarios in virtual time, as ``ivr load`` runs them in real time."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ivr.cli import main
from ivr.config import load_config
from ivr.load.cli import configure_parser, resolve_scenario, run_async
from ivr.load.scenario import load_scenario
from ivr.simulate.run import simulate, without_wall_clock


def sim_report(name: str, **overrides: Any) -> dict[str, Any]:
    scenario = load_scenario(resolve_scenario(name), overrides)
    return simulate(scenario, load_config(None)).report()


@pytest.mark.parametrize("name", ["smoke", "g711-inband"])
async def test_a_scenario_ends_the_same_in_virtual_time_as_in_real_time(
    name: str, tmp_path: Path
) -> None:
    p = argparse.ArgumentParser()
    configure_parser(p)
    args = p.parse_args([name, "--embedded", "--report", str(tmp_path / "real"), "--quiet"])
    out, err = io.StringIO(), io.StringIO()
    # 1 is allowed: a loaded machine can miss the real run's lateness objectives;
    # what is compared here is how each call ended and what verification found.
    assert await run_async(args, out, err) in (0, 1), out.getvalue() + err.getvalue()
    real = json.loads((tmp_path / "real" / "report.json").read_text())
    # The simulator runs its own (virtual) loop: on a thread, beside this test's.
    virtual = await asyncio.to_thread(sim_report, name)
    assert virtual["passed"] is True
    assert virtual["outcomes"]["by_behaviour"] == real["outcomes"]["by_behaviour"]
    assert virtual["verification"]["by_behaviour"] == real["verification"]["by_behaviour"]
    assert virtual["verification"]["mismatches"] == []
    assert virtual["counts"]["calls_failed"] == 0
    assert virtual["simulation"]["simulated_s"] > 10


def test_consent_mix_passes_in_virtual_time_with_its_agents() -> None:
    report = sim_report("consent-mix")
    assert report["passed"] is True, report["objectives"]
    checked = report["verification"]["by_behaviour"]
    assert report["verification"]["mismatches"] == []
    assert checked["consent"].get("ok", 0) > 0  # recordings checked frame for frame
    # The agents who hang up first are people on the desk line (simulated /v1/agent).
    assert checked["agent_hangup"].get("ok", 0) > 0
    assert report["counts"]["calls_failed"] == 0


def test_capacity_ramp_holds_its_calls_in_virtual_time() -> None:
    report = sim_report("capacity-ramp", calls=100)
    assert report["passed"] is True, report["objectives"]
    assert report["counts"]["calls_failed"] == 0
    assert len(report["calls"]) == 100


def test_one_seed_gives_one_report_and_another_seed_another() -> None:
    a = without_wall_clock(sim_report("smoke"))
    b = without_wall_clock(sim_report("smoke"))
    c = without_wall_clock(sim_report("smoke", seed=99))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert [x["call_id"] for x in a["calls"]] != [x["call_id"] for x in c["calls"]]
    assert a["scenario"]["planned"] != c["scenario"]["planned"] or a["calls"] != c["calls"]


def test_the_command_writes_the_report_with_the_speed_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "smoke", "--calls", "6", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "result: PASS" in out
    assert "x real time" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    sim = report["simulation"]
    assert sim["virtual_time"] is True
    assert sim["speed_up"] > 1
    assert len(report["calls"]) == 6
    assert (tmp_path / "r" / "report.html").is_file()


def test_a_bad_scenario_or_config_is_exit_2(tmp_path: Path) -> None:
    assert main(["simulate", str(tmp_path / "missing.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("numbers: {}\n")
    assert main(["simulate", "smoke", "--config", str(bad)]) == 2
