"""Whole calls through the UAS core, bytes in and bytes out, on a fake clock."""

from __future__ import annotations

import pytest

from ivr.transport.sip import IncomingCall, Outgoing, SipConfig, SipCore
from ivr.transport.sip.errors import CallGone, SipStateError
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
)
from ivr.transport.sip.message import Request, make_response, serialize
from tests.ivr.transport.sip.harness import Harness, only, request, response
from tests.ivr.transport.sip.wire import (
    SDP_ANSWER,
    SDP_HOLD,
    SDP_OFFER,
    SIPP,
    sipp_ack,
    sipp_ack_non2xx,
    sipp_cancel,
    sipp_in_dialog,
    sipp_invite,
    trunk_invite,
)


def answered(h: Harness) -> str:
    """A SIPp call up to the ACK; returns its key."""
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    h.udp(sipp_ack(call))
    h.take()
    assert h.take_events() == [AckReceived(call, None)]
    return call


def reply_to(h: Harness, bye: Request, status: int) -> None:
    """The peer answers our request."""
    resp = make_response(
        status,
        [
            *(("Via", v.raw) for v in bye.vias),
            ("From", bye.from_.raw),
            ("To", bye.to.raw),
            ("Call-ID", bye.call_id),
            ("CSeq", str(bye.cseq)),
        ],
    )
    h.udp(serialize(resp))


def test_a_sipp_call_from_invite_to_bye() -> None:
    h = Harness()
    h.udp(sipp_invite())
    trying = response(only(h.take()))
    assert (trying.status, trying.to.tag) == (100, None)
    event = h.incoming()
    assert event.request_uri_user == "+15550100"
    assert (event.from_user, event.display_name) == ("sipp", "sipp")
    assert event.sdp_offer == SDP_OFFER
    assert event.call_id == "1-4242@192.0.2.10"
    assert event.source == Endpoint("192.0.2.10", 5061)
    call = event.call
    h.core.ring(call, h.now)
    h.drain()
    ringing, where = only(h.take())
    assert isinstance(ringing, type(trying))
    assert (ringing.status, ringing.to.tag) == (180, call)
    assert str(ringing.contacts[0].uri) == "sip:ivr@203.0.113.5:5060"
    assert where == Endpoint("192.0.2.10", 5061)
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    ok = response(only(h.take()))
    assert (ok.status, ok.to.tag, ok.body) == (200, call, SDP_ANSWER)
    assert ok.content_type is not None
    assert ok.content_type.essence == "application/sdp"
    assert "BYE" in ok.allow
    assert ok.contacts
    assert h.armed() == {"2xx", "no-ack"}
    h.udp(sipp_ack(call))
    assert h.take_events() == [AckReceived(call, None)]
    assert h.armed() == set()
    assert h.take() == []  # an ACK is never answered
    h.udp(sipp_in_dialog("BYE", call))
    bye_ok = response(only(h.take()))
    assert (bye_ok.status, bye_ok.cseq.method, bye_ok.to.tag) == (200, "BYE", call)
    assert h.take_events() == [ByeReceived(call)]
    assert h.core.active_calls == 0
    h.udp(sipp_in_dialog("BYE", call))  # retransmitted: the transaction repeats its 200
    assert h.statuses() == [200]
    assert h.take_events() == []


