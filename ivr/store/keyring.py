"""Data keys for recordings and transcripts at rest, wrapped by a key encryption key.

Every recording (and every transcript) is sealed with a data key of its own,
32 random bytes (AES-256). A data key is kept only wrapped: encrypted with
AES-256-GCM under a key encryption key (KEK), with the data key's id as
associated data, in the key folder's small database. Destroying that row is
crypto-shredding: the audio, wherever copies of it lie (a backup of the data
folder included), can no longer be decrypted.

The key folder lies outside the data folder by default (``<data>-keys``
beside ``<data>``), so a backup of one is not a backup of the other:

    kek/<id>.key        a local KEK (32 bytes, mode 0600), made at first start
    kek/current         the id of the KEK new data keys are wrapped under
    keys.sqlite3        the wrapped data keys (id, KEK id, nonce and ciphertext),
                        and while ``ivr keys rotate`` runs, the KEK it moves them to

The KEKs are behind :class:`KeyWrapper`; :class:`LocalKeks` is the one that
ships. An external KMS is another implementation, named in the config as
``encryption.kms: "module:factory"`` (docs/privacy.md, "Keys"): its factory
gets the key folder and returns the wrapper; the data key files stay here.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ivr.errors import NotFound, StoreError

KEY_BYTES = 32
_NONCE_BYTES = 12


class KeyDestroyed(NotFound):
    """The data key is gone (crypto-shredded, or never made): what it sealed cannot be read."""


class KeyWrapper(Protocol):
    """The key encryption keys: a local file each (:class:`LocalKeks`), or an external KMS."""

    def current(self) -> str:
        """The id of the KEK new data keys are wrapped under."""
        ...

    def wrap(self, kek_id: str, key_id: str, key: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, key_id: str, blob: bytes) -> bytes:
        """The data key; :class:`StoreError` if this KEK cannot unwrap it (destroyed, or wrong)."""
        ...

    def new_kek(self) -> str:
        """Make a new KEK, make it the current one, and return its id (``ivr keys rotate``)."""
        ...

    def destroy_kek(self, kek_id: str) -> None:
        """Destroy a KEK for good; every data key still wrapped by it is lost with it."""
        ...

    def keks(self) -> list[str]:
        """The ids of the KEKs that exist."""
        ...


def _write_private(path: Path, data: bytes, *, sync: bool) -> None:
    """Write ``path`` whole or not at all (a file aside, renamed over it), mode 0600."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(aside, path)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise


def _shred(path: Path) -> bool:
    """Overwrite a key file with zeros, then unlink it; False if there was none."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.pwrite(fd, bytes(size), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)
    return True


class LocalKeks:
    """KEKs as files of the key folder's ``kek/``: the default :class:`KeyWrapper`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "kek"
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Read files, kept while the file is the same one (its inode and mtime): a
        # rotation or destruction by another process (``ivr keys``) is seen at once.
        self._cache: dict[str, tuple[tuple[int, int], object]] = {}
        if not (self.folder / "current").exists():
            first = self._make()
            # Two nodes starting at once: the first link wins, the other's KEK is unused.
            aside = self.folder / f".current.{secrets.token_hex(4)}"
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(first)
            try:
                os.link(aside, self.folder / "current")
            except FileExistsError:
                if first != self.current():
                    _shred(self.folder / f"{first}.key")
            finally:
                aside.unlink()

    def _make(self) -> str:
        kek_id = f"kek_{secrets.token_hex(6)}"
        _write_private(self.folder / f"{kek_id}.key", secrets.token_bytes(KEY_BYTES), sync=True)
        return kek_id

    def _cached(self, name: str, make: Callable[[bytes], object]) -> object:
        """``make(bytes of the file)``, made again only when the file changes; FileNotFoundError."""
        path = os.path.join(self.folder, name)
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with open(path, "rb") as f:
            value = make(f.read())
        self._cache[name] = (stamp, value)
        return value

    def _kek(self, kek_id: str) -> AESGCM:
        if not kek_id.startswith("kek_") or not kek_id[4:].isalnum():
            raise StoreError(f"{kek_id!r} is not a key encryption key's id")

        def aes(key: bytes) -> AESGCM:
            if len(key) != KEY_BYTES:
                raise StoreError(f"the key encryption key {kek_id} is not {KEY_BYTES} bytes")
            return AESGCM(key)

        try:
            return cast(AESGCM, self._cached(f"{kek_id}.key", aes))
        except FileNotFoundError:
            self._cache.pop(f"{kek_id}.key", None)
            raise StoreError(f"the key encryption key {kek_id} is destroyed") from None

    def current(self) -> str:
        return cast(str, self._cached("current", lambda b: b.decode().strip()))

    def wrap(self, kek_id: str, key_id: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._kek(kek_id).encrypt(nonce, key, key_id.encode())

    def unwrap(self, kek_id: str, key_id: str, blob: bytes) -> bytes:
        try:
            return self._kek(kek_id).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], key_id.encode()
            )
        except InvalidTag:
            raise StoreError(f"the key encryption key {kek_id} does not unwrap {key_id}") from None

    def new_kek(self) -> str:
        kek_id = self._make()
        _write_private(self.folder / "current", kek_id.encode(), sync=True)
        return kek_id

    def destroy_kek(self, kek_id: str) -> None:
        self._kek(kek_id)  # checks the id, and that it exists
        _shred(self.folder / f"{kek_id}.key")

    def keks(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("kek_*.key"))


