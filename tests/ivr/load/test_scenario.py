"""Scenarios: validation with every problem and its path, the shipped files, the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.errors import InvalidConfig
from ivr.load.errors import InvalidScenario
from ivr.load.scenario import (
    SCENARIOS_DIR,
    Arrival,
    arrival_time,
    caller_id,
    load_scenario,
    parse_scenario,
    plan,
)


def minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "to": "+15550100",
        "calls": 10,
        "concurrency": 5,
        "mix": {"consent": 1},
    }
    data.update(extra)
    return data


def problems(data: Any, tmp_path: Path = Path(".")) -> dict[str, str]:
    with pytest.raises(InvalidScenario) as info:
        parse_scenario(data, "s.yaml", tmp_path)
    return {p.path: p.message for p in info.value.problems}


def test_a_minimal_scenario_gets_the_defaults() -> None:
    s = parse_scenario(minimal(), "s.yaml", Path("."))
    spec = s.spec
    assert (spec.codec, spec.rate, spec.menu_node, spec.dtmf.mode) == (
        "pcm_s16le",
        8000,
        "consent",
        "message",
    )
    consent = spec.mix["consent"]
    assert (consent.kind, consent.weight, consent.digit_to_press, consent.recorded) == (
        "consent",
        1.0,
        "1",
        True,
    )
    assert s.talk_file is None


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems(
        minimal(
            codec="pcmu",
            rate=16000,
            mix={
                "consent": 2,
                "refuse": {"after_s": 1, "digit": "12"},
                "silent": {"digit": "3"},
                "invalid": {"wait_s": 3},
            },
            objectives={
                "setup_ms": {"p99": 10},
                "setup_answered_ms": {"min": 3},
                "calls_failed": {"p99": 1},
                "dtmf_response_ms": {},
                "ring_ms": {"max": -1},
            },
        )
    )
    assert found == {
        "rate": "codec pcmu runs at 8000 Hz, not 16000",
        "mix.refuse.digit": "one DTMF digit of 0123456789*#ABCD",
        "mix.refuse.after_s": "only an early_hangup behaviour takes after_s",
        "mix.silent.digit": "a silent caller presses no digit",
        "mix.invalid.wait_s": "only an agent_hangup behaviour takes wait_s",
        "objectives.setup_ms": found["objectives.setup_ms"],
        "objectives.setup_answered_ms.min": (
            "setup_answered_ms takes p50, p90, p99, p999, max, not min"
        ),
        "objectives.calls_failed.p99": "calls_failed takes max, min, not p99",
        "objectives.dtmf_response_ms": "give at least one bound (p50, p90, p99, p999, max)",
        "objectives.ring_ms.max": "must be 0 or more",
    }
    assert found["objectives.setup_ms"].startswith(
        "no metric 'setup_ms'; use one of setup_answered_ms"
    )


def test_shape_errors_name_the_key_inside_the_mix() -> None:
    found = problems(
        minimal(
            calls=0,
            arrival={"rate_cps": -1, "burst": 3},
            mix={"consent": {"weight": 0, "colour": "red"}, "early_hangup": {"after_s": "soon"}},
            dtmf={"mode": "loud"},
        )
    )
    assert found["calls"] == "Input should be greater than or equal to 1"
    assert found["arrival.rate_cps"] == "Input should be greater than 0"
    assert found["arrival.burst"] == "unknown key"
    assert found["mix.consent.weight"] == "Input should be greater than 0"
    assert found["mix.consent.colour"] == "unknown key"
    assert found["mix.early_hangup.after_s"].startswith("Input should be a valid number")
    assert found["dtmf.mode"] == "Input should be 'message' or 'inband'"


def test_an_unquoted_number_gets_a_quoting_hint() -> None:
    found = problems(minimal(to=15550100, mix={"agent_hangup": {"to": 15550102}}))
    assert found["to"].startswith('write the number in quotes, e.g. "+15550100"')
    assert found["mix.agent_hangup.to"].startswith('write the number in quotes, e.g. "+15550102"')


def test_a_mix_entry_must_name_a_kind() -> None:
    found = problems(minimal(mix={"chatty": 3, "polite": {"kind": "consent"}}))
    assert list(found) == ["mix.chatty.kind"]
    assert "'chatty' is not a behaviour" in found["mix.chatty.kind"]
    s = parse_scenario(
        minimal(mix={"polite": {"kind": "consent", "digit": "7"}}), "s.yaml", Path(".")
    )
    assert s.spec.mix["polite"].digit_to_press == "7"


def test_numbers_must_be_e164_and_caller_ids_must_fit() -> None:
    found = problems(minimal(to="+0123", mix={"consent": {"to": "555"}}))
    assert found == {
        "to": "not an E.164 number (a + then 2 to 15 digits)",
        "mix.consent.to": "not an E.164 number",
    }
    assert problems(minimal(from_prefix="+12345678"))["from_prefix"].startswith(
        "String should match"
    )
    assert parse_scenario(minimal(from_prefix="+1234567", calls=10**6), "s", Path(".")).spec


def test_talk_file_is_resolved_next_to_the_scenario(tmp_path: Path) -> None:
    found = problems(minimal(talk={"audio": "hello.wav"}), tmp_path)
    assert found["talk.audio"].startswith("no such file 'hello.wav'")
    (tmp_path / "hello.wav").write_bytes(b"RIFF")
    s = parse_scenario(minimal(talk={"audio": "hello.wav"}), "s.yaml", tmp_path)
    assert s.talk_file == (tmp_path / "hello.wav").resolve()


def test_a_scenario_error_is_an_invalid_config() -> None:
    with pytest.raises(
        InvalidConfig, match=r"invalid scenario s.yaml \(1 problem\(s\)\):\n  s.yaml: \(top level\)"
    ):
        parse_scenario(["not", "a", "mapping"], "s.yaml", Path("."))


def test_files_bad_yaml_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmix: {consent: 1\n")
    with pytest.raises(InvalidScenario) as info:
        load_scenario(bad)
    assert info.value.problems[0].path.startswith("line 3")
    with pytest.raises(InvalidScenario, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")


def test_overrides_replace_the_file_and_are_checked(tmp_path: Path) -> None:
    s = parse_scenario(
        minimal(), "s.yaml", tmp_path, {"calls": 3, "concurrency": 2, "seed": 9, "processes": None}
    )
    assert (s.spec.calls, s.spec.concurrency, s.spec.seed) == (3, 2, 9)
    with pytest.raises(InvalidScenario) as info:
        parse_scenario(minimal(), "s.yaml", tmp_path, {"calls": 0})
    assert [p.path for p in info.value.problems] == ["calls"]


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_scenarios_are_valid(path: Path) -> None:
    s = load_scenario(path)
    assert s.spec.name == path.stem
    assert s.spec.objectives


def test_the_shipped_scenarios_cover_the_issue() -> None:
    names = {p.stem for p in SCENARIOS_DIR.glob("*.yaml")}
    assert {"smoke", "consent-mix", "capacity-ramp", "g711-inband"} <= names
    smoke = load_scenario(SCENARIOS_DIR / "smoke.yaml").spec
    assert smoke.calls == 20
    mix = load_scenario(SCENARIOS_DIR / "consent-mix.yaml").spec
    assert {b.kind for b in mix.mix.values()} == {
        "consent",
        "refuse",
        "silent",
        "invalid",
        "early_hangup",
        "agent_hangup",
    }
    g711 = load_scenario(SCENARIOS_DIR / "g711-inband.yaml").spec
    assert (g711.codec, g711.dtmf.mode) == ("pcmu", "inband")


def test_arrivals_ramp_linearly_then_hold_the_rate() -> None:
    steady = Arrival(rate_cps=10)
    assert [arrival_time(i, steady) for i in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    ramp = Arrival(rate_cps=10, ramp_s=4)  # 20 calls during the ramp: N(t) = 10 t^2 / 8
    assert arrival_time(5, ramp) == pytest.approx(2.0)
    assert arrival_time(20, ramp) == pytest.approx(4.0)
    assert arrival_time(30, ramp) == pytest.approx(5.0)


def test_the_plan_is_deterministic_and_follows_the_weights() -> None:
    s = parse_scenario(
        minimal(
            calls=2000,
            concurrency=10,
            mix={"consent": 3, "refuse": 1, "agent_hangup": {"weight": 1, "to": "+15550102"}},
        ),
        "s.yaml",
        Path("."),
    )
    a, b = plan(s), plan(s)
    assert a == b
    share = sum(c.behaviour == "consent" for c in a) / len(a)
    assert 0.55 < share < 0.65
    assert {c.to for c in a if c.behaviour == "agent_hangup"} == {"+15550102"}
    assert len({c.caller_id for c in a}) == len({c.seed for c in a}) == 2000
    assert a[7].caller_id == caller_id("+1555", 7) == "+15550000007"
    other = plan(
        parse_scenario(
            minimal(calls=2000, concurrency=10, seed=2, mix=s.data["mix"]), "s", Path(".")
        )
    )
    assert [c.behaviour for c in other] != [c.behaviour for c in a]
