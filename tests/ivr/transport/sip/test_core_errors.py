"""What the core answers by itself: every error status, with the headers the RFC wants."""

from __future__ import annotations

import pytest

from ivr.transport.sip.events import AckReceived, IncomingCall
from ivr.transport.sip.message import Response
from tests.ivr.transport.sip.harness import Harness, only, response
from tests.ivr.transport.sip.wire import (
    SDP_ANSWER,
    baresip_invite,
    sipp_ack,
    sipp_cancel,
    sipp_in_dialog,
    sipp_invite,
)


def answer_of(h: Harness, data: bytes) -> Response:
    h.udp(data)
    assert not [e for e in h.take_events() if isinstance(e, IncomingCall)]
    return response(only(h.take()))


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (sipp_in_dialog("BYE", "nosuchtag"), 481),
        (
            sipp_in_dialog("INFO", "nosuchtag", body=b"Signal=1", content_type="application/dtmf"),
            481,
        ),
        (sipp_in_dialog("INVITE", "nosuchtag", body=b""), 481),
        (sipp_in_dialog("BYE", "x").replace(b";tag=x", b""), 481),  # BYE outside a dialog
        (sipp_cancel(), 481),  # no INVITE to cancel
    ],
)
def test_481_for_what_matches_nothing(data: bytes, status: int) -> None:
    h = Harness()
    reply = answer_of(h, data)
    assert reply.status == status
    assert reply.to.tag is not None  # 8.2.6.2


def test_the_ack_of_nothing_is_dropped_and_counted() -> None:
    h = Harness()
    h.udp(sipp_ack("nosuchtag"))
    assert h.take() == []
    assert h.core.counters["unmatched_ack"] == 1


