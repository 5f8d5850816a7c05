"""``ivr cluster up``: several nodes on one machine, the way they run on several.

A throwaway PostgreSQL (Debian's ``pg_virtualenv -t``: the newest installed
version, in a temporary folder, on loopback), ``--nodes`` ``ivr serve``
processes sharing it and one data folder, HAProxy in front of their HTTP
ports (``deploy/haproxy.cfg``) and Kamailio in front of their SIP ports
(``deploy/kamailio.cfg``), every one on 127.0.0.1. It prints where to call and
waits; Ctrl-C (or SIGTERM) drains the nodes (``--drain-s``), then stops the
balancers and drops the database. A second Ctrl-C stops everything at once.

The database lives as long as this process: ``pg_virtualenv`` runs a command
that waits on a pipe from here, so the cluster is dropped when the pipe
closes, even if this process is killed. Each process's output goes to a log
file under the cluster's folder; the password of the database only to a
``pgpass`` file there (mode 0600), never to the console.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Where the shipped configurations are, in a checkout (``--deploy`` overrides).
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
START_TIMEOUT_S = 60.0
RTP_BLOCK = 1000  # each node's own RTP ports: 20000-20999, 21000-21999, ...
RTP_BASE = 20000


class ClusterError(Exception):
    """A part of the cluster could not start; the message names it and its log."""


@dataclass
class Plan:
    """What to start, and on which loopback ports."""

    nodes: int = 2
    port: int = 8080  # HAProxy; node i listens on port + i
    sip_port: int = 5060  # Kamailio (UDP); node i on sip_port + i
    drain_s: float = 5.0
    config: Path | None = None
    data: Path | None = None  # default: a folder in the cluster's temporary folder
    deploy: Path = DEPLOY
    keep: bool = False

    def node_port(self, i: int) -> int:
        return self.port + i

    def node_sip_port(self, i: int) -> int:
        return self.sip_port + i

    def node_rtp_ports(self, i: int) -> str:
        low = RTP_BASE + RTP_BLOCK * (i - 1)
        return f"{low}-{low + RTP_BLOCK - 1}"


@dataclass
class _Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Cluster:
    """The running parts; :func:`running` builds it and stops it."""

    plan: Plan
    root: Path
    dsn: str = ""
    pgpass: Path | None = None
    parts: list[_Process] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.plan.data or self.root / "data"

    def node_env(self) -> dict[str, str]:
        """The environment of a node or an ``ivr`` command against this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.pgpass is not None:
            env["PGPASSFILE"] = str(self.pgpass)
        env["IVR_DATABASE"] = self.dsn
        return env

    def summary(self) -> str:
        """Where to call and what runs, for the console (no secret in it)."""
        p = self.plan
        lines = [
            f"ivr cluster: {p.nodes} nodes on one PostgreSQL, behind HAProxy and Kamailio",
            f"  calls, API, pages  http://127.0.0.1:{p.port}  "
            f"(WebSocket calls: ws://127.0.0.1:{p.port}/v1/call)",
            f"  SIP calls          sip:NUMBER@127.0.0.1:{p.sip_port} (UDP, e.g. sip:+15550100@...)",
        ]
        for i in range(1, p.nodes + 1):
            lines.append(
                f"  node{i}              http://127.0.0.1:{p.node_port(i)}  "
                f"sip:127.0.0.1:{p.node_sip_port(i)}  RTP {p.node_rtp_ports(i)}"
            )
        lines += [
            f"  database           {self.dsn}  (password: PGPASSFILE={self.pgpass})",
            f"  data, recordings   {self.data}",
            f"  logs               {self.logs}",
            f"  a user:  PGPASSFILE={self.pgpass} ivr users add --database '{self.dsn}' "
            "--email you@example.com --name You --role admin",
            "Ctrl-C drains the nodes and stops them all"
            + ("" if p.keep or p.data else "; the data is thrown away"),
        ]
        return "\n".join(lines)


def _free(port: int, *, udp: bool = False) -> bool:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        if not udp:  # as servers bind: a port with only closed connections (TIME_WAIT) is free
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_ports(plan: Plan) -> None:
    """Every port the plan listens on is free, or :class:`ClusterError` naming the first taken."""
    http = [plan.port] + [plan.node_port(i) for i in range(1, plan.nodes + 1)]
    sip = [plan.sip_port] + [plan.node_sip_port(i) for i in range(1, plan.nodes + 1)]
    for port in http:
        if not _free(port):
            raise ClusterError(f"TCP port {port} on 127.0.0.1 is in use (choose another --port)")
    for port in sip:  # the nodes take SIP on TCP too
        if not _free(port, udp=True) or (port != plan.sip_port and not _free(port)):
            raise ClusterError(
                f"SIP port {port} on 127.0.0.1 is in use (choose another --sip-port)"
            )


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(f"{name} is not installed (Debian: apt-get install {_PACKAGE[name]})")
    return found


