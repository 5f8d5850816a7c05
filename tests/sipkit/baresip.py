"""Drive baresip (Debian's 1.0.0) headless: dial, send RFC 4733 digits on time, hang up.

Each run gets its own config folder (``baresip -f DIR``) written here:

* no sound device: the ``aufile`` module is the microphone, playing a WAV
  (16-bit mono at 8 kHz, as G.711 runs: aufile refuses any other rate), and
  the speaker is ALSA's ``null`` device; with ``record_dir`` the ``sndfile``
  module also writes what was heard and what was sent as WAV files there
  (``dump-<peer>-dec.wav`` and ``-enc.wav``);
* SIP over UDP (and TCP, on the same port) at a free loopback port, and
  ``net_interface 127.0.0.1`` so that the SDP says 127.0.0.1;
* one account, ``<sip:caller@127.0.0.1>;regint=0``: nothing registers;
* the ``g711`` codecs only, PCMU first unless ``codecs`` says otherwise;
  baresip offers ``telephone-event`` (101, events 0-15) with every call and
  sends a key press as RFC 4733 events when the answer has it too;
* ``ctrl_tcp`` on a free loopback port: commands go in as netstrings of
  JSON (``{"command": "dial", "params": URI, "token": T}``), and call
  events (``CALL_RINGING``, ``CALL_ESTABLISHED``, ``CALL_CLOSED``) come out
  the same way. The commands are the ``menu`` module's long ones, as typed
  after ``/`` in the console: ``dial``, ``sndcode``, ``hangup``, ``quit``.

aufile ends the call when its file runs out ("audio error (0,end of file)"),
so the WAV is padded with silence to outlast the call: the call ends when
we hang up, not when the file does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sipkit.process import LOOPBACK, Child, free_port, free_port_range, padded_wav

BINARY = "baresip"
MODULES = Path("/usr/lib/baresip/modules")


def available() -> bool:
    return shutil.which(BINARY) is not None and (MODULES / "aufile.so").exists()


@dataclass(frozen=True)
class Digit:
    """Press ``key`` ``at_s`` seconds after the call was answered."""

    key: str
    at_s: float


@dataclass
class BaresipRun:
    """What happened: the events baresip reported, its log, how it ended."""

    uri: str
    sip_port: int
    answered: bool = False
    closed: bool = False
    close_reason: str = ""
    sent: str = ""  # the keys sndcode accepted
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    returncode: int | None = None
    config_dir: Path | None = None

    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]


def write_config(
    folder: Path,
    *,
    wav: Path,
    sip_port: int,
    ctrl_port: int,
    rtp_ports: tuple[int, int],
    codecs: Sequence[str] = ("pcmu", "pcma"),
    answer: bool = False,
    record_dir: Path | None = None,
) -> Path:
    """Write ``config``, ``accounts`` and ``contacts`` for one headless baresip."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "poll_method epoll",
        f"sip_listen {LOOPBACK}:{sip_port}",
        f"net_interface {LOOPBACK}",
        "call_local_timeout 120",
        "call_max_calls 4",
        f"audio_source aufile,{wav}",
        "audio_player alsa,null",
        "audio_alert alsa,null",
        "audio_level no",
        f"rtp_ports {rtp_ports[0]}-{rtp_ports[1]}",
        "rtp_stats yes",
        f"module_path {MODULES}",
        "module g711.so",
        "module aufile.so",
        "module alsa.so",
        "module ctrl_tcp.so",
        f"ctrl_tcp_listen {LOOPBACK}:{ctrl_port}",
        "module_tmp account.so",
        "module_app menu.so",
    ]
    if record_dir is not None:
        record_dir.mkdir(parents=True, exist_ok=True)
        lines += ["module sndfile.so", f"snd_path {record_dir}"]
    (folder / "config").write_text("\n".join(lines) + "\n")
    params = f";regint=0;audio_codecs={','.join(codecs)}"
    if answer:
        params += ";answermode=auto"
    user = "callee" if answer else "caller"
    (folder / "accounts").write_text(f"<sip:{user}@{LOOPBACK}:{sip_port}>{params}\n")
    (folder / "contacts").write_text("")
    return folder


