"""Every state and timer of the four transaction machines (RFC 3261 section 17, figures 5-8)."""

from __future__ import annotations

import pytest

from ivr.transport.sip.client_transaction import (
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from ivr.transport.sip.errors import SipStateError
from ivr.transport.sip.message import Request, Response, make_response, parse_message
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
    TimerSettings,
    Transmit,
    TuResponse,
    client_key,
    server_key,
)
from tests.ivr.transport.sip.wire import (
    sipp_ack_non2xx,
    sipp_cancel,
    sipp_in_dialog,
    sipp_invite,
)

RFC = TimerSettings()


def req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def response_to(request: Request, status: int, to_tag: str = "ivr1") -> Response:
    return make_response(
        status,
        [
            *(("Via", v.raw) for v in request.vias),
            ("From", request.from_.raw),
            ("To", request.to.raw if request.to.tag else f"{request.to.raw};tag={to_tag}"),
            ("Call-ID", request.call_id),
            ("CSeq", str(request.cseq)),
        ],
    )


INVITE = req(sipp_invite())
BYE = req(sipp_in_dialog("BYE", "ivr1"))


def fired(name: str) -> TimerFired:
    return TimerFired(name)


# -- INVITE server (17.2.1) ----------------------------------------------------


def invite_server(*, reliable: bool = False) -> InviteServerTransaction:
    tx = InviteServerTransaction(INVITE, reliable=reliable, timers=RFC)
    assert tx.state == "Proceeding"
    return tx


def test_invite_server_retransmitted_invite_gets_the_last_provisional() -> None:
    tx = invite_server()
    assert tx.receive(PeerMessage(INVITE)) == []  # no provisional yet: nothing to repeat
    trying, ringing = response_to(INVITE, 100), response_to(INVITE, 180)
    assert tx.receive(TuResponse(trying)) == [Transmit(trying)]
    assert tx.receive(PeerMessage(INVITE)) == [Transmit(trying)]
    assert tx.receive(TuResponse(ringing)) == [Transmit(ringing)]
    assert tx.receive(PeerMessage(INVITE)) == [Transmit(ringing)]
    assert tx.state == "Proceeding"


def test_invite_server_non_2xx_g_doubles_to_t2_and_the_ack_is_absorbed() -> None:
    tx = invite_server()
    busy = response_to(INVITE, 486)
    assert tx.receive(TuResponse(busy)) == [Transmit(busy), Arm("G", 0.5), Arm("H", 32.0)]
    assert tx.state == "Completed"
    delays = []
    for _ in range(5):
        out = tx.receive(fired("G"))
        assert out[0] == Transmit(busy)
        assert isinstance(out[1], Arm)
        delays.append(out[1].delay_s)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert tx.receive(PeerMessage(INVITE)) == [Transmit(busy)]  # the final, again
    ack = req(sipp_ack_non2xx(to_tag="ivr1"))
    assert tx.receive(PeerMessage(ack)) == [Disarm("G"), Disarm("H"), Arm("I", 5.0)]
    assert tx.state == "Confirmed"
    assert tx.receive(PeerMessage(ack)) == []
    assert tx.receive(PeerMessage(INVITE)) == []
    assert tx.receive(fired("I")) == [Ended()]
    assert tx.terminated


def test_invite_server_timer_h_without_ack() -> None:
    tx = invite_server()
    tx.receive(TuResponse(response_to(INVITE, 404)))
    assert tx.receive(fired("H")) == [TimedOut("H"), Ended()]
    assert tx.state == "Terminated"


def test_invite_server_2xx_ends_the_transaction() -> None:
    tx = invite_server()
    ok = response_to(INVITE, 200)
    assert tx.receive(TuResponse(ok)) == [Transmit(ok), Ended()]
    assert tx.state == "Terminated"


def test_invite_server_ack_before_any_final_is_absorbed() -> None:
    tx = invite_server()
    assert tx.receive(PeerMessage(req(sipp_ack_non2xx(to_tag="x")))) == []
    assert tx.state == "Proceeding"


def test_invite_server_on_tcp_has_no_g_and_no_wait_in_confirmed() -> None:
    tx = invite_server(reliable=True)
    busy = response_to(INVITE, 486)
    assert tx.receive(TuResponse(busy)) == [Transmit(busy), Arm("H", 32.0)]
    ack = req(sipp_ack_non2xx(to_tag="ivr1"))
    assert tx.receive(PeerMessage(ack)) == [Disarm("G"), Disarm("H"), Ended()]


