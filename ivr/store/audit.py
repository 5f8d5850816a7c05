"""The audit table: appends under the write lock, pages of entries, the walk that verifies.

The hash chain (what is hashed, how entries link, what waits while the disk
fails) is :mod:`ivr.access.audit`'s; this module only reads the tail (under
the chain's lock), inserts the rows it is handed and reads them back. The schema's triggers refuse
every UPDATE and DELETE on the table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ivr.store import dialect
from ivr.store.base import Repository, Row, Work
from ivr.store.rows import AuditEntry

_COLUMNS = (
    "at",
    "actor_id",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
)
_INSERT = dialect.insert("audit", _COLUMNS)
CHAIN_LOCK = "audit-chain"
"""The lock every append holds from reading the tail to its commit."""


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        actor_id=row["actor_id"],
        actor_role=row["actor_role"],
        action=row["action"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        outcome=row["outcome"],
        detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class AuditAppender:
    """The open unit of work of one append: the chain's tail, and inserts after it."""

    def __init__(self, db: Work, last_hash: str | None) -> None:
        self._db = db
        self.last_hash = last_hash
        """The newest entry's hash before this append (None: the log is empty)."""

    async def add(self, content: Mapping[str, Any], prev_hash: str, digest: str) -> None:
        """Insert one entry: its hashed ``content``, its link and its hash."""
        await self._db.execute(
            _INSERT,
            (
                content["at"],
                content["actor_id"],
                content["actor_role"],
                content["action"],
                content["object_type"],
                content["object_id"],
                content["outcome"],
                json.dumps(content["detail"], sort_keys=True),
                prev_hash,
                digest,
            ),
        )


class AuditRepository(Repository):
    """The ``audit`` table, append-only."""

    @asynccontextmanager
    async def appending(self) -> AsyncIterator[AuditAppender]:
        """One unit of work that appends after the current tail, read under the chain's lock.

        The lock (SQLite's write lock; on PostgreSQL a transaction-scoped
        advisory lock, taken before the tail is read) makes appends one at a
        time across every writer and process, so two never link to the same
        tail and fork the chain. Everything added in it is committed together,
        or (the disk refused) nothing is, and
        :class:`ivr.errors.StorageUnavailable` is raised.
        """
        async with self._db.transaction() as db:
            await db.lock(CHAIN_LOCK)
            row = await db.one("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")
            yield AuditAppender(db, None if row is None else str(row[0]))

    async def head(self) -> tuple[int, str] | None:
        """The newest entry's sequence number and hash (None: the log is empty)."""
        row = await self._db.one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return None if row is None else (int(row[0]), str(row[1]))

    async def entries(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        action: str | None = None,
        actor_id: str | None = None,
        object_id: str | None = None,
    ) -> list[AuditEntry]:
        """Entries after ``seq`` ``after``, oldest first, matching the exact filters given."""
        where: list[str] = ["seq > ?"]
        args: list[int | str] = [after]
        for col, value in (("action", action), ("actor_id", actor_id), ("object_id", object_id)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        rows = await self._db.all(
            f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            (*args, limit),
        )
        return [_entry(r) for r in rows]

    async def walk(self) -> AsyncGenerator[AuditEntry, None]:
        """Every entry in order, read as it goes (the log may be long).

        Close it (``contextlib.aclosing``) when leaving early, so the read ends.
        """
        async for row in self._db.stream("SELECT * FROM audit ORDER BY seq"):
            yield _entry(row)
