"""Offer/answer (RFC 3264): our answers to real-looking offers, holds, our own offer."""

from __future__ import annotations

import pytest

from ivr.transport.rtp.errors import InvalidField, NoCommonCodec, OfferAnswerError
from ivr.transport.rtp.events import parse_event_list, render_event_list
from ivr.transport.rtp.negotiation import (
    LocalSession,
    answer,
    choose_ptime,
    offer,
    take_answer,
)
from ivr.transport.rtp.sdp import parse_sdp
from tests.ivr.transport.rtp.offers import (
    BARESIP,
    HOLD_INACTIVE,
    HOLD_RFC2543,
    HOLD_SENDONLY,
    LINPHONE,
    RESUME,
    SIPP_UAC,
    SIPP_UAC_PCAP,
    crlf,
    sipp_reinvite,
)

OURS = LocalSession(session_id=4242, version=1, address="203.0.113.7", username="ivr")


def test_the_answer_to_sipp_is_these_bytes() -> None:
    result = answer(parse_sdp(SIPP_UAC), OURS, address="203.0.113.7", port=40000)
    assert result.body == crlf("""
v=0
o=ivr 4242 1 IN IP4 203.0.113.7
s=-
c=IN IP4 203.0.113.7
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
""")
    stream = result.stream
    assert stream is not None
    assert (stream.codec, stream.payload_type, stream.event_payload_type) == ("pcmu", 0, None)
    assert (stream.remote_address, stream.remote_port, stream.remote_rtcp_port) == (
        "10.0.0.5",
        6000,
        6001,
    )
    assert (stream.send, stream.receive, stream.ptime_ms) == (True, True, 20)
    assert stream.formats == {0: "pcmu"}


def test_sipp_pcap_gets_pcma_and_its_telephone_event_number_with_the_events_we_take() -> None:
    result = answer(parse_sdp(SIPP_UAC_PCAP), OURS, address="203.0.113.7", port=40000)
    media = result.sdp.media[0]
    assert media.formats == ("8", "101")
    assert media.values("rtpmap") == ["8 PCMA/8000", "101 telephone-event/8000"]
    assert media.values("fmtp") == ["101 0-11,16"]  # 0-11 and flash: all ours to take
    stream = result.stream
    assert stream is not None
    assert (stream.codec, stream.payload_type, stream.event_payload_type) == ("pcma", 8, 101)
    assert stream.peer_events == frozenset(range(12))  # flash is not a digit we would send
    assert stream.formats == {8: "pcma", 101: "telephone-event"}


def test_baresip_keeps_its_order_without_what_we_cannot_take() -> None:
    result = answer(parse_sdp(BARESIP), OURS, address="203.0.113.7", port=40000)
    media = result.sdp.media[0]
    assert media.formats == ("0", "8", "101")  # opus and G.722 left out, order kept
    assert not media.has("rtcp-mux")  # RTCP stays on its own port
    stream = result.stream
    assert stream is not None
    assert (stream.codec, stream.payload_type) == ("pcmu", 0)
    assert stream.remote_rtcp_port == 10771


def test_linphone_gets_pcma_first_telephone_event_at_8khz_and_its_video_refused() -> None:
    result = answer(parse_sdp(LINPHONE), OURS, address="203.0.113.7", port=40000)
    audio, video = result.sdp.media
    assert audio.formats == ("8", "0", "101")  # 102 and 100 are telephone-event at 48 and 16 kHz
    assert audio.values("fmtp") == ["101 0-15"]  # no fmtp offered: 0-15 (RFC 4733 section 2.4)
    assert (video.media, video.port, video.formats) == ("video", 0, ("96", "97"))
    assert video.attributes == ()
    stream = result.stream
    assert stream is not None
    assert (stream.codec, stream.event_payload_type, stream.remote_rtcp_port) == ("pcma", 101, 7079)
    assert stream.media_index == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("a=ptime:10", 10),
        ("a=ptime:20", 20),
        ("a=ptime:30", 30),
        ("a=ptime:40", 40),
        ("a=ptime:60", 40),
        ("a=ptime:5", 10),
        ("a=ptime:30\na=maxptime:20", 20),
        ("a=maxptime:40", 20),
        ("a=maxptime:10", 10),
        ("", 20),
    ],
)
def test_ptime_and_maxptime_of_the_offer_set_ours(extra: str, expected: int) -> None:
    body = SIPP_UAC + crlf(extra) if extra else SIPP_UAC
    result = answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)
    assert result.stream is not None
    assert result.stream.ptime_ms == expected
    assert result.sdp.media[0].values("ptime") == ["20"]  # what we want to receive


