"""``ivr load`` end to end against a server test double: verification and exit codes.

The double (:mod:`tests.ivr.load.fake_switch`) can record the wrong audio:
the runner must catch it, list the call, and exit 1. A scenario that cannot
be used, or a server that cannot, exits 2.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ivr.load.cli import configure_parser, run, run_async
from tests.conftest import write_yaml
from tests.ivr.load.fake_switch import EMAIL, PASSWORD, FakeSwitch, fake_scenario


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    configure_parser(p)
    return p.parse_args(list(argv))


async def start_fake(aiohttp_server: Any, corrupt: str | None = None) -> tuple[FakeSwitch, str]:
    fake = FakeSwitch(corrupt=corrupt)
    server = await aiohttp_server(fake.app())
    return fake, f"http://127.0.0.1:{server.port}"


async def run_fake(
    aiohttp_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    corrupt: str | None = None,
    **scenario: Any,
) -> tuple[int, str, dict[str, Any]]:
    _fake, url = await start_fake(aiohttp_server, corrupt)
    monkeypatch.setenv("IVR_LOAD_PASSWORD", PASSWORD)
    path = write_yaml(tmp_path / "fake.yaml", fake_scenario(**scenario))
    out, err = io.StringIO(), io.StringIO()
    code = await run_async(
        parse(str(path), "--url", url, "--email", EMAIL, "--report", str(tmp_path / "r")), out, err
    )
    report = json.loads((tmp_path / "r" / "report.json").read_text()) if code != 2 else {}
    return code, out.getvalue() + err.getvalue(), report


async def test_every_objective_holds_exit_0(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text, report = await run_fake(aiohttp_server, tmp_path, monkeypatch)
    assert code == 0, text
    assert "result: PASS" in text
    assert report["passed"] is True
    assert report["verification"]["mismatches"] == []
    counts = report["verification"]["by_behaviour"]
    assert sum(counts["consent"].values()) == counts["consent"]["ok"] >= 1
    assert (tmp_path / "r" / "report.html").read_text().count("<svg") >= 3


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        ("swap", "caller channel: talk frame 0 of 20 holds sent frame 1"),
        ("drop", "caller channel: talk frame 19 of 20 holds audio never sent"),
        ("extra", "but the refuse caller must not be"),
    ],
)
async def test_a_wrong_recording_is_caught_and_listed_exit_1(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: str, problem: str
) -> None:
    code, text, report = await run_fake(aiohttp_server, tmp_path, monkeypatch, corrupt)
    assert code == 1, text
    mismatches = report["verification"]["mismatches"]
    kind = "refuse" if corrupt == "extra" else "consent"
    planned = report["scenario"]["planned"][kind]
    assert len(mismatches) == planned
    for m in mismatches:
        assert m["behaviour"] == kind
        assert m["call_id"].startswith("c")
        assert any(problem in p for p in m["problems"]), m["problems"]
        assert f"#{m['index']} {kind} {m['call_id']}:" in text  # listed with its call id
    assert "FAIL  verify_failed max <= 0" in text
    assert "result: FAIL (verify_failed max)" in text


async def test_a_failing_objective_is_named_exit_1(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text, report = await run_fake(
        aiohttp_server,
        tmp_path,
        monkeypatch,
        objectives={"setup_answered_ms": {"max": 0}, "frames_missing": {"max": 0}},
    )
    assert code == 1
    failed = [o for o in report["objectives"] if not o["ok"]]
    assert [(o["metric"], o["statistic"]) for o in failed] == [("setup_answered_ms", "max")]
    assert "result: FAIL (setup_answered_ms max)" in text


def test_a_bad_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(tmp_path / "bad.yaml", fake_scenario(calls=0, mix={"dance": 1}))
    assert run(parse(str(path))) == 2
    err = capsys.readouterr().err
    assert "calls: Input should be greater than or equal to 1" in err
    assert "mix.dance.kind" in err
    assert run(parse(str(tmp_path / "nope.yaml"))) == 2


def test_an_unreachable_server_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_yaml(tmp_path / "s.yaml", fake_scenario())
    assert run(parse(str(path), "--url", f"127.0.0.1:{port}", "--no-verify")) == 2
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err


async def test_refused_credentials_exit_2(
    aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = await start_fake(aiohttp_server)
    path = write_yaml(tmp_path / "s.yaml", fake_scenario())
    err = io.StringIO()
    monkeypatch.setenv("IVR_LOAD_PASSWORD", "wrong")
    assert (
        await run_async(parse(str(path), "--url", url, "--email", EMAIL), io.StringIO(), err) == 2
    )
    assert "cannot sign in as sup@example.com" in err.getvalue()
    monkeypatch.delenv("IVR_LOAD_PASSWORD")
    err = io.StringIO()
    assert await run_async(parse(str(path), "--url", url), io.StringIO(), err) == 2
    assert "verification need(s) a user to sign in as" in err.getvalue()


async def test_no_verify_needs_no_credentials(aiohttp_server: Any, tmp_path: Path) -> None:
    _, url = await start_fake(aiohttp_server)
    path = write_yaml(tmp_path / "s.yaml", fake_scenario())
    out = io.StringIO()
    code = await run_async(
        parse(str(path), "--url", url, "--no-verify", "--report", str(tmp_path / "r")),
        out,
        io.StringIO(),
    )
    assert code == 0
    assert "note: verification skipped (--no-verify)" in out.getvalue()


async def test_a_server_that_answers_no_call_exits_2(aiohttp_server: Any, tmp_path: Path) -> None:
    async def me(request: web.Request) -> web.Response:
        return web.json_response({}, status=401)

    app = web.Application()
    app.router.add_get("/v1/me", me)  # an HTTP server, but no /v1/call
    server = await aiohttp_server(app)
    path = write_yaml(tmp_path / "s.yaml", fake_scenario())
    err = io.StringIO()
    code = await run_async(
        parse(str(path), "--url", f"ws://127.0.0.1:{server.port}/v1/call", "--no-verify"),
        io.StringIO(),
        err,
    )
    assert code == 2
    assert (
        "the server answered none of the 4 calls (connect_failed: HandshakeFailed" in err.getvalue()
    )
