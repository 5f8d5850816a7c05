"""Run SIPp (Debian's ``sip-tester``, 3.6.1) with our scenarios, bounded, and read its traces.

The scenarios are XML files in ``scenarios/`` next to this module (what each
one does is in its opening comment and in docs/sip.md). Each run gets its
own folder for SIPp's traces: ``-trace_msg`` (every message sent and
received), ``-trace_err`` (the unexpected ones) and ``-trace_stat`` (the
counters, as ``;``-separated CSV), which :class:`SippRun` hands back with
the exit code. SIPp exits 0 when every call succeeded, 1 when one failed,
97 when stopped by a command, 99 when no call was processed, 255/254 on a
fatal error (bad scenario, port in use).

Scenario values are given as ``-key NAME VALUE`` (``keys``, used as ``[NAME]``
in messages) and ``-set NAME VALUE`` (``variables``, globals used by
``<pause variable=...>`` and ``play_pcap_audio="[$NAME]"`` style actions).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np

from media.g711 import ulaw_encode
from tests.sipkit.process import LOOPBACK, Child, free_port, port_is_free

BINARY = "sipp"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SHIPPED = Path("/usr/share/sip-tester")  # g711a.pcap, dtmf_2833_0..9, _star, _pound .pcap
# SIPp's exit codes (its manual, "Exit codes").
SUCCESS, SOME_FAILED, NO_CALLS = 0, 1, 99


def available() -> bool:
    return shutil.which(BINARY) is not None


def scenario(name: str) -> Path:
    """One of ours: ``scenario("uac_pcap")`` is ``scenarios/uac_pcap.xml``."""
    path = SCENARIOS / f"{name}.xml"
    if not path.exists():
        raise FileNotFoundError(f"no SIPp scenario {name!r} in {SCENARIOS.name}/")
    return path


STREAM_FILE = "caller.ulaw"  # what uac_rtpstream.xml streams, from SIPp's working folder


def write_ulaw(workdir: Path, pcm: bytes) -> Path:
    """16-bit mono PCM at 8 kHz as raw G.711 mu-law in ``workdir/caller.ulaw``.

    uac_rtpstream.xml streams that file (``rtp_stream`` takes no keywords,
    so the name is fixed and the file goes where the run will be)."""
    workdir.mkdir(parents=True, exist_ok=True)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    path = workdir / STREAM_FILE
    path.write_bytes(ulaw_encode(samples).tobytes())
    return path


def shipped_pcap(name: str) -> Path:
    """A pcap shipped with SIPp: ``shipped_pcap("dtmf_2833_1")``."""
    return SHIPPED / f"{name}.pcap"


@dataclass
class SippRun:
    argv: list[str]
    returncode: int | None
    output: str = ""  # SIPp's screen
    messages: str = ""  # -trace_msg
    errors: str = ""  # -trace_err
    stats: dict[str, str] = field(default_factory=dict)  # the last row of -trace_stat

    def count(self, name: str) -> int:
        """A cumulative counter of the stats file: ``count("SuccessfulCall")``."""
        return int(self.stats.get(f"{name}(C)", "0") or 0)

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    def received(self) -> list[str]:
        """The messages SIPp received, as text, in order."""
        return _messages(self.messages, "received")

    def sent(self) -> list[str]:
        return _messages(self.messages, "sent")


def _messages(trace: str, way: str) -> list[str]:
    found = []
    for block in ("\n" + trace).split("\n----------------------------------------------- ")[1:]:
        _head, _, text = block.partition("\n")
        _, _, rest = text.partition("\n")  # "UDP message received [n] bytes :"
        if f"message {way}" in text.split("\n", 1)[0]:
            found.append(rest.strip("\n"))
    return found


class Options(TypedDict, total=False):
    """What a run may set besides the scenario, the target and the folder."""

    service: str  # -s: the Request-URI's user part, [service]
    keys: Mapping[str, str]  # -key NAME VALUE: [NAME] in messages and play_pcap_audio
    variables: Mapping[str, str]  # -set NAME VALUE: globals (<pause variable=...>)
    calls: int  # -m: stop after this many calls (1)
    rate: float  # -r: calls per second
    limit: int  # -l: calls at once
    local_port: int  # -p (a free one)
    media_port: int  # -mp (a free one)
    transport: str  # -t: u1 (UDP, one socket; the default), t1 (TCP, one connection)...
    extra: Sequence[str]  # any other arguments, before the target


def command(
    scenario_path: Path | str,
    target: str | None,
    *,
    workdir: Path,
    timeout_s: float = 20.0,
    **options: Unpack[Options],
) -> list[str]:
    """SIPp's command line for one run (``scenario_path`` a file, or ``"uas"`` builtin).

    Makes ``workdir``, where the traces will be."""
    service, rate, limit = options.get("service"), options.get("rate"), options.get("limit")
    local_port, media_port = options.get("local_port"), options.get("media_port")
    calls, transport = options.get("calls", 1), options.get("transport", "u1")
    keys, variables = options.get("keys"), options.get("variables")
    extra = options.get("extra", ())
    workdir.mkdir(parents=True, exist_ok=True)
    builtin = isinstance(scenario_path, str) and not scenario_path.endswith(".xml")
    argv = [BINARY]
    argv += ["-sn", str(scenario_path)] if builtin else ["-sf", str(scenario_path)]
    argv += ["-i", LOOPBACK, "-p", str(local_port or free_port())]
    argv += ["-mi", LOOPBACK, "-mp", str(media_port or free_port(tcp=False))]
    argv += ["-t", transport, "-m", str(calls), "-nostdin"]
    argv += ["-timeout", f"{timeout_s}s", "-timeout_error"]
    if rate is not None:
        argv += ["-r", str(rate)]
    if limit is not None:
        argv += ["-l", str(limit)]
    if service is not None:
        argv += ["-s", service]
    for name, value in (keys or {}).items():
        argv += ["-key", name, value]
    for name, value in (variables or {}).items():
        argv += ["-set", name, value]
    argv += ["-trace_msg", "-message_file", str(workdir / "messages.log")]
    argv += ["-trace_err", "-error_file", str(workdir / "errors.log")]
    argv += ["-trace_stat", "-stf", str(workdir / "stats.csv"), "-fd", "1"]
    argv += list(extra)
    if target is not None:
        argv.append(target)
    return argv


async def run(
    scenario_path: Path | str,
    target: str | None,
    *,
    workdir: Path,
    timeout_s: float = 20.0,
    **options: Unpack[Options],
) -> SippRun:
    """Run SIPp to its end (or ``timeout_s`` plus a few seconds, then kill it).

    ``timeout_s`` is also SIPp's own ``-timeout`` (with ``-timeout_error``)."""
    argv = command(scenario_path, target, workdir=workdir, timeout_s=timeout_s, **options)
    async with Child(argv, cwd=workdir) as child:
        returncode = await child.wait(timeout_s + 5.0)
    return _collect(argv, child, workdir, returncode)


