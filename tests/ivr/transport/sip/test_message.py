"""Parsing and building SIP messages: tolerant in, strict out, bounded (RFC 3261 section 7)."""

from __future__ import annotations

import pytest

from ivr.transport.sip.errors import BadMessage, SipStateError
from ivr.transport.sip.message import (
    MAX_HEADERS,
    MAX_LINE_BYTES,
    Request,
    Response,
    make_request,
    make_response,
    parse_message,
    serialize,
)
from ivr.transport.sip.uri import parse_uri
from tests.ivr.transport.sip.wire import (
    SDP_OFFER,
    baresip_invite,
    crlf,
    linphone_invite,
    sipp_invite,
    trunk_invite,
)


def request(data: bytes, **kwargs: bool) -> Request:
    msg = parse_message(data, **kwargs)
    assert isinstance(msg, Request)
    return msg


def refused(data: bytes, *, datagram: bool = True) -> BadMessage:
    with pytest.raises(BadMessage) as info:
        parse_message(data, datagram=datagram)
    return info.value


def test_sipp_invite_parses_into_typed_headers() -> None:
    msg = request(sipp_invite(3))
    assert msg.method == "INVITE"
    assert msg.uri.user == "+15550100"
    assert msg.uri.port == 5060
    via = msg.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.10", 5061)
    assert via.branch == "z9hG4bK-4242-3-0"
    assert via.sent_by == "192.0.2.10:5061"
    assert msg.from_.display_name == "sipp"
    assert msg.from_.tag == "4242SIPpTag003"
    assert msg.to.tag is None
    assert msg.call_id == "3-4242@192.0.2.10"
    assert (msg.cseq.number, msg.cseq.method) == (1, "INVITE")
    assert msg.max_forwards == 70
    assert str(msg.contacts[0].uri) == "sip:sipp@192.0.2.10:5061"
    assert msg.content_type is not None
    assert msg.content_type.essence == "application/sdp"
    assert msg.body == SDP_OFFER


def test_baresip_invite_lists_and_rport() -> None:
    msg = request(baresip_invite())
    assert msg.top_via.param("rport") == ""
    assert msg.allow[:3] == ("INVITE", "ACK", "BYE")
    assert msg.supported == ("replaces", "norefersub", "100rel")
    assert msg.require == ()
    assert msg.from_.display_name == "Alice"
    assert msg.contacts[0].uri.param("transport") == "udp"


def test_linphone_invite_keeps_quoted_contact_parameters() -> None:
    msg = request(linphone_invite())
    assert msg.top_via.transport == "TCP"
    assert msg.top_via.param("alias") == ""
    assert msg.top_via.branch == "z9hG4bK.Xy3Kq9aZ1"
    (contact,) = msg.contacts
    assert contact.uri.transport == "TCP"
    assert contact.param("+sip.instance") == '"<urn:uuid:4e1d2c3b-aa01>"'
    assert msg.supported == ("replaces", "outbound", "gruu", "path")


def test_trunk_invite_compact_forms_two_vias_in_one_line_and_folding() -> None:
    msg = request(trunk_invite())
    assert [v.branch for v in msg.vias] == ["z9hG4bK-proxy-77a", "z9hG4bK-sbc-1"]
    assert msg.vias[1].param("received") == "10.20.0.4"
    assert msg.top_via.port is None
    assert msg.top_via.sent_by == "198.51.100.1:5060"
    assert msg.record_route[0].uri.param("lr") == ""
    assert msg.from_.display_name == "+1 415 555 0199"
    assert msg.uri.param("user") == "phone"
    assert msg.header("p-asserted-identity") == (
        "<sip:+14155550199@carrier.example>, <tel:+14155550199>"
    )
    assert msg.body == SDP_OFFER


# RFC 4475 section 3.1.1.1 in spirit: whitespace, folding and case everywhere.
WHITESPACE_TORTURE = crlf(
    """
INVITE sip:vivekg@chair.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : {length}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33
""",
    SDP_OFFER,
)


