"""What every driver shares: free loopback ports, a bounded child process, WAV files.

A child runs in a session of its own, so that at the end we can signal its
whole process group by its id (and nothing else): SIGTERM, then SIGKILL if
it has not gone within a grace period. Output is read as it comes, so a
chatty child never blocks on a full pipe, and kept for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import wave
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"


def free_port(*, udp: bool = True, tcp: bool = True) -> int:
    """A loopback port that is free now for UDP and TCP (SIP listens on both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if port_is_free(port, udp=udp, tcp=tcp):
            return port
    raise RuntimeError("no free loopback port")


def free_port_range(count: int, *, low: int = 20000, high: int = 60000) -> tuple[int, int]:
    """``count`` consecutive UDP ports free now, from an even one (RTP, and RTCP at +1).

    The start is random, so two tools started one after the other (a caller
    and an answerer) get ranges of their own."""
    start = low + random.randrange((high - low - count) // 2) * 2
    for _ in range(500):
        if start + count > high:
            start = low
        if all(port_is_free(p, udp=True, tcp=False) for p in range(start, start + count)):
            return start, start + count - 1
        start += count + (count % 2)
    raise RuntimeError(f"no {count} free consecutive UDP ports")


def port_is_free(port: int, *, udp: bool = True, tcp: bool = True) -> bool:
    """Whether ``port`` on loopback can be bound now (for UDP, TCP or both)."""
    kinds = [socket.SOCK_DGRAM] * udp + [socket.SOCK_STREAM] * tcp
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


class Child:
    """A child process bounded in time, always ended by its own process group id.

    ``async with Child(argv) as child:`` starts it; leaving the block (or
    :meth:`stop`) signals the group. :attr:`output` is stdout and stderr
    together, as read so far.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: bool = False,
        grace_s: float = 2.0,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.want_stdin = stdin
        self.grace_s = grace_s
        self.process: asyncio.subprocess.Process | None = None
        self._chunks: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    async def start(self) -> Child:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if self.want_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.read(65536):
            self._chunks.append(chunk)
            self._changed.set()
        self._changed.set()

    async def send_line(self, line: str) -> None:
        """Write one line to the child's stdin (started with ``stdin=True``)."""
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def wait_for_output(self, text: str, timeout_s: float, *, after: int = 0) -> int:
        """Wait until ``text`` is in the output past character ``after``; its end offset.

        Raises TimeoutError, or EOFError if the child's output ended first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = self.output.find(text, after)
            if found >= 0:
                return found + len(text)
            if self._reader is not None and self._reader.done():
                raise EOFError(f"{self.argv[0]} ended before printing {text!r}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.argv[0]} did not print {text!r} in {timeout_s} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait(self, timeout_s: float) -> int | None:
        """Wait for the child to exit by itself; its exit code, or None on timeout."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            return None

    async def stop(self) -> int | None:
        """End the child's process group (SIGTERM, then SIGKILL); its exit code."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            self._signal(signal.SIGTERM)
            if await self.wait(self.grace_s) is None:
                self._signal(signal.SIGKILL)
                await process.wait()
        # The leader is gone; anything it left in its group goes too.
        self._signal(signal.SIGKILL)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, 2.0)
            self._reader.cancel()
        if process.stdin is not None:
            process.stdin.close()
        return process.returncode

    def _signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def __aenter__(self) -> Child:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def write_wav(path: Path, samples: bytes, rate: int = 8000) -> Path:
    """Write 16-bit little-endian mono samples as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return path


def read_wav(path: Path) -> tuple[bytes, int, int]:
    """A WAV file's 16-bit frames, its rate and its channel count."""
    with wave.open(str(path), "rb") as src:
        if src.getsampwidth() != 2:
            raise ValueError(f"{path.name}: {8 * src.getsampwidth()}-bit samples, want 16")
        return src.readframes(src.getnframes()), src.getframerate(), src.getnchannels()


def padded_wav(src: Path, dst: Path, seconds: float, rate: int = 8000) -> Path:
    """``src`` (16-bit mono at ``rate``) followed by silence up to ``seconds`` in all.

    A UA that plays a file as its microphone may end the call at the file's
    end (baresip's ``aufile`` does); padding keeps the call up until we
    hang up ourselves."""
    samples, got_rate, channels = read_wav(src)
    if got_rate != rate or channels != 1:
        raise ValueError(f"{src.name}: {got_rate} Hz, {channels} channel(s); want {rate} Hz mono")
    wanted = int(seconds * rate) * 2
    return write_wav(dst, samples + bytes(max(0, wanted - len(samples))), rate)
