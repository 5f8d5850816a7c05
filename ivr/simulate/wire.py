"""In-memory connections: the load runner's callers and agents reach a simulated switch.

``ivr simulate`` runs the load runner's own virtual callers and agents
(:mod:`ivr.load.caller`, driven by :class:`ivr.load.worker.Worker`) against
a :class:`ivr.simulate.switch.Switch`. Where ``ivr load`` opens a WebSocket,
:meth:`Wire.connect` returns a :class:`Link`: what the runner sends goes to
an endpoint that does what ``/v1/call`` or ``/v1/agent`` does with it (parse
the message as the protocol says, place the call through
:func:`ivr.transport.placement.place_call`, hand digits and audio to the
session, seat an agent and pass on their answers), and what the switch sends
the leg comes back to the runner's receiver, stamped with the virtual time.
What the runner sends the switch goes one ``call_soon`` later, as a
socket's bytes would be a read later, so nothing re-enters the switch from
inside its own tick; audio alone goes at once (it only fills the leg's
jitter buffer). What the switch sends arrives at once, in the order sent
(the runner's receivers only note it, or send, which hops).

Faults (a scenario's ``faults``, :class:`ivr.load.scenario.Faults`) are
injected here, drawn from the run's seed: a caller's frame lost or held
back on its way in, a caller who stops reading, and (in
:mod:`ivr.simulate.run`) the store refusing its writes for a while.

Not simulated: the WebSocket framing, the connection's rate limits and the
Origin rule (the runner's callers keep to them), and signing in (every
agent of the scenario's team is seated as one simulated user).

:class:`StoreReader` answers verification's reads (:class:`ivr.load.verify.Reader`)
from the store, with the REST API's own serialisers.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any
from urllib.parse import urlsplit

from ivr.api.calls import call_detail
from ivr.api.recordings import recording_out
from ivr.call.leg import Leg
from ivr.call.seat import PersonSeat
from ivr.call.session import CallSession
from ivr.call.switchboard import Busy, Switchboard
from ivr.errors import NotFound, StorageUnavailable
from ivr.load.scenario import Faults
from ivr.load.verify import ApiFailed
from ivr.load.wsclient import Receiver
from ivr.store import Store, User
from ivr.transport.agent import agent_message
from ivr.transport.placement import place_call
from ivr.transport.protocol import (
    AGENT_TYPES,
    CALLER_TYPES,
    ProtocolError,
    parse,
    parse_dial,
    parse_dtmf,
    parse_login,
)
from media.errors import AudioFileError, BadFrame

SIM_TOKEN = "simulated-agent"
"""The token simulated agents sign in with (no password, no session row)."""


class Link:
    """The runner's end of one in-memory connection (what :class:`ivr.load.worker.Link` needs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receiver: Receiver) -> None:
        self.loop = loop
        self.receiver = receiver
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.endpoint: _Endpoint | None = None
        self.is_open = True
        self.faults: Faults | None = None
        self.rng: random.Random | None = None

    # -- from the runner to the switch ------------------------------------------------

    def send_text(self, text: str) -> None:
        if self.is_open and self.endpoint is not None:
            self.loop.call_soon(self.endpoint.on_text, text)

    def send_binary(self, data: bytes) -> None:
        endpoint = self.endpoint
        if not self.is_open or endpoint is None:
            return
        faults, rng = self.faults, self.rng
        if faults is not None and rng is not None:
            draw = rng.random() * 100
            if draw < faults.frame_loss_percent:
                return  # lost on the way
            if draw < faults.frame_loss_percent + faults.late_frame_percent:
                self.loop.call_later(faults.late_ms / 1000, endpoint.on_binary, data)
                return
        endpoint.on_binary(data)

    def close(self, code: int = 1000) -> None:
        if self.is_open:
            self.is_open = False
            if self.endpoint is not None:
                self.loop.call_soon(self.endpoint.on_client_close)
            self.loop.call_soon(self._closed, code)

    def abort(self) -> None:
        self.close(1006)

    # -- from the switch to the runner ------------------------------------------------

    def deliver_text(self, text: str) -> None:
        if not self.closed.done():
            self.receiver.on_text(text, self.loop.time())

    def deliver_binary(self, data: bytes) -> None:
        if not self.closed.done():
            self.receiver.on_binary(data, self.loop.time())

    def server_close(self, code: int) -> None:
        self.is_open = False
        self.loop.call_soon(self._closed, code)

    def _closed(self, code: int) -> None:
        if not self.closed.done():
            self.close_code = code
            self.receiver.on_close(code, self.loop.time())
            self.closed.set_result(None)