@dataclass(slots=True)
class Rotation:
    """What ``ivr keys rotate`` did: the KEK keys now live under, and how many it moved."""

    kek: str
    rewrapped: int = 0
    resumed: bool = False
    previous: list[str] = field(default_factory=list)  # KEKs that may now be destroyed


class Keyring:
    """The data keys of one key folder (see the module docstring).

    The wrapped keys are rows of ``keys.sqlite3`` (mode 0600; SQLite with
    ``secure_delete``, so a destroyed key's bytes are overwritten in the
    file, and the write-ahead log truncated after each destruction): one
    insert per recording, cheap on the recorder's I/O thread, and safe for
    several processes sharing the folder (the nodes, ``ivr keys rotate``).
    One connection per keyring, shared by its threads under a lock.
    """

    def __init__(self, folder: Path, wrapper: KeyWrapper | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.wrapper: KeyWrapper = wrapper if wrapper is not None else LocalKeks(folder)
        path = folder / "keys.sqlite3"
        if not path.exists():  # made private first: SQLite gives its -wal file the same mode
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 10000")
        # Two processes opening a new key folder at once (two nodes starting, or
        # resuming one erasure) race to switch it to WAL, and that switch does not
        # wait on the busy timeout: the loser is told "locked", and tries again.
        deadline = time.monotonic() + 10
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS data_keys ("
            " id TEXT PRIMARY KEY, kek TEXT NOT NULL, wrapped BLOB NOT NULL) WITHOUT ROWID;"
            "CREATE INDEX IF NOT EXISTS data_keys_kek ON data_keys (kek);"
            "CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _check(key_id: str) -> str:
        if not key_id or not all(c.isalnum() or c in "_.-" for c in key_id) or len(key_id) > 64:
            raise StoreError(f"{key_id!r} is not a data key's id")
        return key_id

    def _row(self, key_id: str) -> tuple[str, bytes]:
        with self._lock:
            row = self._db.execute(
                "SELECT kek, wrapped FROM data_keys WHERE id = ?", (self._check(key_id),)
            ).fetchone()
        if row is None:
            raise KeyDestroyed(f"the data key of {key_id} is destroyed")
        return str(row[0]), bytes(row[1])

    def new_key(self, key_id: str) -> bytes:
        """A new random data key for ``key_id``, kept wrapped under the current KEK.

        Committed without an fsync, as the audio it seals is written: both
        survive a killed process, and a power loss may take both.
        """
        key = secrets.token_bytes(KEY_BYTES)
        kek_id = self.wrapper.current()
        blob = self.wrapper.wrap(kek_id, self._check(key_id), key)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO data_keys (id, kek, wrapped) VALUES (?, ?, ?)",
                    (key_id, kek_id, blob),
                )
        except sqlite3.IntegrityError:
            raise StoreError(f"{key_id} has a data key already") from None
        return key

    def key(self, key_id: str) -> bytes:
        """The data key of ``key_id``; :class:`KeyDestroyed` if it was shredded."""
        kek_id, blob = self._row(key_id)
        return self.wrapper.unwrap(kek_id, key_id, blob)

    def has(self, key_id: str) -> bool:
        try:
            self._row(key_id)
        except KeyDestroyed:
            return False
        return True

    def destroy(self, key_id: str) -> bool:
        """Crypto-shred: destroy the data key of ``key_id``; False if it was gone already."""
        return self.destroy_many([key_id]) == 1

    def destroy_many(self, key_ids: Iterable[str]) -> int:
        """Destroy these data keys, durably; how many there were.

        ``secure_delete`` zeroes their bytes in the file; the checkpoint moves
        the change out of the write-ahead log (syncing it) and truncates the
        log, so no copy of a destroyed key stays in either file.
        """
        ids = [self._check(k) for k in key_ids]
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = sum(
                    self._db.execute("DELETE FROM data_keys WHERE id = ?", (k,)).rowcount
                    for k in ids
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def key_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM data_keys ORDER BY id")]

    def kek_of(self, key_id: str) -> str:
        return self._row(key_id)[0]

    def counts(self) -> dict[str, int]:
        """How many data keys each KEK wraps."""
        with self._lock:
            rows = self._db.execute("SELECT kek, COUNT(*) FROM data_keys GROUP BY kek").fetchall()
        return {str(k): int(n) for k, n in rows}

    def rotating(self) -> str | None:
        """The KEK an unfinished rotation moves keys to, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name = 'rotating'").fetchone()
        return None if row is None else str(row[0])

    def rotate(self, progress: Callable[[int], None] | None = None, batch: int = 256) -> Rotation:
        """Re-wrap every data key under a new KEK, without touching what they seal.

        The new KEK becomes current first (keys made meanwhile are wrapped
        by it), and is noted as ``rotating`` until every key has moved: a
        rotation cut off (killed, a failing disk) is resumed by the next
        ``rotate``, which makes no further KEK. Keys move in batches, each
        one transaction, so a key is always wrapped by one KEK or the other.
        """
        before = set(self.wrapper.keks())
        target = self.rotating()
        resumed = target is not None
        if target is None:
            target = self.wrapper.new_kek()
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO state (name, value) VALUES ('rotating', ?)", (target,)
                )
        done = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, kek, wrapped FROM data_keys WHERE kek != ? LIMIT ?", (target, batch)
                ).fetchall()
            if not rows:
                break
            moved = [
                (target, self.wrapper.wrap(target, k, self.wrapper.unwrap(kek, k, bytes(blob))), k)
                for k, kek, blob in rows
            ]
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "UPDATE data_keys SET kek = ?, wrapped = ? WHERE id = ?", moved
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            for _ in moved:
                done += 1
                if progress is not None:
                    progress(done)
        with self._lock:
            self._db.execute("DELETE FROM state WHERE name = 'rotating'")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # durable before a KEK goes
        return Rotation(target, done, resumed, sorted(before - {target}))

    def destroy_kek(self, kek_id: str) -> None:
        """Destroy an old KEK; refused while it is current or still wraps a data key."""
        if kek_id == self.wrapper.current():
            raise StoreError(f"{kek_id} is the current key encryption key; rotate first")
        if self.rotating() is not None:
            raise StoreError("a rotation is not finished: run `ivr keys rotate` to resume it")
        still = self.counts().get(kek_id, 0)
        if still:
            raise StoreError(f"{kek_id} still wraps {still} data key(s); rotate first")
        self.wrapper.destroy_kek(kek_id)


def key_folder_for(data_dir: Path) -> Path:
    """The default key folder of a data folder: beside it, never inside it."""
    resolved = data_dir.resolve()
    return resolved.parent / f"{resolved.name}-keys"


def open_keyring(folder: Path, kms: str | None = None) -> Keyring:
    """The keyring of ``folder``, with the KMS ``"module:factory"`` if one is named."""
    if kms is None:
        return Keyring(folder)
    module, _, name = kms.partition(":")
    if not module or not name:
        raise StoreError(f"encryption.kms {kms!r} is not 'module:factory'")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise StoreError(f"encryption.kms {kms!r} cannot be loaded: {exc}") from None
    return Keyring(folder, factory(folder))
