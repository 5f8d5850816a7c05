"""``ivr cluster up``: a real throwaway PostgreSQL, two nodes, HAProxy and Kamailio, then Ctrl-C.

The command is run as a user would: it prints where to call; WebSocket calls
through its HAProxy land on both nodes, SIPp calls through its Kamailio too,
all in the one PostgreSQL store; SIGINT (Ctrl-C) then stops every part, frees
every port and removes its folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_ws

from ivr.cluster import Cluster, Plan, check_ports, running, start_node
from ivr.store.nodes import NODE_TIMEOUT_S
from tests.ivr.server.test_drain import connected_call, dial, until
from tests.ivr.transport.sipedge.test_kamailio import place
from tests.sipkit import sipp
from tests.sipkit.conftest import available

TOOLS = ("pg_virtualenv", "haproxy", "kamailio")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t, path=f"{os.environ.get('PATH', '')}:/usr/sbin") for t in TOOLS)
    or not available("sipp")
    if not os.environ.get("CI")
    else False,
    reason="not installed: postgresql, haproxy, kamailio, sipp (run .ci/setup --test)",
)


def free_plan() -> Plan:
    """Ports for the balancers and two nodes that are all free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1]) // 10 * 10
        if base + 3 > 65535 or base < 20000 or 20000 <= base <= 22000:
            continue
        plan = Plan(port=base, sip_port=base + 5)
        with contextlib.suppress(Exception):
            check_ports(plan)
            return plan
    raise AssertionError("no free ports")


def read_until_ready(proc: subprocess.Popen[str], lines: list[str], timeout_s: float = 120) -> str:
    """Its output up to the line ``ready`` (a thread reads it into ``lines``)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.extend(stdout), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while "ready\n" not in lines:
        assert proc.poll() is None, f"ivr cluster up exited {proc.returncode}:\n{''.join(lines)}"
        assert time.monotonic() < deadline, f"not ready in {timeout_s} s:\n{''.join(lines)}"
        time.sleep(0.2)
    return "".join(lines)


def connect(dsn: str, pgpass: str) -> Any:
    """A connection to the cluster's database with its password file's password (not the
    PGPASSWORD of a database the tests may run inside, which libpq would prefer)."""
    import psycopg

    password = Path(pgpass).read_text().strip().rsplit(":", 1)[1]
    return psycopg.connect(dsn, password=password)


def calls_by_node(dsn: str, pgpass: str, transport: str) -> Counter[str]:
    with connect(dsn, pgpass) as db:
        rows = db.execute("SELECT node_id FROM calls WHERE transport = %s", (transport,))
        return Counter(n for (n,) in rows)


def recordings_by_node(dsn: str, pgpass: str) -> Counter[str]:
    with connect(dsn, pgpass) as db:
        rows = db.execute("SELECT c.node_id FROM recordings r JOIN calls c ON c.id = r.call_id")
        return Counter(n for (n,) in rows)


def api(port: int, path: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def api_bytes(port: int, path: str, token: str) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        data: bytes = reply.read()
        return data


def test_cluster_up_spreads_calls_over_two_nodes_on_one_postgresql_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    plan = free_plan()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr", "cluster", "up", "--nodes", "2",
         "--port", str(plan.port), "--sip-port", str(plan.sip_port), "--drain-s", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    lines: list[str] = []
    root: Path | None = None
    try:
        text = read_until_ready(proc, lines)
        dsn_match = re.search(
            r"database\s+(postgresql://\S+)\s+\(password: PGPASSFILE=(\S+)\)", text
        )
        assert dsn_match, text
        dsn, pgpass = dsn_match.groups()
        root = Path(pgpass).parent
        assert f"ws://127.0.0.1:{plan.port}/v1/call" in text
        assert "PGPASSWORD" not in text
        assert Path(pgpass).stat().st_mode & 0o077 == 0

        # Two calls held open at once through HAProxy: leastconn puts one on each node.
        with dial(plan.port) as first, dial(plan.port) as second:
            for ws in (first, second):
                assert until(ws, "answered")["type"] == "answered"
            assert calls_by_node(dsn, pgpass, "ws") == {"node1": 1, "node2": 1}

        # Four SIP calls through Kamailio: round robin over the two nodes.
        (tmp_path / "sipp").mkdir()
        place(tmp_path / "sipp", plan.sip_port, 4)
        assert calls_by_node(dsn, pgpass, "sip") == {"node1": 2, "node2": 2}

        # The CLI reaches the same store with what the summary printed.
        cli_env = {**env, "PGPASSFILE": pgpass}
        verify = subprocess.run(
            [sys.executable, "-m", "ivr", "audit", "verify", "--database", dsn],
            env=cli_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # The load runner's smoke scenario through HAProxy, every recording checked
        # through the API (whichever node HAProxy sends each request to).
        password = "correct horse battery staple"
        for argv in (
            ["users", "add", "--database", dsn, "--email", "admin@example.com", "--name", "Admin",
             "--role", "admin", "--password-stdin"],
            ["load", "smoke", "--url", f"http://127.0.0.1:{plan.port}", "--email",
             "admin@example.com", "--password-stdin", "--report", str(tmp_path / "load"),
             "--quiet"],
        ):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "ivr", *argv], input=password + "\n",
                env=cli_env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        recorded = recordings_by_node(dsn, pgpass)
        assert set(recorded) == {"node1", "node2"}, recorded

        # One recordings root, paths resolved by the store: a sign-in on node 1 holds on
        # node 2, and either node serves every recording, whichever node wrote it.
        login = {"email": "admin@example.com", "password": password}
        token = api(plan.node_port(1), "/v1/auth/login", login)["token"]
        items = api(plan.node_port(2), "/v1/recordings?limit=100", token=token)["items"]
        assert len(items) == sum(recorded.values())
        for item in items:
            for node in (1, 2):
                audio = api_bytes(plan.node_port(node), f"/v1/recordings/{item['id']}/audio", token)
                assert hashlib.sha256(audio).hexdigest() == item["sha256"], (node, item["id"])
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=90)
    time.sleep(0.5)  # the reader thread takes the last lines
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert out.rstrip().endswith("stopped"), out
    assert root is not None
    assert not root.exists()
    check_ports(plan)  # every port free again: nothing left running


def test_cluster_up_names_a_port_in_use_and_starts_nothing() -> None:
    plan = free_plan()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", plan.node_port(2)))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "ivr", "cluster", "up",
             "--port", str(plan.port), "--sip-port", str(plan.sip_port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"TCP port {plan.node_port(2)} on 127.0.0.1 is in use" in done.stderr
    assert "ready" not in done.stdout


def recordings_of_nodes(dsn: str, pgpass: str) -> dict[str, list[tuple[str, str]]]:
    """Each node's recordings: (id, status)."""
    found: dict[str, list[tuple[str, str]]] = {}
    with connect(dsn, pgpass) as db:
        for node, rid, status in db.execute(
            "SELECT c.node_id, r.id, r.status FROM recordings r JOIN calls c ON c.id = r.call_id"
        ):
            found.setdefault(node, []).append((rid, status))
    return found


