"""What a use case works with: the store, the audit log, and the live parts when serving.

The API builds a :class:`Context` from the running app: the switchboard (so
changes apply to the next call) and the authenticator (so ended sessions end
their agent seats). The CLI builds one with :func:`local` on a data folder:
no switchboard, no sessions, and no audit log. The ``ivr`` commands that work
on the folder directly are not audited (docs/access.md): the chain is kept
linear by one process's lock, and a second process appending to it while the
server runs would fork it. Their receipts say ``requested_by: cli`` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr import privacy
from ivr.access.audit import AuditLog, Outcome
from ivr.access.auth import Authenticator, HashParams
from ivr.call.switchboard import Switchboard
from ivr.store import Store, User, opened

CLI = "cli"
"""Who asked, in receipts, for what the ``ivr`` command does."""


@dataclass(frozen=True, slots=True)
class Context:
    """The parts a use case needs; what is None is not there (the CLI's case)."""

    store: Store
    audit: AuditLog | None = None
    switchboard: Switchboard | None = None
    sessions: Authenticator | None = None
    hash_params: HashParams = field(default_factory=HashParams)

    def live(self) -> Switchboard:
        """The switchboard: the numbers, flows and teams calls use now."""
        if self.switchboard is None:
            raise RuntimeError("this use case needs the running server's switchboard")
        return self.switchboard

    async def audited(
        self,
        actor: User | None,
        action: str,
        outcome: Outcome,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """One audit entry, when there is an audit log (the API); the CLI has none."""
        if self.audit is not None:
            await self.audit.record(
                actor,
                action,
                outcome,
                object_type=object_type,
                object_id=object_id,
                detail=detail,
            )

    def sessions_ended(self, user_id: str, why: str) -> None:
        """The user has no session left: end their live agent seats (when serving)."""
        if self.sessions is not None:
            self.sessions.sessions_ended(user_id, why)


@asynccontextmanager
async def local(
    data_dir: Path,
    database: str | None = None,
    *,
    keys: Path | None = None,
    resume_erasures: bool = False,
) -> AsyncIterator[Context]:
    """A context on a data folder (and ``database``: a postgresql:// URL) for the CLI.

    Its store is open, nothing is live, nothing is audited.

    ``resume_erasures``: first complete any erasure a crash interrupted, as
    the server does at start-up (the privacy commands ask for it).
    """
    async with opened(data_dir, database, keys) as store:
        if resume_erasures:
            await privacy.resume_erasures(store)
        yield Context(store)
