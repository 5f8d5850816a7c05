"""Hostile bytes: the parser raises BadMessage and nothing else, quickly, whatever arrives.

A corpus in the spirit of RFC 4475 (SIP Torture Test Messages), with our own
bytes, then truncations of real traffic at every byte, then hypothesis with
random and mutated messages.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.transport.sip.errors import BadMessage
from ivr.transport.sip.message import Request, Response, parse_message, serialize
from ivr.transport.sip.uri import parse_uri
from tests.ivr.transport.sip.wire import (
    baresip_invite,
    crlf,
    linphone_invite,
    sipp_ack,
    sipp_invite,
    trunk_invite,
)

TRAFFIC = [sipp_invite(), baresip_invite(), linphone_invite(), trunk_invite(), sipp_ack("t1")]

HEAD = """
OPTIONS sip:ivr@203.0.113.5 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-torture
From: <sip:t@example.com>;tag=1
To: <sip:ivr@203.0.113.5>
Call-ID: torture@192.0.2.1
CSeq: 1 OPTIONS
Max-Forwards: 70
"""


def parse_or_refuse(data: bytes, *, datagram: bool = True) -> Request | Response | BadMessage:
    try:
        return parse_message(data, datagram=datagram)
    except BadMessage as exc:
        error = exc
    assert 400 <= error.status < 600
    assert error.reason
    return error


# (what it tests, the message, the status expected or None for "parses")
CORPUS: list[tuple[str, bytes, int | None]] = [
    ("valid escaped user", crlf(HEAD.replace("sip:ivr@", "sip:%69vr@", 1)), None),
    ("unknown header with odd value", crlf(HEAD + "X-Odd: ;;,,;;,;"), None),
    ("unusual reason phrase", crlf(HEAD.replace("OPTIONS sip:ivr@203.0.113.5 SIP/2.0", "x")), 400),
    ("semicolon user", crlf(HEAD.replace("sip:ivr@", "sip:user;par=u%40example.net@", 1)), None),
    ("long values", crlf(HEAD + "X-Long: " + "a" * 8000), None),
    ("extension method", crlf(HEAD.replace("OPTIONS", "NEWMETHOD")), None),
    (
        "method with token chars",
        crlf(HEAD.replace("OPTIONS", "!interesting-Method0123456789_*+`.%indeed'~")),
        None,
    ),
    ("IPv6 everywhere", crlf(HEAD.replace("192.0.2.1", "[2001:db8::9:1]")), None),
    (
        "multiple values in From",
        crlf(
            HEAD.replace(
                "From: <sip:t@example.com>;tag=1", "From: <sip:a@x>;tag=1, <sip:b@x>;tag=2"
            )
        ),
        400,
    ),
    ("two Content-Lengths", crlf(HEAD + "Content-Length: 0\nl: 4", b"abcd"), 400),
    ("negative Content-Length", crlf(HEAD + "Content-Length: {length}", content_length=-999), 400),
    ("huge Content-Length", crlf(HEAD + "Content-Length: {length}", content_length=10**20), 400),
    ("huge CSeq", crlf(HEAD.replace("CSeq: 1 OPTIONS", "CSeq: 36893488147419103232 OPTIONS")), 400),
    ("unterminated quote in To", crlf(HEAD.replace("To: <sip:", 'To: "Mr. J. User <sip:')), 400),
    (
        "<> around the Request-URI",
        crlf(HEAD.replace("OPTIONS sip:ivr@203.0.113.5", "OPTIONS <sip:ivr@203.0.113.5>")),
        400,
    ),
    (
        "LWS in the Request-URI",
        crlf(HEAD.replace("sip:ivr@203.0.113.5 SIP", "sip:ivr @203.0.113.5 SIP", 1)),
        400,
    ),
    ("LWS before the method", crlf(HEAD.replace("OPTIONS sip", " OPTIONS sip", 1)), 400),
    ("trailing LWS in the request line", crlf(HEAD.replace("SIP/2.0\n", "SIP/2.0 \n", 1)), 400),
    (
        "spaces in an addr-spec",
        crlf(HEAD.replace("To: <sip:ivr@203.0.113.5>", "To: sip:ivr@203.0.113.5 x")),
        400,
    ),
    (
        "unquoted display name with separators",
        crlf(HEAD.replace("From: <", "From: Bell; Alexander <")),
        400,
    ),
    ("SIP/7.0", crlf(HEAD.replace("SIP/2.0\n", "SIP/7.0\n", 1)), 505),
    ("CSeq method mismatch", crlf(HEAD.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")), 400),
    (
        "status code too big",
        crlf("SIP/2.0 4294967301 better not break the receiver\n" + HEAD.split("\n", 2)[2]),
        400,
    ),
    ("missing Call-ID", crlf(HEAD.replace("Call-ID: torture@192.0.2.1\n", "")), 400),
    ("missing CSeq", crlf(HEAD.replace("CSeq: 1 OPTIONS\n", "")), 400),
    ("missing From", crlf(HEAD.replace("From: <sip:t@example.com>;tag=1\n", "")), 400),
    ("missing To", crlf(HEAD.replace("To: <sip:ivr@203.0.113.5>\n", "")), 400),
    (
        "missing Via",
        crlf(HEAD.replace("Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-torture\n", "")),
        400,
    ),
    ("Via without branch", crlf(HEAD.replace(";branch=z9hG4bK-torture", "")), 400),
    (
        "unknown scheme Request-URI parses (the core answers 416)",
        crlf(HEAD.replace("sip:ivr@203.0.113.5 SIP", "soap.beep://192.0.2.1:3002 SIP", 1)),
        None,
    ),
    ("bad Via port", crlf(HEAD.replace("192.0.2.1;branch", "192.0.2.1:70000;branch")), 400),
    ("NUL in a value", crlf(HEAD + "Subject: a\x00b"), 400),
    ("bare CR in a value", crlf(HEAD + "Subject: a\rb"), 400),
    ("colon-less line", crlf(HEAD + "garbage"), 400),
    ("empty header name", crlf(HEAD + ": value"), 400),
]


@pytest.mark.parametrize(("what", "data", "status"), CORPUS, ids=[c[0] for c in CORPUS])
def test_torture_corpus(what: str, data: bytes, status: int | None) -> None:
    result = parse_or_refuse(data)
    if status is None:
        assert not isinstance(result, BadMessage), result
        assert parse_message(serialize(result)) == parse_message(serialize(result))
    else:
        assert isinstance(result, BadMessage), what
        assert result.status == status


def test_unknown_scheme_request_uri_is_kept() -> None:
    data = crlf(HEAD.replace("sip:ivr@203.0.113.5 SIP", "soap.beep://192.0.2.1:3002 SIP", 1))
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.uri.scheme == "soap.beep"


@pytest.mark.parametrize("data", TRAFFIC)
def test_every_truncation_parses_or_is_refused(data: bytes) -> None:
    for cut in range(len(data)):
        parse_or_refuse(data[:cut])
        parse_or_refuse(data[:cut], datagram=False)


@pytest.mark.parametrize(
    "filler",
    [b'"', b"<", b";", b",", b"\\", b"a", b"%", b"\t", b" ;", b"<sip:", b'"\\', b"\r\n "],
)
def test_pathological_values_are_fast(filler: bytes) -> None:
    base = sipp_invite(body=b"")
    for header in (b"Via: ", b"From: ", b"Contact: ", b"CSeq: ", b"Subject: "):
        data = base.replace(header, header + filler * (7000 // len(filler)), 1)
        started = time.perf_counter()
        parse_or_refuse(data)
        assert time.perf_counter() - started < 0.5, (header, filler)


def test_a_request_uri_with_every_byte() -> None:
    for byte in range(256):
        text = "sip:a" + bytes([byte]).decode("latin-1") + "b@h"
        with contextlib.suppress(ValueError):  # Invalid: any other type escapes the test
            parse_uri(text)


SLOW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    parse_or_refuse(data)
    parse_or_refuse(data, datagram=False)


@SLOW
@given(
    st.sampled_from(TRAFFIC),
    st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 255), st.sampled_from("rid")), max_size=8
    ),
)
def test_mutated_traffic(data: bytes, edits: list[tuple[int, int, str]]) -> None:
    buf = bytearray(data)
    for at, byte, kind in edits:
        at %= len(buf) + 1
        if kind == "r" and at < len(buf):
            buf[at] = byte
        elif kind == "i":
            buf.insert(at, byte)
        elif at < len(buf):
            del buf[at]
    parse_or_refuse(bytes(buf))


PIECES = [
    "INVITE sip:x@h SIP/2.0",
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
    "v: SIP/2.0/TCP [::1]:5;rport",
    "From: <sip:a@h>;tag=1",
    'f: "x\\"" <sip:a@h>',
    "To: sip:b@h",
    "t: <sip:b@h>;tag=",
    "Call-ID: c",
    "i: c@h",
    "CSeq: 1 INVITE",
    "CSeq: 4294967296 INVITE",
    "Max-Forwards: 0",
    "Content-Length: 3",
    "l: 0",
    "Contact: *",
    "m: <sip:c@h>, <sip:d@h>;q=0.1",
    "Route: <sip:p;lr>",
    "Expires: x",
    "Require: 100rel",
    "k: ",
    "c: application/sdp",
    "Allow: INVITE, ,ACK",
    " folded",
    "\t",
    "",
    "x",
    ":",
    "Via:",
    ";;;",
    '"',
    "<",
    ">",
    ",",
]


@SLOW
@given(st.lists(st.sampled_from(PIECES), max_size=25), st.sampled_from(["\r\n", "\n", "\r"]))
def test_header_soup(pieces: list[str], eol: str) -> None:
    data = eol.join(pieces).encode()
    result = parse_or_refuse(data)
    if not isinstance(result, BadMessage):
        assert isinstance(parse_message(serialize(result)), type(result))
