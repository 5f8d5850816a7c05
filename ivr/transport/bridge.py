"""Calls across nodes: the agents' presence the nodes share, and the link between two nodes.

Each node (:class:`Peers`, started by the app when the node has a URL the
others can reach, ``ivr serve --advertise``):

* **publishes** the agents signed in on it (``agent_presence``: seat, user,
  teams, state and since when) whenever they change (looked at every
  ``PUBLISH_S``) and at least every heartbeat, then wakes the other nodes
  with PostgreSQL's ``NOTIFY ivr_presence``;
* **mirrors** the ``ready`` agents of the other live nodes into its
  switchboard as :class:`ivr.call.remote.RemoteSeat`\\ s, re-reading the
  tables on every wake-up (``LISTEN``) and every ``MIRROR_S`` anyway (the
  tables are the truth; a missed wake-up costs at most that long). An agent
  whose node stops beating leaves within the heartbeat timeout;
* **links** to another node when a call here is offered to one of its
  agents: a WebSocket to ``BRIDGE_PATH`` on that node, signed with the
  cluster key (:mod:`ivr.access.nodekey`), carrying the offer, the answer
  and then 20 ms frames both ways (:mod:`ivr.call.remote` has the messages);
* **serves** ``BRIDGE_PATH`` (:func:`bridge_handler`) for the other nodes'
  links: the offer goes to the agent's seat, which answers as for a call of
  its own node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from ivr import eventloop
from ivr.access.nodekey import check, node_key, sign
from ivr.call.leg import Leg
from ivr.call.remote import RemoteCall, RemoteSeat
from ivr.call.seat import OfferedCall, PersonSeat
from ivr.call.switchboard import Switchboard
from ivr.errors import AuthError, IvrError
from ivr.server.keys import settings_key, switchboard_key
from ivr.stamp import now_iso
from ivr.store import PresenceRow, Store
from ivr.store.nodes import NODE_TIMEOUT_S
from ivr.transport.ws import MAX_MESSAGE_BYTES, _run_now, open_socket
from media.errors import BadFrame, UnsupportedCodec
from media.frame import codec

log = logging.getLogger("ivr.bridge")

BRIDGE_PATH = "/v1/internal/bridge"
HEADER = "X-Ivr-Node"
CHANNEL = "ivr_presence"
PUBLISH_S = 0.25  # how often a node looks whether its agents changed
REPUBLISH_S = 5.0  # and publishes them anyway
MIRROR_S = 2.0  # how often a node re-reads the others' agents without a wake-up
CONNECT_TIMEOUT_S = 3.0


class ClientTransport:
    """A leg's transport over the WebSocket this node opened to another (frames masked)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.closing = False

    def send_audio(self, payload: bytes) -> bool:
        if self.closing or self._ws.closed:
            return False
        return _run_now(self._ws.send_bytes(payload))

    def send_message(self, message: dict[str, Any]) -> None:
        if not self.closing and not self._ws.closed:
            _run_now(self._ws.send_str(json.dumps(message)))

    def close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().create_task(self._ws.close(code=code))