def test_a_session_level_ptime_is_taken() -> None:
    body = SIPP_UAC.replace(b"t=0 0\r\n", b"t=0 0\r\na=ptime:30\r\n")
    result = answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)
    assert result.stream is not None
    assert result.stream.ptime_ms == 30


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (SIPP_UAC.replace(b"RTP/AVP 0", b"RTP/SAVP 0"), "transport RTP/SAVP is not RTP/AVP"),
        (SIPP_UAC.replace(b"RTP/AVP 0", b"RTP/AVP 18").replace(b"0 PCMU", b"18 G729"), "no PCMU"),
        (SIPP_UAC.replace(b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:0 PCMU/16000"), "no PCMU"),
        (SIPP_UAC.replace(b"m=audio 6000", b"m=audio 0"), "disabled by the offerer"),
        (SIPP_UAC.replace(b"m=audio", b"m=video"), "not audio"),
        (crlf("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0"), "no m-line"),
    ],
)
def test_an_offer_with_nothing_we_can_take_is_no_common_codec(body: bytes, why: str) -> None:
    with pytest.raises(NoCommonCodec, match=why):
        answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)


def test_a_second_audio_stream_is_refused_in_place() -> None:
    body = SIPP_UAC + crlf("m=audio 6002 RTP/AVP 8\nm=audio 6004 RTP/SAVP 0")
    result = answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)
    assert [(m.port, m.proto, m.formats) for m in result.sdp.media] == [
        (40000, "RTP/AVP", ("0",)),
        (0, "RTP/AVP", ("8",)),
        (0, "RTP/SAVP", ("0",)),
    ]


def test_a_disabled_first_audio_leaves_the_second_to_take() -> None:
    body = SIPP_UAC.replace(b"m=audio 6000", b"m=audio 0") + crlf("m=audio 6002 RTP/AVP 8")
    result = answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)
    assert [m.port for m in result.sdp.media] == [0, 40000]
    assert result.stream is not None
    assert (result.stream.codec, result.stream.media_index) == ("pcma", 1)


@pytest.mark.parametrize(
    ("offer_body", "ours", "send", "receive"),
    [
        (HOLD_SENDONLY, "recvonly", False, True),  # RFC 3264 section 8.4
        (HOLD_INACTIVE, "inactive", False, False),
        (HOLD_RFC2543, "recvonly", False, True),  # c=0.0.0.0: we send nothing there
        (RESUME, "sendrecv", True, True),
        (sipp_reinvite(7, direction="recvonly"), "sendonly", True, False),
        (sipp_reinvite(7, direction="inactive", address="0.0.0.0"), "inactive", False, False),
    ],
)
def test_hold_in_all_three_forms_is_answered_and_we_stop_sending(
    offer_body: bytes, ours: str, send: bool, receive: bool
) -> None:
    result = answer(parse_sdp(offer_body), OURS, address="203.0.113.7", port=40000)
    assert result.sdp.media[0].values(ours) == [""]
    assert result.sdp.direction(result.sdp.media[0]) == ours
    stream = result.stream
    assert stream is not None
    assert (stream.direction, stream.send, stream.receive) == (ours, send, receive)
    if offer_body is HOLD_RFC2543:
        assert stream.remote_address is None


def test_our_own_hold_narrows_the_answer() -> None:
    result = answer(
        parse_sdp(SIPP_UAC), OURS, address="203.0.113.7", port=40000, direction="sendonly"
    )
    assert result.stream is not None
    assert (result.stream.direction, result.stream.send, result.stream.receive) == (
        "sendonly",
        True,
        False,
    )
    with pytest.raises(InvalidField):
        answer(parse_sdp(SIPP_UAC), OURS, address="h", port=1, direction="sideways")


def test_the_version_rises_only_when_our_sdp_changes() -> None:
    first = answer(parse_sdp(sipp_reinvite(1, direction=None)), OURS, address="203.0.113.7", port=4)
    assert first.sdp.origin.session_version == 1
    # A refresh re-INVITE with the same SDP (only its own version moved): same answer.
    refresh = parse_sdp(sipp_reinvite(2, direction=None))
    again = answer(refresh, first.session, address="203.0.113.7", port=4)
    assert again.body == first.body
    assert again.session == first.session
    # Hold: our answer changes, so its version goes up by one, the session id stays.
    held = answer(parse_sdp(HOLD_SENDONLY), again.session, address="203.0.113.7", port=4)
    assert (held.sdp.origin.session_id, held.sdp.origin.session_version) == (4242, 2)
    resumed = answer(parse_sdp(RESUME), held.session, address="203.0.113.7", port=4)
    assert resumed.sdp.origin.session_version == 3
    assert resumed.body.replace(b" 3 IN", b" 1 IN") == first.body


