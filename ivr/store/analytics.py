"""Read-only aggregates over calls and recordings, for analytics and billing.

Counts survive erasure: a call keeps its consent outcome and recording
decision (nothing personal) when its subject is erased.
"""

from __future__ import annotations

from typing import Any, Literal

from ivr.store.base import Repository
from ivr.store.dialect import Dialect
from ivr.store.rows import CallTotals, Usage

Grouping = Literal["all", "team", "agent"]


def _totals(sql: Dialect) -> str:
    """The totals query in ``sql``'s dialect, with ``{key}``, ``{where}`` and ``{group}`` left."""
    handle = sql.seconds_between("c.connected_at", "c.ended_at")
    return f"""
    SELECT {{key}} AS key,
           COUNT(*) AS calls,
           {sql.count_if("c.connected_at IS NOT NULL")} AS answered,
           {sql.count_if(sql.json_true("c.recording_decision", "record"))} AS recorded,
           {sql.count_if("c.consent_decision IN ('granted', 'refused')")} AS consent_asked,
           {sql.count_if("c.consent_decision = 'granted'")} AS consent_granted,
           AVG(CASE WHEN c.connected_at IS NOT NULL AND c.ended_at IS NOT NULL
                    THEN {handle} END) AS handle_s
    FROM calls c WHERE {{where}} {{group}}
"""


_GROUPS: dict[Grouping, tuple[str, str]] = {
    "all": ("'all'", ""),
    "team": ("COALESCE(c.team, '(none)')", "GROUP BY key ORDER BY key"),
    "agent": (
        "COALESCE(c.agent_id, c.agent_name, '(none)')",
        "AND c.connected_at IS NOT NULL GROUP BY key ORDER BY key",
    ),
}


def _range(since: str | None, until: str | None) -> tuple[str, list[Any]]:
    where, args = ["1 = 1"], []
    if since:
        where.append("c.started_at >= ?")
        args.append(since)
    if until:
        where.append("c.started_at < ?")
        args.append(until)
    return " AND ".join(where), args


class AnalyticsRepository(Repository):
    """Aggregates only: this repository never writes."""

    async def totals(
        self, since: str | None, until: str | None, by: Grouping = "all"
    ) -> list[CallTotals]:
        """Call counts in ``[since, until)``: one row for ``all``, else one per team or agent.

        An agent's row counts only the calls they answered.
        """
        where, args = _range(since, until)
        key, group = _GROUPS[by]
        query = _totals(self._db.dialect).format(key=key, where=where, group=group)
        rows = await self._db.all(query, args)
        return [
            CallTotals(
                key=str(r["key"]),
                calls=int(r["calls"] or 0),
                answered=int(r["answered"] or 0),
                recorded=int(r["recorded"] or 0),
                consent_asked=int(r["consent_asked"] or 0),
                consent_granted=int(r["consent_granted"] or 0),
                average_handle_s=None if r["handle_s"] is None else float(r["handle_s"]),
            )
            for r in rows
        ]

    async def usage(self, since: str | None, until: str | None) -> Usage:
        """Call and recorded minutes in ``[since, until)``; storage and seats now."""
        where, args = _range(since, until)
        span = self._db.dialect.minutes_between(
            "c.started_at", "COALESCE(c.ended_at, c.started_at)"
        )
        minutes = await self._db.value(f"SELECT SUM({span}) FROM calls c WHERE {where}", args)
        recorded = await self._db.value(
            "SELECT SUM(r.duration_s) / 60.0 FROM recordings r "
            f"JOIN calls c ON c.id = r.call_id WHERE {where}",
            args,
        )
        stored = await self._db.value("SELECT SUM(size_bytes) FROM recordings")
        seats = await self._db.value("SELECT COUNT(*) FROM users WHERE role != 'owner'")
        return Usage(
            minutes=float(minutes or 0),
            recorded_minutes=float(recorded or 0),
            storage_bytes=int(stored or 0),
            seats=int(seats or 0),
        )