def test_invite_server_misuse_is_an_error() -> None:
    tx = invite_server()
    tx.receive(TuResponse(response_to(INVITE, 486)))
    with pytest.raises(SipStateError, match="can't handle tu_2xx in state Completed"):
        tx.receive(TuResponse(response_to(INVITE, 200)))
    with pytest.raises(SipStateError, match="timer_I"):
        tx.receive(fired("I"))


# -- non-INVITE server (17.2.2) --------------------------------------------------


def test_non_invite_server_trying_completed_j() -> None:
    tx = NonInviteServerTransaction(BYE, reliable=False, timers=RFC)
    assert tx.state == "Trying"
    assert tx.receive(PeerMessage(BYE)) == []  # absorbed: nothing to repeat yet
    ok = response_to(BYE, 200)
    assert tx.receive(TuResponse(ok)) == [Transmit(ok), Arm("J", 32.0)]
    assert tx.state == "Completed"
    assert tx.receive(PeerMessage(BYE)) == [Transmit(ok)]
    assert tx.receive(fired("J")) == [Ended()]


def test_non_invite_server_proceeding() -> None:
    tx = NonInviteServerTransaction(BYE, reliable=False, timers=RFC)
    trying = response_to(BYE, 100)
    assert tx.receive(TuResponse(trying)) == [Transmit(trying)]
    assert tx.state == "Proceeding"
    assert tx.receive(PeerMessage(BYE)) == [Transmit(trying)]
    assert tx.receive(TuResponse(trying)) == [Transmit(trying)]
    gone = response_to(BYE, 481)
    assert tx.receive(TuResponse(gone)) == [Transmit(gone), Arm("J", 32.0)]
    assert tx.state == "Completed"


def test_non_invite_server_on_tcp_ends_with_the_final() -> None:
    tx = NonInviteServerTransaction(BYE, reliable=True, timers=RFC)
    ok = response_to(BYE, 200)
    assert tx.receive(TuResponse(ok)) == [Transmit(ok), Ended()]
    with pytest.raises(SipStateError, match="Terminated"):
        tx.receive(TuResponse(ok))


# -- non-INVITE client (17.1.2) --------------------------------------------------


def test_non_invite_client_e_doubles_to_t2_then_f() -> None:
    tx = NonInviteClientTransaction(BYE, reliable=False, timers=RFC)
    assert tx.start() == [Transmit(BYE), Arm("E", 0.5), Arm("F", 32.0)]
    delays = [tx.receive(fired("E")) for _ in range(5)]
    assert [d[0] for d in delays] == [Transmit(BYE)] * 5
    assert [d[1] for d in delays] == [Arm("E", x) for x in (1.0, 2.0, 4.0, 4.0, 4.0)]
    assert tx.receive(fired("F")) == [TimedOut("F"), Ended()]


def test_non_invite_client_proceeding_retransmits_at_t2() -> None:
    tx = NonInviteClientTransaction(BYE, reliable=False, timers=RFC)
    tx.start()
    trying = response_to(BYE, 100)
    assert tx.receive(PeerMessage(trying)) == [Deliver(trying)]
    assert tx.state == "Proceeding"
    assert tx.receive(fired("E")) == [Transmit(BYE), Arm("E", 4.0)]
    assert tx.receive(PeerMessage(trying)) == [Deliver(trying)]
    ok = response_to(BYE, 200)
    assert tx.receive(PeerMessage(ok)) == [Disarm("E"), Disarm("F"), Deliver(ok), Arm("K", 5.0)]
    assert tx.receive(PeerMessage(ok)) == []  # a retransmitted final is absorbed
    assert tx.receive(fired("K")) == [Ended()]


def test_non_invite_client_f_in_proceeding() -> None:
    tx = NonInviteClientTransaction(BYE, reliable=False, timers=RFC)
    tx.start()
    tx.receive(PeerMessage(response_to(BYE, 100)))
    assert tx.receive(fired("F")) == [TimedOut("F"), Ended()]


def test_non_invite_client_error_final_and_tcp() -> None:
    tx = NonInviteClientTransaction(BYE, reliable=True, timers=RFC)
    assert tx.start() == [Transmit(BYE), Arm("F", 32.0)]
    gone = response_to(BYE, 481)
    assert tx.receive(PeerMessage(gone)) == [Disarm("E"), Disarm("F"), Deliver(gone), Ended()]


# -- INVITE client (17.1.1) ------------------------------------------------------


def test_invite_client_a_doubles_without_cap_then_b() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False, timers=RFC)
    assert tx.start() == [Transmit(INVITE), Arm("A", 0.5), Arm("B", 32.0)]
    arms = [tx.receive(fired("A"))[1] for _ in range(5)]
    assert arms == [Arm("A", x) for x in (1.0, 2.0, 4.0, 8.0, 16.0)]
    assert tx.receive(fired("B")) == [TimedOut("B"), Ended()]