def _collect(argv: list[str], child: Child, workdir: Path, returncode: int | None) -> SippRun:
    result = SippRun(argv, returncode, child.output)
    if (workdir / "messages.log").exists():
        result.messages = (workdir / "messages.log").read_text(errors="replace")
    if (workdir / "errors.log").exists():
        result.errors = (workdir / "errors.log").read_text(errors="replace")
    if (workdir / "stats.csv").exists():
        rows = [r for r in (workdir / "stats.csv").read_text().splitlines() if r.strip()]
        if len(rows) >= 2:
            result.stats = dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))
    return result


@dataclass
class SippServer:
    """A SIPp running in the background as the called side, at :attr:`port`."""

    port: int
    media_port: int
    child: Child
    workdir: Path
    argv: list[str]
    result: SippRun | None = None

    def uri(self, user: str) -> str:
        return f"sip:{user}@{LOOPBACK}:{self.port}"


@contextlib.asynccontextmanager
async def serving(
    scenario_path: Path | str = "uas",
    *,
    workdir: Path,
    timeout_s: float = 20.0,
    finish_s: float = 5.0,
    **options: Unpack[Options],
) -> AsyncIterator[SippServer]:
    """``async with serving(workdir=tmp) as uas:`` dial ``uas.uri("100")``.

    SIPp's builtin ``uas`` by default (180, 200 with a PCMU SDP, waits for
    BYE, then a 4 s timewait). On leaving, SIPp has ``finish_s`` to finish
    its calls and exit, then it is stopped; ``uas.result`` holds its traces
    (a call still in its timewait when stopped is not counted as a success)."""
    port = options.setdefault("local_port", free_port())
    media_port = options.setdefault("media_port", free_port(tcp=False))
    argv = command(scenario_path, None, workdir=workdir, timeout_s=timeout_s, **options)
    child = Child(argv, cwd=workdir)
    await child.start()
    server = SippServer(port, media_port, child, workdir, argv)
    returncode: int | None = None
    try:
        tcp = options.get("transport", "u1").startswith("t")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while port_is_free(port, udp=not tcp, tcp=tcp):  # until SIPp holds its port
            if child.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"SIPp did not listen ({child.returncode}):\n{child.output}")
            await asyncio.sleep(0.02)
        yield server
        returncode = await child.wait(finish_s)
    finally:
        stopped = await child.stop()
    server.result = _collect(argv, child, workdir, stopped if returncode is None else returncode)
