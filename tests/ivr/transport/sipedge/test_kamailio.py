"""Two real SIP nodes behind a real Kamailio running the shipped ``deploy/kamailio.cfg``.

SIPp calls Kamailio; its dispatcher spreads the calls over both nodes (round
robin), record-routed, so the ACK and BYE come back through it; RTP goes
straight to the node. Once one node is stopped (SIGTERM), the dispatcher's
OPTIONS pings take it out while it drains (it answers them 503, docs/sip.md),
and every new call is placed on the other one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ivr.transport.sipedge.live import Server, serving
from tests.sipkit import sipp
from tests.sipkit.conftest import available
from tests.sipkit.process import free_port

ROOT = Path(__file__).resolve().parents[4]
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"

pytestmark = pytest.mark.skipif(
    (not Path(KAMAILIO).exists() or not available("sipp")) and not os.environ.get("CI"),
    reason="not installed: kamailio, sipp (run .ci/setup --test)",
)


@contextlib.contextmanager
def kamailio(tmp_path: Path, *nodes: Server) -> Iterator[int]:
    """Kamailio on a free loopback UDP port, dispatching to ``nodes``; its log in
    ``tmp_path/kamailio.log``."""
    port = free_port(tcp=False)
    listing = tmp_path / "nodes.list"
    listing.write_text("".join(f"1 sip:127.0.0.1:{n.sip_port}\n" for n in nodes))
    env = {**os.environ, "IVR_SIP_LISTEN": f"udp:127.0.0.1:{port}",
           "IVR_DISPATCHER_LIST": str(listing)}  # fmt: skip
    log_path = tmp_path / "kamailio.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [KAMAILIO, "-DD", "-E", "-f", str(ROOT / "deploy" / "kamailio.cfg"),
             "-Y", str(tmp_path)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not _listening(port):
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)  # its children start
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True  # taken: Kamailio has it
    return False


def calls(server: Server) -> int:
    return sum(c["transport"] == "sip" for c in server.get("/v1/calls?limit=100")["items"])


def place(tmp_path: Path, port: int, count: int) -> None:
    """``count`` short SIPp calls through Kamailio (press 2, speak briefly, hang up)."""
    run = sipp.command(
        sipp.scenario("uac_load"), f"127.0.0.1:{port}", workdir=tmp_path, timeout_s=40,
        service="+15550100", calls=count, rate=count, limit=count,
        keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_2")),
              "audio": str(sipp.shipped_pcap("g711a"))},
        variables={"wait_ms": "1000", "after_ms": "300", "talk_ms": "800"},
    )  # fmt: skip
    done = subprocess.run(run, cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == sipp.SUCCESS, done.stdout[-2000:]


def test_kamailio_spreads_sip_calls_over_both_nodes_and_leaves_a_draining_one_out(
    tmp_path: Path,
) -> None:
    for name in ("n1", "n2"):
        (tmp_path / name).mkdir()
    with (
        serving(tmp_path / "n1") as node1,
        serving(tmp_path / "n2") as node2,
        kamailio(tmp_path, node1, node2) as port,
    ):
        place(tmp_path / "sipp1", port, 6)
        assert (calls(node1), calls(node2)) == (3, 3)

        # A long call straight to node 1, then SIGTERM: node 1 drains (5 s, as the
        # tests' servers do), answering the pings 503 while its call goes on.
        long_call = subprocess.Popen(
            sipp.command(
                sipp.scenario("uac_load"), f"127.0.0.1:{node1.sip_port}",
                workdir=tmp_path / "long", timeout_s=40, service="+15550100",
                keys={"dtmf": str(sipp.shipped_pcap("dtmf_2833_2")),
                      "audio": str(sipp.shipped_pcap("g711a"))},
                variables={"wait_ms": "1000", "after_ms": "300", "talk_ms": "20000"},
            ),
            cwd=tmp_path / "long", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while calls(node1) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert node1.proc is not None
        node1.proc.send_signal(signal.SIGTERM)
        log = tmp_path / "kamailio.log"
        deadline = time.monotonic() + 5
        while f"node sip:127.0.0.1:{node1.sip_port} is out" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]  # pinged every 2 s
            time.sleep(0.1)
        assert node1.proc.poll() is None  # out while still draining: its pings got 503
        place(tmp_path / "sipp2", port, 4)
        assert calls(node2) == 3 + 4
        assert "trying the next" not in log.read_text()  # chosen, not failed over to
        assert node1.proc.wait(timeout=20) == 0
        long_call.wait(timeout=30)
