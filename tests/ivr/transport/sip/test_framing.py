"""Framing on a stream: Content-Length separates messages, CRLF keep-alives (RFC 5626 3.5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.transport.sip.errors import BadMessage
from ivr.transport.sip.framing import Ping, StreamParser
from ivr.transport.sip.message import Request, parse_message
from tests.ivr.transport.sip.wire import SDP_OFFER, linphone_invite, sipp_ack, sipp_invite


def test_two_messages_in_one_read_and_one_in_many() -> None:
    parser = StreamParser()
    a, b = linphone_invite(), sipp_ack("t1")
    assert parser.feed(a + b) == [a, b]
    pieces = [a[i : i + 7] for i in range(0, len(a), 7)]
    out = [item for piece in pieces for item in parser.feed(piece)]
    assert out == [a]
    msg = parse_message(a, datagram=False)
    assert isinstance(msg, Request)
    assert msg.body == SDP_OFFER
    assert parser.buffered_bytes == 0


def test_keepalives() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r\n\r\n") == [Ping()]
    assert parser.feed(b"\r\n") == []  # wait: a ping or a CRLF before a message?
    assert parser.feed(b"\r\n") == [Ping()]
    invite = sipp_invite()
    assert parser.feed(b"\r\n" + invite) == [invite]  # a lone CRLF before a message is ignored
    assert parser.feed(b"\r\n\r\n\r\n\r\n") == [Ping(), Ping()]


def test_a_message_cut_in_its_body_waits() -> None:
    parser = StreamParser()
    invite = sipp_invite()
    assert parser.feed(invite[:-5]) == []
    assert parser.feed(invite[-5:] + b"\r\n\r\n") == [invite, Ping()]


def test_a_bad_header_other_than_content_length_still_frames() -> None:
    parser = StreamParser()
    broken = sipp_invite().replace(b"Subject: Performance Test", b"Subject: \xff")
    assert parser.feed(broken) == [broken]
    with pytest.raises(BadMessage, match="Bad Subject: not UTF-8"):
        parse_message(broken, datagram=False)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            sipp_invite().replace(b"Content-Length:   %d" % len(SDP_OFFER), b"X: 1"),
            "Missing Content",
        ),
        (sipp_invite().replace(b"Content-Length:   ", b"Content-Length: x"), "Bad Content-Length"),
        (sipp_invite().replace(b"Content-Length:   ", b"l: 1\r\nContent-Length: "), "Bad Content"),
        (
            sipp_invite().replace(b"Content-Length:   %d" % len(SDP_OFFER), b"l: 70000"),
            "Message Too",
        ),
    ],
)
def test_framing_errors_break_the_stream_for_good(data: bytes, reason: str) -> None:
    parser = StreamParser()
    with pytest.raises(BadMessage, match=reason) as info:
        parser.feed(data)
    assert ("Call-ID", "1-4242@192.0.2.10") in info.value.headers  # enough for a 400
    with pytest.raises(BadMessage):
        parser.feed(sipp_invite())  # nothing more can be read on this connection


def test_endless_headers_are_cut_at_the_limit() -> None:
    parser = StreamParser(max_message_bytes=4096)
    parser.feed(b"INVITE sip:x@h SIP/2.0\r\n")
    for _ in range(96):  # 24 + 96 * 42 bytes: just under 4 KiB
        assert parser.feed(b"X-Filler: " + b"y" * 30 + b"\r\n") == []
    with pytest.raises(BadMessage) as info:
        parser.feed(b"X-Filler: " + b"y" * 30 + b"\r\n")
    assert info.value.status == 513


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 50))
def test_random_streams_raise_only_bad_message(data: bytes, chunk: int) -> None:
    parser = StreamParser(max_message_bytes=1024)
    try:
        for i in range(0, len(data), chunk):
            for item in parser.feed(data[i : i + chunk]):
                assert isinstance(item, bytes | Ping)
    except BadMessage as exc:
        assert exc.status in (400, 513)  # noqa: PT017
