"""The nodes sharing this store: each ``ivr serve`` registers, beats, and says when it stops.

On one SQLite node this is a table of one row; on PostgreSQL it is how
several nodes see each other (docs/postgresql.md). A node is alive while its
heartbeat is fresher than the timeout the reader gives, and it has not
stopped; one that dies simply stops beating.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ivr.store import dialect
from ivr.store.base import Repository
from ivr.store.rows import NodeRow, NodeState

NODE_TIMEOUT_S = 15.0
"""A node whose last heartbeat is older than this is dead (three of its 5 s beats)."""
_COLUMNS = ("id", "host", "pid", "started_at", "heartbeat_at", "state", "calls", "url")
_REGISTER = dialect.upsert("nodes", _COLUMNS, ("id",))


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class NodeRepository(Repository):
    async def register(
        self, node_id: str, host: str, pid: int, now: str, url: str | None = None
    ) -> None:
        """This node starts (again, if the id was used before): ``ready``, no calls;
        ``url``: where the other nodes reach it (``http://host:port``)."""
        await self._db.write(_REGISTER, (node_id, host, pid, now, now, "ready", 0, url))

    async def heartbeat(self, node_id: str, now: str, state: NodeState, calls: int) -> bool:
        """This node is still here, in ``state`` with ``calls`` live; False if not registered."""
        changed = await self._db.write(
            "UPDATE nodes SET heartbeat_at = ?, state = ?, calls = ? WHERE id = ?",
            (now, state, calls, node_id),
        )
        return changed > 0

    async def nodes(self, now: str, timeout_s: float) -> list[NodeRow]:
        """Every node that ever registered, by id, with whether it is alive at ``now``."""
        oldest = _parse(now) - timedelta(seconds=timeout_s)
        rows = await self._db.all("SELECT * FROM nodes ORDER BY id")
        return [
            NodeRow(
                id=r["id"],
                host=r["host"],
                pid=int(r["pid"]),
                started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"],
                state=r["state"],
                calls=int(r["calls"]),
                url=r["url"],
                alive=r["state"] != "stopped" and _parse(r["heartbeat_at"]) >= oldest,
            )
            for r in rows
        ]

    async def others_alive(self, node_id: str | None, now: str) -> list[str]:
        """The ids of the other nodes alive at ``now``: what a start-up repair spares."""
        return [n.id for n in await self.nodes(now, NODE_TIMEOUT_S) if n.alive and n.id != node_id]

    async def forget(self, node_id: str) -> bool:
        """Remove a node's row (one taken out of service for good); False if there was none."""
        return await self._db.write("DELETE FROM nodes WHERE id = ?", (node_id,)) > 0
