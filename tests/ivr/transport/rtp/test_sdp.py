"""SDP (RFC 4566): tolerant parsing that names bad lines, strict building."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.transport.rtp.errors import SdpError
from ivr.transport.rtp.sdp import (
    MAX_SDP_BYTES,
    Attribute,
    Connection,
    Origin,
    RtpMap,
    parse_ms,
    parse_sdp,
)
from tests.ivr.transport.rtp.offers import BARESIP, LINPHONE, SIPP_UAC, SIPP_UAC_PCAP


def test_sipps_offer_parses_to_its_fields() -> None:
    sdp = parse_sdp(SIPP_UAC_PCAP)
    assert sdp.origin == Origin("user1", 53655765, 2353687637, "10.0.0.5")
    assert sdp.connection == Connection("10.0.0.5")
    assert sdp.name == "-"
    assert sdp.times == ("0 0",)
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        6000,
        "RTP/AVP",
        ("8", "101"),
    )
    assert audio.rtpmaps() == {8: RtpMap("PCMA", 8000), 101: RtpMap("telephone-event", 8000)}
    assert audio.fmtps() == {"101": "0-11,16"}
    assert sdp.direction(audio) == "sendrecv"


def test_lf_and_crlf_bodies_parse_alike() -> None:
    assert parse_sdp(BARESIP) == parse_sdp(BARESIP.replace(b"\n", b"\r\n"))
    assert parse_sdp(SIPP_UAC) == parse_sdp(SIPP_UAC.replace(b"\r\n", b"\n"))


def test_unknown_attributes_and_lines_are_kept_in_order() -> None:
    sdp = parse_sdp(BARESIP)
    audio = sdp.media[0]
    names = [a.name for a in audio.attributes]
    assert names[-4:] == ["label", "rtcp-mux", "ssrc", "ptime"]
    assert Attribute("ssrc", "1402355327 cname:b5f3d8c3-8d7a-4f3b") in audio.attributes
    assert audio.other == (("b", "AS:128"),)
    assert audio.values("PTIME") == ["20"]


def test_session_attributes_and_a_second_stream() -> None:
    sdp = parse_sdp(LINPHONE)
    assert [a.name for a in sdp.attributes] == ["rtcp-xr", "record"]
    assert [m.media for m in sdp.media] == ["audio", "video"]
    assert sdp.media[0].rtpmaps()[102] == RtpMap("telephone-event", 48000)
    assert sdp.media[0].rtpmaps()[96] == RtpMap("opus", 48000, 2)


def test_any_line_order_within_a_media_section() -> None:
    body = (
        b"v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\n"
        b"m=audio 4000 RTP/AVP 0\na=sendonly\nc=IN IP4 10.1.1.1\nb=AS:64\n"
    )
    sdp = parse_sdp(body)
    assert sdp.media[0].connection == Connection("10.1.1.1")
    assert sdp.direction(sdp.media[0]) == "sendonly"


def test_missing_s_and_t_lines_are_defaulted() -> None:
    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 h\r\nm=audio 4000 RTP/AVP 0\r\n")
    assert (sdp.name, sdp.times) == ("-", ("0 0",))


def test_a_media_direction_overrides_the_sessions() -> None:
    body = SIPP_UAC.replace(b"t=0 0\r\n", b"t=0 0\r\na=inactive\r\n")
    sdp = parse_sdp(body)
    assert sdp.direction(sdp.media[0]) == "inactive"
    sdp = parse_sdp(body + b"a=recvonly\r\n")
    assert sdp.direction(sdp.media[0]) == "recvonly"


@pytest.mark.parametrize("body", [SIPP_UAC, SIPP_UAC_PCAP, BARESIP, LINPHONE])
def test_built_bodies_parse_back_to_the_same_description(body: bytes) -> None:
    sdp = parse_sdp(body)
    built = sdp.to_bytes()
    assert built.endswith(b"\r\n")
    assert b"\n" not in built.replace(b"\r\n", b"")
    assert parse_sdp(built) == sdp


def test_building_puts_lines_in_rfc_order() -> None:
    sdp = parse_sdp(
        b"v=0\nt=0 0\na=x\nc=IN IP4 h\nb=AS:1\ni=info\no=- 1 2 IN IP4 h\ns=S\n"
        b"m=audio 1 RTP/AVP 0\na=y\nb=AS:2\nc=IN IP4 k\ni=m-info\n"
    )
    assert sdp.to_bytes().decode().split("\r\n") == [
        "v=0",
        "o=- 1 2 IN IP4 h",
        "s=S",
        "i=info",
        "c=IN IP4 h",
        "b=AS:1",
        "t=0 0",
        "a=x",
        "m=audio 1 RTP/AVP 0",
        "i=m-info",
        "c=IN IP4 k",
        "b=AS:2",
        "a=y",
        "",
    ]


@pytest.mark.parametrize(
    ("body", "line_number", "why"),
    [
        (b"v=1\n", 1, "starts with v=0"),
        (b"o=- 1 1 IN IP4 h\n", 1, "starts with v=0"),
        (b"v=0\nx=what\n", 2, "unknown line type 'x'"),
        (b"v=0\no = - 1 1 IN IP4 h\n", 2, "not a <type>=<value>"),
        (b"v=0\no=- 1 IN IP4 h\n", 2, "o= needs"),
        (b"v=0\no=- one 1 IN IP4 h\n", 2, "sess-id 'one'"),
        (b"v=0\no=- 1 1 IN IP4 h\no=- 1 1 IN IP4 h\n", 3, "a second o="),
        (b"v=0\no=- 1 1 IN IP4 h\nc=IN IP4\n", 3, "c= needs"),
        (b"v=0\no=- 1 1 IN IP4 h\nc=IN IP4 h\nm=audio x RTP/AVP 0\n", 4, "port 'x'"),
        (b"v=0\no=- 1 1 IN IP4 h\nc=IN IP4 h\nm=audio 70000 RTP/AVP 0\n", 4, "over 65535"),
        (b"v=0\no=- 1 1 IN IP4 h\nc=IN IP4 h\nm=audio 4000\n", 4, "m= needs"),
        (b"v=0\no=- 1 1 IN IP4 h\nm=audio 4000 RTP/AVP 0\na=x\n", 3, "no c= line"),
        (b"v=0\no=- 1 1 IN IP4 h\nc=IN IP4 h\nm=audio 1 RTP/AVP 0\ns=-\n", 5, "session line"),
        (b"v=0\no=- 1 1 IN IP4 h\na=rtpmap:0 PCMU\n", 3, "rtpmap needs"),
        (b"v=0\no=- 1 1 IN IP4 h\na=rtpmap:300 X/8000\n", 3, "over 127"),
        (b"v=0\no=- 1 1 IN IP4 h\na=rtpmap:96 X/fast\n", 3, "clock rate 'fast'"),
        (b"v=0\no=- 1 1 IN IP4 h\na=ptime:twenty\n", 3, "ptime 'twenty'"),
        (b"v=0\no=- 1 1 IN IP4 h\na=maxptime:0\n", 3, "maxptime '0'"),
        (b"v=0\no=- 1 1 IN IP4 h\na=fmtp:\n", 3, "fmtp needs"),
        (b"v=0\no=- 1 1 IN IP4 h\na=:x\n", 3, "not a token"),
        (b"v=0\no=- 1 1 IN IP4 h\ns=a\rb\n", 3, "stray CR"),
        (b"v=0\ns=-\n", 0, "no o= line"),
        (b"", 0, "empty body"),
        (b"v=0\no=- 1 1 IN IP4 h\ns=\xff\n", 0, "not UTF-8"),
    ],
)
def test_bad_lines_are_named(body: bytes, line_number: int, why: str) -> None:
    with pytest.raises(SdpError, match=why) as caught:
        parse_sdp(body)
    assert caught.value.line_number == line_number
    if line_number:
        assert caught.value.line == body.decode("utf-8", "replace").split("\n")[line_number - 1]
        assert f"line {line_number} " in str(caught.value)


def test_a_body_over_the_limit_is_refused_before_parsing() -> None:
    body = SIPP_UAC + b"a=x:" + b"y" * MAX_SDP_BYTES + b"\r\n"
    with pytest.raises(SdpError, match="over the 16384-byte limit"):
        parse_sdp(body)


@pytest.mark.parametrize(("value", "ms"), [("20", 20), ("20.0", 20), (" 30 ", 30), ("22.5", 22)])
def test_ptime_as_a_decimal_is_taken(value: str, ms: int) -> None:
    sdp = parse_sdp(SIPP_UAC + f"a=ptime:{value}\r\n".encode())
    assert sdp.media[0].values("ptime") == [value]
    assert parse_ms(value) == ms


@given(st.binary(max_size=300))
def test_any_bytes_give_a_description_or_sdp_error(body: bytes) -> None:
    try:
        sdp = parse_sdp(body)
    except SdpError as e:
        error: SdpError | None = e
    else:
        error = None
        assert body.startswith(b"v=0") or body.lstrip().startswith(b"v=0")
        assert sdp.origin.username
    assert error is None or str(error)


lines = st.tuples(
    st.sampled_from([*"vosiuepcbtrzkamxy=", "", "a=rtpmap:", "m=audio ", "a=ptime:"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=30),
).map(lambda t: t[0] + ("=" if len(t[0]) == 1 else "") + t[1])


@given(st.lists(lines, max_size=20))
def test_any_lines_after_v0_give_a_description_or_sdp_error(body_lines: list[str]) -> None:
    body = "v=0\no=- 1 1 IN IP4 h\nc=IN IP4 h\n" + "\n".join(body_lines)
    try:
        sdp = parse_sdp(body)
    except SdpError as e:
        error: SdpError | None = e
    else:
        error = None
        assert parse_sdp(sdp.to_bytes()).media == sdp.media
    assert error is None or 0 <= error.line_number <= len(body_lines) + 3
