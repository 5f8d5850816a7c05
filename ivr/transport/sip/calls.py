"""One incoming call as the UAS core sees it: a table of ``(phase, input) -> step``.

The phases are the UAS's view of the INVITE dialog usage:

========== ===========================================================
offered    INVITE in, 100 Trying out, no decision yet
early      a 180 with our tag went out: the early dialog (12.1.1)
accepted   our 2xx went out; retransmitted until the ACK (13.3.1.4)
confirmed  the ACK came
updating   a re-INVITE waits for the application's answer (14.2)
reaccepted our 2xx to the re-INVITE waits for its ACK
closing    our BYE is in its client transaction (15.1.1)
ended      gone from the core
========== ===========================================================

Inputs come from the peer (``Peer*``, routed here by the core with their
server transaction), from the application (``App*``) and from the call's
own timers. Every peer input has a step in every live phase, so nothing a
peer does raises; an application input the phase cannot take raises
:class:`SipStateError` (answering twice, ringing after the answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ivr.transport.sip.dialog import Dialog
from ivr.transport.sip.errors import SipStateError
from ivr.transport.sip.events import (
    AckReceived,
    ByeCompleted,
    ByeReceived,
    CallCancelled,
    CallTimedOut,
    Endpoint,
    InfoReceived,
    ReInviteCancelled,
    ReInviteReceived,
    SipEvent,
)
from ivr.transport.sip.message import Header, Request, Response
from ivr.transport.sip.transaction import TimerSettings, TxKey

Phase = Literal[
    "offered", "early", "accepted", "confirmed", "updating", "reaccepted", "closing", "ended"
]
DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")


class CallPort(Protocol):
    """What a call needs of the core (the core implements it)."""

    timers: TimerSettings

    def respond(
        self,
        tx: TxKey,
        status: int,
        tag: str | None,
        *,
        reason: str | None = None,
        body: bytes = b"",
        headers: tuple[Header, ...] = (),
    ) -> Response: ...

    def destination(self, tx: TxKey) -> Endpoint: ...
    def transmit(self, response: Response, destination: Endpoint) -> None: ...
    def arm(self, owner: str, name: str, delay_s: float) -> None: ...
    def disarm(self, owner: str, name: str) -> None: ...
    def notify(self, event: SipEvent) -> None: ...
    def send_bye(self, call: Call) -> None: ...
    def retry_after_s(self) -> int: ...
    def finished(self, call: Call) -> None: ...


# -- inputs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerAck:
    request: Request


@dataclass(frozen=True, slots=True)
class PeerBye:
    tx: TxKey


@dataclass(frozen=True, slots=True)
class PeerCancel:
    """The CANCEL itself was answered 200 by the core (9.2)."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    tx: TxKey
    request: Request


@dataclass(frozen=True, slots=True)
class PeerReinvite:
    tx: TxKey
    request: Request


@dataclass(frozen=True, slots=True)
class AppRing:
    pass


@dataclass(frozen=True, slots=True)
class AppAnswer:
    sdp: bytes
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class AppReject:
    status: int
    reason: str | None = None
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class AppHangup:
    pass


