"""Two real nodes behind a real HAProxy running the shipped ``deploy/haproxy.cfg``.

Calls placed through the balancer land on both nodes (``leastconn``); once
one node is sent SIGTERM, HAProxy's checks of ``/readyz`` take it out and new
calls go to the other, while the drained node's live calls go on over their
open connections and end normally. The two nodes share one store (a SQLite
folder; on PostgreSQL it is the same code, docs/postgresql.md#nodes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from tests.ivr.api.test_http_edge import ivr_serve
from tests.ivr.server.test_drain import dial, until
from tests.ivr.test_cli import _free_port

ROOT = Path(__file__).resolve().parents[3]
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

pytestmark = pytest.mark.skipif(
    not Path(HAPROXY).exists() and not os.environ.get("CI"),
    reason="not installed: haproxy (run .ci/setup --test)",
)


@contextlib.contextmanager
def balancer(tmp_path: Path, *nodes: int) -> Iterator[int]:
    """HAProxy on a free loopback port in front of ``nodes`` (two), until both are up."""
    port = _free_port()
    env = {**os.environ, "IVR_LB_BIND": f"127.0.0.1:{port}"}
    env |= {f"IVR_NODE{i}": f"127.0.0.1:{p}" for i, p in enumerate(nodes, start=1)}
    log = (tmp_path / "haproxy.log").open("w")
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (tmp_path / "haproxy.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "HAProxy did not listen"
            time.sleep(0.1)
        time.sleep(2.5)  # both servers checked up (rise 2, inter 1 s)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def nodes_of_calls(tmp_path: Path) -> list[str]:
    db = sqlite3.connect(tmp_path / "data" / "ivr.sqlite3")
    try:
        return [n for (n,) in db.execute("SELECT node_id FROM calls ORDER BY started_at, id")]
    finally:
        db.close()


def answered_call(stack: contextlib.ExitStack, port: int) -> ClientConnection:
    ws = stack.enter_context(dial(port))
    assert until(ws, "answered")["type"] == "answered"
    return ws


def test_calls_through_haproxy_land_on_both_nodes_and_a_drained_node_gets_no_more(
    tmp_path: Path, config_data: dict[str, Any]
) -> None:
    with contextlib.ExitStack() as stack:
        port1, proc1 = stack.enter_context(
            ivr_serve(tmp_path, config_data, "--node-id", "node1", "--drain-s", "30")
        )
        port2, _ = stack.enter_context(ivr_serve(tmp_path, config_data, "--node-id", "node2"))
        lb = stack.enter_context(balancer(tmp_path, port1, port2))
        first = [answered_call(stack, lb) for _ in range(6)]  # held open: leastconn spreads them
        placed = nodes_of_calls(tmp_path)
        assert sorted(placed) == ["node1"] * 3 + ["node2"] * 3, placed

        proc1.send_signal(signal.SIGTERM)
        time.sleep(3.5)  # HAProxy sees /readyz 503 twice (fall 2, inter 1 s)
        later = [answered_call(stack, lb) for _ in range(4)]
        assert nodes_of_calls(tmp_path)[6:] == ["node2"] * 4
        assert proc1.poll() is None  # still draining: its three calls are live

        for ws in first + later:  # every call, on either node, goes on and ends normally
            ws.send(b"\x00" * 320)
            ws.send(json.dumps({"type": "hangup"}))
            assert until(ws, "hangup")["reason"] == "caller"
        assert proc1.wait(timeout=15) == 0  # its last call over: node1 stopped by itself
