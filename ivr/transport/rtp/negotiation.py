"""Offer/answer for our one audio stream (RFC 3264), over the SDP model of :mod:`.sdp`.

As answerer (:func:`answer`): the first audio m-line over RTP/AVP that
offers PCMU or PCMA at 8 kHz is taken; every other m-line (video, a second
audio, RTP/SAVP, a port of 0) is answered with port 0, in place, as section
6 requires. The answer keeps the offerer's payload type numbers and order
(section 6.1), lists the G.711 laws, ``telephone-event`` (at whatever
dynamic number the offer gave it, events limited to those we take) and
comfort noise the offer had, and we send the offerer's most preferred law.
Nothing usable: :class:`NoCommonCodec`, which the SIP side answers with 488.

Direction (section 6.1, 8.4): the answer mirrors the offer (``sendonly``
gets ``recvonly``, ``recvonly`` gets ``sendonly``, ``inactive`` gets
``inactive``), narrowed by what we want ourselves; and a connection address
of ``0.0.0.0`` (the RFC 2543 way of holding) means we send nothing there,
so we answer without the sending half.

As offerer (:func:`offer`, for an INVITE without SDP, or a re-INVITE of
ours), then :func:`take_answer`. Our ``o=`` line is :class:`LocalSession`:
the same session id for the whole dialog, the version raised by one only
when our description changes (section 8), so a refresh re-INVITE with the
same SDP gets the same version back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ivr.transport.rtp.errors import InvalidField, NoCommonCodec, OfferAnswerError, SdpError
from ivr.transport.rtp.events import DEFAULT_EVENTS, parse_event_list, render_event_list
from ivr.transport.rtp.receiver import RtpReceiver
from ivr.transport.rtp.sdp import (
    Attribute,
    Connection,
    Media,
    Origin,
    RtpMap,
    SessionDescription,
    parse_ms,
)
from ivr.transport.rtp.sender import RtpSender

PROFILE = "RTP/AVP"  # RFC 3551; RTP/SAVP and others need keys we do not have
CLOCK_RATE = 8000
# RFC 3551 section 6, table 4: the static payload types we know without rtpmap.
STATIC_TYPES = {0: RtpMap("PCMU", 8000), 8: RtpMap("PCMA", 8000), 13: RtpMap("CN", 8000)}
CODECS = {"PCMU": "pcmu", "PCMA": "pcma"}  # encoding name to media.frame's codec name
TELEPHONE_EVENT = "telephone-event"
COMFORT_NOISE = "CN"
PTIMES_MS = (10, 20, 30, 40)
OUR_PTIME_MS = 20  # what we ask to receive: the switch's own frame
OFFER_EVENT_PT = 101
OFFER_EVENTS = "0-16"
# What we take: the 16 digits, and flash (16), which is accepted and ignored.
RECEIVABLE_EVENTS = frozenset(range(17))
SENDING = ("sendrecv", "sendonly")
RECEIVING = ("sendrecv", "recvonly")
_PLACEHOLDER = Origin("-", 0, 0, "0.0.0.0")  # replaced by LocalSession.describe


@dataclass(frozen=True, slots=True)
class AudioStream:
    """What the media driver needs from a finished offer/answer."""

    codec: str  # "pcmu" or "pcma": what we send (the leg's codec, when the call starts)
    payload_type: int  # the payload type we send audio with
    event_payload_type: int | None  # the one we send telephone-events with (None: none)
    peer_events: frozenset[int]  # the events the peer takes from us
    receive_formats: tuple[tuple[int, str], ...]  # payload type -> receiver kind
    ptime_ms: int  # our sending packetisation
    remote_address: str | None  # where our RTP goes; None: nowhere (held, rejected)
    remote_port: int
    remote_rtcp_port: int
    direction: str  # ours, as our SDP says
    send: bool  # we send RTP now
    receive: bool  # we expect RTP
    media_index: int  # which m-line it is

    @property
    def formats(self) -> dict[int, str]:
        """``receive_formats`` as the mapping :class:`RtpReceiver` takes."""
        return dict(self.receive_formats)

    def receiver(self) -> RtpReceiver:
        """The receive path for this stream, handing out frames in ``codec``."""
        return RtpReceiver(self.formats, self.codec)

    def sender(self, randbits: Callable[[int], int]) -> RtpSender:
        """The send path for this stream, with a random SSRC, sequence and timestamp."""
        tx = RtpSender.start(
            self.payload_type,
            randbits,
            ptime_ms=self.ptime_ms,
            event_payload_type=self.event_payload_type,
            events=self.peer_events,
            codec=self.codec,
        )
        tx.sending = self.send
        return tx

    def update(self, tx: RtpSender, rx: RtpReceiver) -> None:
        """A re-INVITE changed the stream: the same SSRC and sequence go on with its terms.

        The leg keeps its codec: if the new stream's law is the other one,
        the sender and receiver translate (pass ``keep_codec`` to
        :func:`answer` to avoid it whenever the offer allows).
        """
        tx.configure(
            self.payload_type, self.ptime_ms, self.event_payload_type, self.peer_events, self.codec
        )
        tx.sending = self.send
        rx.formats = self.formats


@dataclass(frozen=True, slots=True)
class LocalSession:
    """Our ``o=`` line across a dialog (RFC 3264 section 8, RFC 4566 section 5.2)."""

    session_id: int
    version: int
    address: str
    username: str = "-"
    last: SessionDescription | None = None

    def describe(self, body: SessionDescription) -> tuple[LocalSession, SessionDescription]:
        """Stamp our ``o=`` on ``body``: the same version if nothing else changed, else one more."""
        origin = Origin(self.username, self.session_id, self.version, self.address)
        if self.last is not None:
            if replace(body, origin=self.last.origin) == self.last:
                return self, self.last
            origin = replace(origin, session_version=self.version + 1)
        stamped = replace(body, origin=origin)
        return replace(self, version=origin.session_version, last=stamped), stamped


@dataclass(frozen=True, slots=True)
class Negotiated:
    """Our side of an offer or answer: the SDP to send, the stream, our next o= state."""

    sdp: SessionDescription
    session: LocalSession
    stream: AudioStream | None = None  # None for an offer, until its answer comes

    @property
    def body(self) -> bytes:
        return self.sdp.to_bytes()


class _Refused(Exception):
    """An m-line we cannot take, and why (collected into NoCommonCodec)."""


def answer(
    offer: SessionDescription,
    session: LocalSession,
    *,
    address: str,
    port: int,
    direction: str = "sendrecv",
    keep_codec: str | None = None,
) -> Negotiated:
    """Answer ``offer`` with our audio at ``address``:``port`` (the public ones, if NATed).

    ``keep_codec`` is the leg's law in a re-INVITE: it is still what we
    send if the new offer has it, whatever its rank (section 6.1 makes the
    offerer's preference a SHOULD), because a leg keeps its codec.
    """
    media: list[Media] = []
    reasons: list[str] = []
    stream: AudioStream | None = None
    for index, offered in enumerate(offer.media):
        try:
            if stream is not None:
                raise _Refused("we take one audio stream, and have it")
            stream, answered = _accept(offer, offered, index, port, direction, keep_codec)
            media.append(answered)
        except _Refused as refused:
            reasons.append(f"m-line {index + 1} ({offered.media} {offered.proto}): {refused}")
            media.append(Media(offered.media, 0, offered.proto, offered.formats or ("0",)))
    if stream is None:
        raise NoCommonCodec("; ".join(reasons) or "the offer has no m-line")
    body = SessionDescription(
        origin=_PLACEHOLDER, connection=_connection(address), media=tuple(media)
    )
    new_session, sdp = session.describe(body)
    return Negotiated(sdp, new_session, stream)


def offer(
    session: LocalSession, *, address: str, port: int, direction: str = "sendrecv"
) -> Negotiated:
    """Our offer: PCMU, PCMA, telephone-event 101 (0-16), ptime 20."""
    attributes = (
        Attribute("rtpmap", "0 PCMU/8000"),
        Attribute("rtpmap", "8 PCMA/8000"),
        Attribute("rtpmap", f"{OFFER_EVENT_PT} {TELEPHONE_EVENT}/8000"),
        Attribute("fmtp", f"{OFFER_EVENT_PT} {OFFER_EVENTS}"),
        Attribute("ptime", str(OUR_PTIME_MS)),
        Attribute(_checked_direction(direction)),
    )
    audio = Media("audio", port, PROFILE, ("0", "8", str(OFFER_EVENT_PT)), attributes=attributes)
    body = SessionDescription(origin=_PLACEHOLDER, connection=_connection(address), media=(audio,))
    new_session, sdp = session.describe(body)
    return Negotiated(sdp, new_session)


def take_answer(our_offer: SessionDescription, peer_answer: SessionDescription) -> AudioStream:
    """The stream agreed by the peer's answer to ``our_offer``."""
    if len(peer_answer.media) != len(our_offer.media):
        raise OfferAnswerError(
            f"the answer has {len(peer_answer.media)} m-lines for our "
            f"{len(our_offer.media)} (RFC 3264 section 6)"
        )
    ours, theirs = our_offer.media[0], peer_answer.media[0]
    if (theirs.media, theirs.proto) != (ours.media, ours.proto):
        raise OfferAnswerError(f"the answer's m-line 1 is {theirs.media} {theirs.proto}")
    if theirs.port == 0:
        raise NoCommonCodec("the peer rejected our audio stream (port 0)")
    maps = _maps(theirs)
    codecs = _codecs(theirs, maps)
    if not codecs:
        raise NoCommonCodec(f"the answer lists none of our codecs: {' '.join(theirs.formats)}")
    event_pt, peer_events = _events(theirs, maps, RECEIVABLE_EVENTS)
    ours_maps = _maps(ours)
    listed = [pt for pt, _ in codecs] + ([] if event_pt is None else [event_pt])
    answered = {maps[pt].encoding.upper() for pt in listed}
    receive = [
        (pt, _kind(rtpmap))
        for pt, rtpmap in ours_maps.items()
        if rtpmap.encoding.upper() in answered
    ]
    receive += [(pt, _kind(maps[pt])) for pt, _ in codecs if pt not in ours_maps]
    our_direction = our_offer.direction(ours)
    return _stream(
        peer_answer, theirs, 0, codecs, event_pt, peer_events, tuple(receive), our_direction
    )


# ------------------------------------------------------------------ answering


def _accept(
    offer: SessionDescription, m: Media, index: int, port: int, local: str, keep: str | None
) -> tuple[AudioStream, Media]:
    if m.media.lower() != "audio":
        raise _Refused("not audio")
    if m.port == 0:
        raise _Refused("disabled by the offerer (port 0)")
    if m.proto.upper() != PROFILE:
        raise _Refused(f"transport {m.proto} is not {PROFILE}")
    maps = _maps(m)
    codecs = _codecs(m, maps)
    if not codecs:
        raise _Refused(f"no PCMU or PCMA at 8000 Hz among {' '.join(m.formats) or 'no formats'}")
    event_pt, events = _events(m, maps, RECEIVABLE_EVENTS)
    cn = next((pt for pt, r in maps.items() if r.encoding.upper() == COMFORT_NOISE and
               r.clock_rate == CLOCK_RATE), None)  # fmt: skip
    taken = {pt for pt, _ in codecs} | {pt for pt in (event_pt, cn) if pt is not None}
    formats = [f for f in m.formats if _pt(f) in taken]
    attributes = [Attribute("rtpmap", maps[int(f)].value(int(f))) for f in formats]
    if event_pt is not None:
        attributes.append(
            Attribute("fmtp", f"{event_pt} {render_event_list(events & RECEIVABLE_EVENTS)}")
        )
    attributes.append(Attribute("ptime", str(OUR_PTIME_MS)))
    offered = offer.direction(m)
    ours = _direction(
        send=offered in RECEIVING and _checked_direction(local) in SENDING,
        receive=offered in SENDING and local in RECEIVING,
    )
    connection = offer.connection_for(m)
    if connection is not None and connection.unspecified:
        ours = _direction(send=False, receive=ours in RECEIVING)
    attributes.append(Attribute(ours))
    answered = Media("audio", port, m.proto, tuple(formats), attributes=tuple(attributes))
    receive = tuple((int(f), _kind(maps[int(f)])) for f in formats)
    sending = sorted(codecs, key=lambda c: c[1] != keep)  # stable: the offer's order otherwise
    return _stream(offer, m, index, sending, event_pt, events, receive, ours), answered


def _stream(
    peer: SessionDescription,
    m: Media,
    index: int,
    codecs: list[tuple[int, str]],
    event_pt: int | None,
    peer_events: frozenset[int],
    receive: tuple[tuple[int, str], ...],
    ours: str,
) -> AudioStream:
    """The stream towards ``m`` (the peer's m-line), in direction ``ours``."""
    connection = peer.connection_for(m)
    address = None if connection is None or connection.unspecified else connection.host
    peer_direction = peer.direction(m)
    send = ours in SENDING and peer_direction in RECEIVING and address is not None
    pt, name = codecs[0]
    return AudioStream(
        codec=name,
        payload_type=pt,
        event_payload_type=event_pt,
        peer_events=peer_events & DEFAULT_EVENTS,
        receive_formats=receive,
        ptime_ms=choose_ptime(_ms(peer, m, "ptime"), _ms(peer, m, "maxptime")),
        remote_address=address,
        remote_port=m.port,
        remote_rtcp_port=_rtcp_port(m),
        direction=ours,
        send=send,
        receive=ours in RECEIVING and peer_direction in SENDING,
        media_index=index,
    )


# ------------------------------------------------------------------ helpers


def choose_ptime(ptime_ms: int | None, maxptime_ms: int | None) -> int:
    """The ptime we send at: the peer's if we can, else the largest we can below it."""
    allowed = [p for p in PTIMES_MS if maxptime_ms is None or p <= maxptime_ms] or [PTIMES_MS[0]]
    if ptime_ms is None:
        return OUR_PTIME_MS if OUR_PTIME_MS in allowed else max(allowed)
    fitting = [p for p in allowed if p <= ptime_ms]
    return max(fitting) if fitting else min(allowed)


def _pt(fmt: str) -> int | None:
    return int(fmt) if fmt.isdigit() and int(fmt) <= 127 else None


def _maps(m: Media) -> dict[int, RtpMap]:
    """Every listed payload type's mapping: rtpmap lines over the static table."""
    listed = {pt for f in m.formats if (pt := _pt(f)) is not None}
    maps = {pt: r for pt, r in STATIC_TYPES.items() if pt in listed}
    maps.update({pt: r for pt, r in m.rtpmaps().items() if pt in listed})
    return maps


def _codecs(m: Media, maps: dict[int, RtpMap]) -> list[tuple[int, str]]:
    """The G.711 formats of ``m`` we can take, in its order of preference."""
    out = []
    for f in m.formats:
        pt = _pt(f)
        rtpmap = maps.get(pt) if pt is not None else None
        if (
            pt is not None
            and rtpmap is not None
            and rtpmap.encoding.upper() in CODECS
            and rtpmap.clock_rate == CLOCK_RATE
            and rtpmap.channels in (None, 1)
        ):
            out.append((pt, CODECS[rtpmap.encoding.upper()]))
    return out


def _events(
    m: Media, maps: dict[int, RtpMap], ours: frozenset[int]
) -> tuple[int | None, frozenset[int]]:
    """The telephone-event payload type at 8 kHz, and its events (none we take: None)."""
    for f in m.formats:
        pt = _pt(f)
        rtpmap = maps.get(pt) if pt is not None else None
        if rtpmap and rtpmap.encoding.lower() == TELEPHONE_EVENT and rtpmap.clock_rate == 8000:
            events = parse_event_list(m.fmtps().get(f))
            return (pt, events) if events & ours else (None, frozenset())
    return None, frozenset()


def _kind(rtpmap: RtpMap) -> str:
    name = rtpmap.encoding.upper()
    if name in CODECS:
        return CODECS[name]
    return "cn" if name == COMFORT_NOISE else TELEPHONE_EVENT


def _ms(sdp: SessionDescription, m: Media, name: str) -> int | None:
    """A media-level ptime/maxptime, else a session-level one (some phones put it there)."""
    values = m.values(name) or sdp.values(name)
    try:
        return parse_ms(values[0], name) if values else None
    except SdpError:
        return None


def _rtcp_port(m: Media) -> int:
    """RFC 3605 ``a=rtcp:port``, else the RTP port plus one (RFC 3550 section 11)."""
    for value in m.values("rtcp"):
        port = value.split(" ", 1)[0]
        if port.isdigit() and 0 < int(port) <= 65535:
            return int(port)
    return m.port + 1


def _direction(*, send: bool, receive: bool) -> str:
    return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly"}.get(
        (send, receive), "inactive"
    )


def _checked_direction(direction: str) -> str:
    if direction not in ("sendrecv", "sendonly", "recvonly", "inactive"):
        raise InvalidField(f"{direction!r} is not an SDP direction")
    return direction


def _connection(address: str) -> Connection:
    return Connection(address, "IP6" if ":" in address else "IP4")
