"""The SIP UAS core: transactions, dialogs and calls behind one sans-I/O object.

The driver feeds it datagrams (:meth:`SipCore.receive_datagram`), stream
bytes (:meth:`SipCore.receive_stream`) and fired timers
(:meth:`SipCore.timer_fired`); the application decides with :meth:`ring`,
:meth:`answer`, :meth:`reject`, :meth:`bye`, :meth:`answer_reinvite` and
:meth:`reject_reinvite`. After each call the driver drains
:meth:`data_to_send`, :meth:`timers_to_set` and :meth:`events_received`.
The core never reads a clock (``now`` comes in with every call), never
sleeps, and never raises for anything a peer sends: a message it cannot
take is answered (400 with the parser's reason, 481, 405...) or dropped,
and counted in :attr:`SipCore.counters`.

Routing of a request (RFC 3261 section 8.2 and 17.2.3): a retransmission
or the ACK of a non-2xx goes to its server transaction; then the checks
(405/501 for a method we do not take, 483, 416, 420); a CANCEL to its
INVITE (9.2); with a To tag, to its dialog or 481 (12.2.2); an INVITE
without one makes a call, unless merged (482, 8.2.2.2).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ivr.transport.sip.calls import (
    AckTimeout,
    AppAnswer,
    AppAnswerUpdate,
    AppHangup,
    AppReject,
    AppRejectUpdate,
    AppRing,
    ByeDone,
    Call,
    CallInput,
    PeerAck,
    PeerBye,
    PeerCancel,
    PeerInfo,
    PeerReinvite,
    Retransmit2xx,
)
from ivr.transport.sip.config import SipConfig
from ivr.transport.sip.dialog import Dialog, DialogId
from ivr.transport.sip.errors import BadMessage, CallGone, SipStateError
from ivr.transport.sip.events import (
    CloseConnection,
    DriverAction,
    Endpoint,
    IncomingCall,
    Outgoing,
    SipEvent,
    Timer,
    TimerAction,
)
from ivr.transport.sip.framing import PONG, Ping, StreamParser
from ivr.transport.sip.message import Header, Request, Response, parse_message
from ivr.transport.sip.plumbing import ALLOWED, Plumbing
from ivr.transport.sip.responses import error_response_bytes
from ivr.transport.sip.transaction import server_key

# Methods we know of but do not take: 405; any other: 501 (RFC 3261 8.2.1, 21.5.2).
KNOWN = frozenset(
    {"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "UPDATE", "PRACK", "PUBLISH"}
)
SCHEMES = ("sip", "sips", "tel")


class SipCore(Plumbing):
    def __init__(self, config: SipConfig, *, rng: random.Random | None = None) -> None:
        super().__init__(config, rng or random.Random())
        self._calls: dict[str, Call] = {}
        self._dialogs: dict[DialogId, str] = {}
        self._invites: dict[tuple[str, ...], str] = {}  # INVITE keys -> call (and lingering)
        self._merged: dict[tuple[str, str, int], str] = {}  # 8.2.2.2
        self._merged_of: dict[str, tuple[str, str, int]] = {}
        self._streams: dict[int, StreamParser] = {}
        # Connections we asked the driver to close: what else they send is dropped.
        self._closing: set[int] = set()
        # Set while the switch drains: an OPTIONS outside a dialog gets the 503 an
        # INVITE would (11.2), so a dispatcher's pings take this node out of its set.
        self.draining_retry_after_s: int | None = None

    # -- the driver's inputs -----------------------------------------------------

    def receive_datagram(self, data: bytes, source: Endpoint | tuple[str, int], now: float) -> None:
        """One UDP datagram from ``source``."""
        self._now = now
        if isinstance(source, tuple):
            source = Endpoint(*source)
        if not data.strip(b"\r\n"):
            self.counters["keepalive"] += 1  # CRLF keep-alives some UAs send on UDP
            return
        self._receive(data, source, datagram=True)

    def receive_stream(self, data: bytes, source: Endpoint, now: float) -> None:
        """Bytes read from the TCP/TLS connection ``source.connection``."""
        self._now = now
        if source.connection is None or not source.reliable:
            raise SipStateError(f"stream bytes need a TCP/TLS endpoint with a connection: {source}")
        if source.connection in self._closing:
            # The rest of a stream that lost its framing: there is no next message
            # to find in it, and it is answered once, not once per read.
            self.counters["dropped_closing"] += 1
            return
        parser = self._streams.setdefault(source.connection, StreamParser())
        try:
            items = parser.feed(data)
        except BadMessage as exc:  # no way to find the next message: answer and close
            del self._streams[source.connection]
            self._closing.add(source.connection)
            self._refused(exc, source)
            self._data.append(CloseConnection(source.connection))
            return
        for item in items:
            if isinstance(item, Ping):
                self.counters["keepalive"] += 1
                self._data.append(Outgoing(PONG, source))  # RFC 5626 section 3.5.1
            else:
                self._receive(item, source, datagram=False)

    def connection_closed(self, connection: int) -> None:
        self._streams.pop(connection, None)
        self._closing.discard(connection)

    def timer_fired(self, timer: Timer, now: float) -> None:
        self._now = now
        self._fire(timer)

    # -- the application's decisions ----------------------------------------------

    def ring(self, call: str, now: float) -> None:
        """180 Ringing, with our tag and Contact: the early dialog."""
        self._decide(call, now, AppRing())

    def answer(self, call: str, sdp: bytes, now: float, headers: tuple[Header, ...] = ()) -> None:
        """200 OK with ``sdp`` (our answer, or our offer to a delayed-offer INVITE)."""
        if not sdp:
            raise SipStateError("an answer needs an SDP body")
        self._decide(call, now, AppAnswer(sdp, tuple(headers)))

    def reject(
        self,
        call: str,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        """Any final status from 300 to 699, with extra headers (``Retry-After`` with 503...)."""
        self._decide(call, now, AppReject(status, reason, tuple(headers)))

    def bye(self, call: str, now: float) -> None:
        """Hang up an answered call (after its ACK, RFC 3261 section 15)."""
        self._decide(call, now, AppHangup())

    def answer_reinvite(
        self, call: str, sdp: bytes, now: float, headers: tuple[Header, ...] = ()
    ) -> None:
        if not sdp:
            raise SipStateError("an answer needs an SDP body")
        self._decide(call, now, AppAnswerUpdate(sdp, tuple(headers)))

    def reject_reinvite(
        self,
        call: str,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        """488 for an offer without a common codec, for example; the session stays as it was."""
        self._decide(call, now, AppRejectUpdate(status, reason, tuple(headers)))

    def _decide(self, key: str, now: float, event: CallInput) -> None:
        self._now = now
        call = self._calls.get(key)
        if call is None:
            raise CallGone(f"call {key!r} has ended (or never was)")
        call.receive(event)

    # -- the outputs ---------------------------------------------------------------

    def events_received(self) -> list[SipEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[DriverAction]:
        data, self._data = self._data, []
        return data

    def timers_to_set(self) -> list[TimerAction]:
        timers, self._timer_actions = self._timer_actions, []
        return timers

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # -- routing -------------------------------------------------------------------

    def _receive(self, data: bytes, source: Endpoint, *, datagram: bool) -> None:
        try:
            message = parse_message(data, datagram=datagram)
        except BadMessage as exc:
            self._refused(exc, source)
            return
        if isinstance(message, Response):
            self._on_response(message)
        else:
            self._on_request(message, source)

    def _refused(self, exc: BadMessage, source: Endpoint) -> None:
        reply = error_response_bytes(
            exc.start_line,
            exc.headers,
            exc.status,
            exc.reason,
            to_tag=self._token(),
            source=source,
            server=self.config.server,
        )
        if reply is None:
            self.counters["dropped_malformed"] += 1
            return
        self.counters["answered_malformed"] += 1
        self._data.append(Outgoing(*reply))

    def _on_request(self, request: Request, source: Endpoint) -> None:
        key = server_key(request)
        if key in self._server:
            self.counters["retransmission"] += 1
            self._server_input(key, request)
            return
        if request.method == "ACK":
            self._on_ack(request)
            return
        if request.method == "INVITE" and key in self._invites:
            self.counters["retransmission"] += 1  # after our 2xx ended its transaction
            return
        problem = self._check(request)
        if problem is not None:
            self._reply(request, source, *problem)
        elif request.method == "CANCEL":
            self._on_cancel(request, source)
        elif request.to.tag is not None:
            self._in_dialog(request, source)
        elif request.method == "INVITE":
            self._new_call(request, source)
        elif request.method == "OPTIONS" and self.draining_retry_after_s is not None:
            retry = str(self.draining_retry_after_s)
            self._reply(request, source, 503, (("Retry-After", retry),))
        elif request.method == "OPTIONS":
            self._options(request, source)
        else:
            self._reply(request, source, 481)  # BYE, INFO outside any dialog (12.2.2)

    def _check(self, request: Request) -> tuple[int, tuple[Header, ...]] | None:
        if request.method not in ALLOWED:
            return (405 if request.method in KNOWN else 501), (("Allow", ", ".join(ALLOWED)),)
        if request.max_forwards == 0 and request.method != "OPTIONS":
            return 483, ()  # 16.3 item 3; an OPTIONS with 0 is for us to answer (11)
        if request.uri.scheme not in SCHEMES:
            return 416, ()  # 8.2.2.1
        unsupported = [t for t in request.require if t.lower() not in self.config.supported]
        if unsupported and request.method != "CANCEL":
            return 420, (("Unsupported", ", ".join(unsupported)),)  # 8.2.2.3
        return None

    def _on_ack(self, request: Request) -> None:
        call = self._call_of(request)
        if call is None:
            self.counters["unmatched_ack"] += 1
            return
        call.receive(PeerAck(request))

    def _on_cancel(self, request: Request, source: Endpoint) -> None:
        invite = server_key(request, "INVITE")
        call = self._calls.get(self._invites.get(invite, ""))
        if call is None and invite not in self._server:
            self._reply(request, source, 481)  # 9.2: no transaction to cancel
            return
        self._reply(request, source, 200, to_tag=call.key if call else None)
        if call is not None and call.pending_tx == invite:
            call.receive(PeerCancel())

    def _in_dialog(self, request: Request, source: Endpoint) -> None:
        call = self._call_of(request)
        if call is None:
            self._reply(request, source, 481)
            return
        if not call.dialog.in_order(request):
            self._reply(request, source, 500, to_tag=call.key)  # 12.2.2: out of order
            return
        if request.method == "OPTIONS":
            self._options(request, source)
            return
        if request.method == "INVITE" and (problem := _unacceptable_body(request)):
            self._reply(request, source, 415, problem, to_tag=call.key)
            return
        tx = self._open(request, source)
        if request.method == "BYE":
            call.receive(PeerBye(tx))
        elif request.method == "INFO":
            call.receive(PeerInfo(tx, request))
        else:
            self._invites[tx] = call.key
            call.receive(PeerReinvite(tx, request))

    def _new_call(self, request: Request, source: Endpoint) -> None:
        merged = (request.call_id, request.from_.tag or "", request.cseq.number)
        if merged in self._merged:
            self._reply(request, source, 482)  # the same request by another path (8.2.2.2)
            return
        if not request.contacts or not request.contacts[0].uri.is_sip:
            reason = "Missing Contact" if not request.contacts else "Bad Contact: not a SIP URI"
            self._reply(request, source, 400, reason=reason)  # 8.1.1.8
            return
        if problem := _unacceptable_body(request):
            self._reply(request, source, 415, problem)
            return
        tag = self._token()
        tx = self._open(request, source)
        call = Call(tag, Dialog.from_invite(request, tag, source), tx, request.body or None, self)
        self._calls[tag] = call
        self._dialogs[call.dialog.id] = tag
        self._invites[tx] = tag
        self._merged[merged], self._merged_of[tag] = tag, merged
        self.on_timer(f"call:{tag}", self._call_timer(tag))
        self.respond(tx, 100, None)  # at once (8.2.6.1, 17.2.1); no tag needed
        uri = request.uri
        self.notify(
            IncomingCall(
                call=tag,
                call_id=request.call_id,
                request_uri_user=uri.user,
                from_user=request.from_.uri.user,
                display_name=request.from_.display_name,
                sdp_offer=request.body or None,
                source=source,
                request=request,
            )
        )

    def _options(self, request: Request, source: Endpoint) -> None:
        """11.2: 200 with what we take (Allow, Accept, Supported)."""
        self._reply(request, source, 200, (("Accept", "application/sdp"),))

    def _call_of(self, request: Request) -> Call | None:
        dialog = (request.call_id, request.to.tag or "", request.from_.tag or "")
        return self._calls.get(self._dialogs.get(dialog, ""))

    # -- the CallPort and the plumbing's hooks -----------------------------------------

    def finished(self, call: Call) -> None:
        """A call ended: its keys linger 64*T1 to absorb late INVITEs (RFC 6026's Timer L)."""
        del self._calls[call.key]
        self._dialogs.pop(call.dialog.id, None)
        self.forget_owner(f"call:{call.key}")
        merged = self._merged_of.pop(call.key)
        owner = f"linger:{call.key}"

        def forget(_name: str) -> None:
            for key in call.invite_keys:
                self._invites.pop(key, None)
            self._merged.pop(merged, None)
            self.forget_owner(owner)

        self.on_timer(owner, forget)
        self.arm(owner, "linger", self.timers.timeout_s)

    def bye_done(self, call: str, status: int | None) -> None:
        if call in self._calls:
            self._calls[call].receive(ByeDone(status))

    def _call_timer(self, key: str) -> Callable[[str], None]:
        def fire(name: str) -> None:
            self._calls[key].receive(Retransmit2xx() if name == "2xx" else AckTimeout())

        return fire


def _unacceptable_body(request: Request) -> tuple[Header, ...]:
    """8.2.3: a body we cannot read gets 415 with what we can (empty when acceptable)."""
    encodings = [v.lower() for v in request.header_values("Content-Encoding")]
    if any(e != "identity" for e in encodings):
        return (("Accept-Encoding", "identity"),)
    if request.body and (
        request.content_type is None or request.content_type.essence != "application/sdp"
    ):
        return (("Accept", "application/sdp"),)
    return ()
