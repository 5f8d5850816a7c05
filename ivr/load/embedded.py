"""``--embedded``: a real server for the run, in a temporary data directory, removed after.

The server is ``python -m ivr serve`` (the shipped config unless another is
given) on a free loopback port, in its own process, so that it runs exactly
as in production and the runner's processes do not share its event loop.
Before it starts, a supervisor is created in its data directory (the store
directly, as ``ivr users add`` does) for the runner to verify recordings with
and, when the scenario has virtual agents, to sign them in: it is made a
member of their team.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

from ivr.access.auth import CHEAP
from ivr.load.errors import ServerUnusable
from ivr.load.runner import Target
from ivr.services import users
from ivr.services.context import local

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
EMAIL = "load-runner@example.invalid"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def create_supervisor(data_dir: Path, teams: Sequence[str]) -> tuple[str, str]:
    """A supervisor in ``data_dir``'s store; returns (email, password)."""
    password = secrets.token_urlsafe(18)
    async with local(data_dir) as ctx:
        await users.add_user(
            replace(ctx, hash_params=CHEAP),
            None,  # as `ivr users add` does: before the server runs, not audited
            email=EMAIL,
            name="Load runner",
            role="supervisor",
            password=password,
            teams=tuple(teams),
        )
    return EMAIL, password


@contextlib.asynccontextmanager
async def embedded_server(
    config: Path | None = None,
    teams: Sequence[str] = (),
    *,
    cpus: str | None = None,
    keep: bool = False,
) -> AsyncIterator[Target]:
    """Start a server; yield its :class:`Target`; stop it and remove its data (unless ``keep``).

    ``cpus`` pins the server with ``taskset -c`` (benchmarks).
    """
    folder = Path(tempfile.mkdtemp(prefix="ivr-load-"))
    data = folder / "data"
    proc: asyncio.subprocess.Process | None = None
    log_path = folder / "server.log"
    try:
        email, password = await create_supervisor(data, teams)
        port = free_port()
        cmd = [sys.executable, "-m", "ivr", "serve", "--data", str(data), "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--log-level", "WARNING", "--drain-s", "5"]
        if config is not None:
            cmd += ["--config", str(config)]
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL
            )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        raise ServerUnusable(
                            f"the embedded server did not start:\n{_tail(log_path)}"
                        )
                    if line.startswith(b"listening on"):
                        break
        except TimeoutError:
            raise ServerUnusable(
                f"the embedded server did not start in {START_TIMEOUT_S:.0f} s"
            ) from None
        drain = asyncio.get_running_loop().create_task(_drain(proc.stdout))
        try:
            yield Target(f"http://127.0.0.1:{port}", email, password, embedded=True)
        finally:
            drain.cancel()
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.readline():
            pass


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
