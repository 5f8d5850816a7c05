"""The asyncio driver of the SIP core: UDP and TCP sockets, timers, and the calls' decisions.

:class:`SipEdge` owns one :class:`ivr.transport.sip.SipCore`. Every datagram,
every chunk of a TCP stream and every fired timer goes into the core with
``time.monotonic()``; after each, :meth:`SipEdge.flush` sends what the core
wants sent, arms and cancels its timers (``loop.call_at``), and hands its
events to the calls (:class:`ivr.transport.sipedge.call.SipCall`).

A new INVITE is checked here, in this order, before anything is bound:
the Request-URI's user part must be a configured number (``+`` optional;
else 404), the From user part an E.164 caller id (same check as the
WebSocket ``dial``; else 403), and the switch and the SIP edge under their
call limits (else 503 with Retry-After). The core itself never raises for
what a peer sends; a failure in handling one call's event is logged and
stays with that call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from ivr.call.switchboard import Busy, Switchboard
from ivr.config import SipSettings, parse_port_range
from ivr.e164 import is_e164
from ivr.privacy.redact import mask_number
from ivr.server.metrics import ServerMetrics
from ivr.store import Store
from ivr.transport.sip import (
    AckReceived,
    ByeCompleted,
    ByeReceived,
    CallCancelled,
    CallGone,
    CallTimedOut,
    CancelTimer,
    CloseConnection,
    Endpoint,
    IncomingCall,
    InfoReceived,
    Outgoing,
    ReInviteReceived,
    SipConfig,
    SipCore,
    SipEvent,
    SipStateError,
    StartTimer,
    Timer,
)
from ivr.transport.sipedge.call import RETRY_AFTER_S, SipCall
from ivr.transport.sipedge.media import PortRange

log = logging.getLogger("ivr.sip")

MAX_CONNECTIONS = 1000  # TCP connections at once; more are closed at once


def dialled_number(user: str | None) -> str | None:
    """A URI's user part as an E.164 number: ``15550100`` and ``+15550100`` alike; else None."""
    if not user:
        return None
    number = user if user.startswith("+") else f"+{user}"
    return number if is_e164(number) else None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, edge: SipEdge) -> None:
        self.edge = edge
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        source = Endpoint(str(addr[0]), int(addr[1]), "UDP")
        self.edge.feed(lambda now: self.edge.core.receive_datagram(data, source, now))

    def error_received(self, exc: Exception) -> None:
        pass


class _Tcp(asyncio.Protocol):
    def __init__(self, edge: SipEdge) -> None:
        self.edge = edge
        self.id = 0
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        addr = self.transport.get_extra_info("peername")
        self.peer = (str(addr[0]), int(addr[1]))
        if len(self.edge.connections) >= MAX_CONNECTIONS:
            transport.close()
            return
        self.id = self.edge.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if not self.id:
            return
        source = Endpoint(self.peer[0], self.peer[1], "TCP", self.id)
        self.edge.feed(lambda now: self.edge.core.receive_stream(data, source, now))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.id:
            self.edge.connection_lost(self.id)


