"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966), escapes as in RFC 4475 3.1.1."""

from __future__ import annotations

import pytest

from ivr.transport.sip.grammar import Invalid, canonical_name, parse_params, split_list
from ivr.transport.sip.uri import Uri, parse_uri


def test_full_sip_uri() -> None:
    uri = parse_uri("sip:alice:secret@Example.COM:5070;transport=tcp;lr?subject=hi")
    assert uri == Uri(
        "sip",
        host="Example.COM",
        user="alice",
        password="secret",
        port=5070,
        params=(("transport", "tcp"), ("lr", None)),
        headers="subject=hi",
    )
    assert uri.transport == "TCP"
    assert str(uri) == "sip:alice:secret@Example.COM:5070;transport=tcp;lr?subject=hi"


def test_escapes_are_resolved_in_user_and_kept_on_the_way_out() -> None:
    uri = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips:user@example.com"
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net"
    assert parse_uri("sip:%2B15550100@h").user == "+15550100"
    nul = parse_uri("sip:null-%00-null@example.com")  # RFC 4475 3.1.1.3: legal, if odd
    assert nul.user == "null-\x00-null"
    assert str(nul) == "sip:null-%00-null@example.com"
    bad_utf8 = parse_uri("sip:%ff@h")
    assert str(bad_utf8) == "sip:%FF@h"


def test_user_with_semicolon_and_no_user() -> None:
    uri = parse_uri("sip:+1555;isub=12@gw.example;user=phone")
    assert (uri.user, uri.host, uri.param("user")) == ("+1555;isub=12", "gw.example", "phone")
    bare = parse_uri("sip:198.51.100.1;lr")
    assert (bare.user, bare.host, bare.param("lr")) == (None, "198.51.100.1", "")


def test_headers_after_the_host() -> None:
    uri = parse_uri("sip:example.com?to=alice%40example.org")
    assert (uri.user, uri.host, uri.headers) == (None, "example.com", "to=alice%40example.org")


def test_ipv6() -> None:
    uri = parse_uri("sip:[2001:db8::10]:5070")
    assert (uri.host, uri.bare_host, uri.port) == ("[2001:db8::10]", "2001:db8::10", 5070)
    assert uri.default_port == 5060
    with pytest.raises(Invalid):
        parse_uri("sip:[2001:db8::10")


def test_sips_and_tel() -> None:
    assert parse_uri("sips:bob@h").default_port == 5061
    assert parse_uri("sips:bob@h").transport == "TLS"
    tel = parse_uri("tel:+1-555-0100;phone-context=example.com")
    assert (tel.scheme, tel.user, tel.host) == ("tel", "+1-555-0100", "")
    assert str(tel) == "tel:+1-555-0100;phone-context=example.com"


def test_other_schemes_are_opaque() -> None:
    uri = parse_uri("mailto:bob@example.com")
    assert (uri.scheme, uri.opaque, uri.is_sip) == ("mailto", "bob@example.com", False)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "alice@example.com",
        "sip:alice@",
        "sip:@example.com",
        "sip:alice@exa mple.com",
        "sip:alice@host:0",
        "sip:alice@host:65536",
        "sip:alice@host:５０６０",
        "sip:alice@host:50a",
        "sip:alice@ho/st",
        "sip:alice@host;=x",
        "1sip:alice@host",
        "tel:",
        "tel:;phone-context=x",
        "sip:a<b@h",
        'sip:"a"@h',
        "urn:<x>",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(Invalid):
        parse_uri(text)


def test_split_list_respects_quotes_and_angles() -> None:
    assert split_list('"a, b" <sip:x@h>, <sip:y@h;p=1,2>, , z') == [
        '"a, b" <sip:x@h>',
        "<sip:y@h;p=1,2>",
        "z",
    ]
    with pytest.raises(Invalid):
        split_list('"open')
    with pytest.raises(Invalid):
        split_list("<sip:x@h")


def test_params() -> None:
    assert parse_params(' ; Tag = "q;x" ;lr; q=0.5') == (
        ("tag", '"q;x"'),
        ("lr", None),
        ("q", "0.5"),
    )
    with pytest.raises(Invalid):
        parse_params(";tag=")
    with pytest.raises(Invalid):
        parse_params("junk")


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("v", "Via"),
        ("I", "Call-ID"),
        ("call-id", "Call-ID"),
        ("CSEQ", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("max-forwards", "Max-Forwards"),
        ("x-custom-thing", "X-Custom-Thing"),
        ("k", "Supported"),
        ("l", "Content-Length"),
        ("e", "Content-Encoding"),
        ("s", "Subject"),
    ],
)
def test_canonical_names(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical
