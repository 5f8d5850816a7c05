"""The runner against the real softswitch (``create_app`` with the short test config).

Prompts are tones of 100 to 300 ms and bots answer after 40 ms, so every
behaviour runs its whole course in about two seconds.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ivr.load.audio import wire_codec
from ivr.load.cli import configure_parser, run_async
from ivr.load.report import build_report, summary_text, write_report
from ivr.load.runner import Target, run_load
from ivr.load.scenario import parse_scenario
from ivr.load.verify import Api, verify_calls
from ivr.server.keys import store_key
from tests.conftest import AppFactory, add_user, read_recording, write_yaml

PASSWORD = "correct horse battery"  # what tests.conftest.add_user gives its users


def every_behaviour(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "e2e",
        "to": "+15550100",
        "calls": 14,
        "concurrency": 14,
        "arrival": {"rate_cps": 25},
        "talk": {"seconds": 0.4, "tail_ms": 200},
        "seed": 10,  # every kind at least once
        "mix": {
            "consent": {"weight": 4, "press_after_s": 0.05},
            "refuse": {"weight": 2, "press_after_s": 0.05},
            "silent": 1,
            "invalid": {"weight": 1, "digit": "9", "press_after_s": 0.05},
            "early_hangup": {"weight": 1, "after_s": 0.1},
            "agent_hangup": {"weight": 2, "to": "+15550102", "press_after_s": 0.05, "wait_s": 5},
        },
        "agents": {"team": "desk", "count": 2, "answer_after_s": 0.1, "hangup_after_s": 0.6},
        "processes": 0,
        "call_timeout_s": 20,
        "objectives": {
            "frames_missing": {"max": 0},
            "dtmf_response_ms": {"p99": 500},
            "setup_answered_ms": {"p99": 1000},
        },
    }
    data.update(extra)
    return data


async def start(start_app: AppFactory) -> tuple[Any, Target]:
    client = await start_app()
    await add_user(client, "sup@example.com", "supervisor", ("desk",))
    return client, Target(str(client.make_url("")).rstrip("/"), "sup@example.com", PASSWORD)


async def test_every_behaviour_against_the_real_server(
    start_app: AppFactory, tmp_path: Path
) -> None:
    _client, target = await start(start_app)
    scenario = parse_scenario(every_behaviour(), "e2e.yaml", tmp_path)
    result = await run_load(scenario, target)
    kinds = {c.kind for c in result.calls}
    assert kinds == {"consent", "refuse", "silent", "invalid", "early_hangup", "agent_hangup"}
    assert [(c.index, c.outcome, c.detail) for c in result.calls if not c.ok] == []
    assert result.verification is not None
    assert result.verification.mismatches == []
    consenting = [c for c in result.calls if c.kind in ("consent", "agent_hangup")]
    assert all((c.stats or {}).get("recording_id") for c in consenting)
    assert all(c.hangup_reason == "agent" for c in result.calls if c.kind == "agent_hangup")
    assert (
        result.agents.answered
        == result.agents.hung_up
        == sum(c.kind == "agent_hangup" for c in result.calls)
    )
    counts = result.verification.counts()
    assert counts["consent"] == {"ok": sum(c.kind == "consent" for c in result.calls)}
    report = build_report(result)
    assert report["passed"], summary_text(report)
    assert report["counts"]["frames_missing"] == 0
    assert report["metrics"]["dtmf_response_ms"]["count"] >= 10
    assert set(report["prompt_start_ms"]) == {"notice", "consent", "recorded", "private"}
    json_path, html_path = write_report(report, tmp_path / "report")
    again = json.loads(json_path.read_text())
    assert again["scenario"]["spec"]["name"] == "e2e"
    assert len(again["calls"]) == 14
    assert {"ivr", "python", "aiohttp", "uvloop"} <= set(again["versions"])
    assert again["runner"]["loop"] == "uvloop"
    assert again["machine"]["cpu_count"]
    html = html_path.read_text()
    assert html.count("<svg") == 5
    assert "<script" not in html
    assert "PASS" in html


async def test_a_recording_altered_on_disk_is_caught(start_app: AppFactory, tmp_path: Path) -> None:
    """The real server, and one recording deliberately wrong: verification names its call."""
    client, target = await start(start_app)
    scenario = parse_scenario(
        every_behaviour(
            calls=3,
            concurrency=3,
            mix={"consent": {"weight": 1, "press_after_s": 0.05}},
            agents=None,
        ),
        "e2e.yaml",
        tmp_path,
    )
    result = await run_load(scenario, target, verify=False)
    victim = result.calls[1]
    store = client.app[store_key]
    rec = await store.recordings.get(victim.stats["recording_id"])  # type: ignore[index]
    path = store.recording_path(rec.path)
    audio, rate = read_recording(store, rec)
    audio = audio.copy()
    talk = np.flatnonzero(np.any(audio[:, 0].reshape(-1, 160) != 0, axis=1))
    audio[talk[3] * 160, 0] ^= 1  # one sample of one frame, off by one bit
    sf.write(str(path), audio, rate, subtype="PCM_16", format="WAV")  # a clear WAV in its place
    import aiohttp

    from ivr.load.verify import login

    async with aiohttp.ClientSession() as session:
        token = await login(session, target.url, "sup@example.com", PASSWORD)
        verification = await verify_calls(
            Api(session, target.url, token), result.calls, wire_codec("pcm_s16le", 8000)
        )
    assert [(m.index, m.call_id) for m in verification.mismatches] == [(1, victim.call_id)]
    assert verification.mismatches[0].problems == [
        "caller channel: talk frame 3 of 20 holds audio never sent"
    ]


async def test_worker_processes_share_the_plan(start_app: AppFactory, tmp_path: Path) -> None:
    _client, target = await start(start_app)
    scenario = parse_scenario(
        every_behaviour(
            calls=6,
            concurrency=6,
            agents=None,
            mix={
                "consent": {"weight": 1, "press_after_s": 0.05},
                "refuse": {"weight": 1, "press_after_s": 0.05},
            },
        ),
        "e2e.yaml",
        tmp_path,
    )
    result = await run_load(scenario, target, processes=2)
    assert result.processes == 2
    assert [c.index for c in result.calls] == list(range(6))
    assert all(c.ok for c in result.calls), [(c.outcome, c.detail) for c in result.calls]
    assert result.verification is not None
    assert not result.verification.mismatches
    assert result.cpu_s > 0
    assert sum(t["started"] for t in result.timeline.values()) == 6


async def test_embedded_server_from_the_command_line(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    """``--embedded`` starts ``ivr serve`` with a config, signs in, runs, verifies, cleans up."""
    config = write_yaml(tmp_path / "server.yaml", config_data)
    scenario = write_yaml(
        tmp_path / "s.yaml",
        every_behaviour(
            calls=4,
            concurrency=4,
            agents=None,
            mix={
                "consent": {"weight": 1, "press_after_s": 0.05},
                "early_hangup": {"weight": 1, "after_s": 0.1},
            },
        ),
    )
    p = argparse.ArgumentParser()
    configure_parser(p)
    args = p.parse_args(
        [
            str(scenario),
            "--embedded",
            "--config",
            str(config),
            "--report",
            str(tmp_path / "r"),
            "--quiet",
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    assert await run_async(args, out, err) == 0, out.getvalue() + err.getvalue()
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["run"]["embedded"] is True
    assert report["verification"]["mismatches"] == []
    assert "result: PASS" in out.getvalue()
