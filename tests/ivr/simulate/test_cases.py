"""Flow tests as data: the demo's cases, their coverage, a broken flow caught, bad files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.cli import main
from ivr.config import load_config
from ivr.errors import InvalidConfig
from ivr.simulate.cases import coverage, default_cases, load_cases, run_files
from tests.ivr.simulate.test_switch import BROKEN


@pytest.fixture(scope="module")
def demo_run():  # type: ignore[no-untyped-def]
    return run_files(default_cases(None), None)


def test_every_demo_case_passes(demo_run) -> None:  # type: ignore[no-untyped-def]
    _, results = demo_run
    assert len(results) >= 20
    failed = {r.case.name: r.failures for r in results if not r.passed}
    assert failed == {}


def test_the_demo_cases_take_every_branch_of_every_demo_flow(demo_run) -> None:  # type: ignore[no-untyped-def]
    config, results = demo_run
    report = coverage(config, results)
    assert {c.flow for c in report} == {n.flow for n in config.numbers.values()}
    missed = {c.flow: [s.describe() for s in c.missed] for c in report if c.missed}
    assert missed == {}, f"branches no demo case takes: {missed}"
    assert all(c.branches for c in report)


def test_a_suite_that_leaves_a_branch_out_is_told_which(tmp_path: Path) -> None:
    cases = tmp_path / "one.yaml"
    cases.write_text(
        'cases:\n  - name: only consent\n    dial: "+15550100"\n'
        '    steps: [{wait_prompt: consent}, {press: "1"}, wait_connected, hangup]\n'
    )
    config, results = run_files([cases], None)
    (en,) = [c for c in coverage(config, results) if c.flow == "consent_en"]
    described = [s.describe() for s in en.missed]
    assert "consent -[key 2]-> private" in described
    assert "recorded -[no answer]-> bye" in described
    assert "consent -[key 1]-> recorded" not in described


def test_a_broken_flow_fails_its_case_naming_the_path(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(BROKEN)
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: a caller who says nothing is not recorded\n"
        '    dial: "+15550100"\n'
        "    steps: [wait_connected, {talk: 1}, hangup]\n"
        "    expect: {recorded: false, line: private}\n"
    )
    _, results = run_files([cases], config, prove=False)
    (r,) = results
    assert not r.passed
    text = "\n".join(r.failures)
    # The timeout took the silent caller to the recorded line; the engine's own
    # guard still did not record them (no consent given), so only the line fails.
    assert "expected line 'private', got 'recorded'" in text
    assert "consent -[timeout]-> recorded" in text
    assert "expected recorded" not in text
    # With the proof on (the default), the switch refuses the flow before any call.
    with pytest.raises(InvalidConfig, match="default_branch"):
        run_files([cases], config)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('cases:\n  - name: x\n    dial: "+15550100"\n    steps: [jump]\n', "unknown step 'jump'"),
        ('cases:\n  - name: x\n    dial: "+15550100"\n    steps: [{press: "1x"}]\n', "takes keys"),
        ('cases:\n  - name: x\n    dial: "+15550100"\n    steps: [{talk: -1}]\n', "takes seconds"),
        ("cases:\n  - name: x\n    dial: '+15550100'\n    expect: {colour: red}\n", "colour"),
        ("cases: [\n", "cannot read the case file"),
    ],
)
def test_a_bad_case_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, body: str, named: str
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(InvalidConfig, match=named.replace("(", r"\(")):
        load_cases(f)


def test_the_cli_passes_the_demo_and_fails_a_broken_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test-flows", "-q", "--require-coverage"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    assert "consent_en: 9/9 branches taken" in out
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        'cases:\n  - name: refusing still records?\n    dial: "+15550100"\n'
        '    steps: [{wait_prompt: consent}, {press: "2"}, wait_connected, hangup]\n'
        "    expect: {recorded: true}\n"
    )
    assert main(["test-flows", str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "FAILED  refusing still records?" in out
    assert "consent -[key 2]-> private" in out
    # One case cannot cover the demo: --require-coverage turns that into a failure.
    ok = tmp_path / "ok.yaml"
    ok.write_text('cases:\n  - name: sales\n    dial: "+15550101"\n    steps: [wait_connected]\n')
    assert main(["test-flows", str(ok)]) == 0
    assert main(["test-flows", "--require-coverage", str(ok)]) == 1


def test_cases_beside_a_config_are_found(tmp_path: Path) -> None:
    config = tmp_path / "ivr.yaml"
    config.write_text(Path(load_config(None).source).read_text())
    assert default_cases(config) == []
    (tmp_path / "flows" / "tests").mkdir(parents=True)
    case = tmp_path / "flows" / "tests" / "a.yaml"
    case.write_text('cases:\n  - name: s\n    dial: "+15550101"\n')
    assert default_cases(config) == [case]


def test_keys_must_be_quoted_and_an_unknown_team_fails_its_case(tmp_path: Path) -> None:
    f = tmp_path / "k.yaml"
    f.write_text('cases:\n  - name: x\n    dial: "+15550100"\n    steps: [{press: 0123}]\n')
    with pytest.raises(InvalidConfig, match="takes keys in quotes"):
        load_cases(f)
    f.write_text('cases:\n  - name: x\n    dial: "+15550100"\n    agents: {nobody: 1}\n')
    _, (result,) = run_files([f], None)
    assert result.failures == ["case 'x': no team 'nobody' in the config"]
