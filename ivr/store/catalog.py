"""The catalog: numbers, teams, flows (every version, by content hash) and flow heads.

Each number, team and flow head remembers its ``source``: ``config`` for a
row the config file set, ``api`` for one changed through the API, which a
restart keeps over the file (:mod:`ivr.services.seed`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, cast

from ivr.config import NumberConfig
from ivr.stamp import now_iso
from ivr.store import dialect
from ivr.store.base import Repository, Row
from ivr.store.rows import FlowRow, FlowVersion, NumberRow, Source, TeamRow

Sourced = Literal["numbers", "teams", "flow_heads"]

_NUMBER_COLUMNS = (
    "id",
    "name",
    "flow",
    "recording",
    "transcription",
    "record_percent",
    "retention_days",
    "consent_mode",
    "updated_at",
    "source",
    "language",
)
_SAVE_NUMBER = dialect.upsert("numbers", _NUMBER_COLUMNS, ("id",))
_SAVE_TEAM = dialect.upsert("teams", ("id", "bots", "bot_greeting", "source"), ("id",))
_SAVE_FLOW = dialect.insert_absent(
    "flows", ("id", "version", "definition", "created_at"), ("id", "version")
)
_SET_HEAD = dialect.upsert("flow_heads", ("id", "version", "updated_at", "source"), ("id",))


def _number(row: Row) -> NumberRow:
    return NumberRow(
        id=row["id"],
        name=row["name"],
        flow=row["flow"],
        recording=bool(row["recording"]),
        transcription=bool(row["transcription"]),
        record_percent=row["record_percent"],
        retention_days=row["retention_days"],
        consent_mode=row["consent_mode"],
        language=row["language"],
        source=row["source"],
        updated_at=row["updated_at"],
    )


class CatalogRepository(Repository):
    """``numbers``, ``teams``, ``flows`` and ``flow_heads``."""

    async def source_of(self, table: Sourced, row_id: str) -> Source | None:
        """Who last set a number, team or flow head: ``config``, ``api``, or None if absent."""
        if table not in ("numbers", "teams", "flow_heads"):
            raise ValueError(f"no source kept for {table!r}")
        value = await self._db.value(f"SELECT source FROM {table} WHERE id = ?", (row_id,))
        return None if value is None else cast(Source, value)

    # -- numbers ---------------------------------------------------------------------

    async def save_number(
        self, number_id: str, number: NumberConfig, source: Source = "config"
    ) -> None:
        """Insert or replace a number's settings."""
        await self._db.write(
            _SAVE_NUMBER,
            (
                number_id,
                number.name,
                number.flow,
                int(number.recording),
                int(number.transcription),
                number.record_percent,
                number.retention_days,
                number.consent_mode,
                now_iso(),
                source,
                number.language,
            ),
        )

    async def numbers(self) -> list[NumberRow]:
        """Every number, by id."""
        return [_number(r) for r in await self._db.all("SELECT * FROM numbers ORDER BY id")]

    # -- teams -----------------------------------------------------------------------

    async def save_team(
        self, team_id: str, bots: int, bot_greeting: str | None, source: Source = "config"
    ) -> None:
        """Insert or replace a team."""
        await self._db.write(_SAVE_TEAM, (team_id, bots, bot_greeting, source))

    async def teams(self) -> list[TeamRow]:
        """Every team, by id."""
        rows = await self._db.all("SELECT * FROM teams ORDER BY id")
        return [TeamRow(r["id"], r["bots"], r["bot_greeting"], r["source"]) for r in rows]

    async def delete_team(self, team_id: str) -> None:
        """Delete a team, and take it out of every user's teams, in one unit."""
        async with self._db.transaction() as db:
            await db.execute("DELETE FROM teams WHERE id = ?", (team_id,))
            await db.execute("DELETE FROM user_teams WHERE team = ?", (team_id,))

    # -- flows -----------------------------------------------------------------------

    async def save_flow(self, flow_id: str, version: str, definition: Mapping[str, Any]) -> None:
        """Keep a flow version (a version already kept stays as it was)."""
        await self._db.write(_SAVE_FLOW, (flow_id, version, json.dumps(definition), now_iso()))

    async def set_flow_head(self, flow_id: str, version: str, source: Source = "config") -> None:
        """Make ``version`` the one calls use."""
        await self._db.write(_SET_HEAD, (flow_id, version, now_iso(), source))

    async def current_flows(self) -> list[FlowRow]:
        """Every flow's current version, by id."""
        rows = await self._db.all(
            "SELECT f.id, f.version, f.definition FROM flow_heads h "
            "JOIN flows f ON f.id = h.id AND f.version = h.version ORDER BY f.id"
        )
        return [FlowRow(r["id"], r["version"], json.loads(r["definition"])) for r in rows]

    async def flow_versions(self, flow_id: str) -> list[FlowVersion]:
        """Every stored version of a flow, oldest first."""
        rows = await self._db.all(
            "SELECT version, created_at FROM flows WHERE id = ? ORDER BY created_at", (flow_id,)
        )
        return [FlowVersion(r["version"], r["created_at"]) for r in rows]
