"""Where responses go (RFC 3261 18.2.2, RFC 3581 section 4) and streams (18.3, RFC 5626)."""

from __future__ import annotations

import pytest

from ivr.transport.sip.errors import SipStateError
from ivr.transport.sip.events import AckReceived, Endpoint
from ivr.transport.sip.message import Request
from tests.ivr.transport.sip.harness import Harness, only, request, response
from tests.ivr.transport.sip.wire import (
    SDP_ANSWER,
    SDP_OFFER,
    baresip_invite,
    crlf,
    linphone_invite,
    sipp_invite,
)

NAT = ("203.0.113.99", 40000)  # baresip's public address, as the NAT maps it


def test_rport_and_received_send_the_response_through_the_nat() -> None:
    h = Harness()
    h.udp(baresip_invite(), NAT)
    trying, where = only(h.take())
    via = trying.top_via
    assert via.param("received") == "203.0.113.99"
    assert via.param("rport") == "40000"
    assert via.branch == "z9hG4bK9f1ca82e5b6d7c3a"
    assert where == Endpoint("203.0.113.99", 40000)
    assert h.incoming().source == Endpoint(*NAT)


def test_received_without_rport_goes_to_the_sent_by_port() -> None:
    h = Harness()
    h.udp(sipp_invite(), ("198.51.100.77", 33333))
    trying, where = only(h.take())
    assert trying.top_via.param("received") == "198.51.100.77"
    assert trying.top_via.param("rport") is None
    assert where == Endpoint("198.51.100.77", 5061)  # 18.2.2: received, sent-by's port


def test_no_received_when_the_sent_by_is_the_source() -> None:
    h = Harness()
    h.udp(sipp_invite(), ("192.0.2.10", 5061))
    trying, _ = only(h.take())
    assert trying.top_via.raw == "SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-4242-1-0"


def test_ipv6_sent_by_compares_without_brackets() -> None:
    h = Harness()
    data = sipp_invite().replace(b"UDP 192.0.2.10:5061", b"UDP [2001:db8::10]:5061")
    h.udp(data, Endpoint("2001:db8::10", 5061))
    trying, where = only(h.take())
    assert trying.top_via.param("received") is None
    assert where == Endpoint("2001:db8::10", 5061)


def linphone_source(connection: int = 7) -> Endpoint:
    return Endpoint("10.0.0.7", 38421, "TCP", connection)


def test_a_linphone_call_over_tcp_stays_on_its_connection() -> None:
    h = Harness()
    source = linphone_source()
    invite = linphone_invite()
    h.stream(invite[:100], source)
    assert h.take() == []
    h.stream(invite[100:], source)
    trying, where = only(h.take())
    assert where == source  # 18.2.2: the connection it came on
    assert trying.top_via.param("rport") == "38421"
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    ok, _ = only(h.take())
    assert str(ok.contacts[0].uri) == "sip:ivr@203.0.113.5:5060;transport=tcp"
    h.advance(0.6)  # 13.3.1.4: the 2xx is retransmitted even on a reliable transport
    assert [response(s).status for s in h.take()] == [200]
    ack = crlf(
        f"""
ACK sip:ivr@203.0.113.5:5060;transport=tcp SIP/2.0
Via: SIP/2.0/TCP 10.0.0.7:38421;alias;branch=z9hG4bK.ack1;rport
From: "Bob" <sip:bob@sip.linphone.org>;tag=Qm7vN~3xZ
To: sip:+15550100@ivr.example.com;tag={call}
CSeq: 20 ACK
Call-ID: 9ZxK3b-LmQ
Max-Forwards: 70
Content-Length: 0
"""
    )
    h.stream(b"\r\n\r\n" + ack, source)  # a keep-alive ping first
    assert h.pongs == [source]
    assert h.take_events() == [AckReceived(call, None)]
    h.core.bye(call, h.now)
    h.drain()
    bye, where = only(h.take())
    assert isinstance(bye, Request)
    assert where == source  # back on the same connection (the Contact is that address)
    assert bye.top_via.transport == "TCP"
    assert h.armed() == {"F"}  # no E on a reliable transport


def test_a_stream_framing_error_answers_and_closes() -> None:
    h = Harness()
    source = linphone_source(9)
    broken = linphone_invite().replace(b"Content-Length: %d" % len(SDP_OFFER), b"X-No-Length: 1")
    h.stream(broken, source)
    reply = h.wire[-1][0]
    assert reply.startswith(b"SIP/2.0 400 Missing Content-Length\r\n")
    assert h.closed == [9]
    sent = len(h.wire)
    # What else arrives before the driver has closed it is dropped, not answered
    # again and again: the framing is lost, there is no next message to find.
    for _ in range(20):
        h.stream(b"X-Flood: " + b"a" * 10000 + b"\r\n", source)
    h.stream(linphone_invite(), source)
    assert len(h.wire) == sent
    assert h.closed == [9]
    assert h.core.counters["dropped_closing"] == 21
    h.core.connection_closed(9)
    h.stream(linphone_invite(), source)  # a new connection with the same id starts afresh
    assert h.incoming().request_uri_user == "+15550100"


def test_stream_bytes_need_a_connection() -> None:
    h = Harness()
    with pytest.raises(SipStateError):
        h.core.receive_stream(linphone_invite(), Endpoint("10.0.0.7", 1, "UDP"), h.now)
    with pytest.raises(SipStateError):
        h.core.receive_stream(linphone_invite(), Endpoint("10.0.0.7", 1, "TCP"), h.now)


def test_connection_closed_drops_a_half_message() -> None:
    h = Harness()
    source = linphone_source(3)
    h.stream(linphone_invite()[:50], source)
    h.core.connection_closed(3)
    h.stream(linphone_invite(), source)
    assert h.incoming().call


def test_symmetric_sends_the_bye_to_the_source_not_the_private_contact() -> None:
    for symmetric, expected in [(False, ("192.168.1.20", 5060)), (True, NAT)]:
        h = Harness(symmetric=symmetric)
        h.udp(baresip_invite(), NAT)
        call = h.incoming().call
        h.core.answer(call, SDP_ANSWER, h.now)
        ack = crlf(
            f"""
ACK sip:ivr@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKack;rport
Max-Forwards: 70
To: <sip:+15550100@ivr.example.com>;tag={call}
From: "Alice" <sip:alice@example.org>;tag=7b2e03a41c58d9f6
Call-ID: 0c6e9a7b3f1d2e48
CSeq: 18532 ACK
Content-Length: 0
"""
        )
        h.udp(ack, NAT)
        h.take()
        h.core.bye(call, h.now)
        h.drain()
        sent = only(h.take())
        bye, where = request(sent), sent[1]
        assert bye.method == "BYE"
        assert (where.host, where.port) == expected
        assert str(bye.uri) == "sip:alice-0x5581@192.168.1.20:5060;transport=udp"
        assert h.take_events()[-1] == AckReceived(call, None)