def test_invite_client_non_2xx_builds_the_ack_and_waits_d() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False, timers=RFC)
    tx.start()
    ringing = response_to(INVITE, 180, to_tag="far")
    assert tx.receive(PeerMessage(ringing)) == [Disarm("A"), Disarm("B"), Deliver(ringing)]
    assert tx.state == "Proceeding"
    assert tx.receive(PeerMessage(ringing)) == [Deliver(ringing)]
    busy = response_to(INVITE, 486, to_tag="far")
    out = tx.receive(PeerMessage(busy))
    assert out[:3] == [Disarm("A"), Disarm("B"), Deliver(busy)]
    assert out[4] == Arm("D", 32.0)
    send = out[3]
    assert isinstance(send, Transmit)
    ack = send.message
    assert isinstance(ack, Request)
    assert (ack.method, ack.uri) == ("ACK", INVITE.uri)
    assert ack.vias == (INVITE.top_via,)
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.to.tag == "far"
    assert ack.from_ == INVITE.from_
    assert ack.call_id == INVITE.call_id
    assert tx.receive(PeerMessage(busy)) == [Transmit(ack)]  # each retransmission: the ACK
    assert tx.receive(fired("D")) == [Ended()]


def test_invite_client_2xx_from_calling_and_proceeding() -> None:
    tx = InviteClientTransaction(INVITE, reliable=False, timers=RFC)
    tx.start()
    ok = response_to(INVITE, 200, to_tag="far")
    assert tx.receive(PeerMessage(ok)) == [Disarm("A"), Disarm("B"), Deliver(ok), Ended()]
    tx = InviteClientTransaction(INVITE, reliable=False, timers=RFC)
    tx.start()
    tx.receive(PeerMessage(response_to(INVITE, 183, to_tag="far")))
    assert tx.receive(PeerMessage(ok)) == [Deliver(ok), Ended()]


def test_invite_client_on_tcp() -> None:
    tx = InviteClientTransaction(INVITE, reliable=True, timers=RFC)
    assert tx.start() == [Transmit(INVITE), Arm("B", 32.0)]
    out = tx.receive(PeerMessage(response_to(INVITE, 603, to_tag="far")))
    assert isinstance(out[3], Transmit)
    assert out[4:] == [Ended()]  # Timer D is zero on a reliable transport


def test_configured_timers() -> None:
    fast = TimerSettings(t1_s=0.1, t2_s=0.3, t4_s=1.0, timer_d_s=2.0)
    tx = NonInviteClientTransaction(BYE, reliable=False, timers=fast)
    assert tx.start() == [Transmit(BYE), Arm("E", 0.1), Arm("F", 64 * 0.1)]
    assert [tx.receive(fired("E"))[1] for _ in range(3)] == [
        Arm("E", 0.2),
        Arm("E", 0.3),
        Arm("E", 0.3),
    ]


# -- matching (17.2.3, 17.1.3) ---------------------------------------------------


def test_server_keys() -> None:
    ack = req(sipp_ack_non2xx(to_tag="ivr1"))
    cancel = req(sipp_cancel())
    assert (
        server_key(ack) == server_key(INVITE) == ("z9hG4bK-4242-1-0", "192.0.2.10:5061", "INVITE")
    )
    assert server_key(cancel) != server_key(INVITE)
    assert server_key(cancel, "INVITE") == server_key(INVITE)
    other_host = req(sipp_invite(host="192.0.2.99"))
    assert server_key(other_host) != server_key(INVITE)  # same branch, other sent-by


def test_rfc_2543_keys_without_the_magic_cookie() -> None:
    old = req(sipp_invite().replace(b"branch=z9hG4bK-4242-1-0", b"branch=1"))
    old_ack = req(sipp_ack_non2xx(to_tag="x").replace(b"branch=z9hG4bK-4242-1-0", b"branch=1"))
    assert server_key(old)[0] == "2543"
    assert server_key(old_ack) == server_key(old)
    later = req(sipp_invite().replace(b"branch=z9hG4bK-4242-1-0", b"branch=1").replace(
        b"CSeq: 1 INVITE", b"CSeq: 2 INVITE"))  # fmt: skip
    assert server_key(later) != server_key(old)


def test_client_keys() -> None:
    assert client_key(response_to(BYE, 200)) == client_key(BYE) == ("z9hG4bK-4242-1-7", "BYE")
