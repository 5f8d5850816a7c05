"""Calls and what hangs off them: contacts (caller numbers), the timeline, consent evidence.

A contact is kept only as an exact E.164 number (:func:`ivr.e164.contact_number`),
so erasure and export, which match the number exactly, find every call of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Unpack

from ivr.e164 import contact_number
from ivr.errors import NotFound, StoreError
from ivr.stamp import new_id, now_iso
from ivr.store import dialect
from ivr.store.base import Repository, Row, decode_cursor, encode_cursor
from ivr.store.rows import CallFields, CallRow, ConsentRow, EventRow, NewCall, NewConsent

_CALL_SELECT = (
    "SELECT c.*, p.number AS contact FROM calls c LEFT JOIN contacts p ON p.id = c.contact_id"
)
_NEW_CALL = (
    "id",
    "number",
    "contact_id",
    "flow_id",
    "flow_version",
    "codec",
    "sample_rate",
    "client_ref",
    "started_at",
    "transport",
    "sip_call_id",
    "node_id",
)
_CALL_FIELDS = frozenset(CallFields.__annotations__)
_JSON_FIELDS = ("recording_decision", "stats", "media")
_EVENT = dialect.insert("call_events", ("call_id", "at", "type", "data"))
_CONSENT = (
    "id",
    "call_id",
    "contact_id",
    "number",
    "flow_id",
    "flow_version",
    "consent_mode",
    "decision",
    "digit",
    "digit_at",
    "evidence",
    "created_at",
)


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def call_row(row: Row) -> CallRow:
    """A ``calls`` row (joined with its contact's number as ``contact``) as a typed row."""
    return CallRow(
        id=row["id"],
        number=row["number"],
        contact_id=row["contact_id"],
        contact=row["contact"],
        flow_id=row["flow_id"],
        flow_version=row["flow_version"],
        codec=row["codec"],
        sample_rate=row["sample_rate"],
        client_ref=row["client_ref"],
        started_at=row["started_at"],
        connected_at=row["connected_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        line=row["line"],
        team=row["team"],
        agent_id=row["agent_id"],
        agent_name=row["agent_name"],
        recording_decision=_json(row["recording_decision"]),
        stats=_json(row["stats"]),
        consent_decision=row["consent_decision"],
        subject_erased=bool(row["subject_erased"]),
        transport=row["transport"],
        sip_call_id=row["sip_call_id"],
        media=_json(row["media"]),
    )


def _event(row: Row) -> EventRow:
    return EventRow(row["id"], row["call_id"], row["at"], row["type"], json.loads(row["data"]))


def _consent(row: Row) -> ConsentRow:
    values = {k: row[k] for k in _CONSENT}
    values["evidence"] = json.loads(values["evidence"])
    return ConsentRow(**values)


class CallRepository(Repository):
    """``contacts``, ``calls``, ``call_events`` and ``consents``."""

    # -- contacts --------------------------------------------------------------------

    async def contact_id(self, number: str) -> str:
        """The contact for a caller number, created on first sight.

        Only an E.164 number is kept (:func:`ivr.e164.contact_number`): anything
        else is a :class:`StoreError`, so junk never becomes a contact.
        """
        try:
            number = contact_number(number)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        await self._db.write(
            dialect.insert_absent("contacts", ("id", "number", "created_at"), ("number",)),
            (new_id("p"), number, now_iso()),
        )
        found = await self._db.value("SELECT id FROM contacts WHERE number = ?", (number,))
        assert found is not None
        return str(found)

    # -- calls -----------------------------------------------------------------------

    async def create(self, call: NewCall) -> None:
        """A call's first row: written before the call is placed."""
        await self._db.write(
            dialect.insert("calls", _NEW_CALL), [getattr(call, c) for c in _NEW_CALL]
        )

    async def update(self, call_id: str, **fields: Unpack[CallFields]) -> None:
        """Set the given fields of a call (JSON fields are encoded here)."""
        unknown = set(fields) - _CALL_FIELDS
        if unknown:
            raise StoreError(f"calls have no field(s) {', '.join(sorted(unknown))}")
        if not fields:
            return
        values = [
            json.dumps(v) if k in _JSON_FIELDS and v is not None else v for k, v in fields.items()
        ]
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self._db.write(f"UPDATE calls SET {sets} WHERE id = ?", [*values, call_id])

    async def get(self, call_id: str) -> CallRow:
        """The call; :class:`NotFound` if there is none."""
        row = await self._db.one(f"{_CALL_SELECT} WHERE c.id = ?", (call_id,))
        if row is None:
            raise NotFound(f"no call {call_id}")
        return call_row(row)

    async def page(
        self, *, agent_id: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[CallRow], str | None]:
        """Calls newest first, ``limit`` at a time, and the cursor of the next page."""
        where: list[str] = []
        args: list[Any] = []
        if agent_id is not None:
            where.append("c.agent_id = ?")
            args.append(agent_id)
        if cursor:
            started, cid = decode_cursor(cursor)
            where.append("(c.started_at, c.id) < (?, ?)")
            args += [started, cid]
        sql = _CALL_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY c.started_at DESC, c.id DESC LIMIT ?"
        rows = await self._db.all(sql, [*args, limit + 1])
        items = [call_row(r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return items, None if last is None else encode_cursor(last["started_at"], last["id"])

    async def in_window(
        self, since: str, until: str, *, contact: str | None = None, agent_id: str | None = None
    ) -> list[CallRow]:
        """Calls started in ``[since, until)`` of a contact or an agent, oldest first."""
        where, args = "c.started_at >= ? AND c.started_at < ?", [since, until]
        if contact is not None:
            where += " AND p.number = ?"
            args.append(contact)
        if agent_id is not None:
            where += " AND c.agent_id = ?"
            args.append(agent_id)
        rows = await self._db.all(f"{_CALL_SELECT} WHERE {where} ORDER BY c.started_at", args)
        return [call_row(r) for r in rows]

    async def close_unended(self, at: str, spare: Sequence[str] = ()) -> int:
        """End every call that never ended (after a crash) with reason ``error``.

        Calls held by a node in ``spare`` (the other nodes still alive) are
        left alone: they are live there.
        """
        if not spare:
            return await self._db.write(
                "UPDATE calls SET ended_at = ?, end_reason = 'error' WHERE ended_at IS NULL", (at,)
            )
        return await self._db.write(
            "UPDATE calls SET ended_at = ?, end_reason = 'error' WHERE ended_at IS NULL "
            f"AND (node_id IS NULL OR node_id NOT IN {dialect.in_list(spare)})",
            (at, *spare),
        )

    # -- events ----------------------------------------------------------------------

    async def add_events(self, rows: Iterable[tuple[str, str, str, str]]) -> None:
        """Add (call_id, at, type, data as JSON text) events in one unit."""
        async with self._db.transaction() as db:
            await db.executemany(_EVENT, list(rows))

    async def events(self, call_id: str) -> list[EventRow]:
        """Every event of a call (bounded by the session's limit per call)."""
        rows = await self._db.all(
            "SELECT * FROM call_events WHERE call_id = ? ORDER BY id", (call_id,)
        )
        return [_event(r) for r in rows]

    async def events_page(
        self, call_id: str, *, after: int = 0, limit: int = 500
    ) -> tuple[list[EventRow], int | None]:
        """One page of a call's events, oldest first, and the ``after`` of the next page."""
        rows = await self._db.all(
            "SELECT * FROM call_events WHERE call_id = ? AND id > ? ORDER BY id LIMIT ?",
            (call_id, after, limit + 1),
        )
        items = [_event(r) for r in rows[:limit]]
        return items, (int(rows[limit - 1]["id"]) if len(rows) > limit else None)

    # -- consent ---------------------------------------------------------------------

    async def add_consent(self, consent: NewConsent) -> str:
        """Keep consent evidence; returns its id."""
        consent_id = new_id("k")
        values = {k: getattr(consent, k, None) for k in _CONSENT}
        values.update(id=consent_id, created_at=now_iso(), evidence=json.dumps(consent.evidence))
        await self._db.write(dialect.insert("consents", _CONSENT), list(values.values()))
        return consent_id

    async def consents(self, call_id: str) -> list[ConsentRow]:
        """A call's consent evidence, oldest first."""
        rows = await self._db.all(
            "SELECT * FROM consents WHERE call_id = ? ORDER BY created_at", (call_id,)
        )
        return [_consent(r) for r in rows]

    async def consents_of(self, call_ids: Sequence[str]) -> list[ConsentRow]:
        """The consent evidence of several calls, oldest first."""
        rows = await self._db.all(
            f"SELECT * FROM consents WHERE call_id IN {dialect.in_list(call_ids)} "
            "ORDER BY created_at",
            call_ids,
        )
        return [_consent(r) for r in rows]