def test_2xx_is_retransmitted_t1_doubling_to_t2_then_bye_at_64_t1() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    start = h.now
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    h.take()
    times = []
    while h.now < start + 31.7:
        h.advance(0.25)
        times += [round(h.now - start, 3) for m, _ in h.take() if not isinstance(m, Request)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert h.take_events() == []
    h.advance(0.25)  # 64*T1 = 32 s after the 2xx
    assert h.take_events() == [CallTimedOut(call)]
    bye = request(only(h.take()))
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:sipp@192.0.2.10:5061"  # their Contact, the remote target
    assert (bye.from_.tag, bye.to.tag) == (call, "4242SIPpTag001")
    assert (bye.cseq.number, bye.call_id) == (1, "1-4242@192.0.2.10")
    assert (bye.top_via.branch or "").startswith("z9hG4bK")
    assert bye.top_via.param("rport") == ""
    assert h.armed() == {"E", "F"}
    reply_to(h, bye, 200)
    assert h.take_events() == [ByeCompleted(call, 200)]
    assert h.core.active_calls == 0


def test_the_ack_stops_the_2xx_retransmissions() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    h.advance(1.6)
    assert [m.status for m, _ in h.take() if not isinstance(m, Request)] == [100, 200, 200, 200]
    h.udp(sipp_ack(call))
    h.advance(60)
    assert h.take() == []
    assert h.take_events() == [AckReceived(call, None)]
    h.udp(sipp_ack(call))  # a retransmitted ACK changes nothing
    assert h.take_events() == []


def test_retransmitted_invites_are_absorbed() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.take()
    h.udp(sipp_invite())
    assert h.statuses() == [100]  # Proceeding: the last provisional again
    h.core.ring(call, h.now)
    h.drain()
    h.take()
    h.udp(sipp_invite())
    assert h.statuses() == [180]
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    h.take()
    h.udp(sipp_invite())  # after the 2xx: the core's, not a new call
    assert h.take() == []
    assert h.take_events() == []
    assert h.core.counters["retransmission"] == 3


def test_cancel_before_the_final_response() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.ring(call, h.now)
    h.drain()
    h.take()
    h.udp(sipp_cancel())
    sent = h.take()
    assert [(response(s).status, response(s).cseq.method) for s in sent] == [
        (200, "CANCEL"),
        (487, "INVITE"),
    ]
    assert {response(s).to.tag for s in sent} == {call}  # 9.2: the same tag
    assert h.take_events() == [CallCancelled(call)]
    h.udp(sipp_ack_non2xx(to_tag=call))  # the ACK for the 487: the transaction's
    assert h.take() == []
    assert h.take_events() == []
    h.udp(sipp_cancel())
    assert h.statuses() == [200]
    with pytest.raises(CallGone):
        h.core.answer(call, SDP_ANSWER, h.now)


def test_the_487_is_retransmitted_until_its_ack() -> None:
    h = Harness()
    h.udp(sipp_invite())
    h.incoming()
    h.udp(sipp_cancel())
    h.take()
    h.advance(1.6)  # timer G: 0.5 then 1.0
    assert h.statuses() == [487, 487]
    h.advance(40)  # timer H: 32 s without the ACK
    assert h.core.counters["timer_H"] == 1
    assert h.armed() <= {"linger"}


def test_cancel_after_the_final_response_does_nothing() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    h.take()
    h.udp(sipp_cancel())
    assert h.statuses() == [200]
    assert h.take_events() == []
    h.udp(sipp_ack(call))
    assert h.take_events() == [AckReceived(call, None)]


def test_delayed_offer_answer_in_the_ack() -> None:
    h = Harness()
    h.udp(sipp_invite(body=b""))
    event = h.incoming()
    assert event.sdp_offer is None
    h.core.answer(event.call, SDP_ANSWER, h.now)  # our offer
    h.drain()
    assert response(h.take()[-1]).body == SDP_ANSWER
    h.udp(sipp_ack(event.call, body=SDP_OFFER))
    assert h.take_events() == [AckReceived(event.call, SDP_OFFER)]


def test_re_invite_hold_and_resume() -> None:
    h = Harness()
    call = answered(h)
    hold = sipp_in_dialog(
        "INVITE", call, cseq=2, branch="hold", body=SDP_HOLD, content_type="application/sdp"
    )
    h.udp(hold.replace(b"Contact: sip:sipp@192.0.2.10:5061", b"Contact: <sip:sipp@192.0.2.11>"))
    assert h.statuses() == [100]
    assert h.take_events() == [ReInviteReceived(call, SDP_HOLD)]
    h.core.answer_reinvite(call, SDP_ANSWER, h.now)
    h.drain()
    ok = response(only(h.take()))
    assert (ok.status, ok.cseq.number, ok.body) == (200, 2, SDP_ANSWER)
    assert ok.contacts
    h.udp(sipp_ack(call, cseq=2).replace(b"-1-5", b"-1-hold-ack"))
    assert h.take_events() == [AckReceived(call, None)]
    h.core.bye(call, h.now)
    h.drain()
    bye = request(only(h.take()))
    assert str(bye.uri) == "sip:sipp@192.0.2.11"  # the re-INVITE refreshed the target
    assert bye.cseq.number == 1


def test_re_invite_rejected_and_the_glare_rules() -> None:
    h = Harness()
    call = answered(h)
    reinvite = sipp_in_dialog("INVITE", call, cseq=2, branch="r1", body=SDP_OFFER,
                              content_type="application/sdp")  # fmt: skip
    h.udp(reinvite)
    assert h.statuses() == [100]
    h.take_events()
    second = reinvite.replace(b"CSeq: 2", b"CSeq: 3").replace(b"-1-r1", b"-1-r2")
    h.udp(second)  # 14.2: before the final response to the first
    busy = response(only(h.take()))
    assert busy.status == 500
    assert busy.header("Retry-After") is not None
    assert 0 <= int(busy.header("Retry-After") or "") <= 10
    h.core.reject_reinvite(call, 488, h.now)
    h.drain()
    assert h.statuses() == [488]
    h.udp(sipp_ack_non2xx(to_tag=call).replace(b"-1-0", b"-1-r1").replace(b"1 ACK", b"2 ACK"))
    assert h.take_events() == []  # the transaction took its ACK
    third = reinvite.replace(b"CSeq: 2", b"CSeq: 4").replace(b"-1-r1", b"-1-r3")
    h.udp(third)
    h.take()
    h.take_events()
    h.core.answer_reinvite(call, SDP_ANSWER, h.now)
    h.drain()
    h.take()
    fourth = reinvite.replace(b"CSeq: 2", b"CSeq: 5").replace(b"-1-r1", b"-1-r4")
    h.udp(fourth)  # our 2xx waits for its ACK
    assert h.statuses() == [491]
    with pytest.raises(SipStateError, match="AppAnswerUpdate"):
        h.core.answer_reinvite(call, SDP_ANSWER, h.now)


def test_cancel_of_a_re_invite() -> None:
    h = Harness()
    call = answered(h)
    h.udp(sipp_in_dialog("INVITE", call, cseq=2, branch="r1"))
    h.take()
    assert h.take_events() == [ReInviteReceived(call, None)]
    cancel = sipp_in_dialog("CANCEL", call, cseq=2, branch="r1")
    h.udp(cancel)
    assert h.statuses() == [200, 487]
    assert h.take_events() == [ReInviteCancelled(call)]
    h.udp(sipp_in_dialog("BYE", call, cseq=3))
    assert h.statuses() == [200]
    assert h.take_events() == [ByeReceived(call)]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "surfaced"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", 200, True),
        ("application/dtmf", b"5", 200, True),
        ("Application/DTMF-Relay; charset=x", b"Signal=#\r\n", 200, True),
        ("text/plain", b"hello", 415, False),
        (None, b"", 200, False),
    ],
)
def test_info(content_type: str | None, body: bytes, status: int, surfaced: bool) -> None:
    h = Harness()
    call = answered(h)
    h.udp(sipp_in_dialog("INFO", call, cseq=2, body=body, content_type=content_type))
    reply = response(only(h.take()))
    assert reply.status == status
    if status == 415:
        assert reply.header_values("Accept") == ["application/dtmf-relay", "application/dtmf"]
    events = h.take_events()
    if surfaced:
        assert content_type is not None
        essence = content_type.split(";")[0].lower()
        assert events == [InfoReceived(call, essence, body)]
    else:
        assert events == []