class Peers:
    """This node's side of calls across nodes: publish, mirror, link (module docstring)."""

    def __init__(self, store: Store, switchboard: Switchboard, node_id: str) -> None:
        self.store = store
        self.sb = switchboard
        self.node_id = node_id
        self.key = node_key(store.data_dir)
        self._tasks: list[asyncio.Task[None]] = []
        self._links: set[asyncio.Task[None]] = set()
        self._since: dict[str, tuple[str, str]] = {}  # seat id: (state, since when)
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S)
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._publishing(), name="presence-publish"),
            loop.create_task(self._mirroring(), name="presence-mirror"),
            loop.create_task(self._listening(), name="presence-listen"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._links]:
            task.cancel()
        for task in [*self._tasks, *self._links]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.store.presence.publish(self.node_id, [])
        if self._session is not None:
            await self._session.close()

    # -- publishing this node's agents -----------------------------------------------

    def _view(self) -> list[PresenceRow]:
        now = now_iso()
        rows: list[PresenceRow] = []
        since: dict[str, tuple[str, str]] = {}
        for seat in self.sb.seats.values():
            if not isinstance(seat, PersonSeat):
                continue
            state = seat.state
            before = self._since.get(seat.id)
            since[seat.id] = (state, before[1] if before and before[0] == state else now)
            rows.append(
                PresenceRow(
                    seat_id=seat.id,
                    node_id=self.node_id,
                    user_id=seat.user_id,
                    name=seat.name,
                    teams=seat.teams,
                    state=state,
                    updated_at=since[seat.id][1],
                )
            )
        self._since = since
        return rows

    async def _publishing(self) -> None:
        published: list[PresenceRow] | None = None
        last = 0.0
        while True:
            view = self._view()
            if view != published or time.monotonic() - last > REPUBLISH_S:
                try:
                    await self.store.presence.publish(self.node_id, view)
                    await self.store.notify(CHANNEL)
                    published, last = view, time.monotonic()
                except IvrError as exc:
                    if eventloop.cancelling():
                        raise asyncio.CancelledError from None
                    log.warning("node %s: agents' presence not published: %s", self.node_id, exc)
            await eventloop.sleep_or_stop(PUBLISH_S)

    # -- mirroring the other nodes' agents ---------------------------------------------

    async def _listening(self) -> None:
        """Wake the mirror on every NOTIFY (PostgreSQL); reconnect after a failure."""
        while True:
            wakes = self.store.listen(CHANNEL)
            if wakes is None:
                return  # SQLite: the mirror polls
            try:
                async for _ in wakes:
                    self._wake.set()
            except IvrError as exc:
                if eventloop.cancelling():
                    raise asyncio.CancelledError from None
                log.warning("node %s: presence wake-ups lost (%s); re-listening", self.node_id,
                            exc)  # fmt: skip
            await eventloop.sleep_or_stop(1.0)

    async def _mirroring(self) -> None:
        while True:
            try:
                await self.mirror()
            except IvrError as exc:
                if eventloop.cancelling():
                    raise asyncio.CancelledError from None
                log.warning("node %s: the other nodes' agents not read: %s", self.node_id, exc)
            self._wake.clear()
            if eventloop.cancelling():
                raise asyncio.CancelledError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), MIRROR_S)

    async def mirror(self) -> None:
        """Make the switchboard's remote seats match the other live nodes' ready agents."""
        nodes = await self.store.nodes.nodes(now_iso(), NODE_TIMEOUT_S)
        urls = {n.id: n.url for n in nodes if n.alive and n.id != self.node_id and n.url}
        rows = await self.store.presence.of_nodes(sorted(urls))
        present: set[str] = set()
        for row in rows:
            key = f"{row.node_id}:{row.seat_id}"
            present.add(key)
            seat = self.sb.seats.get(key)
            if seat is None:
                if row.state != "ready":
                    continue
                seat = RemoteSeat(key, row.name, row.teams, row.user_id, row.node_id,
                                  urls[row.node_id], self.open_link)  # fmt: skip
                seat.seen = row.updated_at
                self.sb.add_remote(seat)
                continue
            if not isinstance(seat, RemoteSeat):
                continue
            moved = seat.teams != row.teams
            seat.name, seat.teams, seat.url = row.name, row.teams, urls[row.node_id]
            if moved:
                self.sb.teams_changed(seat)
            fresh = seat.seen != row.updated_at
            seat.seen = row.updated_at
            if row.state == "ready" and (fresh or seat.wants_ready):
                self.sb.set_ready(seat, True)
            elif row.state != "ready":
                self.sb.set_ready(seat, False)
        for key, seat in list(self.sb.seats.items()):
            if isinstance(seat, RemoteSeat) and key not in present:
                self.sb.remove_remote(seat)

    # -- linking to another node -------------------------------------------------------

    def open_link(self, seat: RemoteSeat, call: OfferedCall) -> None:
        task = asyncio.get_running_loop().create_task(self._link(seat, call), name="bridge")
        self._links.add(task)
        task.add_done_callback(self._links.discard)

    async def _link(self, seat: RemoteSeat, call: OfferedCall) -> None:
        assert self._session is not None
        headers = {HEADER: sign(self.key, self.node_id, time.time())}
        try:
            async with self._session.ws_connect(
                seat.url.rstrip("/") + BRIDGE_PATH, headers=headers, compress=0,
                max_msg_size=MAX_MESSAGE_BYTES, heartbeat=10,
            ) as ws:  # fmt: skip
                if seat.call is not call or seat.state != "offered":
                    return  # withdrawn while connecting
                transport = ClientTransport(ws)
                leg = Leg(codec("pcm_s16le", call.sample_rate), transport)
                seat.attached(leg, lambda: transport.close(1000))
                leg.send_message(
                    {"type": "offer", "seat": seat.remote_seat_id, "call_id": call.id,
                     "from": call.caller_number, "line": call.line, "team": call.team,
                     "recording": call.will_record, "rate": call.sample_rate}
                )  # fmt: skip
                async for msg in ws:
                    if msg.type == WSMsgType.BINARY:
                        if seat.link is leg and call.bridged:
                            with contextlib.suppress(BadFrame):
                                leg.receive_audio(msg.data)
                    elif msg.type == WSMsgType.TEXT:
                        with contextlib.suppress(ValueError):
                            message = json.loads(msg.data)
                            if isinstance(message, dict):
                                seat.received(call, message)
                    else:
                        break
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("call %s: node %s not reached for an agent: %s", call.id, seat.node_id,
                        type(exc).__name__)  # fmt: skip
        finally:
            seat.link_lost(call)


