"""SIGTERM drains a real ``ivr serve``: no new calls, the live ones finish, then it stops.

``/healthz`` says the process is alive throughout; ``/readyz`` turns 503 as
soon as draining starts, which is what a balancer's health check reads.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.conftest import read_recording_file
from tests.ivr.api.test_http_edge import IVR, ivr_serve


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def until(ws: ClientConnection, kind: str, timeout_s: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        raw = ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
        if isinstance(raw, str) and (m := json.loads(raw))["type"] == kind:
            return dict(m)


@contextlib.contextmanager
def dial(port: int) -> Iterator[ClientConnection]:
    with connect(f"ws://127.0.0.1:{port}/v1/call", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "dial", "to": "+15550100", "from": "+15557654321",
                            "codec": "pcm_s16le", "rate": 8000}))  # fmt: skip
        yield ws


@contextlib.contextmanager
def connected_call(port: int) -> Iterator[ClientConnection]:
    """A call on the recorded line, bridged to a bot (which would talk for 30 s)."""
    with dial(port) as ws:
        until(ws, "answered")
        while (m := until(ws, "prompt")).get("node") != "consent" or m["event"] != "start":
            pass  # the menu: a key before it is not an answer to it
        ws.send(json.dumps({"type": "dtmf", "digits": "1"}))
        until(ws, "connected")
        yield ws


def draining(port: int, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while get(port, "/readyz")[0] == 200:
        assert time.monotonic() < deadline, "/readyz still 200 after SIGTERM"
        time.sleep(0.05)


def node(tmp_path: Path) -> list[str]:
    """``ivr nodes``' line for the test's node: id, state, alive, calls, ..."""
    done = subprocess.run([*IVR, "nodes", "--data", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("edge-1 ")]
    return line.split()


def test_a_drained_node_refuses_new_calls_and_lets_the_live_one_finish(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    with ivr_serve(tmp_path, config_data, "--drain-s", "20", "--node-id", "edge-1") as (port, proc):
        assert get(port, "/healthz") == (200, {"status": "alive"})
        assert get(port, "/readyz") == (200, {"status": "ready"})
        assert node(tmp_path)[:3] == ["edge-1", "ready", "yes"]
        with connected_call(port) as live:
            proc.send_signal(signal.SIGTERM)
            draining(port)
            assert get(port, "/readyz") == (503, {"status": "draining"})
            assert get(port, "/healthz") == (200, {"status": "alive"})
            with dial(port) as late:
                refused = until(late, "error")
            assert refused["code"] == "busy"
            assert "draining" in refused["message"]
            assert node(tmp_path)[:4] == ["edge-1", "draining", "yes", "1"]
            time.sleep(1.0)
            assert proc.poll() is None  # the live call holds the node up
            live.send(b"\x00" * 320)  # it still takes audio
            live.send(json.dumps({"type": "hangup"}))
            assert until(live, "hangup")["reason"] == "caller"
        started = time.monotonic()
        assert proc.wait(timeout=15) == 0  # the last call ended: it stops, well before 20 s
        assert time.monotonic() - started < 10
        assert proc.stdout is not None
        assert "stopped" in proc.stdout.read()
        assert node(tmp_path)[:4] == ["edge-1", "stopped", "no", "0"]


def test_at_the_drain_deadline_the_calls_still_live_are_hung_up_with_shutdown(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    with ivr_serve(tmp_path, config_data, "--drain-s", "1") as (port, proc):
        with connected_call(port) as live:
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            ended = until(live, "hangup", timeout_s=15)
            assert ended["reason"] == "shutdown"
            assert 0.9 <= time.monotonic() - signalled < 8
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert "drain deadline: 1 call(s) still live are hung up (shutdown)" in proc.stderr.read()


def test_a_second_node_starting_on_the_same_store_leaves_the_first_nodes_call_alone(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    """Start-up repair takes only the starting node's own calls (and recordings).

    Two nodes on one store (here one SQLite folder): node b's start used to
    end node a's live call in the store and rename its recording from under
    it, as if node a had crashed.
    """
    with (
        ivr_serve(tmp_path, config_data, "--node-id", "a") as (port_a, _),
        connected_call(port_a) as live,
    ):
        with ivr_serve(tmp_path, config_data, "--node-id", "b") as (_, proc_b):
            live.send(b"\x00" * 320)
        live.send(json.dumps({"type": "hangup"}))
        assert until(live, "hangup")["reason"] == "caller"
        assert proc_b.stderr is not None
        assert "cut off" not in proc_b.stderr.read()
    db = sqlite3.connect(tmp_path / "data" / "ivr.sqlite3")
    ((reason, node, status),) = db.execute(
        "SELECT c.end_reason, c.node_id, r.status FROM calls c "
        "JOIN recordings r ON r.call_id = c.id"
    ).fetchall()
    assert (reason, node, status) == ("caller", "a", "complete")
    (wav,) = (tmp_path / "data" / "recordings").rglob("*.wav")
    assert not list((tmp_path / "data" / "recordings").rglob("*.partial"))
    assert len(read_recording_file(wav, tmp_path / "data-keys")[0]) > 0
