"""Who a privacy operation is about, and the keyed pseudonym that stands for them.

A subject is a contact (a caller's E.164 number) or an agent (a user id).
Where their identity must go but the row must stay (pseudonymous call rows
for aggregate analytics), a keyed hash stands in: HMAC-SHA-256 with a secret
kept in the data directory, never the number or the name.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from datetime import timedelta

from ivr.errors import IvrError
from ivr.store import Kind as Kind  # re-exported: whom an operation is about
from ivr.store import Store

log = logging.getLogger("ivr.privacy")

DEFAULT_EXPORT_WINDOW = timedelta(days=183)


class LiveElsewhere(IvrError):
    """The subject is on a live recorded call this process cannot stop (another node's)."""


class SubjectNotFound(IvrError):
    """No data about that subject."""


def _key(store: Store) -> bytes:
    path = store.data_dir / "pseudonym.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def pseudonym(store: Store, kind: Kind, value: str) -> str:
    """A stable keyed hash standing for a subject; not reversible without the key."""
    digest = hmac.new(_key(store), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"ps_{digest[:24]}"