async def bridge_handler(request: web.Request) -> web.StreamResponse:
    """``BRIDGE_PATH``: another node offers one of its calls to an agent signed in here."""
    sb = request.app[switchboard_key]
    key = node_key(request.app[settings_key].data_dir)
    try:
        peer = check(key, request.headers.get(HEADER, ""), time.time())
    except AuthError as exc:
        return web.json_response(
            {"error": {"code": "unauthorized", "message": str(exc)}}, status=401
        )
    ws, transport = await open_socket(request)
    remote: RemoteCall | None = None
    try:
        first = await ws.receive(timeout=10)
        offer = json.loads(first.data) if first.type == WSMsgType.TEXT else None
        if not isinstance(offer, dict) or offer.get("type") != "offer":
            transport.send_message({"type": "declined", "why": "no offer"})
            return ws
        rate = offer.get("rate")
        seat = sb.seats.get(str(offer.get("seat", "")))
        if not isinstance(seat, PersonSeat) or not isinstance(rate, int):
            transport.send_message({"type": "declined", "why": "no such agent here"})
            return ws
        try:
            leg = Leg(codec("pcm_s16le", rate), transport)
        except UnsupportedCodec:
            transport.send_message({"type": "declined", "why": f"rate {rate} not supported"})
            return ws
        remote = RemoteCall(offer, leg, seat, sb)
        why = remote.offer_to_seat()
        if why is not None:
            transport.send_message({"type": "declined", "why": why})
            return ws
        log.info("call %s from node %s offered to agent %s", remote.id, peer, seat.user_id)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                if remote.bridged:
                    with contextlib.suppress(BadFrame):
                        leg.receive_audio(msg.data)
            elif msg.type == WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    message = json.loads(msg.data)
                    if isinstance(message, dict):
                        remote.received(message)
            else:
                break
    except (TimeoutError, ValueError):
        pass
    finally:
        if remote is not None:
            remote.link_lost()
        if not ws.closed:
            await ws.close()
    return ws