@pytest.mark.parametrize(
    ("method", "status"),
    [("REGISTER", 405), ("SUBSCRIBE", 405), ("UPDATE", 405), ("PRACK", 405), ("FOO", 501)],
)
def test_methods_we_do_not_take(method: str, status: int) -> None:
    h = Harness()
    data = sipp_in_dialog(method, "x").replace(b";tag=x", b"")
    reply = answer_of(h, data)
    assert reply.status == status  # 8.2.1: 405 when known, 501 otherwise (21.5.2)
    assert set(reply.allow) == {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"}


def test_max_forwards_zero_is_483() -> None:
    h = Harness()
    reply = answer_of(h, sipp_invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert reply.status == 483


def test_an_unsupported_require_is_420_with_unsupported() -> None:
    h = Harness()
    data = sipp_invite().replace(b"Subject: Performance Test", b"Require: 100rel, timer")
    reply = answer_of(h, data)
    assert reply.status == 420
    assert reply.header_values("Unsupported") == ["100rel", "timer"]
    h.udp(data)  # a retransmission gets the same 420 from the transaction
    assert h.statuses() == [420]
    allowed = Harness(supported=frozenset({"100rel", "timer"}))
    allowed.udp(data)
    assert allowed.incoming().call
    assert allowed.statuses() == [100]


def test_supported_without_require_is_fine() -> None:
    h = Harness()
    h.udp(baresip_invite())  # Supported: 100rel, no Require
    assert h.incoming().request_uri_user == "+15550100"


def test_an_unknown_request_uri_scheme_is_416() -> None:
    h = Harness()
    data = sipp_invite().replace(b"INVITE sip:+15550100@203.0.113.5:5060", b"INVITE im:x@y", 1)
    assert answer_of(h, data).status == 416


def test_a_tel_request_uri_is_taken() -> None:
    h = Harness()
    h.udp(sipp_invite().replace(b"INVITE sip:+15550100@203.0.113.5:5060", b"INVITE tel:+15550100"))
    assert h.incoming().request_uri_user == "+15550100"


@pytest.mark.parametrize(
    ("replace", "by", "accept"),
    [
        (
            b"Content-Type: application/sdp",
            b"Content-Type: text/plain",
            ("Accept", "application/sdp"),
        ),
        (b"Subject: Performance Test", b"Content-Encoding: gzip", ("Accept-Encoding", "identity")),
    ],
)
def test_a_body_we_cannot_read_is_415(replace: bytes, by: bytes, accept: tuple[str, str]) -> None:
    h = Harness()
    reply = answer_of(h, sipp_invite().replace(replace, by))
    assert reply.status == 415
    assert reply.header(accept[0]) == accept[1]


def test_a_merged_request_is_482() -> None:
    h = Harness()
    h.udp(sipp_invite())
    h.incoming()
    h.take()
    forked = sipp_invite().replace(b"branch=z9hG4bK-4242-1-0", b"branch=z9hG4bK-other-path")
    assert answer_of(h, forked).status == 482  # 8.2.2.2


def test_an_out_of_order_cseq_is_500() -> None:
    h = Harness()
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.udp(sipp_ack(call))
    assert h.take_events() == [AckReceived(call, None)]
    h.take()
    h.udp(sipp_in_dialog("INFO", call, cseq=5, branch="i5"))
    assert h.statuses() == [200]
    h.udp(sipp_in_dialog("INFO", call, cseq=4, branch="i4"))
    assert h.statuses() == [500]  # 12.2.2


def test_an_invite_without_contact_is_400() -> None:
    h = Harness()
    reply = answer_of(h, sipp_invite().replace(b"Contact: sip:sipp@192.0.2.10:5061\r\n", b""))
    assert (reply.status, reply.reason) == (400, "Missing Contact")
    bad = sipp_invite().replace(b"Contact: sip:sipp@", b"Contact: mailto:sipp@")
    assert answer_of(Harness(), bad).reason == "Bad Contact: not a SIP URI"


@pytest.mark.parametrize(
    ("replace", "by", "status", "reason"),
    [
        (b"CSeq: 1 INVITE", b"CSeq: x INVITE", 400, "Bad CSeq: not 'number METHOD'"),
        (b";branch=z9hG4bK-4242-1-0", b"", 400, "Bad Via: no branch"),
        (b"Max-Forwards: 70", b"Max-Forwards: many", 400, "Bad Max-Forwards: not a number: 'many'"),
        (
            b"From: sipp <sip:sipp",
            b'From: "sipp <sip:sipp',
            400,
            "Bad From: unterminated quoted string",
        ),
        (b"To: +15550100 <sip:", b"To: +15550100 <sop:<", 400, "Bad To"),
        (b" SIP/2.0\r\n", b" SIP/3.0\r\n", 505, "Version Not Supported: SIP/3.0"),
        (b"Subject: Performance Test", b"Subject: \xc3\x28", 400, "Bad Subject: not UTF-8"),
        (b"Subject: Performance Test", b"Content-Length: 9999", 400, "Bad Content-Length"),
    ],
)
def test_malformed_requests_get_the_parse_reason(
    replace: bytes, by: bytes, status: int, reason: str
) -> None:
    h = Harness()
    h.udp(sipp_invite().replace(replace, by, 1))
    ((data, where),) = h.wire  # as bytes: when it echoes the fault it does not parse itself
    status_line, _, rest = data.decode().partition("\r\n")
    assert status_line.startswith(f"SIP/2.0 {status} {reason}"), status_line
    assert "\r\nCall-ID: 1-4242@192.0.2.10\r\n" in "\r\n" + rest
    assert "\r\nContent-Length: 0\r\n\r\n" in rest
    assert rest.count("\r\nTo: ") + rest.startswith("To: ") == 1
    assert where.host == "192.0.2.10"
    assert h.core.counters["answered_malformed"] == 1
    assert h.take_events() == []


def test_a_malformed_request_without_what_a_response_echoes_is_dropped() -> None:
    h = Harness()
    h.udp(sipp_invite().replace(b"Call-ID: 1-4242@192.0.2.10\r\n", b""))
    h.udp(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # TLS on the UDP port
    h.udp(sipp_ack("t").replace(b"CSeq: 1 ACK", b"CSeq: x ACK"))  # an ACK is never answered
    h.udp(b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n")  # nor is a response
    assert h.take() == []
    assert h.core.counters["dropped_malformed"] == 4


def test_crlf_keepalives_on_udp_are_ignored() -> None:
    h = Harness()
    h.udp(b"\r\n\r\n")
    h.udp(b"\r\n")
    assert h.take() == []
    assert h.core.counters["keepalive"] == 2


def test_a_response_to_nothing_is_dropped() -> None:
    h = Harness()
    data = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKnothing\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n"
    )
    h.udp(data)
    assert h.take() == []
    assert h.core.counters["unmatched_response"] == 1