def a_recorded_call(port: int, killed: threading.Event, out: list[str]) -> None:
    """One caller through HAProxy: the recorded line, bridged to a bot; once ``killed`` is
    set it hangs up. ``out`` gets ``ended`` (its hangup came back) or ``dropped``."""
    try:
        with connected_call(port) as ws:
            out.append("connected")
            while not killed.wait(0.02):
                ws.send(NOISE)  # the caller talks, a frame every 20 ms
            time.sleep(1.0)  # the kill has reached HAProxy by now
            ws.send(NOISE)
            ws.send(json.dumps({"type": "hangup"}))
            if until(ws, "hangup")["reason"] == "caller":
                out.append("ended")
    except (ConnectionClosed, OSError, TimeoutError):
        out.append("dropped")


NOISE = (np.random.default_rng(7).normal(0, 3000, 160).astype("<i2")).tobytes()


def test_a_node_killed_during_20_calls_takes_only_its_own_and_its_recordings_come_back(
    tmp_path: Path,
) -> None:
    plan = free_plan()
    plan.data = tmp_path / "data"
    with running(plan) as cluster:
        assert cluster.pgpass is not None
        pgpass = str(cluster.pgpass)
        killed = threading.Event()
        outcomes: list[list[str]] = [[] for _ in range(20)]
        callers = [threading.Thread(target=a_recorded_call, args=(plan.port, killed, out))
                   for out in outcomes]  # fmt: skip
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 60
        while sum(out[:1] == ["connected"] for out in outcomes) < 20:
            assert time.monotonic() < deadline, outcomes
            time.sleep(0.2)
        assert calls_by_node(cluster.dsn, pgpass, "ws") == {"node1": 10, "node2": 10}
        time.sleep(2)  # two seconds of talk on every call

        (node1,) = [p for p in cluster.parts if p.name == "node1"]
        os.killpg(node1.proc.pid, signal.SIGKILL)
        assert node1.proc.wait(timeout=10) == -signal.SIGKILL
        killed.set()
        for caller in callers:
            caller.join(timeout=60)
        ends = Counter(out[-1] for out in outcomes)
        assert ends == {"ended": 10, "dropped": 10}, outcomes

        # The other node's calls completed; each of its recordings is whole and verifies.
        recorded = recordings_of_nodes(cluster.dsn, pgpass)
        assert sorted(status for _, status in recorded["node2"]) == ["complete"] * 10
        # The dead node's are as it left them, still being written, until it comes back.
        assert sorted(status for _, status in recorded["node1"]) == ["recording"] * 10
        login = {"email": "admin@example.com", "password": "correct horse battery staple"}
        add_user(cluster, login)
        token = api(plan.node_port(2), "/v1/auth/login", login)["token"]
        for rid, _ in recorded["node2"]:
            meta = api(plan.node_port(2), f"/v1/recordings/{rid}", token=token)
            audio = api_bytes(plan.node_port(2), f"/v1/recordings/{rid}/audio", token)
            assert hashlib.sha256(audio).hexdigest() == meta["sha256"]
            pcm, rate = sf.read(io.BytesIO(audio), dtype="int16")
            assert pcm.shape[1] == 2
            assert abs(len(pcm) / rate - meta["duration_s"]) < 0.05
            assert np.abs(pcm[:, 0]).max() > 1000  # the caller's noise is in it

        # The dead node comes back: its ten recordings are repaired, listed interrupted.
        start_node(cluster, 1)
        recorded = recordings_of_nodes(cluster.dsn, pgpass)
        assert sorted(status for _, status in recorded["node1"]) == ["interrupted"] * 10
        for rid, _ in recorded["node1"]:
            audio = api_bytes(plan.node_port(2), f"/v1/recordings/{rid}/audio", token)
            pcm, rate = sf.read(io.BytesIO(audio), dtype="int16")
            assert pcm.shape[1] == 2
            # Written in one-second blocks: of its 2 s and more, it keeps at least one.
            assert len(pcm) >= rate
            assert np.abs(pcm[:, 0]).max() > 1000
        assert sorted(s for _, s in recorded["node2"]) == ["complete"] * 10  # untouched


