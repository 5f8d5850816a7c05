"""The core's plumbing: transactions in their tables, timers by owner, the output queues.

:class:`Plumbing` turns the transactions' actions into the driver's outputs
(Transmit into :class:`Outgoing` bytes to the transaction's destination,
Arm/Disarm into :class:`StartTimer`/:class:`CancelTimer`), and keeps timers
by owner (a transaction, a call) so that an owner that ends takes its
timers with it. :class:`~ivr.transport.sip.core.SipCore` builds on it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ivr.transport.sip.client_transaction import NonInviteClientTransaction
from ivr.transport.sip.config import SipConfig
from ivr.transport.sip.dialog import Dialog
from ivr.transport.sip.events import (
    CancelTimer,
    DriverAction,
    Endpoint,
    Outgoing,
    SipEvent,
    StartTimer,
    Timer,
    TimerAction,
)
from ivr.transport.sip.headers import MAGIC_COOKIE, Via
from ivr.transport.sip.message import Header, Request, Response, serialize
from ivr.transport.sip.responses import build_response, response_route
from ivr.transport.sip.transaction import (
    Arm,
    Deliver,
    Disarm,
    Ended,
    InviteServerTransaction,
    NonInviteServerTransaction,
    PeerMessage,
    TimedOut,
    TimerFired,
    Transmit,
    TuResponse,
    TxAction,
    TxInput,
    TxKey,
    client_key,
    server_key,
)


class CallLike(Protocol):
    """What the plumbing reads of a call: its key (our To tag) and its dialog."""

    key: str
    dialog: Dialog


@dataclass(slots=True)
class _ServerTx:
    machine: InviteServerTransaction | NonInviteServerTransaction
    top_via: Via  # with received and rport as the responses carry it
    destination: Endpoint
    owner: str


@dataclass(slots=True)
class _ClientTx:
    machine: NonInviteClientTransaction
    destination: Endpoint
    call: str
    owner: str


class Plumbing:
    def __init__(self, config: SipConfig, rng: random.Random) -> None:
        self.config = config
        self.timers = config.timers
        self._rng = rng
        self._now = 0.0
        self._events: list[SipEvent] = []
        self._data: list[DriverAction] = []
        self._timer_actions: list[TimerAction] = []
        self._server: dict[TxKey, _ServerTx] = {}
        self._client: dict[TxKey, _ClientTx] = {}
        self._armed: dict[str, dict[str, Timer]] = {}
        self._targets: dict[str, Callable[[str], None]] = {}
        self._serial = 0
        self.counters: Counter[str] = Counter()

    # -- hooks the core fills in -----------------------------------------------------

    def bye_done(self, call: str, status: int | None) -> None:
        raise NotImplementedError

    # -- timers by owner -------------------------------------------------------------

    def on_timer(self, owner: str, fire: Callable[[str], None]) -> None:
        self._targets[owner] = fire

    def arm(self, owner: str, name: str, delay_s: float) -> None:
        self.disarm(owner, name)
        self._serial += 1
        timer = Timer(name, owner, self._serial)
        self._armed.setdefault(owner, {})[name] = timer
        self._timer_actions.append(StartTimer(timer, delay_s, self._now + delay_s))

    def disarm(self, owner: str, name: str) -> None:
        timer = self._armed.get(owner, {}).pop(name, None)
        if timer is not None:
            self._timer_actions.append(CancelTimer(timer))

    def forget_owner(self, owner: str) -> None:
        for timer in self._armed.pop(owner, {}).values():
            self._timer_actions.append(CancelTimer(timer))
        self._targets.pop(owner, None)

    def _fire(self, timer: Timer) -> None:
        armed = self._armed.get(timer.owner, {})
        if armed.get(timer.name) != timer:
            self.counters["stale_timer"] += 1  # cancelled, or re-armed, after it fired
            return
        del armed[timer.name]
        self._targets[timer.owner](timer.name)

    # -- server transactions ---------------------------------------------------------

    def _open(self, request: Request, source: Endpoint) -> TxKey:
        """A server transaction for a new request (17.2.3), its responses' route (18.2.2)."""
        key = server_key(request)
        via, destination = response_route(request.top_via, source)
        kind = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        machine = kind(request, reliable=source.reliable, timers=self.timers)
        self._serial += 1
        owner = f"tx:{self._serial}"
        self._server[key] = _ServerTx(machine, via, destination, owner)
        self.on_timer(owner, lambda name: self._run_server(key, TimerFired(name)))
        return key

    def _server_input(self, key: TxKey, message: Request) -> None:
        self._run_server(key, PeerMessage(message))

    def _run_server(self, key: TxKey, event: TxInput) -> None:
        record = self._server[key]
        self._apply(record.machine.receive(event), record.destination, record.owner)
        if record.machine.terminated:
            del self._server[key]

    def destination(self, tx: TxKey) -> Endpoint:
        return self._server[tx].destination

    def respond(
        self,
        tx: TxKey,
        status: int,
        tag: str | None,
        *,
        reason: str | None = None,
        body: bytes = b"",
        headers: tuple[Header, ...] = (),
    ) -> Response:
        """Send a response through the server transaction ``tx`` (8.2.6).

        To an INVITE, a 101-299 carries our Contact and the Record-Route (it
        makes or confirms the dialog, 12.1.1); a 2xx to INVITE or OPTIONS
        says what we take (Allow, Supported; 13.3.1, 11.2).
        """
        record = self._server[tx]
        request = record.machine.request
        invite = request.method == "INVITE"
        dialog = invite and 100 < status < 300
        extra: list[Header] = []
        if 200 <= status < 300 and request.method in ("INVITE", "OPTIONS"):
            extra.append(("Allow", ", ".join(ALLOWED)))
            if self.config.supported:
                extra.append(("Supported", ", ".join(sorted(self.config.supported))))
        response = build_response(
            request,
            status,
            top_via=record.top_via,
            to_tag=None if status == 100 else (tag or self._token()),
            reason=reason,
            contact=self.config.contact(record.destination.transport) if dialog else None,
            record_route=dialog,
            headers=(*extra, *headers),
            body=body,
            server=self.config.server,
        )
        self._run_server(tx, TuResponse(response))
        return response

    def _reply(
        self,
        request: Request,
        source: Endpoint,
        status: int,
        headers: tuple[Header, ...] = (),
        *,
        reason: str | None = None,
        to_tag: str | None = None,
    ) -> None:
        """Answer a request the core decides about alone (errors, OPTIONS, CANCEL)."""
        tx = self._open(request, source)
        self.counters[f"answered_{status}"] += 1
        self.respond(tx, status, to_tag, reason=reason, headers=headers)

    # -- client transactions (our BYE) ---------------------------------------------------

    def send_bye(self, call: CallLike) -> None:
        """BYE in the dialog (15.1.1) through a non-INVITE client transaction (17.1.2)."""
        destination = call.dialog.next_hop(self.config.symmetric)
        branch = MAGIC_COOKIE + self._token()
        request = call.dialog.new_request("BYE", self.config.via(destination.transport, branch))
        key = client_key(request)
        machine = NonInviteClientTransaction(
            request, reliable=destination.reliable, timers=self.timers
        )
        self._serial += 1
        owner = f"ctx:{self._serial}"
        self._client[key] = _ClientTx(machine, destination, call.key, owner)
        self.on_timer(owner, lambda name: self._run_client(key, TimerFired(name)))
        self._client_actions(key, machine.start())

    def _on_response(self, response: Response) -> None:
        key = client_key(response)
        if key not in self._client:
            self.counters["unmatched_response"] += 1  # 17.1.3: no transaction: dropped
            return
        self._run_client(key, PeerMessage(response))

    def _run_client(self, key: TxKey, event: TxInput) -> None:
        self._client_actions(key, self._client[key].machine.receive(event))

    def _client_actions(self, key: TxKey, actions: list[TxAction]) -> None:
        record = self._client[key]
        self._apply(actions, record.destination, record.owner)
        for action in actions:
            if isinstance(action, Deliver) and action.response.status >= 200:
                self.bye_done(record.call, action.response.status)
            elif isinstance(action, TimedOut):
                self.bye_done(record.call, None)
        if record.machine.terminated:
            del self._client[key]

    # -- shared ------------------------------------------------------------------------

    def _apply(self, actions: Iterable[TxAction], destination: Endpoint, owner: str) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self.transmit(action.message, destination)
            elif isinstance(action, Arm):
                self.arm(owner, action.name, action.delay_s)
            elif isinstance(action, Disarm):
                self.disarm(owner, action.name)
            elif isinstance(action, TimedOut):
                self.counters[f"timer_{action.name}"] += 1
            elif isinstance(action, Ended):
                self.forget_owner(owner)

    def transmit(self, message: Request | Response, destination: Endpoint) -> None:
        self._data.append(Outgoing(serialize(message), destination))

    def notify(self, event: SipEvent) -> None:
        self._events.append(event)

    def retry_after_s(self) -> int:
        return self._rng.randint(0, 10)  # 14.2: "randomly chosen ... between 0 and 10 seconds"

    def _token(self) -> str:
        """64 random bits: tags (19.3 wants 32 at least) and branches (8.1.1.7)."""
        return f"{self._rng.getrandbits(64):016x}"


ALLOWED = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO")