def test_our_delayed_offer_is_these_bytes() -> None:
    ours = offer(OURS, address="203.0.113.7", port=40000)
    assert ours.stream is None
    assert ours.body == crlf("""
v=0
o=ivr 4242 1 IN IP4 203.0.113.7
s=-
c=IN IP4 203.0.113.7
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")


def test_an_ipv6_address_is_written_as_ip6() -> None:
    ours = offer(LocalSession(1, 1, "2001:db8::7"), address="2001:db8::7", port=4000)
    assert b"c=IN IP6 2001:db8::7\r\n" in ours.body


ASTERISK_ANSWER = crlf("""
v=0
o=- 1700000000 1700000001 IN IP4 198.51.100.9
s=Asterisk
c=IN IP4 198.51.100.9
t=0 0
m=audio 12000 RTP/AVP 8 96
a=rtpmap:8 PCMA/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-16
a=ptime:30
a=maxptime:150
a=sendrecv
""")


def test_taking_an_answer_uses_its_numbers_to_send_and_ours_to_receive() -> None:
    ours = offer(OURS, address="203.0.113.7", port=40000)
    stream = take_answer(ours.sdp, parse_sdp(ASTERISK_ANSWER))
    assert (stream.codec, stream.payload_type, stream.event_payload_type) == ("pcma", 8, 96)
    assert stream.formats == {8: "pcma", 101: "telephone-event"}  # the peer sends with ours
    assert stream.peer_events == frozenset(range(16))
    assert (stream.ptime_ms, stream.remote_address, stream.remote_port) == (
        30,
        "198.51.100.9",
        12000,
    )
    assert (stream.send, stream.receive) == (True, True)


def test_a_held_answer_stops_our_sending() -> None:
    ours = offer(OURS, address="203.0.113.7", port=40000)
    held = ASTERISK_ANSWER.replace(b"a=sendrecv", b"a=recvonly")
    assert take_answer(ours.sdp, parse_sdp(held)).send
    held = ASTERISK_ANSWER.replace(b"a=sendrecv", b"a=inactive")
    stream = take_answer(ours.sdp, parse_sdp(held))
    assert (stream.send, stream.receive) == (False, False)


@pytest.mark.parametrize(
    ("change", "error", "why"),
    [
        ((b"m=audio 12000", b"m=audio 0"), NoCommonCodec, "rejected our audio"),
        ((b"RTP/AVP 8 96", b"RTP/AVP 18 96"), NoCommonCodec, "none of our codecs"),
        ((b"m=audio", b"m=video"), OfferAnswerError, "m-line 1 is video"),
        ((b"a=sendrecv", b"a=sendrecv\r\nm=video 0 RTP/AVP 96"), OfferAnswerError, "2 m-lines"),
    ],
)
def test_an_answer_that_does_not_fit_is_refused(
    change: tuple[bytes, bytes], error: type[Exception], why: str
) -> None:
    ours = offer(OURS, address="203.0.113.7", port=40000)
    with pytest.raises(error, match=why):
        take_answer(ours.sdp, parse_sdp(ASTERISK_ANSWER.replace(*change)))


@pytest.mark.parametrize(
    ("value", "events"),
    [
        (None, set(range(16))),
        ("0-15", set(range(16))),
        ("0-11,16", {*range(12), 16}),
        ("0-15, 66,70", {*range(16), 66, 70}),
        ("x,3", {3}),
        ("", set()),
    ],
)
def test_event_lists_are_read_as_rfc4733_ranges(value: str | None, events: set[int]) -> None:
    assert parse_event_list(value) == frozenset(events)
    if events:
        assert parse_event_list(render_event_list(frozenset(events))) == frozenset(events)


def test_event_lists_are_written_as_ranges() -> None:
    assert render_event_list(frozenset({*range(12), 16})) == "0-11,16"
    assert render_event_list(frozenset({3, 5, 6, 7})) == "3,5-7"


def test_an_offer_of_events_we_do_not_take_drops_telephone_event() -> None:
    body = SIPP_UAC_PCAP.replace(b"0-11,16", b"32-41")
    result = answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)
    assert result.sdp.media[0].formats == ("8",)
    assert result.stream is not None
    assert result.stream.event_payload_type is None


def test_choose_ptime_prefers_ours_when_the_peer_says_nothing() -> None:
    assert choose_ptime(None, None) == 20
    assert choose_ptime(None, 10) == 10
    assert choose_ptime(25, None) == 20


def test_comfort_noise_offered_is_answered_so_the_peer_may_use_it() -> None:
    body = SIPP_UAC.replace(b"RTP/AVP 0", b"RTP/AVP 0 13")
    result = answer(parse_sdp(body), OURS, address="203.0.113.7", port=40000)
    assert result.sdp.media[0].formats == ("0", "13")
    assert result.sdp.media[0].values("rtpmap") == ["0 PCMU/8000", "13 CN/8000"]
    assert result.stream is not None
    assert result.stream.formats == {0: "pcmu", 13: "cn"}


def test_a_reinvite_keeps_the_legs_codec_when_the_offer_still_has_it() -> None:
    body = SIPP_UAC.replace(b"RTP/AVP 0", b"RTP/AVP 0 8")
    kept = answer(parse_sdp(body), OURS, address="203.0.113.7", port=4, keep_codec="pcma")
    assert kept.sdp.media[0].formats == ("0", "8")  # the offer's order stays in the answer
    assert kept.stream is not None
    assert (kept.stream.codec, kept.stream.payload_type) == ("pcma", 8)
    fresh = answer(parse_sdp(body), OURS, address="203.0.113.7", port=4)
    assert fresh.stream is not None
    assert fresh.stream.codec == "pcmu"
