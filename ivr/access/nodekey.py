"""The key the nodes sharing a data folder prove themselves to each other with.

``cluster.key`` (32 random bytes, mode 0600) lives in the data folder every
node shares, next to ``pseudonym.key``: whoever can read it is a node. The
first node to start makes it (atomically: written aside, then linked into
place, so two nodes starting at once end up with the same key). A node
calling another signs ``node id`` and the time with it (HMAC-SHA256); the
callee accepts a signature at most a minute old. The key never leaves the
folder, and the signatures are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ivr.errors import AuthError

KEY_FILE = "cluster.key"
KEY_BYTES = 32
MAX_SKEW_S = 60


def node_key(data_dir: Path) -> bytes:
    """The shared key, made on first use."""
    path = data_dir / KEY_FILE
    if not path.exists():
        aside = data_dir / f".{KEY_FILE}.{secrets.token_hex(6)}"
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(aside, path)  # fails if another node put its key there first
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise AuthError(f"{KEY_FILE} in the data folder is not {KEY_BYTES} bytes")
    return key


def _mac(key: bytes, node_id: str, stamp: int) -> str:
    return hmac.new(key, f"ivr-bridge:{node_id}:{stamp}".encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, node_id: str, now: float) -> str:
    """What node ``node_id`` sends as its credentials at ``now`` (Unix seconds)."""
    stamp = int(now)
    return f"{node_id}:{stamp}:{_mac(key, node_id, stamp)}"


def check(key: bytes, credentials: str, now: float) -> str:
    """The id of the node that signed ``credentials``; :class:`AuthError` saying why not."""
    node_id, _, rest = credentials.rpartition(":")
    node_id, _, stamp_text = node_id.rpartition(":")
    node_id, stamp_text, mac = node_id, stamp_text, rest
    if not node_id or not stamp_text.isdigit() or len(mac) != 64:
        raise AuthError("malformed node credentials")
    stamp = int(stamp_text)
    if abs(now - stamp) > MAX_SKEW_S:
        raise AuthError("node credentials too old (or the clocks differ by over a minute)")
    if not hmac.compare_digest(mac, _mac(key, node_id, stamp)):
        raise AuthError("node credentials do not match this cluster's key")
    return node_id
