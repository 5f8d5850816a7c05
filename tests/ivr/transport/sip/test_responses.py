"""Building responses (8.2.6) and their route (18.2.1, 18.2.2, RFC 3581 section 4)."""

from __future__ import annotations

from ivr.transport.sip.events import Endpoint
from ivr.transport.sip.headers import parse_via
from ivr.transport.sip.message import Request, parse_message
from ivr.transport.sip.responses import build_response, error_response_bytes, response_route
from tests.ivr.transport.sip.wire import sipp_invite, trunk_invite


def req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def test_response_route() -> None:
    via = parse_via("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKx;rport")
    edited, where = response_route(via, Endpoint("203.0.113.99", 40000))
    assert (
        edited.raw
        == "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKx;rport=40000;received=203.0.113.99"
    )
    assert where == Endpoint("203.0.113.99", 40000)
    same = parse_via("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx;rport")
    edited, where = response_route(same, Endpoint("192.0.2.1", 5070))
    assert edited.param("received") == "192.0.2.1"  # 3581: received always, with rport
    assert where == Endpoint("192.0.2.1", 5070)
    plain = parse_via("SIP/2.0/UDP pbx.example.com:5062;branch=z9hG4bKx")
    edited, where = response_route(plain, Endpoint("192.0.2.2", 1024))
    assert edited.param("received") == "192.0.2.2"  # a name is never the source address
    assert where == Endpoint("192.0.2.2", 5062)
    no_port = parse_via("SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKx")
    assert response_route(no_port, Endpoint("192.0.2.2", 1024))[1] == Endpoint("192.0.2.2", 5060)
    stream = Endpoint("192.0.2.2", 1024, "TCP", 5)
    assert response_route(plain, stream)[1] == stream


def test_build_response_echoes_and_tags() -> None:
    invite = req(trunk_invite())
    top = invite.top_via.with_params(received="198.51.100.1")
    resp = build_response(invite, 180, top_via=top, to_tag="ours", contact="<sip:ivr@h>",
                          record_route=True, server="ivr")  # fmt: skip
    assert resp.vias[0].param("received") == "198.51.100.1"
    assert resp.vias[1] == invite.vias[1]
    assert resp.from_.raw == invite.from_.raw
    assert resp.to.tag == "ours"
    assert resp.header("CSeq") == "102 INVITE"
    assert [r.raw for r in resp.record_route] == [r.raw for r in invite.record_route]
    assert resp.header("Server") == "ivr"
    plain = build_response(invite, 486, top_via=top, to_tag="ours")
    assert plain.record_route == ()
    assert plain.contacts == ()
    stamped = req(sipp_invite().replace(b"Subject:", b"Timestamp: 54\r\nSubject:"))
    trying = build_response(stamped, 100, top_via=stamped.top_via, to_tag=None)
    assert trying.header("Timestamp") == "54"  # 8.2.6.1
    assert trying.to.tag is None


def test_error_responses_only_for_requests_with_their_echoed_headers() -> None:
    head = [("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx"), ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>"), ("Call-ID", "c"), ("CSeq", "1 INVITE")]  # fmt: skip
    source = Endpoint("192.0.2.1", 5060)
    built = error_response_bytes("INVITE sip:b@h SIP/2.0", tuple(head), 400, "Bad X", to_tag="t",
                                 source=source)  # fmt: skip
    assert built is not None
    data, where = built
    assert data.startswith(b"SIP/2.0 400 Bad X\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n")
    assert b"\r\nTo: <sip:b@h>;tag=t\r\n" in data
    assert where == Endpoint("192.0.2.1", 5060)
    for start in ("ACK sip:b@h SIP/2.0", "SIP/2.0 200 OK", ""):
        assert error_response_bytes(start, tuple(head), 400, "x", to_tag="t", source=source) is None
    assert error_response_bytes("INVITE x SIP/2.0", tuple(head[1:]), 400, "x", to_tag="t",
                                source=source) is None  # fmt: skip
