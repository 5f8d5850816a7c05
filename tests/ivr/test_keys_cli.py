"""`ivr keys`: rotate the key encryption key under real recordings, destroy the old one."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.errors import StoreError
from ivr.server.keys import store_key
from ivr.store import RecordingRow
from ivr.store.keyring import Keyring
from media.sealed import open_audio
from tests.conftest import AppFactory, Caller, add_user
from tests.ivr.privacy.test_at_rest import recorded_call
from tests.ivr.privacy.test_privacy_ops import bearer

IVR = [sys.executable, "-m", "ivr"]


def keys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IVR, "keys", *args], capture_output=True, text=True, timeout=60, check=False
    )


async def two_recordings(
    start_app: AppFactory, new_caller: Callable[..., Caller], extra_keys: int = 0
) -> list[RecordingRow]:
    """Two recorded calls on a server that is then stopped; ``extra_keys`` more data keys."""
    client = await start_app()
    recorded = [(await recorded_call(client, new_caller, seed=s))[0] for s in (1, 2)]
    store = client.app[store_key]
    rows = [await store.recordings.get(r) for r in recorded]
    for i in range(extra_keys):  # more keys, so that a kill can fall inside a rotation
        store.keys.new_key(f"x_{i}")
    await client.close()
    return rows


async def assert_all_play(start_app: AppFactory, rows: list[RecordingRow], email: str) -> None:
    """A server on the same data plays every recording, exactly (the SHA-256 its row keeps)."""
    client = await start_app()
    sup = await add_user(client, email, "supervisor")
    for row in rows:
        resp = await client.get(f"/v1/recordings/{row.id}/audio", headers=bearer(sup))
        assert resp.status == 200
        assert hashlib.sha256(await resp.read()).hexdigest() == row.sha256
    await client.close()


def python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )


async def test_recordings_play_after_a_rotation_and_not_with_only_the_destroyed_kek(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    rows = await two_recordings(start_app, new_caller)
    data, folder = tmp_path / "data", tmp_path / "data-keys"

    status = keys("status", "--data", str(data))
    assert status.returncode == 0, status.stderr
    (old,) = Keyring(folder).wrapper.keks()
    assert f"{old} (current): wraps 2 data key(s)" in status.stdout
    refused = keys("destroy", old, "--data", str(data))
    assert refused.returncode == 1
    assert "current" in refused.stderr
    stolen = tmp_path / "stolen.key"
    shutil.copy(folder / "kek" / f"{old}.key", stolen)  # the old KEK, taken before it goes

    rotated = keys("rotate", "--data", str(data))
    assert rotated.returncode == 0, rotated.stderr
    assert "moved 2 data key(s)" in rotated.stdout
    assert f"ivr keys destroy {old}" in rotated.stdout
    before = {p: p.read_bytes() for p in (data / "recordings").rglob("*.wav")}
    destroyed = keys("destroy", old, "--data", str(data))
    assert destroyed.returncode == 0, destroyed.stderr
    assert not (folder / "kek" / f"{old}.key").exists()
    # The audio files were not rewritten: the same bytes, and they all play.
    assert {p: p.read_bytes() for p in (data / "recordings").rglob("*.wav")} == before
    await assert_all_play(start_app, rows, "sup2@example.com")

    # Someone holding only the destroyed KEK (and the key database) reads nothing.
    thief = tmp_path / "thief"
    (thief / "kek").mkdir(parents=True)
    shutil.copy(stolen, thief / "kek" / f"{old}.key")
    (thief / "kek" / "current").write_text(old)
    ring = Keyring(folder)
    ring.close()
    shutil.copy(folder / "keys.sqlite3", thief / "keys.sqlite3")
    with pytest.raises(StoreError, match="destroyed"):
        open_audio(data / "recordings" / rows[0].path, Keyring(thief).key)


def test_keys_status_on_a_folder_with_no_keys_says_so(tmp_path: Path) -> None:
    done = keys("status", "--keys", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "no keys in" in done.stderr


KILLED_ROTATION = """
import os, signal, sys
from pathlib import Path
from ivr.store import RecordingRow
from ivr.store.keyring import Keyring

def killed(done: int) -> None:
    if done == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-rotation, between two batches

Keyring(Path(sys.argv[1])).rotate(progress=killed, batch=2)
"""


async def test_a_rotation_killed_mid_way_resumes_and_every_recording_plays(
    start_app: AppFactory, new_caller: Callable[..., Caller], tmp_path: Path
) -> None:
    rows = await two_recordings(start_app, new_caller, extra_keys=10)
    data, folder = tmp_path / "data", tmp_path / "data-keys"
    (old,) = Keyring(folder).wrapper.keks()

    killed = python(KILLED_ROTATION, str(folder))
    assert killed.returncode == -9
    ring = Keyring(folder)
    assert ring.rotating() is not None
    counts = ring.counts()
    assert sorted(counts.values()) == [4, 8]  # four keys moved, eight not yet
    ring.close()
    refused = keys("destroy", old, "--data", str(data))
    assert refused.returncode == 1
    assert "not finished" in refused.stderr
    resumed = keys("rotate", "--data", str(data))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: moved 8 data key(s)" in resumed.stdout
    assert keys("destroy", old, "--data", str(data)).returncode == 0
    await assert_all_play(start_app, rows, "sup@example.com")
