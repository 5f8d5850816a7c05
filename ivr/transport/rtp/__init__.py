"""RTP, RTCP and SDP for the SIP edge: a sans-I/O core (no sockets, no clock, no event loop).

Like h11 or python-websockets' protocol objects, everything here computes
and nothing waits: the driver (the asyncio edge) owns the sockets, reads
the clocks and draws the random numbers, and passes bytes, times and
``randbits`` in. A test keeps the package free of I/O imports.

Modules, bottom up: :mod:`.packet` (RFC 3550 section 5.1), :mod:`.sequence`
(appendix A.1, A.3, A.8), :mod:`.reorder`, :mod:`.framing` (any ptime to
20 ms frames), :mod:`.events` (RFC 4733), :mod:`.receiver` and
:mod:`.sender` (the two paths of one call), :mod:`.rtcp` and :mod:`.report`
(RFC 3550 section 6), :mod:`.sdp` (RFC 4566) and :mod:`.negotiation`
(RFC 3264). Errors are in :mod:`.errors`.

How a driver uses it, for one call::

    session = rtp.LocalSession(session_id=secrets.randbits(62), version=1,
                               address=public_ip, username="ivr")
    try:
        negotiated = rtp.answer(rtp.parse_sdp(invite_body), session,
                                address=public_ip, port=rtp_port)
    except rtp.NoCommonCodec:      # 488 Not Acceptable Here
        ...
    except rtp.SdpError:           # 400, the message names the bad line
        ...
    body, session = negotiated.body, negotiated.session   # 200 OK; keep the session
    stream = negotiated.stream
    leg = Leg(media.frame.codec(stream.codec, 8000), transport)
    rx, tx = stream.receiver(), stream.sender(secrets.randbits)
    rtcp = rtp.RtcpSession(tx.ssrc, cname)

    # each datagram from the RTP port, and each 20 ms tick:
    for got in (rx.receive(datagram, time.monotonic()), rx.poll(time.monotonic())):
        for frame in got.frames:
            leg.receive_audio(frame)          # exactly like a WebSocket frame
        for digit in got.digits:
            if isinstance(digit, rtp.DigitPressed):
                ...                            # once per key press
    # Transport.send_audio(payload), every tick, held or not (time runs on):
    for datagram in tx.push(payload):          # nothing while tx.sending is false
        rtp_socket.sendto(datagram, (stream.remote_address, stream.remote_port))
    # every report_interval_s(random.random()) seconds (about 5 s), unless
    # stream.remote_address is None (RFC 3264 section 8.4: no RTCP either):
    rtcp_socket.sendto(rtcp.build(rtp.ntp_timestamp(time.time()), sender=tx, receiver=rx),
                       (stream.remote_address, stream.remote_rtcp_port))
    # each datagram from the RTCP port (MalformedRtcp: drop it):
    rtcp.receive(datagram, rtp.ntp_timestamp(time.time()))   # then rtcp.peer_report
    # a re-INVITE: answer again with the session and keep_codec=stream.codec,
    # then new.stream.update(tx, rx); a delayed offer: rtp.offer(...), then
    # rtp.take_answer(offer.sdp, rtp.parse_sdp(ack_body)).
"""

from ivr.transport.rtp.errors import (
    InvalidField,
    MalformedEvent,
    MalformedPacket,
    MalformedRtcp,
    NoCommonCodec,
    OfferAnswerError,
    RtpError,
    SdpError,
)
from ivr.transport.rtp.events import (
    DigitEvent,
    DigitPressed,
    DigitReleased,
    DigitTracker,
    TelephoneEvent,
    parse_events,
)
from ivr.transport.rtp.framing import FrameAssembler, transcode
from ivr.transport.rtp.negotiation import (
    AudioStream,
    LocalSession,
    Negotiated,
    answer,
    offer,
    take_answer,
)
from ivr.transport.rtp.packet import RtpPacket, is_rtcp, parse_packet
from ivr.transport.rtp.receiver import Received, ReceiverStatistics, RtpReceiver
from ivr.transport.rtp.reorder import ReorderBuffer
from ivr.transport.rtp.report import PeerReport, RtcpSession
from ivr.transport.rtp.rtcp import (
    REPORT_INTERVAL_S,
    build_rtcp,
    ntp_timestamp,
    parse_rtcp,
    report_interval_s,
)
from ivr.transport.rtp.sdp import SessionDescription, parse_sdp
from ivr.transport.rtp.sender import RtpSender
from ivr.transport.rtp.sequence import SourceStatistics

__all__ = [
    "REPORT_INTERVAL_S",
    "AudioStream",
    "DigitEvent",
    "DigitPressed",
    "DigitReleased",
    "DigitTracker",
    "FrameAssembler",
    "InvalidField",
    "LocalSession",
    "MalformedEvent",
    "MalformedPacket",
    "MalformedRtcp",
    "Negotiated",
    "NoCommonCodec",
    "OfferAnswerError",
    "PeerReport",
    "Received",
    "ReceiverStatistics",
    "ReorderBuffer",
    "RtcpSession",
    "RtpError",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "SdpError",
    "SessionDescription",
    "SourceStatistics",
    "TelephoneEvent",
    "answer",
    "build_rtcp",
    "is_rtcp",
    "ntp_timestamp",
    "offer",
    "parse_events",
    "parse_packet",
    "parse_rtcp",
    "parse_sdp",
    "report_interval_s",
    "take_answer",
    "transcode",
]
