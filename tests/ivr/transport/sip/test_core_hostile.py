"""The core never raises for what arrives, and a call in progress does not notice.

Each hostile message gets its error response or is dropped and counted;
then the call that was up the whole time still hangs up normally.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.transport.sip.events import (
    AckReceived,
    ByeReceived,
    Endpoint,
    IncomingCall,
    InfoReceived,
)
from ivr.transport.sip.message import Response
from tests.ivr.transport.sip.harness import Harness, only, response
from tests.ivr.transport.sip.test_parser_hostile import CORPUS
from tests.ivr.transport.sip.wire import (
    SDP_ANSWER,
    baresip_invite,
    linphone_invite,
    sipp_ack,
    sipp_cancel,
    sipp_in_dialog,
    sipp_invite,
    trunk_invite,
)

ATTACKER = ("198.51.100.66", 5060)


def call_up(h: Harness) -> str:
    h.udp(sipp_invite())
    call = h.incoming().call
    h.core.answer(call, SDP_ANSWER, h.now)
    h.drain()
    h.udp(sipp_ack(call))
    h.take()
    assert h.take_events() == [AckReceived(call, None)]
    return call


def still_up(h: Harness, call: str) -> None:
    """The call takes an INFO, then hangs up, as if nothing had happened."""
    h.take()
    h.take_events()
    info = sipp_in_dialog("INFO", call, cseq=50, branch="i50", body=b"Signal=1\r\n",
                          content_type="application/dtmf-relay")  # fmt: skip
    h.udp(info)
    assert [response(s).status for s in h.take()] == [200]
    assert h.take_events() == [InfoReceived(call, "application/dtmf-relay", b"Signal=1\r\n")]
    h.udp(sipp_in_dialog("BYE", call, cseq=51, branch="b51"))
    assert [response(s).status for s in h.take()] == [200]
    assert h.take_events() == [ByeReceived(call)]


def test_the_torture_corpus_is_answered_or_dropped_and_counted() -> None:
    h = Harness()
    call = call_up(h)
    for what, data, status in CORPUS:
        before = dict(h.core.counters)
        h.udp(data, ATTACKER)
        sent = h.wire[:]
        h.wire.clear()
        h.take()
        if status is None:
            continue  # a valid message: the core answers it as it would any other
        counted = {k for k in h.core.counters if h.core.counters[k] != before.get(k, 0)}
        assert counted & {"answered_malformed", "dropped_malformed"}, what
        if "answered_malformed" in counted:
            ((data_out, where),) = sent
            assert data_out.startswith(f"SIP/2.0 {status} ".encode()), (what, data_out[:60])
            assert where == Endpoint(*ATTACKER)
        else:
            assert sent == [], what
    assert h.take_events() == []
    still_up(h, call)


def test_unknown_and_torn_traffic_beside_a_call() -> None:
    h = Harness()
    call = call_up(h)
    noise = [
        sipp_invite(7)[:120],
        sipp_invite(7).replace(b"INVITE", b"INVITE", 1)[:-3],
        sipp_cancel(9),
        sipp_in_dialog("BYE", "not-ours", 9),
        sipp_ack("not-ours", 9),
        b"OPTIONS sip:ivr SIP/2.0\r\n\r\n",
        b"\x00" * 100,
        b"INVITE sip:x@y SIP/2.0\r\n" + b"X: y\r\n" * 200,
        bytes(range(256)) * 10,
        b"SIP/2.0 200 OK\r\n\r\n",
    ]
    for data in noise:
        h.udp(data, ATTACKER)
    assert h.core.active_calls == 1
    still_up(h, call)


def test_a_flood_of_new_calls_is_just_calls() -> None:
    h = Harness()
    call = call_up(h)
    for n in range(2, 60):
        h.udp(sipp_invite(n), ATTACKER)
    assert h.core.active_calls == 59
    for event in h.take_events():
        assert isinstance(event, IncomingCall)
        h.core.reject(event.call, 503, h.now, headers=(("Retry-After", "5"),))
    h.drain()
    assert h.core.active_calls == 1
    still_up(h, call)


SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRAFFIC = [sipp_invite(3), baresip_invite(), linphone_invite(), trunk_invite(), sipp_cancel(3)]


@SLOW
@given(st.lists(st.binary(max_size=400), max_size=5))
def test_random_datagrams_never_raise(datagrams: list[bytes]) -> None:
    h = Harness()
    call = call_up(h)
    for data in datagrams:
        h.udp(data, ATTACKER)
    still_up(h, call)


@SLOW
@given(
    st.sampled_from(TRAFFIC),
    st.lists(
        st.tuples(st.integers(0, 1500), st.integers(0, 255), st.sampled_from("rid")), max_size=6
    ),
)
def test_mutated_traffic_never_raises(data: bytes, edits: list[tuple[int, int, str]]) -> None:
    h = Harness()
    call = call_up(h)
    buf = bytearray(data)
    for at, byte, kind in edits:
        at %= len(buf) + 1
        if kind == "r" and at < len(buf):
            buf[at] = byte
        elif kind == "i":
            buf.insert(at, byte)
        elif at < len(buf):
            del buf[at]
    h.udp(bytes(buf), ATTACKER)
    h.udp(bytes(buf), ATTACKER)  # and its retransmission
    # whatever it started, answer it so that no transaction is left hanging
    for event in h.take_events():
        assert event.call != call  # nothing of the noise reached our call
        if isinstance(event, IncomingCall):
            h.core.reject(event.call, 486, h.now)
    h.drain()
    h.advance(40)  # every timer of the noise runs out
    still_up(h, call)


@SLOW
@given(st.binary(max_size=800), st.integers(1, 64))
def test_random_streams_never_raise(data: bytes, chunk: int) -> None:
    h = Harness()
    call = call_up(h)
    source = Endpoint("198.51.100.66", 40404, "TCP", 1)
    for i in range(0, len(data), chunk):
        h.stream(data[i : i + chunk], source)
    for sent, _ in h.take():
        assert isinstance(sent, Response)
    still_up(h, call)


def test_only_the_first_of_duplicated_single_headers_is_echoed() -> None:
    h = Harness()
    h.udp(sipp_invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 INVITE\r\nCSeq: 2 INVITE"), ATTACKER)
    reply = only(h.take())
    assert response(reply).reason == "Bad CSeq: more than one"
    assert response(reply).cseq.number == 1