_PACKAGE = {"pg_virtualenv": "postgresql", "haproxy": "haproxy", "kamailio": "kamailio"}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _until(ready: Callable[[], bool], part: _Process, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if part.proc.poll() is not None:
            raise ClusterError(
                f"{part.name} exited ({part.proc.returncode}) before {what}; "
                f"its log ({part.log}) ends:\n{_tail(part.log)}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{part.name}: not {what} in {START_TIMEOUT_S:.0f} s; see {part.log}"
            )
        time.sleep(0.2)


def _start(
    cluster: Cluster, name: str, argv: list[str], env: dict[str, str], stdin: int | None = None
) -> _Process:
    log = cluster.logs / f"{name}.log"
    with log.open("ab") as out:
        # A session of its own: Ctrl-C reaches this process only, which stops
        # the parts in order (nodes drain first, the database goes last).
        proc = subprocess.Popen(
            argv, env=env, stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    part = _Process(name, proc, log)
    cluster.parts.append(part)
    return part


def _start_database(cluster: Cluster) -> None:
    """``pg_virtualenv -t`` on a free port, its command holding on to our pipe."""
    env_file = cluster.root / "pg.env"
    port = _a_free_port()
    # Not the PG* of a cluster this one runs inside (CI's, say): a new one of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"PGPORT": str(port)}
    # The inner command writes its PG* variables for us, then waits for our
    # stdin to close (we stop, or die): pg_virtualenv then drops the cluster.
    inner = 'env | grep "^PG" > "$0.tmp" && mv "$0.tmp" "$0" && exec cat > /dev/null'
    argv = [_tool("pg_virtualenv"), "-t", "-o", "max_connections=200",
            "sh", "-c", inner, str(env_file)]  # fmt: skip
    part = _start(cluster, "postgresql", argv, env, stdin=subprocess.PIPE)
    _until(env_file.exists, part, "creating the database")
    pg = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    env_file.unlink()
    user, host, db = pg.get("PGUSER", "postgres"), pg.get("PGHOST", "localhost"), "postgres"
    pgpass = cluster.root / "pgpass"
    pgpass.touch(mode=0o600)
    pgpass.write_text(f"*:{pg['PGPORT']}:*:{user}:{pg.get('PGPASSWORD', '')}\n")
    cluster.pgpass = pgpass
    cluster.dsn = f"postgresql://{user}@{host}:{pg['PGPORT']}/{db}"


def _a_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_ok(url: str) -> Callable[[], bool]:
    def ok() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return int(reply.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    return ok


def _node_argv(cluster: Cluster, i: int) -> list[str]:
    plan = cluster.plan
    argv = [sys.executable, "-m", "ivr", "serve", "--node-id", f"node{i}",
            "--data", str(cluster.data), "--port", str(plan.node_port(i)),
            "--sip-port", str(plan.node_sip_port(i)), "--rtp-ports", plan.node_rtp_ports(i),
            "--drain-s", str(plan.drain_s),
            "--advertise", f"http://127.0.0.1:{plan.node_port(i)}"]  # fmt: skip
    if plan.config is not None:
        argv += ["--config", str(plan.config)]
    return argv


def _ready(cluster: Cluster, i: int, node: _Process) -> None:
    _until(_http_ok(f"http://127.0.0.1:{cluster.plan.node_port(i)}/readyz"), node, "ready")


def _start_nodes(cluster: Cluster) -> list[_Process]:
    cluster.data.mkdir(parents=True, exist_ok=True)
    nodes = []
    for i in range(1, cluster.plan.nodes + 1):
        nodes.append(_start(cluster, f"node{i}", _node_argv(cluster, i), cluster.node_env()))
        if i == 1:  # the first migrates the new database; the others then find it done
            _ready(cluster, 1, nodes[0])
    for i, node in enumerate(nodes[1:], start=2):
        _ready(cluster, i, node)
    return nodes


def start_node(cluster: Cluster, i: int) -> None:
    """Start node ``i`` again once it has stopped (or was killed): the same id, ports
    and data, so its start-up repair takes what it left; returns once it is ready."""
    name = f"node{i}"
    if any(p.name == name and p.proc.poll() is None for p in cluster.parts):
        raise ClusterError(f"{name} is still running")
    cluster.parts = [p for p in cluster.parts if p.name != name]
    _ready(cluster, i, _start(cluster, name, _node_argv(cluster, i), cluster.node_env()))


def _haproxy_config(cluster: Cluster) -> Path:
    """The shipped ``haproxy.cfg`` with one ``server`` line per node."""
    text = (cluster.plan.deploy / "haproxy.cfg").read_text()
    kept = [line for line in text.splitlines() if not line.strip().startswith("server node")]
    servers = [f'    server node{i} "${{IVR_NODE{i}}}"' for i in range(1, cluster.plan.nodes + 1)]
    path = cluster.root / "haproxy.cfg"
    path.write_text("\n".join(kept + servers) + "\n")
    return path


def _start_balancers(cluster: Cluster) -> None:
    plan = cluster.plan
    env = {**os.environ, "IVR_LB_BIND": f"127.0.0.1:{plan.port}"}
    env |= {f"IVR_NODE{i}": f"127.0.0.1:{plan.node_port(i)}" for i in range(1, plan.nodes + 1)}
    haproxy = _start(
        cluster, "haproxy", [_tool("haproxy"), "-db", "-f", str(_haproxy_config(cluster))], env
    )
    listing = cluster.root / "dispatcher.list"
    listing.write_text(
        "".join(f"1 sip:127.0.0.1:{plan.node_sip_port(i)}\n" for i in range(1, plan.nodes + 1))
    )
    env = {**os.environ, "IVR_SIP_LISTEN": f"udp:127.0.0.1:{plan.sip_port}",
           "IVR_DISPATCHER_LIST": str(listing)}  # fmt: skip
    run = cluster.root / "kamailio"
    run.mkdir()
    argv = [_tool("kamailio"), "-DD", "-E", "-f", str(plan.deploy / "kamailio.cfg"), "-Y", str(run)]
    kamailio = _start(cluster, "kamailio", argv, env)
    # HAProxy up, and a node checked up behind it (rise 2 x inter 1 s).
    _until(_http_ok(f"http://127.0.0.1:{plan.port}/readyz"), haproxy, "passing calls to a node")
    _until(lambda: not _free(plan.sip_port, udp=True), kamailio, "listening")


def _stop(part: _Process, sig: int, timeout: float) -> None:
    if part.proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(part.proc.pid, sig)
    try:
        part.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(part.proc.pid, signal.SIGKILL)
        part.proc.wait(timeout=10)


def stop(cluster: Cluster, *, at_once: bool = False) -> None:
    """Nodes first (drained with SIGTERM, or at once), then the balancers, the database last."""
    nodes = [p for p in cluster.parts if p.name.startswith("node")]
    for part in nodes:  # all drain together
        if part.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(part.proc.pid, signal.SIGINT if at_once else signal.SIGTERM)
    for part in nodes:
        _stop(part, signal.SIGKILL, cluster.plan.drain_s + 15)
    for part in cluster.parts:
        if part.name in ("haproxy", "kamailio"):
            _stop(part, signal.SIGTERM, 10)
    for part in cluster.parts:
        if part.name == "postgresql" and part.proc.poll() is None:
            stdin: IO[bytes] | None = part.proc.stdin
            if stdin is not None:
                with contextlib.suppress(OSError):
                    stdin.close()  # pg_virtualenv's command ends; it drops the cluster
            try:
                part.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _stop(part, signal.SIGTERM, 10)


@contextlib.contextmanager
def running(plan: Plan, started: list[Cluster] | None = None) -> Iterator[Cluster]:
    """Start every part of ``plan`` (each waited for), yield, then stop them all.

    ``started`` gets the cluster as soon as its first part starts (a signal
    handler's way to it)."""
    if plan.nodes < 1:
        raise ClusterError("--nodes must be at least 1")
    for name in ("haproxy.cfg", "kamailio.cfg"):
        if not (plan.deploy / name).is_file():
            raise ClusterError(f"{plan.deploy / name} is missing (point --deploy at the folder)")
    check_ports(plan)
    root = Path(tempfile.mkdtemp(prefix="ivr-cluster-"))
    cluster = Cluster(plan, root)
    cluster.logs.mkdir()
    if started is not None:
        started.append(cluster)
    try:
        _start_database(cluster)
        _start_nodes(cluster)
        _start_balancers(cluster)
        yield cluster
    finally:
        stop(cluster)
        if not plan.keep:
            shutil.rmtree(root, ignore_errors=True)


def up(plan: Plan, out: IO[str] = sys.stdout) -> int:
    """``ivr cluster up``: start, print where to call, wait for Ctrl-C or SIGTERM, stop."""
    stopping: list[int] = []
    started: list[Cluster] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        if len(stopping) == 1:
            raise KeyboardInterrupt
        for cluster in started:  # again: the nodes stop at once, their calls hung up
            for part in cluster.parts:
                if part.name.startswith("node") and part.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(part.proc.pid, signal.SIGINT)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with running(plan, started) as cluster:
            print(cluster.summary(), flush=True, file=out)
            print("ready", flush=True, file=out)
            while True:
                for part in cluster.parts:
                    if part.proc.poll() is not None:
                        raise ClusterError(
                            f"{part.name} exited ({part.proc.returncode}); its log ends:\n"
                            f"{_tail(part.log)}"
                        )
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping: draining the nodes, then the balancers and the database", file=out)
    except ClusterError as exc:
        print(f"ivr cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("stopped", flush=True, file=out)
    return 0
