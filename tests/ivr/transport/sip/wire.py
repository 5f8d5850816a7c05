"""SIP traffic as real user agents send it, written by hand from the RFCs and from what
SIPp's built-in ``uac`` scenario, baresip and linphone put on the wire.

Templates use ``\\n`` line ends for reading; :func:`crlf` turns them into the
wire's CRLF and sets Content-Length from the body (unless told otherwise).
"""

from __future__ import annotations

SDP_OFFER = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)
SDP_ANSWER = (
    b"v=0\r\n"
    b"o=ivr 1 1 IN IP4 203.0.113.5\r\n"
    b"s=ivr\r\n"
    b"c=IN IP4 203.0.113.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)
SDP_HOLD = SDP_OFFER.replace(b"a=rtpmap:101", b"a=sendonly\r\na=rtpmap:101")

SIPP = ("192.0.2.10", 5061)  # where SIPp's uac runs
BARESIP = ("198.51.100.20", 5060)
LINPHONE = ("10.0.0.7", 38421)


def crlf(text: str, body: bytes = b"", *, content_length: int | None = None) -> bytes:
    """Template lines joined with CRLF; Content-Length true unless given."""
    length = len(body) if content_length is None else content_length
    head = text.strip("\n").replace("{length}", str(length))
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


def sipp_invite(n: int = 1, *, body: bytes = SDP_OFFER, host: str = "192.0.2.10") -> bytes:
    """SIPp's uac scenario: INVITE with the scenario's [call_number] in branch and tags."""
    return crlf(
        f"""
INVITE sip:+15550100@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP {host}:5061;branch=z9hG4bK-4242-{n}-0
From: sipp <sip:sipp@{host}:5061>;tag=4242SIPpTag00{n}
To: +15550100 <sip:+15550100@203.0.113.5:5060>
Call-ID: {n}-4242@{host}
CSeq: 1 INVITE
Contact: sip:sipp@{host}:5061
Max-Forwards: 70
Subject: Performance Test
Content-Type: application/sdp
Content-Length:   {{length}}
""",
        body,
    )


def sipp_ack(to_tag: str, n: int = 1, *, body: bytes = b"", cseq: int = 1) -> bytes:
    """The ACK for the 2xx: a new branch (RFC 3261 section 13.2.2.4), the To tag we gave."""
    ctype = "Content-Type: application/sdp\n" if body else ""
    return crlf(
        f"""
ACK sip:+15550100@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-4242-{n}-5
From: sipp <sip:sipp@192.0.2.10:5061>;tag=4242SIPpTag00{n}
To: +15550100 <sip:+15550100@203.0.113.5:5060>;tag={to_tag}
Call-ID: {n}-4242@192.0.2.10
CSeq: {cseq} ACK
Contact: sip:sipp@192.0.2.10:5061
Max-Forwards: 70
Subject: Performance Test
{ctype}Content-Length: {{length}}
""",
        body,
    )


def sipp_in_dialog(
    method: str,
    to_tag: str,
    n: int = 1,
    *,
    cseq: int = 2,
    branch: str = "7",
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    """A request inside SIPp's dialog: BYE, INFO, re-INVITE, OPTIONS."""
    ctype = f"Content-Type: {content_type}\n" if content_type else ""
    return crlf(
        f"""
{method} sip:+15550100@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-4242-{n}-{branch}
From: sipp <sip:sipp@192.0.2.10:5061>;tag=4242SIPpTag00{n}
To: +15550100 <sip:+15550100@203.0.113.5:5060>;tag={to_tag}
Call-ID: {n}-4242@192.0.2.10
CSeq: {cseq} {method}
Contact: sip:sipp@192.0.2.10:5061
Max-Forwards: 70
Subject: Performance Test
{ctype}Content-Length: {{length}}
""",
        body,
    )


def sipp_cancel(n: int = 1) -> bytes:
    """CANCEL: the INVITE's branch, Request-URI, From, To (no tag) and CSeq number (9.1)."""
    return crlf(
        f"""
CANCEL sip:+15550100@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-4242-{n}-0
From: sipp <sip:sipp@192.0.2.10:5061>;tag=4242SIPpTag00{n}
To: +15550100 <sip:+15550100@203.0.113.5:5060>
Call-ID: {n}-4242@192.0.2.10
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0
"""
    )


def sipp_ack_non2xx(n: int = 1, *, to_tag: str) -> bytes:
    """The ACK for a non-2xx final response: the INVITE's branch (RFC 3261 section 17.1.1.3)."""
    return crlf(
        f"""
ACK sip:+15550100@203.0.113.5:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5061;branch=z9hG4bK-4242-{n}-0
From: sipp <sip:sipp@192.0.2.10:5061>;tag=4242SIPpTag00{n}
To: +15550100 <sip:+15550100@203.0.113.5:5060>;tag={to_tag}
Call-ID: {n}-4242@192.0.2.10
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
"""
    )


def baresip_invite(*, body: bytes = SDP_OFFER) -> bytes:
    """baresip behind NAT: rport asked, a private Contact, Supported 100rel without Require."""
    return crlf(
        """
INVITE sip:+15550100@ivr.example.com SIP/2.0
Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK9f1ca82e5b6d7c3a;rport
Contact: <sip:alice-0x5581@192.168.1.20:5060;transport=udp>
Max-Forwards: 70
To: <sip:+15550100@ivr.example.com>
From: "Alice" <sip:alice@example.org>;tag=7b2e03a41c58d9f6
Call-ID: 0c6e9a7b3f1d2e48
CSeq: 18532 INVITE
User-Agent: baresip v3.10.1 (x86_64/linux)
Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER
Supported: replaces,norefersub,100rel
Content-Type: application/sdp
Content-Length: {length}
""",
        body,
    )


def linphone_invite(*, body: bytes = SDP_OFFER) -> bytes:
    """linphone (belle-sip) over TCP: compact-free but spaced lists, a quoted +sip.instance."""
    return crlf(
        """
INVITE sip:+15550100@ivr.example.com SIP/2.0
Via: SIP/2.0/TCP 10.0.0.7:38421;alias;branch=z9hG4bK.Xy3Kq9aZ1;rport
From: "Bob" <sip:bob@sip.linphone.org>;tag=Qm7vN~3xZ
To: sip:+15550100@ivr.example.com
CSeq: 20 INVITE
Call-ID: 9ZxK3b-LmQ
Max-Forwards: 70
Supported: replaces, outbound, gruu, path
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, PRACK
Content-Type: application/sdp
Content-Length: {length}
Contact: <sip:bob@10.0.0.7:38421;transport=tcp>;+sip.instance="<urn:uuid:4e1d2c3b-aa01>"
User-Agent: Linphone-Desktop/5.2.4 (belle-sip/5.2.94)
""",
        body,
    )


def trunk_invite() -> bytes:
    """A carrier trunk through a proxy: tel Request-URI user, Record-Route, two Vias,
    compact forms and a folded line."""
    return crlf(
        """
INVITE sip:+15550100@203.0.113.5;user=phone SIP/2.0
v: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-proxy-77a,
   SIP/2.0/UDP 10.20.0.4:5060;branch=z9hG4bK-sbc-1;received=10.20.0.4
Record-Route: <sip:198.51.100.1;lr;ftag=as5e1>
f: "+1 415 555 0199" <sip:+14155550199@carrier.example;user=phone>;tag=as5e1
t: <sip:+15550100@203.0.113.5;user=phone>
i: 1f2e3d4c@10.20.0.4
CSeq: 102 INVITE
m: <sip:+14155550199@10.20.0.4:5060>
Max-Forwards: 69
P-Asserted-Identity: <sip:+14155550199@carrier.example>,
 <tel:+14155550199>
c: application/sdp
l: {length}
""",
        SDP_OFFER,
    )
