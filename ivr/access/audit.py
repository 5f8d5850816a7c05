"""The audit log: append-only, each entry chained to the one before by a hash.

Every read of call data, every change and deletion, every refusal, every
login and failed login is one entry: who (user id and role), what (an
action name), which object (type and id), when, the outcome, and a small
detail mapping. No audio, tokens, passwords or full phone numbers ever go
in (callers' numbers are masked by :func:`ivr.privacy.redact.mask_number`).

Entry ``n`` stores ``hash_n = SHA-256(hash_{n-1} || canonical JSON of entry n)``,
starting from 64 zeros, so editing, removing or reordering any row breaks
every hash after it: :func:`verify` finds the first broken link. SQLite
triggers refuse UPDATE and DELETE on the table as well.

When the disk refuses the insert (full, failing), the entry is not lost and
the request is not failed for it: entries wait in memory, in order, and are
appended (chained as usual, with their own times) as soon as a write
succeeds, by the next entry or by a retry every second. Only past
``MAX_PENDING`` waiting entries is an entry refused
(:class:`ivr.errors.StorageUnavailable`), and with it the request it audits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ivr.access.checkpoint import Checkpoint, CheckpointLine
from ivr.errors import StorageUnavailable
from ivr.stamp import now_iso
from ivr.store import AuditEntry, Store, User

log = logging.getLogger("ivr.audit")

GENESIS = "0" * 64
# Entries kept in memory while the disk refuses them; past this, requests are refused.
MAX_PENDING = 10_000
RETRY_S = 1.0
Outcome = Literal["ok", "refused", "failed"]


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    """Appends entries in order; one writer at a time keeps the chain linear."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = asyncio.Lock()
        self._pending: list[dict[str, Any]] = []
        self._retry: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Entries waiting for the disk."""
        return len(self._pending)

    async def record(
        self,
        actor: User | None,
        action: str,
        outcome: Outcome,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
        actor_id: str | None = None,
    ) -> None:
        entry = {
            "at": now_iso(),
            "actor_id": actor.id if actor else actor_id,
            "actor_role": actor.role if actor else None,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "outcome": outcome,
            "detail": dict(detail or {}),
        }
        async with self._lock:
            if len(self._pending) >= MAX_PENDING:
                raise StorageUnavailable(
                    f"the audit log cannot be written and {MAX_PENDING} entries already wait"
                )
            self._pending.append(entry)
            try:
                await self._append_pending()
            except StorageUnavailable:
                self._retry_later()

    async def _append_pending(self) -> None:
        """Append every waiting entry in one unit of work (the caller holds the lock)."""
        async with self._store.audit.appending() as tail:
            prev = tail.last_hash or GENESIS
            for entry in self._pending:
                digest = entry_hash(prev, entry)
                await tail.add(entry, prev, digest)
                prev = digest
        if len(self._pending) > 1:
            log.warning("audit: %d entries kept while the disk failed are written", self.pending)
        self._pending.clear()

    def _retry_later(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._retry_loop())

    async def _retry_loop(self) -> None:
        while self._pending:
            await asyncio.sleep(RETRY_S)
            async with self._lock:
                if self._pending:
                    with contextlib.suppress(StorageUnavailable):
                        await self._append_pending()

    async def close(self) -> None:
        """Stop retrying; one last try to write what waits (logged if it cannot be)."""
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        async with self._lock:
            if self._pending:
                try:
                    await self._append_pending()
                except StorageUnavailable:
                    log.error("audit: %d entries could not be written (storage)", self.pending)

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
        return await self._store.audit.entries(
            after=after, limit=limit, action=action, actor_id=actor_id, object_id=object_id
        )


@dataclass(frozen=True, slots=True)
class CheckpointVerdict:
    """The chain against the newest valid checkpoint: ``ok``, and what was found."""

    ok: bool
    message: str
    problems: tuple[str, ...] = ()


async def verify_checkpoints(store: Store, lines: Iterable[CheckpointLine]) -> CheckpointVerdict:
    """Whether every entry the newest valid checkpoint vouches for is still there, unchanged.

    Run after :func:`verify` found the chain intact: an intact chain that
    still holds the checkpoint's entry with the checkpoint's hash holds
    every entry before it too. Lines that are not valid checkpoints (edited,
    signed with another key) are problems of their own.
    """
    problems: list[str] = []
    newest: Checkpoint | None = None
    first = await store.audit.entries(after=0, limit=1)
    ours = first[0].hash if first else None
    for line in lines:
        cp = line.checkpoint
        if cp is None:
            problems.append(f"checkpoint line {line.number}: {line.problem}")
        elif ours is not None and cp.first != ours:
            problems.append(
                f"checkpoint line {line.number}: of another audit log (its first entry differs)"
            )
        elif newest is None or cp.seq >= newest.seq:
            newest = cp
    if newest is None:
        return CheckpointVerdict(False, "no valid checkpoint to check against", tuple(problems))
    head = await store.audit.head()
    last = head[0] if head is not None else 0
    found = await store.audit.entries(after=newest.seq - 1, limit=1)
    entry = found[0] if found and found[0].seq == newest.seq else None
    signer = f"the checkpoint of {newest.at} (node {newest.node})"
    vouched = f"{signer} vouches for entry {newest.seq}"
    if entry is None:
        if last < newest.seq:
            missing = newest.seq - last
            return CheckpointVerdict(
                False,
                f"TRUNCATED: entries {last + 1}..{newest.seq} ({missing}) are missing; "
                f"{vouched}, the log ends at {last}",
                tuple(problems),
            )
        return CheckpointVerdict(False, f"entry {newest.seq} is gone; {vouched}", tuple(problems))
    if entry.hash != newest.hash:
        return CheckpointVerdict(
            False,
            f"REWRITTEN: entry {newest.seq}'s hash is not the one {signer} signed: "
            "the log was cut at or before it and written again",
            tuple(problems),
        )
    newer = ""
    if last > newest.seq:
        newer = f"; entries {newest.seq + 1}..{last} are newer (not vouched for yet)"
    return CheckpointVerdict(
        not problems, f"{vouched}, and it is there unchanged{newer}", tuple(problems)
    )


async def verify(store: Store) -> Verdict:
    """Walk the whole chain; the first entry whose hash does not follow is reported."""
    prev = GENESIS
    n = 0
    async with contextlib.aclosing(store.audit.walk()) as entries:
        async for entry in entries:
            n += 1
            if entry.prev_hash != prev:
                return Verdict(False, n, entry.seq, "its link to the entry before is broken")
            if entry_hash(prev, entry.content()) != entry.hash:
                return Verdict(False, n, entry.seq, "its content does not match its hash")
            prev = entry.hash
    return Verdict(True, n)