def test_options_in_and_out_of_a_dialog() -> None:
    h = Harness()
    options = sipp_in_dialog("OPTIONS", "x").replace(b";tag=x", b"")
    h.udp(options)
    ok = response(only(h.take()))
    assert ok.status == 200
    assert ok.to.tag is not None
    assert set(ok.allow) == {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"}
    assert ok.header_values("Accept") == ["application/sdp"]
    h.udp(options.replace(b"Max-Forwards: 70", b"Max-Forwards: 0").replace(b"-1-7", b"-1-8"))
    assert h.statuses() == [200]  # an OPTIONS with 0 hops left is ours to answer
    call = answered(h)
    h.udp(sipp_in_dialog("OPTIONS", call, cseq=2, branch="o"))
    assert h.statuses() == [200]
    assert h.core.active_calls == 1


def test_while_draining_an_options_ping_gets_503_but_a_live_call_still_200() -> None:
    h = Harness()
    call = answered(h)
    h.core.draining_retry_after_s = 5
    h.udp(sipp_in_dialog("OPTIONS", "x").replace(b";tag=x", b""))
    busy = response(only(h.take()))
    assert (busy.status, busy.header_values("Retry-After")) == (503, ["5"])
    h.udp(sipp_in_dialog("OPTIONS", call, cseq=2, branch="o"))
    assert h.statuses() == [200]  # inside the call: it goes on while the node drains


def test_our_bye_retransmits_e_and_ends_on_its_response() -> None:
    h = Harness()
    call = answered(h)
    with pytest.raises(SipStateError, match="AppRing"):
        h.core.ring(call, h.now)
    h.core.bye(call, h.now)
    h.drain()
    bye = request(only(h.take()))
    h.advance(3.6)
    assert [request(s) for s in h.take()] == [bye, bye, bye]  # 0.5, 1.5, 3.5
    h.udp(sipp_in_dialog("BYE", call, cseq=9))  # theirs, crossing ours
    assert h.statuses() == [200]
    assert h.take_events() == []
    reply_to(h, bye, 481)
    assert h.take_events() == [ByeCompleted(call, 481)]
    assert h.core.active_calls == 0


def test_our_bye_times_out_with_timer_f() -> None:
    h = Harness()
    call = answered(h)
    h.core.bye(call, h.now)
    h.drain()
    h.advance(32)
    assert h.take_events() == [ByeCompleted(call, None)]
    assert h.core.counters["timer_F"] == 1
    with pytest.raises(CallGone):
        h.core.bye(call, h.now)


def test_bye_before_the_ack_waits_for_it() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.core.bye(call, h.now)
    h.drain()
    assert h.statuses() == [100, 200]  # no BYE yet (RFC 3261 section 15)
    h.udp(sipp_ack(call))
    assert h.take_events() == [AckReceived(call, None)]
    assert request(only(h.take())).method == "BYE"


def test_bye_in_the_early_dialog() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.ring(call, h.now)
    h.drain()
    h.take()
    h.udp(sipp_in_dialog("BYE", call))
    assert sorted(h.statuses()) == [200, 487]
    assert h.take_events() == [ByeReceived(call)]


def test_reject_with_any_status_and_headers() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    with pytest.raises(SipStateError, match="300 to 699"):
        h.core.reject(call, 200, h.now)
    h.core.reject(call, 503, h.now, headers=(("Retry-After", "30"),))
    h.drain()
    busy = response(h.take()[-1])
    assert (busy.status, busy.reason, busy.header("Retry-After")) == (
        503,
        "Service Unavailable",
        "30",
    )
    assert busy.to.tag == call
    assert not busy.contacts
    h.udp(sipp_invite())
    assert h.statuses() == [503]  # Completed: the final again
    h.udp(sipp_ack_non2xx(to_tag=call))
    h.advance(10)
    assert h.take() == []
    h.udp(sipp_invite(2))
    other = h.incoming().call
    h.core.reject(other, 404, h.now, reason="No Such Number")
    h.drain()
    assert response(h.take()[-1]).reason == "No Such Number"


def test_trunk_record_route_and_loose_routing_of_our_bye() -> None:
    h = Harness()
    h.udp(trunk_invite(), ("198.51.100.1", 5060))
    event = h.incoming()
    assert (event.request_uri_user, event.from_user) == ("+15550100", "+14155550199")
    assert event.display_name == "+1 415 555 0199"
    call = event.call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    ok, where = h.take()[-1]
    assert [r.raw for r in ok.record_route] == ["<sip:198.51.100.1;lr;ftag=as5e1>"]
    assert [v.branch for v in ok.vias] == ["z9hG4bK-proxy-77a", "z9hG4bK-sbc-1"]
    assert where == Endpoint("198.51.100.1", 5060)
    ack = sipp_ack(call, cseq=102).replace(b"1-4242@192.0.2.10", b"1f2e3d4c@10.20.0.4")
    h.udp(ack.replace(b"4242SIPpTag001", b"as5e1"), ("198.51.100.1", 5060))
    assert h.take_events() == [AckReceived(call, None)]
    h.core.bye(call, h.now)
    h.drain()
    bye, where = h.take()[0]
    assert isinstance(bye, Request)
    assert str(bye.uri) == "sip:+14155550199@10.20.0.4:5060"
    assert [r.raw for r in bye.route] == ["<sip:198.51.100.1;lr;ftag=as5e1>"]
    assert bye.cseq.number == 1
    assert where == Endpoint("198.51.100.1", 5060)


def test_strict_routing_puts_the_route_in_the_request_uri() -> None:
    h = Harness()
    strict = trunk_invite().replace(b"<sip:198.51.100.1;lr;ftag=as5e1>", b"<sip:198.51.100.1>")
    h.udp(strict, ("198.51.100.1", 5060))
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    ack = sipp_ack(call, cseq=102).replace(b"1-4242@192.0.2.10", b"1f2e3d4c@10.20.0.4")
    h.udp(ack.replace(b"4242SIPpTag001", b"as5e1"), ("198.51.100.1", 5060))
    h.take()
    h.core.bye(call, h.now)
    h.drain()
    bye, where = h.take()[0]
    assert isinstance(bye, Request)
    assert str(bye.uri) == "sip:198.51.100.1"
    assert [r.raw for r in bye.route] == ["<sip:+14155550199@10.20.0.4:5060>"]
    assert where == Endpoint("198.51.100.1", 5060)


def test_a_cancelled_timer_that_fires_anyway_is_ignored() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    (retransmit,) = [t for t in h.due if t.name == "2xx"]
    h.udp(sipp_ack(call))
    h.core.timer_fired(retransmit, h.now)  # the driver's cancel raced the expiry
    h.drain()
    assert h.take()[-1][0].cseq.method == "INVITE"
    assert h.core.counters["stale_timer"] == 1
    assert h.take_events() == [AckReceived(call, None)]


def test_source_port_is_used_for_sipp() -> None:
    h = Harness()
    h.udp(sipp_invite(), SIPP)
    assert h.take()[0][1] == Endpoint(*SIPP)


def test_the_package_docstring_example() -> None:
    core = SipCore(SipConfig(host="203.0.113.5"))
    now = 0.0
    core.receive_datagram(sipp_invite(), ("192.0.2.10", 5061), now)
    (event,) = core.events_received()
    assert isinstance(event, IncomingCall)
    call = event.call
    core.ring(call, now)
    core.answer(call, SDP_ANSWER, now)
    core.receive_datagram(sipp_ack(call), ("192.0.2.10", 5061), now)
    core.receive_datagram(sipp_in_dialog("BYE", call), ("192.0.2.10", 5061), now)
    out = core.data_to_send()
    assert all(isinstance(o, Outgoing) for o in out)
    lines = [o.data.split(b"\r\n", 1)[0] for o in out if isinstance(o, Outgoing)]
    assert lines == [b"SIP/2.0 100 Trying", b"SIP/2.0 180 Ringing", b"SIP/2.0 200 OK",
                     b"SIP/2.0 200 OK"]  # fmt: skip
    assert [type(e).__name__ for e in core.events_received()] == ["AckReceived", "ByeReceived"]
    assert len(core.timers_to_set()) == 6  # 2xx, no-ack (started, cancelled), J, linger


def test_hanging_up_twice_is_harmless() -> None:
    h = Harness()
    call = answered(h)
    h.core.bye(call, h.now)
    h.core.bye(call, h.now)
    h.drain()
    assert [request(s).method for s in h.take()] == ["BYE"]


def test_the_ack_of_an_earlier_2xx_does_not_confirm_a_re_invite() -> None:
    h = Harness()
    call = answered(h)
    h.udp(sipp_in_dialog("INVITE", call, cseq=2, branch="r1"))
    h.take_events()
    h.core.answer_reinvite(call, SDP_ANSWER, h.now)
    h.drain()
    h.take()
    h.udp(sipp_ack(call, cseq=1))  # the first ACK again
    assert h.take_events() == []
    assert h.armed() >= {"2xx", "no-ack"}
    h.udp(sipp_ack(call, cseq=2).replace(b"-1-5", b"-1-ack2"))
    assert h.take_events() == [AckReceived(call, None)]


def test_requests_while_our_bye_is_out_get_481() -> None:
    h = Harness()
    call = answered(h)
    h.core.bye(call, h.now)
    h.drain()
    h.take()
    h.udp(
        sipp_in_dialog(
            "INFO", call, cseq=3, branch="i3", body=b"5", content_type="application/dtmf"
        )
    )
    h.udp(sipp_in_dialog("INVITE", call, cseq=4, branch="r4"))
    assert h.statuses() == [481, 481]
    assert h.take_events() == []


def test_hanging_up_during_a_re_invite_ends_it_with_487() -> None:
    h = Harness()
    call = answered(h)
    h.udp(sipp_in_dialog("INVITE", call, cseq=2, branch="r1", body=SDP_HOLD,
                         content_type="application/sdp"))  # fmt: skip
    h.take()
    h.take_events()
    h.core.bye(call, h.now)
    h.drain()
    sent = h.take()
    assert response(sent[0]).status == 487
    assert request(sent[1]).method == "BYE"


def test_answers_need_sdp() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    with pytest.raises(SipStateError, match="SDP"):
        h.core.answer(call, b"", h.now)
    with pytest.raises(SipStateError, match="SDP"):
        h.core.answer_reinvite(call, b"", h.now)


def test_a_re_invite_with_a_body_we_cannot_read_is_415() -> None:
    h = Harness()
    call = answered(h)
    h.udp(sipp_in_dialog("INVITE", call, cseq=2, branch="r1", body=b"x", content_type="text/plain"))
    assert h.statuses() == [415]
    assert h.take_events() == []


def test_supported_option_tags_are_announced() -> None:
    h = Harness(supported=frozenset({"timer"}))
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    assert response(h.take()[-1]).supported == ("timer",)