@dataclass(frozen=True, slots=True)
class AppAnswerUpdate:
    sdp: bytes
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class AppRejectUpdate:
    status: int
    reason: str | None = None
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class Retransmit2xx:
    """Timer "2xx": T1, doubling to T2 (13.3.1.4)."""


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Timer "no-ack": 64*T1 after the 2xx (13.3.1.4)."""


@dataclass(frozen=True, slots=True)
class ByeDone:
    status: int | None


CallInput = (
    PeerAck
    | PeerBye
    | PeerCancel
    | PeerInfo
    | PeerReinvite
    | AppRing
    | AppAnswer
    | AppReject
    | AppHangup
    | AppAnswerUpdate
    | AppRejectUpdate
    | Retransmit2xx
    | AckTimeout
    | ByeDone
)


class Call:
    def __init__(
        self, key: str, dialog: Dialog, invite_tx: TxKey, offer: bytes | None, port: CallPort
    ) -> None:
        self.key = key  # our To tag: unique, and what the application names the call by
        self.dialog = dialog
        self.phase: Phase = "offered"
        self.pending_tx = invite_tx  # the INVITE (initial or re-INVITE) now being answered
        self.invite_keys: list[TxKey] = [invite_tx]
        self._offer = offer  # the peer's offer in that INVITE, None for a delayed offer
        self._port = port
        self._owner = f"call:{key}"
        self._ok: Response | None = None  # our 2xx while it waits for its ACK
        self._ok_to: Endpoint | None = None
        self._ok_interval_s = 0.0
        self._bye_after_ack = False

    def receive(self, event: CallInput) -> None:
        step = _STEPS.get((self.phase, type(event)))
        if step is None:
            raise SipStateError(
                f"can't handle {type(event).__name__} in phase {self.phase!r} (call {self.key})"
            )
        step(self, event)

    # -- the initial INVITE ------------------------------------------------------

    def _ring(self, event: AppRing) -> None:
        self._port.respond(self.pending_tx, 180, self.key)
        self.phase = "early"

    def _answer(self, event: AppAnswer | AppAnswerUpdate) -> None:
        to = self._port.destination(self.pending_tx)  # the transaction ends with the 2xx
        ok = self._port.respond(
            self.pending_tx, 200, self.key, body=event.sdp, headers=event.headers
        )
        self._ok, self._ok_to, self._ok_interval_s = ok, to, self._port.timers.t1_s
        self._port.arm(self._owner, "2xx", self._ok_interval_s)
        self._port.arm(self._owner, "no-ack", self._port.timers.timeout_s)
        self.dialog.state = "Confirmed"  # a 2xx confirms the dialog at the UAS (12.1.1)
        self.phase = "accepted" if isinstance(event, AppAnswer) else "reaccepted"

    def _reject(self, event: AppReject) -> None:
        _check_final(event.status)
        self._port.respond(
            self.pending_tx, event.status, self.key, reason=event.reason, headers=event.headers
        )
        self._end()

    def _cancel(self, event: PeerCancel) -> None:
        self._port.respond(self.pending_tx, 487, self.key)  # 9.2
        self._port.notify(CallCancelled(self.key))
        self._end()

    # -- the 2xx and its ACK (13.3.1.4) ------------------------------------------

    def _ack(self, event: PeerAck) -> None:
        ok = self._ok
        assert ok is not None
        if event.request.cseq.number != ok.cseq.number:
            return  # an ACK of an earlier 2xx, retransmitted
        self._stop_2xx()
        answer = event.request.body if self._offer is None and event.request.body else None
        self.phase = "confirmed"
        self._port.notify(AckReceived(self.key, answer))
        if self._bye_after_ack:
            self._hangup(AppHangup())

    def _retransmit(self, event: Retransmit2xx) -> None:
        assert self._ok is not None
        assert self._ok_to is not None
        self._port.transmit(self._ok, self._ok_to)
        self._ok_interval_s = min(2 * self._ok_interval_s, self._port.timers.t2_s)
        self._port.arm(self._owner, "2xx", self._ok_interval_s)

    def _no_ack(self, event: AckTimeout) -> None:
        self._stop_2xx()
        self._port.notify(CallTimedOut(self.key))
        self._hangup(AppHangup())  # "the session SHOULD be terminated ... with a BYE"

    def _stop_2xx(self) -> None:
        self._port.disarm(self._owner, "2xx")
        self._port.disarm(self._owner, "no-ack")
        self._ok = self._ok_to = None

    # -- requests in the dialog --------------------------------------------------

    def _bye(self, event: PeerBye) -> None:
        if self.phase in ("offered", "early", "updating"):
            self._port.respond(self.pending_tx, 487, self.key)  # 15.1.2: pending requests end
        self._stop_2xx()
        self._port.respond(event.tx, 200, self.key)
        self._port.notify(ByeReceived(self.key))
        self._end()

    def _bye_while_closing(self, event: PeerBye) -> None:
        self._port.respond(event.tx, 200, self.key)  # both hung up at once; ours completes alone

    def _info(self, event: PeerInfo) -> None:
        """RFC 6086: DTMF bodies are taken; an INFO without a body is answered 200
        (a keep-alive); any other type is 415 with the ones we take in Accept."""
        request = event.request
        kind = request.content_type.essence if request.content_type else ""
        if request.body and kind not in DTMF_TYPES:
            self._port.respond(
                event.tx, 415, self.key, headers=(("Accept", ", ".join(DTMF_TYPES)),)
            )
            return
        self._port.respond(event.tx, 200, self.key)
        if request.body:
            self._port.notify(InfoReceived(self.key, kind, request.body))

    def _reinvite(self, event: PeerReinvite) -> None:
        self.dialog.refresh_target(event.request)
        self.pending_tx, self._offer = event.tx, event.request.body or None
        self.invite_keys.append(event.tx)
        self._port.respond(event.tx, 100, self.key)
        self.phase = "updating"
        self._port.notify(ReInviteReceived(self.key, self._offer))

    def _reinvite_too_early(self, event: PeerReinvite) -> None:
        # 14.2: an INVITE before the final response to the previous one gets 500, Retry-After
        retry = (("Retry-After", str(self._port.retry_after_s())),)
        self._port.respond(event.tx, 500, self.key, headers=retry)

    def _reinvite_glare(self, event: PeerReinvite) -> None:
        # our 2xx (perhaps our offer) awaits its ACK: the new offer must wait (RFC 3264 4)
        self._port.respond(event.tx, 491, self.key)

    def _gone(self, event: PeerInfo | PeerReinvite) -> None:
        self._port.respond(event.tx, 481, self.key)  # our BYE is out: the dialog is ending

    def _reject_update(self, event: AppRejectUpdate) -> None:
        _check_final(event.status)
        self._port.respond(
            self.pending_tx, event.status, self.key, reason=event.reason, headers=event.headers
        )
        self.phase = "confirmed"  # 14.2: a failed re-INVITE leaves the session as it was

    def _cancel_update(self, event: PeerCancel) -> None:
        self._port.respond(self.pending_tx, 487, self.key)
        self.phase = "confirmed"
        self._port.notify(ReInviteCancelled(self.key))

    # -- hanging up --------------------------------------------------------------

    def _hangup(self, event: AppHangup) -> None:
        if self.phase == "updating":
            self._port.respond(self.pending_tx, 487, self.key)  # 21.4.25: terminated by a BYE
        self.phase = "closing"
        self._port.send_bye(self)

    def _hangup_after_ack(self, event: AppHangup) -> None:
        # 15: the callee MUST NOT send BYE before the ACK or the 2xx's timeout
        self._bye_after_ack = True

    def _bye_done(self, event: ByeDone) -> None:
        self._port.notify(ByeCompleted(self.key, event.status))
        self._end()

    def _nothing(self, event: CallInput) -> None:
        """A retransmitted ACK, a CANCEL after the final response (already answered 200),
        a second hang-up."""

    def _end(self) -> None:
        self.phase = "ended"
        self.dialog.state = "Terminated"
        self._port.finished(self)


def _check_final(status: int) -> None:
    if not 300 <= status <= 699:
        raise SipStateError(f"a rejection needs a status from 300 to 699, not {status}")


_Step = Callable[[Any, Any], None]
_EARLY: dict[type, _Step] = {
    AppRing: Call._ring,
    AppAnswer: Call._answer,
    AppReject: Call._reject,
    PeerCancel: Call._cancel,
    PeerBye: Call._bye,
    PeerInfo: Call._info,
    PeerReinvite: Call._reinvite_too_early,
    PeerAck: Call._nothing,
}
_WAITING_FOR_ACK: dict[type, _Step] = {
    PeerAck: Call._ack,
    Retransmit2xx: Call._retransmit,
    AckTimeout: Call._no_ack,
    AppHangup: Call._hangup_after_ack,
    PeerBye: Call._bye,
    PeerInfo: Call._info,
    PeerReinvite: Call._reinvite_glare,
    PeerCancel: Call._nothing,
}
_BY_PHASE: dict[Phase, dict[type, _Step]] = {
    "offered": _EARLY,
    "early": _EARLY,
    "accepted": _WAITING_FOR_ACK,
    "confirmed": {
        AppHangup: Call._hangup,
        PeerBye: Call._bye,
        PeerReinvite: Call._reinvite,
        PeerInfo: Call._info,
        PeerAck: Call._nothing,
        PeerCancel: Call._nothing,
    },
    "updating": {
        AppAnswerUpdate: Call._answer,
        AppRejectUpdate: Call._reject_update,
        AppHangup: Call._hangup,
        PeerCancel: Call._cancel_update,
        PeerBye: Call._bye,
        PeerInfo: Call._info,
        PeerReinvite: Call._reinvite_too_early,
        PeerAck: Call._nothing,
    },
    "reaccepted": _WAITING_FOR_ACK,
    "closing": {
        ByeDone: Call._bye_done,
        AppHangup: Call._nothing,  # hanging up twice, or after CallTimedOut: already done
        PeerBye: Call._bye_while_closing,
        PeerInfo: Call._gone,
        PeerReinvite: Call._gone,
        PeerAck: Call._nothing,
        PeerCancel: Call._nothing,
    },
}
_STEPS: dict[tuple[Phase, type], _Step] = {
    (phase, kind): step for phase, steps in _BY_PHASE.items() for kind, step in steps.items()
}