class _Endpoint:
    """The switch's end: a leg's transport (:class:`ivr.call.leg.Transport`) over a link."""

    def __init__(self, link: Link, sb: Switchboard, store: Store) -> None:
        self.link = link
        self.sb = sb
        self.store = store
        self.closing = False
        self.close_code: int | None = None
        self.deaf = False
        """The peer stopped reading (a fault): nothing more reaches it but the close."""

    def send_audio(self, payload: bytes) -> bool:
        if self.closing or self.deaf:
            return False
        self.link.deliver_binary(payload)
        return True

    def send_message(self, message: dict[str, Any]) -> None:
        if not self.closing and not self.deaf:
            self.link.deliver_text(json.dumps(message))

    def close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            self.close_code = code
            self.link.server_close(code)

    def error(self, code: str, message: str) -> None:
        self.send_message({"type": "error", "code": code, "message": message})

    def on_text(self, text: str) -> None:
        raise NotImplementedError

    def on_binary(self, data: bytes) -> None:
        raise NotImplementedError

    def on_client_close(self) -> None:
        raise NotImplementedError


class _CallerEnd(_Endpoint):
    """``/v1/call`` in memory: a ``dial``, then digits, audio and a ``hangup``."""

    def __init__(self, link: Link, sb: Switchboard, store: Store) -> None:
        super().__init__(link, sb, store)
        self.session: CallSession | None = None
        self._placing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = self.link.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_text(self, text: str) -> None:
        try:
            m = parse(text, CALLER_TYPES)
        except ProtocolError as err:
            self.error(err.code, err.message)
            return
        session = self.session
        if session is None:
            if m["type"] != "dial" or self._placing:
                self.error("not_first", f"'{m['type']}' before 'dial'")
                return
            self._placing = True
            try:
                dial = parse_dial(m)
            except ProtocolError as err:
                self._placing = False
                self.error(err.code, err.message)
                return
            self._spawn(self._place(dial))
            return
        if m["type"] == "dtmf":
            session.digits(parse_dtmf(m).digits)
        elif m["type"] == "hangup":
            session.caller_hangup()
        else:
            self.error("bad_field", "the call is already dialled")

    async def _place(self, dial: Any) -> None:
        number = self.sb.numbers.get(dial.to)
        if number is None:
            self.error("unknown_number", f"{dial.to} is not a number of this server")
            self.close(1000)
            return
        try:
            self.sb.check_capacity()
            session = await place_call(
                self.sb, self.store, dial, number, self, asyncio.get_running_loop().time()
            )
        except Busy as exc:
            self.error("busy", str(exc))
            self.close(1000)
            return
        except StorageUnavailable:
            self.error("storage_unavailable", "the server cannot take calls now")
            self.close(1011)
            return
        self.session = session
        faults, rng = self.link.faults, self.link.rng
        if (
            faults is not None
            and rng is not None
            and rng.random() * 100 < faults.stop_reading_percent
        ):
            self.link.loop.call_later(faults.stop_reading_after_s, self._stop_reading)
        await session.wait_finished()
        self.close(self.close_code or 1000)

    def _stop_reading(self) -> None:
        self.deaf = True

    def on_binary(self, data: bytes) -> None:
        session = self.session
        if session is None:
            self.error("bad_frame", "audio before 'answered'")
            return
        if session.ended:
            return
        try:
            session.caller.receive_audio(data)
        except BadFrame as exc:
            self.error("bad_frame", str(exc))

    def on_client_close(self) -> None:
        if self.session is not None:
            self.session.caller_hangup()


