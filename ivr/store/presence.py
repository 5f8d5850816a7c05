"""Which agents are signed in on which node: each node publishes its own, every node reads all.

A node replaces its rows in one unit of work whenever its seats change (and
at every heartbeat), so the table holds each node's latest view of its own
agents; a node that dies leaves its rows behind, and readers ignore the rows
of nodes that are not alive (``ivr.store.nodes``). Calls across nodes offer
a call to the ``ready`` agents of the other live nodes (docs/nodes.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ivr.store import dialect
from ivr.store.base import Repository
from ivr.store.rows import PresenceRow

_COLUMNS = ("seat_id", "node_id", "user_id", "name", "teams", "state", "updated_at")
_INSERT = dialect.insert("agent_presence", _COLUMNS)


class PresenceRepository(Repository):
    async def publish(self, node_id: str, seats: Sequence[PresenceRow]) -> None:
        """``node_id``'s agents are now ``seats``, and only those."""
        async with self._db.transaction() as db:
            await db.execute("DELETE FROM agent_presence WHERE node_id = ?", (node_id,))
            if seats:
                await db.executemany(
                    _INSERT,
                    [(s.seat_id, node_id, s.user_id, s.name, json.dumps(list(s.teams)), s.state,
                      s.updated_at) for s in seats],
                )  # fmt: skip

    async def of_nodes(self, node_ids: Sequence[str]) -> list[PresenceRow]:
        """The agents published by ``node_ids``, by node and seat."""
        if not node_ids:
            return []
        marks = ", ".join("?" for _ in node_ids)
        rows = await self._db.all(
            f"SELECT * FROM agent_presence WHERE node_id IN ({marks}) ORDER BY node_id, seat_id",
            tuple(node_ids),
        )
        return [
            PresenceRow(
                seat_id=r["seat_id"],
                node_id=r["node_id"],
                user_id=r["user_id"],
                name=r["name"],
                teams=tuple(json.loads(r["teams"])),
                state=r["state"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]