class SipEdge:
    """SIP over UDP and TCP, and RTP, for the switchboard's numbers."""

    def __init__(
        self,
        settings: SipSettings,
        sb: Switchboard,
        store: Store,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ServerMetrics()
        self.sb = sb
        self.store = store
        self.public_address = settings.public_address or settings.host
        low, high = parse_port_range(settings.rtp_ports)
        self.ports = PortRange(settings.host, low, high)
        if _is_ip(self.public_address) and ipaddress.ip_address(self.public_address).is_unspecified:
            log.warning("sip.public_address is not set and sip.host is %s: set it", settings.host)
        self.core = SipCore(SipConfig(host=_uri_host(self.public_address)))
        self.calls: dict[str, SipCall] = {}
        self.connections: dict[int, _Tcp] = {}
        self._next_connection = 0
        self._udp: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._flushing = False
        self.port = settings.port
        self._writes: set[asyncio.Task[None]] = set()

    # -- start and stop ------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP and TCP to one port (port 0: a free one, tried again if TCP has it taken)."""
        for attempt in range(5):
            try:
                port = await self._bind()
                break
            except OSError:
                if self._udp is not None and self._udp.transport is not None:
                    self._udp.transport.close()
                self._udp = None
                if self.settings.port != 0 or attempt == 4:
                    raise
        host = self.settings.host
        self.port = port
        self.core = SipCore(
            SipConfig(
                host=_uri_host(self.public_address), udp_port=port, tcp_port=port, symmetric=True
            )
        )
        log.info(
            "SIP on %s:%d (%s), RTP ports %s, SDP address %s",
            host,
            port,
            "+".join(self.settings.transports),
            self.settings.rtp_ports,
            self.public_address,
        )

    async def _bind(self) -> int:
        loop = asyncio.get_running_loop()
        host, port = self.settings.host, self.settings.port
        if "udp" in self.settings.transports:
            transport, self._udp = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            port = int(transport.get_extra_info("sockname")[1])
        if "tcp" in self.settings.transports:
            self._tcp = await loop.create_server(lambda: _Tcp(self), host, port)
            port = int(self._tcp.sockets[0].getsockname()[1])
        return port

    async def stop(self) -> None:
        """After the switchboard's shutdown (every call ended and saved): close everything."""
        for call in list(self.calls.values()):
            if call.task is not None and not call.task.done():
                call.task.cancel()  # a ringing call gets 503
                with contextlib.suppress(asyncio.CancelledError):
                    await call.task
            call.release()
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=5)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)

    # -- into the core ---------------------------------------------------------------

    def feed(self, step: Callable[[float], None]) -> None:
        """One input into the core (a packet, a timer), then everything it caused."""
        counters = self.core.counters
        malformed = counters["answered_malformed"] + counters["dropped_malformed"]
        try:
            step(time.monotonic())
        except Exception:  # the core takes anything a peer sends; this is a bug
            log.exception("the SIP core failed on an input; dropped")
        more = counters["answered_malformed"] + counters["dropped_malformed"] - malformed
        if more:
            self.metrics.sip_malformed(more)
        self.flush()

    def decide(self, step: Callable[[float], None]) -> bool:
        """An application decision about a call; False if the call is gone already."""
        try:
            step(time.monotonic())
        except (CallGone, SipStateError) as exc:
            log.debug("SIP decision not taken: %s", exc)
            self.flush()
            return False
        self.flush()
        return True

    def flush(self) -> None:
        if self._flushing:
            return  # the outer flush takes what this call added
        self._flushing = True
        try:
            while True:
                data, timers = self.core.data_to_send(), self.core.timers_to_set()
                events = self.core.events_received()
                if not (data or timers or events):
                    break
                for action in data:
                    self._send(action)
                for timer in timers:
                    self._timer(timer)
                for event in events:
                    try:
                        self._event(event)
                    except Exception:
                        log.exception("SIP event %s failed; the call goes on", type(event).__name__)
        finally:
            self._flushing = False

    def _send(self, action: Outgoing | CloseConnection) -> None:
        if isinstance(action, CloseConnection):
            conn = self.connections.get(action.connection)
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            return
        dest = action.destination
        if dest.transport == "UDP":
            if self._udp is None or self._udp.transport is None:
                return
            if _is_ip(dest.host):
                self._udp.transport.sendto(action.data, (dest.host.strip("[]"), dest.port))
            else:
                asyncio.get_running_loop().create_task(self._resolve_and_send(action))
            return
        conn = self.connections.get(dest.connection or 0)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(action.data)
        else:
            asyncio.get_running_loop().create_task(self._connect_and_send(action))

    async def _resolve_and_send(self, action: Outgoing) -> None:
        dest = action.destination
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(dest.host, dest.port)
        except OSError:
            log.info("SIP: cannot resolve a destination host; a message is not sent")
            return
        if infos and self._udp is not None and self._udp.transport is not None:
            self._udp.transport.sendto(action.data, infos[0][4][:2])

    async def _connect_and_send(self, action: Outgoing) -> None:
        dest = action.destination
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(
                lambda: _Tcp(self), dest.host.strip("[]"), dest.port
            )
        except OSError:
            log.info("SIP: cannot connect over TCP to send a message; not sent")
            return
        transport.write(action.data)

    def _timer(self, action: StartTimer | CancelTimer) -> None:
        old = self._timers.pop(action.timer, None)
        if old is not None:
            old.cancel()
        if isinstance(action, StartTimer):
            loop = asyncio.get_running_loop()
            delay = max(0.0, action.at_s - time.monotonic())
            self._timers[action.timer] = loop.call_at(loop.time() + delay, self._fire, action.timer)

    def _fire(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self.feed(lambda now: self.core.timer_fired(timer, now))

    # -- TCP connections ---------------------------------------------------------------

    def connection_opened(self, conn: _Tcp) -> int:
        self._next_connection += 1
        self.connections[self._next_connection] = conn
        return self._next_connection

    def connection_lost(self, connection: int) -> None:
        self.connections.pop(connection, None)
        self.core.connection_closed(connection)

    # -- the calls -----------------------------------------------------------------------

    def save_media(self, call_id: str, media: dict[str, Any]) -> None:
        """Add a call's RTP and RTCP figures to its row (after its own records are saved)."""

        async def write() -> None:
            try:
                await self.store.calls.update(call_id, media=media)
            except Exception as exc:  # the call is saved; only its media figures are lost
                log.warning("call %s: its media figures are not saved: %s", call_id, exc)

        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def forget(self, call: SipCall) -> None:
        self.calls.pop(call.key, None)

    def _event(self, event: SipEvent) -> None:
        if isinstance(event, IncomingCall):
            self._incoming(event)
            return
        call = self.calls.get(event.call)
        if call is None:
            return
        if isinstance(event, CallCancelled | ByeReceived | CallTimedOut):
            call.ended_by_peer()
        elif isinstance(event, AckReceived):
            call.acked(event.sdp_answer)
        elif isinstance(event, ReInviteReceived):
            call.reinvite(event.sdp_offer)
        elif isinstance(event, InfoReceived):
            call.info(event.content_type, event.body)
        elif isinstance(event, ByeCompleted) and event.status not in (200, None):
            log.info("SIP call %s: our BYE got %s", event.call, event.status)

    def _incoming(self, event: IncomingCall) -> None:
        key = event.call
        to = dialled_number(event.request_uri_user)
        number = None if to is None else self.sb.numbers.get(to)
        if to is None or number is None:
            log.info("SIP call %s refused: not a number of this server (404)", key)
            self.metrics.sip_invite("not_found")
            self.decide(lambda now: self.core.reject(key, 404, now))
            return
        from_ = dialled_number(event.from_user)
        if from_ is None:
            log.info("SIP call %s to %s refused: the caller id is not E.164 (403)", key, to)
            reason = "Caller ID Is Not An E.164 Number"
            self.metrics.sip_invite("forbidden")
            self.decide(lambda now: self.core.reject(key, 403, now, reason=reason))
            return
        try:
            if len(self.calls) >= self.settings.max_calls:
                raise Busy("the SIP edge is at its call limit")
            self.sb.check_capacity()
        except Busy:
            log.warning("SIP call %s to %s refused: at the call limit (503)", key, to)
            retry = (("Retry-After", str(RETRY_AFTER_S)),)
            self.metrics.sip_invite("busy")
            self.decide(lambda now: self.core.reject(key, 503, now, headers=retry))
            return
        log.info("SIP call %s to %s from %s", key, to, mask_number(from_))
        call = SipCall(self, event, to, from_)
        self.calls[key] = call
        call.task = asyncio.get_running_loop().create_task(call.take(number), name=f"sip-{key}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _uri_host(address: str) -> str:
    """An address as it goes in a URI: an IPv6 one in brackets (RFC 3261 section 25.1)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address