def add_user(
    cluster: Cluster, login: dict[str, str], name: str = "Admin", role: str = "admin",
    *teams: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``ivr users add`` against the cluster's store; its output (it names the new id)."""
    team_args = [arg for team in teams for arg in ("--team", team)]
    done = subprocess.run(
        [sys.executable, "-m", "ivr", "users", "add", "--email", login["email"],
         "--name", name, "--role", role, *team_args, "--password-stdin"],
        input=login["password"] + "\n", env=cluster.node_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def frames_of(seed: int, count: int) -> list[bytes]:
    """``count`` distinct 20 ms frames of noise (16-bit PCM, 8 kHz)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 2500, 160).astype("<i2").tobytes() for _ in range(count)]


def received_in_order(sent: list[bytes], heard: bytes) -> list[int]:
    """Where each sent frame is among ``heard``'s 20 ms frames (-1: not there)."""
    at = {heard[i : i + 320]: i // 320 for i in range(0, len(heard) - 319, 320)}
    return [at.get(frame, -1) for frame in sent]


def test_an_agent_on_one_node_answers_a_call_that_came_in_on_the_other(tmp_path: Path) -> None:
    """The desk line has no bots: the only agent is signed in on node 1, the caller
    calls node 2; they hear each other, and node 2's recording holds both exactly."""
    plan = free_plan()
    with running(plan) as cluster:
        agent_login = {"email": "agent@example.com", "password": "correct horse battery staple"}
        done = add_user(cluster, agent_login, "Desk Agent", "agent", "desk")
        added = re.search(r"\((u_[0-9a-f]+)\)", done.stdout)
        assert added, done.stdout
        token = api(plan.node_port(1), "/v1/auth/login", agent_login)["token"]
        # The link between nodes takes only the cluster key's signature.
        for header in ({}, {"X-Ivr-Node": "node2:1800000000:" + "0" * 64}):
            request = urllib.request.Request(
                f"http://127.0.0.1:{plan.node_port(1)}/v1/internal/bridge", headers=header
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 401
            assert "node credentials" in refused.value.read().decode()
        agent_frames, caller_frames = frames_of(1, 150), frames_of(2, 150)
        with connect_ws(f"ws://127.0.0.1:{plan.node_port(1)}/v1/agent") as agent:
            agent.send(json.dumps({"type": "login", "token": token}))
            assert until(agent, "logged_in")["teams"] == ["desk"]
            agent.send(json.dumps({"type": "ready"}))
            time.sleep(1.5)  # node 1 publishes the agent; node 2 mirrors it
            with connect_ws(f"ws://127.0.0.1:{plan.node_port(2)}/v1/call") as caller:
                caller.send(json.dumps({"type": "dial", "to": "+15550102", "from": "+15557654321",
                                        "codec": "pcm_s16le", "rate": 8000}))  # fmt: skip
                while (m := until(caller, "prompt", 30)).get("node") != "consent" or (
                    m["event"] != "start"
                ):
                    pass
                caller.send(json.dumps({"type": "dtmf", "digits": "1"}))  # the recorded line
                offer = until(agent, "offer", 15)
                assert offer["from"].endswith("4321")
                assert offer["recording"] is True
                agent.send(json.dumps({"type": "answer", "call_id": offer["call_id"]}))
                assert until(agent, "answered")["call_id"] == offer["call_id"]
                assert until(caller, "connected")["agent"] == "Desk Agent"
                heard_by_caller, heard_by_agent = bytearray(), bytearray()
                start = time.monotonic()
                for i in range(150):  # 3 s of talk both ways, paced at 20 ms
                    agent.send(agent_frames[i])
                    caller.send(caller_frames[i])
                    for ws, heard in ((caller, heard_by_caller), (agent, heard_by_agent)):
                        with contextlib.suppress(TimeoutError):
                            while isinstance(raw := ws.recv(timeout=0), bytes):
                                heard += raw
                    time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
                for ws, heard in ((caller, heard_by_caller), (agent, heard_by_agent)):
                    deadline = time.monotonic() + 0.5
                    with contextlib.suppress(TimeoutError):
                        while time.monotonic() < deadline:
                            raw = ws.recv(timeout=0.5)
                            if isinstance(raw, bytes):
                                heard += raw
                caller.send(json.dumps({"type": "hangup"}))
                assert until(caller, "hangup")["reason"] == "caller"
            assert until(agent, "hangup")["call_id"] == offer["call_id"]

        # Each heard the other's frames whole and in order, across both nodes.
        for sent, heard in ((agent_frames, heard_by_caller), (caller_frames, heard_by_agent)):
            where = [w for w in received_in_order(sent, bytes(heard)) if w >= 0]
            assert len(where) >= 140, len(where)
            assert where == sorted(where)

        # Node 2 recorded it (it holds the caller): both channels hold every frame, in order.
        admin = {"email": "admin@example.com", "password": "correct horse battery staple"}
        add_user(cluster, admin)
        admin_token = api(plan.node_port(2), "/v1/auth/login", admin)["token"]
        recorded = recordings_of_nodes(cluster.dsn, str(cluster.pgpass))
        assert list(recorded) == ["node2"]
        ((rid, status),) = recorded["node2"]
        assert status == "complete"
        meta = api(plan.node_port(1), f"/v1/recordings/{rid}", token=admin_token)
        assert meta["agent_id"] == added.group(1)
        audio = api_bytes(plan.node_port(1), f"/v1/recordings/{rid}/audio", admin_token)
        pcm, _ = sf.read(io.BytesIO(audio), dtype="int16")
        for channel, sent in ((0, caller_frames), (1, agent_frames)):
            where = received_in_order(sent, pcm[:, channel].astype("<i2").tobytes())
            found = [w for w in where if w >= 0]
            assert len(found) >= 145, (channel, len(found))
            assert found == list(range(found[0], found[0] + len(found))), channel  # contiguous

        # Node 2 counts node 1's agent in its team; once node 1 dies, the agent is gone
        # from node 2 within the heartbeat timeout (15 s, and one 2 s re-read).
        def desk_available() -> int:
            teams = api(plan.node_port(2), "/v1/teams", token=admin_token)["items"]
            return int(next(t for t in teams if t["id"] == "desk")["available"])

        token = api(plan.node_port(1), "/v1/auth/login", agent_login)["token"]
        with connect_ws(f"ws://127.0.0.1:{plan.node_port(1)}/v1/agent") as agent:
            agent.send(json.dumps({"type": "login", "token": token}))
            until(agent, "logged_in")
            agent.send(json.dumps({"type": "ready"}))
            deadline = time.monotonic() + 5
            while desk_available() != 1:
                assert time.monotonic() < deadline, "node 2 never saw the agent"
                time.sleep(0.1)
            (node1,) = [p for p in cluster.parts if p.name == "node1"]
            os.killpg(node1.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            while desk_available() != 0:
                assert time.monotonic() - killed < NODE_TIMEOUT_S + 4, "the agent stayed"
                time.sleep(0.2)


def test_a_sipp_caller_through_kamailio_reaches_an_agent_signed_in_on_the_other_node(
    tmp_path: Path,
) -> None:
    """SIPp calls the desk line through Kamailio; once the call is placed on a node, the
    only agent signs in on the other. They hear each other; the recording holds both."""
    plan = free_plan()
    with running(plan) as cluster:
        pgpass = str(cluster.pgpass)
        agent_login = {"email": "agent@example.com", "password": "correct horse battery staple"}
        add_user(cluster, agent_login, "Desk Agent", "agent", "desk")
        # The menu starts after 7.3 s of prompts; "1" at 8 s; the caller talks 6 s more.
        sipp_run = subprocess.Popen(
            sipp.command(
                sipp.scenario("uac_load"), f"127.0.0.1:{plan.sip_port}", workdir=tmp_path / "sipp",
                timeout_s=60, service="+15550102",
                keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_1")),
                      "audio": str(sipp.shipped_pcap("g711a"))},
                variables={"wait_ms": "8000", "after_ms": "500", "talk_ms": "6000"},
            ),
            cwd=tmp_path / "sipp", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 5
            while not (placed := calls_by_node(cluster.dsn, pgpass, "sip")):
                assert time.monotonic() < deadline, "the SIP call was not placed"
                time.sleep(0.1)
            (caller_node,) = placed
            agent_node = 1 if caller_node == "node2" else 2
            token = api(plan.node_port(agent_node), "/v1/auth/login", agent_login)["token"]
            agent_frames = frames_of(3, 150)
            heard = bytearray()
            with connect_ws(f"ws://127.0.0.1:{plan.node_port(agent_node)}/v1/agent") as agent:
                agent.send(json.dumps({"type": "login", "token": token}))
                until(agent, "logged_in")
                agent.send(json.dumps({"type": "ready"}))
                offer = until(agent, "offer", 20)
                assert offer["recording"] is True
                agent.send(json.dumps({"type": "answer", "call_id": offer["call_id"]}))
                assert until(agent, "answered")["call_id"] == offer["call_id"]
                start = time.monotonic()
                for i, frame in enumerate(agent_frames):  # 3 s, paced at 20 ms
                    agent.send(frame)
                    with contextlib.suppress(TimeoutError):
                        while isinstance(raw := agent.recv(timeout=0), bytes):
                            heard += raw
                    time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
                ended = until(agent, "hangup", 30)  # SIPp's BYE
                assert ended["call_id"] == offer["call_id"]
            out, _ = sipp_run.communicate(timeout=60)
            assert sipp_run.returncode == sipp.SUCCESS, out[-2000:]
        finally:
            if sipp_run.poll() is None:
                sipp_run.kill()
                sipp_run.wait()

        # The agent heard SIPp's speech (G.711 over RTP to one node, then the link).
        speech = np.frombuffer(bytes(heard), dtype="<i2")
        assert len(speech) >= 8000 * 2
        assert np.abs(speech).max() > 1000
        recorded = recordings_of_nodes(cluster.dsn, pgpass)
        assert list(recorded) == [caller_node]  # the node holding the caller recorded it
        ((rid, status),) = recorded[caller_node]
        assert status == "complete"
        admin = {"email": "admin@example.com", "password": "correct horse battery staple"}
        add_user(cluster, admin)
        admin_token = api(plan.node_port(agent_node), "/v1/auth/login", admin)["token"]
        audio = api_bytes(plan.node_port(agent_node), f"/v1/recordings/{rid}/audio", admin_token)
        pcm, _ = sf.read(io.BytesIO(audio), dtype="int16")
        assert np.abs(pcm[:, 0]).max() > 1000  # the caller's speech
        where = [w for w in received_in_order(agent_frames, pcm[:, 1].astype("<i2").tobytes())
                 if w >= 0]  # fmt: skip
        assert len(where) >= 145, len(where)
        assert where == list(range(where[0], where[0] + len(where)))  # every frame, contiguous
