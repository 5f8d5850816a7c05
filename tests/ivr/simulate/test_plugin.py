"""``pytest -p ivr.testing``: the ``switch`` fixture and YAML cases collected as tests."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_a_team_writes_a_flow_test_in_python_and_as_data(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_flow="""
        def test_consent(switch):
            call = switch.dial("+15550100")
            call.wait_prompt("consent")
            call.press("1")
            call.wait_connected()
            call.hangup()
            assert call.recorded and call.line == "recorded"

        def test_refusal_is_not_recorded(switch):
            call = switch.dial("+15550100")
            call.wait_prompt("consent")
            call.press("2")
            call.wait_connected()
            call.hangup()
            assert call.recorded
        """
    )
    cases = pytester.path / "flows" / "tests"
    cases.mkdir(parents=True)
    (cases / "sales.yaml").write_text(
        "cases:\n"
        '  - name: sales records\n    dial: "+15550101"\n    steps: [wait_connected, hangup]\n'
        "    expect: {recorded: true}\n"
        '  - name: sales never records\n    dial: "+15550101"\n'
        "    steps: [wait_connected, hangup]\n"
        "    expect: {recorded: false}\n"
    )
    result = pytester.runpytest_subprocess("-p", "ivr.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "test_refusal_is_not_recorded" in out
    assert "case 'sales never records'" in out
    assert "expected recorded False, got True" in out
