"""SDP offers shaped like those real user agents send, written by hand.

SIPp's built-in ``uac`` and ``uac_pcap`` scenarios, baresip and linphone
(several codecs, telephone-event at several rates, a video stream), and the
three ways of putting a call on hold in a re-INVITE.
"""

from __future__ import annotations


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


# SIPp -sn uac: PCMU only.
SIPP_UAC = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

# SIPp -sn uac_pcap: PCMA and telephone-event 101, events 0-11 and 16.
SIPP_UAC_PCAP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-11,16
""")

# baresip: opus first, G.722, then G.711; LF line ends; rtcp-mux offered.
BARESIP = b"""v=0
o=- 1693408279 2107216493 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
m=audio 10770 RTP/AVP 96 9 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-mux
a=ssrc:1402355327 cname:b5f3d8c3-8d7a-4f3b
a=ptime:20
"""

# linphone: many codecs, telephone-event at 48, 16 and 8 kHz, a video stream,
# session-level attributes, PCMA preferred over PCMU, rtcp on a given port.
LINPHONE = crlf("""
v=0
o=alice 2837 1746 IN IP4 192.168.1.50
s=Talk
c=IN IP4 192.168.1.50
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 8 0 18 102 100 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:102 telephone-event/48000
a=rtpmap:100 telephone-event/16000
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtcp-fb:96 nack pli
""")


def sipp_reinvite(version: int, *, direction: str | None, address: str = "10.0.0.5") -> bytes:
    """SIPp's offer again, as a re-INVITE: a new version, perhaps holding us."""
    line = f"a={direction}\n" if direction else ""
    return crlf(f"""
v=0
o=user1 53655765 {version} IN IP4 10.0.0.5
s=-
c=IN IP4 {address}
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
{line}""")


HOLD_SENDONLY = sipp_reinvite(2353687638, direction="sendonly")  # RFC 3264 section 8.4
HOLD_INACTIVE = sipp_reinvite(2353687638, direction="inactive")
HOLD_RFC2543 = sipp_reinvite(2353687638, direction=None, address="0.0.0.0")  # c=0.0.0.0
RESUME = sipp_reinvite(2353687639, direction="sendrecv")