def test_whitespace_torture_parses() -> None:
    msg = request(WHITESPACE_TORTURE)
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert [v.branch for v in msg.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.header("Subject") == ""
    assert msg.contacts[0].display_name == 'Quoted string ""'
    assert msg.contacts[0].param("q") == "0.33"
    assert msg.route[0].uri.param("unknown-no-value") == ""


def test_emitted_form_is_canonical_one_per_line_crlf_with_content_length() -> None:
    data = serialize(request(WHITESPACE_TORTURE))
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert b"\n" not in head.replace(b"\r\n", b"")
    names = [line.partition(":")[0] for line in lines[1:]]
    assert names.count("Via") == 3
    assert {"To", "From", "CSeq", "Subject", "Max-Forwards", "Call-ID"} <= set(names)
    assert names[-1] == "Content-Length"
    assert lines[-1] == f"Content-Length: {len(SDP_OFFER)}"
    assert body == SDP_OFFER
    again = request(data)  # and it reads back to the same message
    assert again.vias == request(WHITESPACE_TORTURE).vias
    assert again.body == SDP_OFFER


def test_udp_without_final_crlf_and_without_content_length() -> None:
    data = sipp_invite(body=b"").replace(b"Content-Length:   0\r\n\r\n", b"")
    assert data.endswith(b"Performance Test\r\nContent-Type: application/sdp\r\n")
    assert request(data).body == b""
    no_length = sipp_invite().replace(b"Content-Length:   %d\r\n" % len(SDP_OFFER), b"")
    assert b"Content-Length" not in no_length
    assert request(no_length).body == SDP_OFFER  # body to the end of the datagram
    cut = data.removesuffix(b"\r\n")  # not even the last line's CRLF
    assert request(cut).content_type is not None


def test_bare_lf_line_ends_are_accepted() -> None:
    head, _, body = sipp_invite().partition(b"\r\n\r\n")
    msg = request(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert msg.call_id == "1-4242@192.0.2.10"
    assert msg.body == SDP_OFFER


def test_udp_body_longer_than_content_length_is_cut() -> None:
    msg = request(sipp_invite() + b"garbage after the body")
    assert msg.body == SDP_OFFER  # RFC 3261 section 18.3


def test_udp_body_shorter_than_content_length_is_refused() -> None:
    data = sipp_invite()[:-10]
    err = refused(data)
    assert err.status == 400
    assert err.reason.startswith("Bad Content-Length")
    assert ("Call-ID", "1-4242@192.0.2.10") in err.headers  # enough to answer with


def test_stream_frames_must_match_content_length() -> None:
    assert request(sipp_invite(), datagram=False).body == SDP_OFFER
    assert refused(sipp_invite() + b"x", datagram=False).reason.startswith("Bad Content-Length")
    no_length = sipp_invite().replace(b"Content-Length:   %d\r\n" % len(SDP_OFFER), b"")
    assert refused(no_length, datagram=False).reason == "Missing Content-Length"


def test_response_parses() -> None:
    data = crlf(
        """
SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKivr1;received=203.0.113.5
From: <sip:ivr@203.0.113.5>;tag=ivr1
To: <sip:alice@192.0.2.10>;tag=a1
Call-ID: c1@203.0.113.5
CSeq: 2 BYE
Content-Length: 0
"""
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.cseq.method == "BYE"
    no_reason = data.replace(b"180 Ringing", b"180 ")
    assert isinstance(parse_message(no_reason), Response)


@pytest.mark.parametrize(
    ("replace", "by", "reason"),
    [
        (b"Call-ID: 1-4242@192.0.2.10\r\n", b"", "Missing Call-ID"),
        (b"CSeq: 1 INVITE", b"CSeq: one INVITE", "Bad CSeq: not 'number METHOD'"),
        (b"CSeq: 1 INVITE", b"CSeq: 1 BYE", "Bad CSeq: method is not INVITE"),
        (b";branch=z9hG4bK-4242-1-0", b"", "Bad Via: no branch"),
        (b"SIP/2.0/UDP 192.0.2.10:5061", b"SIP/3.0/UDP 192.0.2.10:5061", "Bad Via: not SIP/2.0"),
        (b"192.0.2.10:5061;branch", b"192.0.2.10:99999;branch", "Bad Via: bad port"),
        (b"From: sipp <sip:sipp@192.0.2.10:5061>", b"From: Sipp, Jr <sip:x@y>", "Bad From"),
        (b"To: +15550100 <sip:", b'To: "unbalanced <sip:', "Bad To: unterminated quoted"),
        (b"Max-Forwards: 70", b"Max-Forwards: seventy", "Bad Max-Forwards"),
        (b"Max-Forwards: 70", b"Max-Forwards: -1", "Bad Max-Forwards"),
        (b"Content-Type: application/sdp", b"Content-Type: sdp", "Bad Content-Type"),
        (b"Contact: sip:sipp@192.0.2.10:5061", b"Contact: <sip:sipp@192.0.2.10", "Bad Contact"),
        (b"Subject: Performance Test", b"Require: 100rel;x", "Bad Require"),
        (b"Subject: Performance Test", b"Via: SIP/2.0/UDP [::1;branch=z9hG4bK1", "Bad Via"),
        (b"SIP/2.0\r\n", b"SIP/7.0\r\n", "Version Not Supported: SIP/7.0"),
        (b"INVITE sip:+1", b"INVITE  sip:+1", "Bad request line"),
        (b"INVITE sip:+1", b"INVITE <sip:+1", "Bad Request-URI"),
        (b"sip:+15550100@203.0.113.5:5060 SIP", b"sip:+1555 0100@x SIP", "Bad request line"),
        (b"Subject: Performance Test", b"Call-ID: other@x", "Bad Call-ID: more than one"),
        (b"Subject: Performance Test", b"Subject\x00: x", "Bad header line"),
        (b"Subject: Performance Test", b"Subject: a\x00b", "Bad Subject: control character"),
        (b"Subject: Performance Test", b"Subject: \xff\xfe", "Bad Subject: not UTF-8"),
        (b"Subject: Performance Test", b"no colon here", "Bad header line 'no colon here'"),
        (b"Content-Length:   ", b"Content-Length: 1\r\nl: ", "Bad Content-Length: more than"),
        (b"Content-Length:   ", b"Content-Length: 1e3\r\nX: ", "Bad Content-Length: not a"),
    ],
)
def test_malformed_requests_name_the_header(replace: bytes, by: bytes, reason: str | None) -> None:
    data = sipp_invite()
    assert replace in data
    err = refused(data.replace(replace, by, 1))
    assert err.status in (400, 505)
    if reason is not None:
        assert err.reason.startswith(reason), err.reason
    assert str(err) == f"{err.status} {err.reason}"


def test_version_error_is_505() -> None:
    assert refused(sipp_invite().replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1)).status == 505


def test_a_fault_keeps_the_other_headers_for_the_error_response() -> None:
    err = refused(sipp_invite().replace(b"Subject: Performance Test", b"Subject: \xff"))
    names = [k for k, _ in err.headers]
    assert {"Via", "From", "To", "Call-ID", "CSeq"} <= set(names)
    assert "Subject" not in names
    assert err.start_line.startswith("INVITE sip:")


def test_repeated_identical_single_headers_are_tolerated() -> None:
    data = sipp_invite().replace(b"CSeq: 1 INVITE\r\n", b"CSeq: 1 INVITE\r\nCSeq: 1 INVITE\r\n")
    assert request(data).cseq.number == 1


def test_a_from_with_another_scheme_is_kept_opaque() -> None:
    data = sipp_invite().replace(b"<sip:sipp@192.0.2.10:5061>", b"<urn:service:sos>")
    uri = request(data).from_.uri
    assert (uri.scheme, uri.opaque, str(uri)) == ("urn", "service:sos", "urn:service:sos")


def test_malformed_expires_is_3600() -> None:
    data = sipp_invite().replace(b"Subject: Performance Test", b"Expires: soon")
    assert request(data).expires == 3600  # RFC 3261 section 20.19
    data = sipp_invite().replace(b"Subject: Performance Test", b"Expires: 99999999999")
    assert request(data).expires == 3600
    data = sipp_invite().replace(b"Subject: Performance Test", b"Expires: 4294967296")
    assert request(data).expires == 2**32 - 1


def test_limits() -> None:
    big = sipp_invite(body=b"x" * (64 * 1024))
    assert refused(big).status == 513
    many = sipp_invite().replace(b"Subject:", b"X-A: 1\r\n" * MAX_HEADERS + b"Subject:")
    assert refused(many).reason == f"Bad message: more than {MAX_HEADERS} headers"
    ok = sipp_invite().replace(b"Subject:", b"X-A: 1\r\n" * (MAX_HEADERS - 10) + b"Subject:")
    assert len(request(ok).headers) == MAX_HEADERS
    long_line = sipp_invite().replace(b"Performance Test", b"x" * MAX_LINE_BYTES)
    assert refused(long_line).reason == f"Bad Subject: line over {MAX_LINE_BYTES} bytes"
    folded = sipp_invite().replace(b"Performance Test", b"x\r\n " * (MAX_LINE_BYTES // 2 + 10))
    assert refused(folded).reason.startswith("Bad Subject: line over")


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\n\r\n", b"\x00" * 20, b"SIP/2.0 999 Huh\r\n\r\n", b"SIP/2.0 2000 OK\r\n\r\n"],
)
def test_garbage_is_refused(data: bytes) -> None:
    assert refused(data).status == 400


def test_status_line_out_of_range() -> None:
    data = crlf("SIP/2.0 099 Early\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\n")
    assert refused(data).reason == "Bad status line: status 099"


def test_make_request_builds_what_the_parser_reads() -> None:
    req = make_request(
        "BYE",
        parse_uri("sip:alice@192.0.2.10:5060"),
        [
            ("via", "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKb1;rport"),
            ("max-forwards", "70"),
            ("f", "<sip:ivr@203.0.113.5>;tag=t1"),
            ("t", "<sip:alice@192.0.2.10>;tag=t2"),
            ("call-id", "c1"),
            ("cseq", "2 BYE"),
            ("Content-Length", "999"),
        ],
    )
    data = serialize(req)
    assert data.startswith(b"BYE sip:alice@192.0.2.10:5060 SIP/2.0\r\nVia: ")
    assert b"\r\nFrom: <sip:ivr@203.0.113.5>;tag=t1\r\n" in data
    assert b"\r\nCall-ID: c1\r\n" in data
    assert data.endswith(b"\r\nContent-Length: 0\r\n\r\n")
    assert data.count(b"Content-Length") == 1
    assert request(data).cseq.method == "BYE"


def test_building_a_bad_message_is_our_bug() -> None:
    with pytest.raises(SipStateError, match="Missing From"):
        make_response(200, [("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")])
    with pytest.raises(SipStateError, match="cannot be sent"):
        make_response(200, [("Subject", "a\r\nInjected: 1")])
    with pytest.raises(SipStateError, match="status line cannot be sent"):
        make_response(404, [], reason="Not Found\r\nInjected: 1")
    with pytest.raises(SipStateError, match="status line cannot be sent"):
        make_response(700, [])
    resp = make_response(
        486,
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>;tag=2"),
            ("Call-ID", "c"),
            ("CSeq", "1 INVITE"),
        ],
    )
    assert resp.reason == "Busy Here"
    assert serialize(resp).startswith(b"SIP/2.0 486 Busy Here\r\n")


def test_a_built_list_header_stays_on_one_line() -> None:
    resp = make_response(
        200,
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>;tag=2"),
            ("Call-ID", "c"),
            ("CSeq", "1 OPTIONS"),
            ("Allow", "INVITE, ACK, BYE"),
        ],
    )
    assert resp.allow == ("INVITE", "ACK", "BYE")
    assert b"\r\nAllow: INVITE, ACK, BYE\r\n" in serialize(resp)


def test_typed_values_print_back() -> None:
    msg = request(linphone_invite())
    assert str(msg.from_) == '"Bob" <sip:bob@sip.linphone.org>;tag=Qm7vN~3xZ'
    assert str(msg.content_type) == "application/sdp"
    assert str(msg.top_via) == msg.top_via.raw
    quoted = request(sipp_invite().replace(b"From: sipp <", b'From: "a \\"b\\"" <'))
    assert str(quoted.from_).startswith('"a \\"b\\"" <sip:')


@pytest.mark.parametrize(
    "via",
    [
        b"SIP/2.0/U@P 192.0.2.10:5061",
        b"SIP/2.0/UDP 192.0.2.10/x:5061",
        b"SIP/2.0/UDP host:5061 extra",
    ],
)
def test_bad_vias(via: bytes) -> None:
    err = refused(sipp_invite().replace(b"SIP/2.0/UDP 192.0.2.10:5061", via))
    assert err.reason.startswith("Bad Via")
