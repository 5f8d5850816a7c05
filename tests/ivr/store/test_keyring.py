"""The keyring: data keys wrapped by a KEK, shredded for good, rotated without touching audio."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from ivr.errors import StoreError
from ivr.store.keyring import KeyDestroyed, Keyring, LocalKeks, key_folder_for, open_keyring


def test_a_data_key_is_kept_only_wrapped_and_private(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    key = ring.new_key("r_1")
    assert len(key) == 32
    assert ring.key("r_1") == key
    files = [p for p in (tmp_path / "keys").rglob("*") if p.is_file()]
    assert {f.name for f in files} >= {"keys.sqlite3", "current"}
    for f in files:
        assert key not in f.read_bytes()  # no file holds the key in clear
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f  # the WAL too
    kek = ring.wrapper.current()
    assert (tmp_path / "keys" / "kek" / f"{kek}.key").stat().st_size == 32
    assert ring.kek_of("r_1") == kek


def test_the_default_key_folder_is_beside_the_data_folder_never_in_it(tmp_path: Path) -> None:
    folder = key_folder_for(tmp_path / "data")
    assert folder == (tmp_path / "data-keys").resolve()
    assert not folder.is_relative_to((tmp_path / "data").resolve())


def test_a_destroyed_key_is_gone_for_good(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    ring.new_key("r_1")
    wrapped = ring._row("r_1")[1]
    assert ring.destroy("r_1")
    assert not ring.destroy("r_1")
    with pytest.raises(KeyDestroyed):
        ring.key("r_1")
    assert not ring.has("r_1")
    # Not even the wrapped bytes stay in the folder's files (secure_delete, the WAL cut).
    for f in (tmp_path / "keys").rglob("*"):
        if f.is_file():
            assert wrapped not in f.read_bytes(), f


def test_key_ids_are_checked(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    for bad in ("../x", "a/b", "", "r_1\0", "x" * 65):
        with pytest.raises(StoreError):
            ring.new_key(bad)


def test_rotation_rewraps_every_key_and_the_old_kek_can_then_be_destroyed(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    keys = {f"r_{i}": ring.new_key(f"r_{i}") for i in range(20)}
    old = ring.wrapper.current()
    before = tmp_path / "before.sqlite3"
    backup = sqlite3.connect(before)
    ring._db.backup(backup)  # a backup of the wrapped keys, as an operator would take one
    backup.close()
    with pytest.raises(StoreError, match="current"):
        ring.destroy_kek(old)
    done = ring.rotate()
    assert done.rewrapped == 20
    assert done.previous == [old]
    assert ring.wrapper.current() == done.kek != old
    assert {k: ring.key(k) for k in keys} == keys
    ring.destroy_kek(old)
    assert old not in ring.wrapper.keks()
    assert {k: ring.key(k) for k in keys} == keys  # the data keys did not change
    # The backup's keys were wrapped by the destroyed KEK: useless now.
    ring.close()
    for f in (tmp_path / "keys").glob("keys.sqlite3*"):
        f.unlink()
    shutil.copy(before, tmp_path / "keys" / "keys.sqlite3")
    restored = Keyring(tmp_path / "keys")
    assert restored.kek_of("r_0") == old
    with pytest.raises(StoreError, match="destroyed"):
        restored.key("r_0")


def test_an_interrupted_rotation_resumes_without_a_third_kek(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    keys = {f"r_{i}": ring.new_key(f"r_{i}") for i in range(10)}
    old = ring.wrapper.current()

    def killed(done: int) -> None:
        if done == 4:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a kill, mid-way

    with pytest.raises(KeyboardInterrupt):
        ring.rotate(progress=killed, batch=2)
    new = ring.wrapper.current()
    assert new != old
    assert sum(ring.kek_of(k) == new for k in keys) == 4
    assert {k: ring.key(k) for k in keys} == keys  # every key works meanwhile
    with pytest.raises(StoreError, match="not finished"):
        ring.destroy_kek(old)
    again = Keyring(tmp_path / "keys").rotate()  # a new process
    assert again.resumed
    assert again.kek == new
    assert again.rewrapped == 6
    assert sorted(ring.wrapper.keks()) == sorted([old, new])
    ring.destroy_kek(old)
    assert {k: ring.key(k) for k in keys} == keys


def test_an_old_kek_that_still_wraps_keys_is_not_destroyed(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    ring.new_key("r_1")
    old = ring.wrapper.current()
    ring.wrapper.new_kek()  # a KEK made current without a rotation
    with pytest.raises(StoreError, match="still wraps 1"):
        ring.destroy_kek(old)
    assert ring.key("r_1")


def test_two_first_starts_agree_on_one_kek(tmp_path: Path) -> None:
    a = LocalKeks(tmp_path / "keys")
    b = LocalKeks(tmp_path / "keys")
    assert a.current() == b.current()
    assert a.keks() == [a.current()]


class VaultKms:
    """A KMS named in the config: the edge of this test, a stand-in for a vault's API."""

    def __init__(self, folder: Path) -> None:
        self.inner = LocalKeks(folder / "vault")
        self.calls = 0

    def current(self) -> str:
        return self.inner.current()

    def wrap(self, kek_id: str, key_id: str, key: bytes) -> bytes:
        self.calls += 1
        return self.inner.wrap(kek_id, key_id, key)

    def unwrap(self, kek_id: str, key_id: str, blob: bytes) -> bytes:
        self.calls += 1
        return self.inner.unwrap(kek_id, key_id, blob)

    def new_kek(self) -> str:
        return self.inner.new_kek()

    def destroy_kek(self, kek_id: str) -> None:
        self.inner.destroy_kek(kek_id)

    def keks(self) -> list[str]:
        return self.inner.keks()


def test_a_kms_is_loaded_from_the_config_hook(tmp_path: Path) -> None:
    ring = open_keyring(tmp_path / "keys", "tests.ivr.store.test_keyring:VaultKms")
    assert isinstance(ring.wrapper, VaultKms)
    key = ring.new_key("r_1")
    assert ring.key("r_1") == key
    assert ring.wrapper.calls == 2
    assert not (tmp_path / "keys" / "kek").exists()  # no local KEK beside a KMS
    with pytest.raises(StoreError, match="cannot be loaded"):
        open_keyring(tmp_path / "keys", "tests.ivr.store.test_keyring:Nothing")
    with pytest.raises(StoreError, match="module:factory"):
        open_keyring(tmp_path / "keys", "no-colon")