class _AgentEnd(_Endpoint):
    """``/v1/agent`` in memory: a ``login``, then ``ready``, answers, audio and hangups."""

    def __init__(self, link: Link, sb: Switchboard, store: Store, wire: Wire) -> None:
        super().__init__(link, sb, store)
        self.wire = wire
        self.seat: PersonSeat | None = None

    def on_text(self, text: str) -> None:
        try:
            m = parse(text, AGENT_TYPES)
            if self.seat is None:
                if m["type"] != "login":
                    raise ProtocolError("not_first", f"'{m['type']}' before 'login'")
                login = parse_login(m)
                user = self.wire.agents_user
                if login.token != SIM_TOKEN or user is None:
                    self.error("unauthorized", "unknown or expired token")
                    self.close(1008)
                    return
                self.seat = self.sb.add_person(user, Leg(login.codec, self), token_hash=SIM_TOKEN)
                self.send_message(
                    {"type": "logged_in", "agent": self.seat.name, "teams": list(self.seat.teams)}
                )
                return
            agent_message(self.sb, self.seat, m)
        except ProtocolError as err:
            self.error(err.code, err.message)

    def on_binary(self, data: bytes) -> None:
        seat = self.seat
        if seat is None or seat.call is None or not seat.call.bridged:
            self.error("bad_frame", "audio before 'answered'")
            return
        try:
            seat.leg.receive_audio(data)
        except BadFrame as exc:
            self.error("bad_frame", str(exc))

    def on_client_close(self) -> None:
        if self.seat is not None:
            self.sb.remove_person(self.seat)
            self.seat = None


class Wire:
    """Connects the runner's callers and agents to one switch (``connect`` for the worker)."""

    def __init__(
        self, sb: Switchboard, store: Store, faults: Faults | None = None, seed: int = 0
    ) -> None:
        self.sb = sb
        self.store = store
        self.agents_user: User | None = None
        self.faults = faults
        self.rng = random.Random(seed)

    async def add_agents(self, team: str) -> None:
        """A user of ``team`` the simulated agents sign in as (no password can sign in)."""
        self.agents_user = await self.store.users.add(
            f"agents-{team}@simulated.invalid", f"Simulated {team}", "agent", "!", [team]
        )

    async def connect(self, url: str, receiver: Receiver, timeout_s: float = 10.0) -> Link:
        loop = asyncio.get_running_loop()
        link = Link(loop, receiver)
        path = urlsplit(url).path
        if path == "/v1/call":
            link.endpoint = _CallerEnd(link, self.sb, self.store)
            if self.faults is not None:
                link.faults, link.rng = self.faults, self.rng
        elif path == "/v1/agent":
            link.endpoint = _AgentEnd(link, self.sb, self.store, self)
        else:
            raise ConnectionError(f"no endpoint {path} in the simulator")
        return link


class StoreReader:
    """Verification's reads, answered from the store as the REST API answers them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def json(self, path: str) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        try:
            if len(parts) == 3 and parts[:2] == ["v1", "calls"]:
                return await call_detail(self.store, await self.store.calls.get(parts[2]))
            if len(parts) == 3 and parts[:2] == ["v1", "recordings"]:
                rec = await self.store.recordings.get(parts[2])
                return await recording_out(self.store, rec)
        except NotFound:
            raise ApiFailed(404, path) from None
        raise ApiFailed(404, path)

    async def audio(self, recording_id: str) -> bytes:
        path = f"/v1/recordings/{recording_id}/audio"
        try:
            rec = await self.store.recordings.get(recording_id)
            with self.store.recording_audio(rec.path, expect_bytes=rec.size_bytes) as audio:
                return audio.read_at(0, audio.size)
        except (NotFound, OSError, AudioFileError):
            raise ApiFailed(404, path) from None


def wall_clock() -> float:
    """Real seconds (what the simulation's speed-up is measured by)."""
    return time.perf_counter()