class Control:
    """baresip's ``ctrl_tcp``: netstring-framed JSON commands in, responses and events out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())
        self._token = 0

    @classmethod
    async def connect(cls, port: int, child: Child, timeout_s: float) -> Control:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                reader, writer = await asyncio.open_connection(LOOPBACK, port)
                return cls(reader, writer)
            except OSError:
                if child.returncode is not None or loop.time() > deadline:
                    raise RuntimeError(
                        f"baresip's ctrl_tcp never listened:\n{child.output}"
                    ) from None
                await asyncio.sleep(0.05)

    async def _read(self) -> None:
        # A malformed netstring or JSON ends the reading (ValueError): the waits see it.
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                size = int((await self.reader.readuntil(b":"))[:-1])
                data = await self.reader.readexactly(size + 1)  # the trailing comma
                message = json.loads(data[:-1])
                (self.events if message.get("event") else self.responses).append(message)
                self._changed.set()
        self._changed.set()

    async def command(
        self, command: str, params: str = "", timeout_s: float = 5.0
    ) -> dict[str, Any]:
        """Send one command; its response (``ok``, ``data``). TimeoutError without one."""
        self._token += 1
        token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.writer.write(str(len(body)).encode() + b":" + body + b",")
        await self.writer.drain()
        await self.until(lambda: any(r.get("token") == token for r in self.responses), timeout_s)
        for response in self.responses:
            if response.get("token") == token:
                return response
        raise TimeoutError(f"baresip did not answer {command!r} within {timeout_s} s")

    def event(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("type") == kind), None)

    async def until(self, check: Callable[[], object], timeout_s: float) -> bool:
        """Wait until ``check()``; False if the time ran out or the connection ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not check():
            remaining = deadline - loop.time()
            if remaining <= 0 or self._task.done():
                return bool(check())
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def call(
    uri: str,
    *,
    wav: Path,
    workdir: Path,
    digits: Sequence[Digit] = (),
    hangup_after_s: float = 3.0,
    answer_timeout_s: float = 10.0,
    codecs: Sequence[str] = ("pcmu", "pcma"),
    record_dir: Path | None = None,
) -> BaresipRun:
    """Dial ``uri``, press ``digits`` on time after the answer, hang up, and quit.

    Bounded: at most about ``answer_timeout_s + hangup_after_s + 8`` seconds,
    and baresip's process group is killed at the end whatever happened.
    ``workdir`` (a test's ``tmp_path``) holds the config and the padded WAV."""
    sip_port, ctrl_port = free_port(), free_port(udp=False)
    config_dir = workdir / "baresip"
    config_dir.mkdir(parents=True, exist_ok=True)
    mic = padded_wav(wav, config_dir / "microphone.wav", answer_timeout_s + hangup_after_s + 10)
    write_config(
        config_dir,
        wav=mic,
        sip_port=sip_port,
        ctrl_port=ctrl_port,
        rtp_ports=free_port_range(20),
        codecs=codecs,
        record_dir=record_dir,
    )
    run = BaresipRun(uri=uri, sip_port=sip_port, config_dir=config_dir)
    async with Child([BINARY, "-f", str(config_dir)], cwd=config_dir) as child:
        control = await Control.connect(ctrl_port, child, 5.0)
        try:
            await _call(control, run, digits, hangup_after_s, answer_timeout_s)
            with contextlib.suppress(ConnectionError, TimeoutError):
                await control.command("quit", timeout_s=1.0)
            run.returncode = await child.wait(3.0)
        finally:
            run.events, run.responses = control.events, control.responses
            await control.close()
    run.log = child.output
    return run


async def _call(
    control: Control,
    run: BaresipRun,
    digits: Sequence[Digit],
    hangup_after_s: float,
    answer_timeout_s: float,
) -> None:
    dialled = await control.command("dial", run.uri)
    if not dialled.get("ok"):
        raise RuntimeError(f"baresip refused to dial {run.uri}: {dialled}")
    loop = asyncio.get_running_loop()
    await control.until(
        lambda: control.event("CALL_ESTABLISHED") or control.event("CALL_CLOSED"), answer_timeout_s
    )
    run.answered = control.event("CALL_ESTABLISHED") is not None
    if run.answered:
        answered_at = loop.time()
        for digit in sorted(digits, key=lambda d: d.at_s):
            if await control.until(
                lambda: control.event("CALL_CLOSED"), answered_at + digit.at_s - loop.time()
            ):
                break
            if (await control.command("sndcode", digit.key)).get("ok"):
                run.sent += digit.key
        if not await control.until(
            lambda: control.event("CALL_CLOSED"), answered_at + hangup_after_s - loop.time()
        ):
            await control.command("hangup")
    elif control.event("CALL_CLOSED") is None:
        await control.command("hangup")  # never answered: give up (CANCEL)
    await control.until(lambda: control.event("CALL_CLOSED"), 5.0)
    closed = control.event("CALL_CLOSED")
    run.closed = closed is not None
    run.close_reason = str(closed.get("param", "")) if closed else ""


@contextlib.asynccontextmanager
async def answering(
    wav: Path, workdir: Path, *, seconds: float = 30.0
) -> AsyncIterator[BaresipAnswerer]:
    """A baresip that answers every call at once (``answermode=auto``), playing ``wav``.

    Yields a :class:`BaresipAnswerer` whose :attr:`~BaresipAnswerer.uri` to dial."""
    sip_port, ctrl_port = free_port(), free_port(udp=False)
    config_dir = workdir / "baresip-answer"
    config_dir.mkdir(parents=True, exist_ok=True)
    mic = padded_wav(wav, config_dir / "microphone.wav", seconds)
    write_config(
        config_dir, wav=mic, sip_port=sip_port, ctrl_port=ctrl_port,
        rtp_ports=free_port_range(20), answer=True,
    )  # fmt: skip
    async with Child([BINARY, "-f", str(config_dir)], cwd=config_dir) as child:
        control = await Control.connect(ctrl_port, child, 5.0)
        answerer = BaresipAnswerer(f"sip:callee@{LOOPBACK}:{sip_port}", control, child)
        try:
            yield answerer
        finally:
            await control.close()


@dataclass
class BaresipAnswerer:
    uri: str
    control: Control
    child: Child

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.control.events

    async def wait_event(self, kind: str, timeout_s: float) -> dict[str, Any] | None:
        await self.control.until(lambda: self.control.event(kind), timeout_s)
        return self.control.event(kind)
