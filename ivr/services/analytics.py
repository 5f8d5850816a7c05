"""Aggregates over calls for analytics and billing (read-only SQL over the store)."""

from __future__ import annotations

from typing import Any

from ivr.store import Store

_HANDLE = "(julianday(c.ended_at) - julianday(c.connected_at)) * 86400.0"


def _range(since: str | None, until: str | None) -> tuple[str, list[Any]]:
    where, args = ["1 = 1"], []
    if since:
        where.append("c.started_at >= ?")
        args.append(since)
    if until:
        where.append("c.started_at < ?")
        args.append(until)
    return " AND ".join(where), args


async def summary(store: Store, since: str | None, until: str | None) -> dict[str, Any]:
    """Calls, answered, recorded, consent rate and average handle time, overall and grouped."""
    where, args = _range(since, until)
    base = f"""
        SELECT {{key}} AS key,
               COUNT(*) AS calls,
               SUM(c.connected_at IS NOT NULL) AS answered,
               SUM(COALESCE(json_extract(c.recording_decision, '$.record'), 0)) AS recorded,
               SUM(c.consent_decision IN ('granted', 'refused')) AS consent_asked,
               SUM(c.consent_decision = 'granted') AS consent_granted,
               AVG(CASE WHEN c.connected_at IS NOT NULL AND c.ended_at IS NOT NULL
                        THEN {_HANDLE} END) AS aht_s
        FROM calls c WHERE {where} {{group}}
    """

    async def rows(key: str, group: str) -> list[dict[str, Any]]:
        sql = base.format(key=key, group=group)
        async with store.db.execute(sql, args) as cur:
            return [_shape(dict(r)) for r in await cur.fetchall()]

    total = (await rows("'all'", ""))[0]
    total.pop("key")
    by_team = await rows("COALESCE(c.team, '(none)')", "GROUP BY key ORDER BY key")
    by_agent = await rows(
        "COALESCE(c.agent_id, c.agent_name, '(none)')",
        "AND c.connected_at IS NOT NULL GROUP BY key ORDER BY key",
    )
    return {"since": since, "until": until, **total, "by_team": by_team, "by_agent": by_agent}


def _shape(r: dict[str, Any]) -> dict[str, Any]:
    for k in ("calls", "answered", "recorded", "consent_asked", "consent_granted"):
        r[k] = int(r[k] or 0)
    asked = r["consent_asked"]
    r["consent_rate"] = round(r["consent_granted"] / asked, 4) if asked else None
    r["average_handle_time_s"] = round(r.pop("aht_s"), 3) if r.get("aht_s") is not None else None
    return r


async def billing(store: Store, since: str | None, until: str | None) -> dict[str, Any]:
    """Usage: call minutes, recorded minutes, storage bytes, seats."""
    where, args = _range(since, until)
    sql = f"""
        SELECT SUM((julianday(COALESCE(c.ended_at, c.started_at)) - julianday(c.started_at))
                   * 1440.0) AS minutes
        FROM calls c WHERE {where}
    """
    async with store.db.execute(sql, args) as cur:
        row = await cur.fetchone()
    minutes = float(row[0] or 0) if row else 0.0
    rec_sql = f"""
        SELECT SUM(r.duration_s) / 60.0, SUM(r.size_bytes) FROM recordings r
        JOIN calls c ON c.id = r.call_id WHERE {where}
    """
    async with store.db.execute(rec_sql, args) as cur:
        rec = await cur.fetchone()
    async with store.db.execute("SELECT SUM(size_bytes) FROM recordings") as cur:
        stored = await cur.fetchone()
    async with store.db.execute("SELECT COUNT(*) FROM users WHERE role != 'owner'") as cur:
        seats = await cur.fetchone()
    return {
        "since": since,
        "until": until,
        "minutes": round(minutes, 4),
        "recorded_minutes": round(float(rec[0] or 0), 4) if rec else 0.0,
        "storage_bytes": int(stored[0] or 0) if stored else 0,
        "seats": int(seats[0]) if seats else 0,
    }
