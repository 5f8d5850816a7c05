"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain (:mod:`ivr.access.audit`) shows any edit, removal or
reordering of an entry that has entries after it; it cannot show the newest
entries cut off, since what is left is still a valid chain. So the server
signs the chain's head (its sequence number and hash, with the time) with
an Ed25519 key and appends the signed line to a checkpoint file outside the
database, every ``checkpoint_every_s`` when the head has moved and at
shutdown, and (``log_checkpoints``) logs the same line for a log collector.
``ivr audit verify`` then checks the chain against the newest checkpoint:
entries it vouches for that are gone are reported, with their range.

The key (``audit.key``, 32 raw bytes, mode 0600, made at first start as
:mod:`ivr.access.nodekey` makes its key) and the checkpoint file default to
the data folder, beside the database but not in it; the config's ``audit``
section puts them elsewhere (docs/privacy.md says what each placement
protects against). A checkpoint line is one JSON object::

    {"seq": 1042, "hash": "9f...", "at": "2026-12-04T05:00:00.000Z",
     "node": "host:pid", "first": "5e0b...", "key": "3a5c...", "signature": "base64..."}

signed over ``ivr-audit-checkpoint:{first}:{seq}:{hash}:{at}``, where
``first`` is the hash of the chain's first entry (which log it is of); ``key`` is the
first 16 hex digits of the public key's SHA-256, so a line signed with
another key is told apart from an edited one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ivr.config import AuditSettings
from ivr.errors import AuthError, StorageUnavailable, StoreError
from ivr.stamp import now_iso
from ivr.store import Store

log = logging.getLogger("ivr.audit")

KEY_FILE = "audit.key"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
KEY_BYTES = 32
DEFAULT_EVERY_S = 60.0


def locations(settings: AuditSettings, data_dir: Path) -> tuple[Path, Path]:
    """The signing key's path and the checkpoint file's: the config's, else the data folder's."""
    key = Path(settings.signing_key) if settings.signing_key else data_dir / KEY_FILE
    file = (
        Path(settings.checkpoint_file) if settings.checkpoint_file else data_dir / CHECKPOINT_FILE
    )
    return key, file


def _message(seq: int, digest: str, at: str, first: str, node: str) -> bytes:
    return f"ivr-audit-checkpoint:{first}:{seq}:{digest}:{at}:{node}".encode()


def load_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``, made (atomically, mode 0600) if there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(aside, path)  # another process may have made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    raw = path.read_bytes()
    if len(raw) != KEY_BYTES:
        raise AuthError(f"{path.name} is not a {KEY_BYTES}-byte Ed25519 key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(path: Path) -> Ed25519PublicKey:
    """The public half of the signing key at ``path`` (never made here: :class:`AuthError`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AuthError(f"cannot read the audit signing key {path}: {exc.strerror}") from None
    if len(raw) != KEY_BYTES:
        raise AuthError(f"{path.name} is not a {KEY_BYTES}-byte Ed25519 key")
    return Ed25519PrivateKey.from_private_bytes(raw).public_key()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed head of the chain: entry ``seq`` had hash ``hash`` at ``at``.

    ``first`` is the hash of the chain's first entry: which audit log (which
    database) the checkpoint is of, so that a file of another log is named as
    such rather than taken for a cut one.
    """

    seq: int
    hash: str
    at: str
    node: str
    key: str
    signature: str
    first: str

    @classmethod
    def sign(
        cls, private: Ed25519PrivateKey, seq: int, digest: str, at: str, node: str, first: str
    ) -> Checkpoint:
        signature = private.sign(_message(seq, digest, at, first, node))
        return cls(
            seq,
            digest,
            at,
            node,
            key_id(private.public_key()),
            base64.b64encode(signature).decode(),
            first,
        )

    def line(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "hash": self.hash,
                "at": self.at,
                "node": self.node,
                "first": self.first,
                "key": self.key,
                "signature": self.signature,
            },
            separators=(",", ":"),
        )

    def valid(self, public: Ed25519PublicKey) -> bool:
        message = _message(self.seq, self.hash, self.at, self.first, self.node)
        try:
            public.verify(base64.b64decode(self.signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, slots=True)
class CheckpointLine:
    """A line of the checkpoint file as read back: its checkpoint, or why it is not one."""

    number: int
    checkpoint: Checkpoint | None
    problem: str | None = None


def read_checkpoints(path: Path, public: Ed25519PublicKey) -> Iterator[CheckpointLine]:
    """Every line of the file, each checked: well formed, signed with this key, signature good."""
    mine = key_id(public)
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                d = json.loads(text)
                cp = Checkpoint(
                    int(d["seq"]),
                    str(d["hash"]),
                    str(d["at"]),
                    str(d["node"]),
                    str(d["key"]),
                    str(d["signature"]),
                    str(d["first"]),
                )
            except (ValueError, KeyError, TypeError, OverflowError):
                yield CheckpointLine(number, None, "not a checkpoint line")
                continue
            if cp.key != mine:
                yield CheckpointLine(number, None, f"signed with another key ({cp.key})")
            elif not cp.valid(public):
                yield CheckpointLine(
                    number, None, "its signature does not match: the line was edited"
                )
            else:
                yield CheckpointLine(number, cp)


def _append(file: Path, line: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


class Checkpointer:
    """Signs the chain's head into the checkpoint file: every ``every_s`` if it moved, at close."""

    def __init__(
        self,
        store: Store,
        key_path: Path,
        file: Path,
        *,
        node: str,
        every_s: float = DEFAULT_EVERY_S,
        to_log: bool = False,
    ) -> None:
        self.store = store
        self.key = load_key(key_path)
        self.file = file
        self.node = node
        self.every_s = every_s
        self.to_log = to_log
        self._last: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-checkpoint")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.checkpoint()
            except (OSError, StorageUnavailable, StoreError) as exc:
                log.error("audit checkpoint failed: %s", exc)

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the head now if it moved since the last checkpoint; the checkpoint written."""
        head = await self.store.audit.head()
        if head is None or head == self._last:
            return None
        seq, digest = head
        (first,) = await self.store.audit.entries(after=0, limit=1)
        cp = Checkpoint.sign(self.key, seq, digest, now_iso(), self.node, first.hash)
        line = cp.line()
        await asyncio.to_thread(_append, self.file, line)  # an fsync: off the media clock's loop
        self._last = head
        if self.to_log:
            log.info("audit checkpoint %s", line)
        return cp

    async def close(self) -> None:
        """Stop the timer and write the last checkpoint (an error is logged, not raised)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.checkpoint()
        except (OSError, StorageUnavailable, StoreError) as exc:
            log.error("audit: the shutdown checkpoint could not be written: %s", exc)
