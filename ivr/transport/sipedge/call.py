"""One SIP call at the edge: from the INVITE to the close, and the leg's transport for it.

:class:`SipCall` is what the SIP core's events about one call go to, and
it is the caller leg's :class:`ivr.call.leg.Transport`: the session's
``answered`` becomes the 200 OK with our SDP answer, its ``hangup`` our
BYE (unless the caller hung up), its audio RTP (none while the caller
holds us), and the close, once the call is saved, frees the RTP ports.

Before the session exists: the RTP ports are bound, the offer answered
(488 when no codec is common, 400 for an SDP we cannot read), 180
Ringing sent, ``answer_after_s`` waited, the capacity checked again and the
call placed as every transport places one (:mod:`ivr.transport.placement`).
A CANCEL before the placement ends it there, with nothing stored; one
during the placement (its row is being written) ends the call just placed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from ivr.call.session import CallSession
from ivr.call.switchboard import Busy
from ivr.config import NumberConfig
from ivr.errors import StorageUnavailable
from ivr.transport import rtp
from ivr.transport.placement import place_call
from ivr.transport.protocol import Dial
from ivr.transport.sip import IncomingCall
from ivr.transport.sipedge.info import info_digit
from ivr.transport.sipedge.media import RtpChannel
from media.frame import codec as make_codec

if TYPE_CHECKING:
    from ivr.transport.sipedge.edge import SipEdge

log = logging.getLogger("ivr.sip")

RETRY_AFTER_S = 5
RFC4733 = "rfc4733"  # the ``source`` of a digit in the call's events
SIP_INFO = "sip_info"


class SipCall:
    """One call of the edge; the caller leg's transport."""

    def __init__(self, edge: SipEdge, incoming: IncomingCall, to: str, from_: str) -> None:
        self.edge = edge
        self.key = incoming.call
        self.sip_call_id = incoming.call_id
        self.to = to
        self.from_ = from_
        self.offer = incoming.sdp_offer
        self.dialled_at = time.monotonic()
        self.channel: RtpChannel | None = None
        self.local: rtp.LocalSession | None = None
        self.our_offer: rtp.SessionDescription | None = None  # awaiting its answer in an ACK
        self.body = b""
        self.codec = "pcmu"  # the leg's law: the offer's first (ours, for a delayed offer)
        self._stream: rtp.AudioStream | None = None
        self.session: CallSession | None = None
        self.sip_over = False  # the core's call has ended (BYE, CANCEL, our final error)
        self.placing = False
        self.task: asyncio.Task[None] | None = None

    # -- before the answer ---------------------------------------------------------

    async def take(self, number: NumberConfig) -> None:
        """Bind the media, answer the offer, ring, then place the call."""
        edge = self.edge
        try:
            pair = edge.ports.bind()
            if pair is None:
                log.warning("SIP call refused: no RTP port free in the range")
                self.reject(503, "busy", headers=(("Retry-After", str(RETRY_AFTER_S)),))
                return
            self.channel = RtpChannel(edge.ports, pair)
            await self.channel.open()
            if not self._negotiate():
                return
            self.channel.start(self.codec, self._stream, f"ivr-{self.key}@{edge.public_address}")
            edge.decide(lambda now: edge.core.ring(self.key, now))
            if edge.settings.answer_after_s > 0:
                await asyncio.sleep(edge.settings.answer_after_s)
            if self.sip_over:
                return
            try:
                edge.sb.check_capacity()
            except Busy:
                self.reject(503, "busy", headers=(("Retry-After", str(RETRY_AFTER_S)),))
                return
            dial = Dial(
                to=self.to, from_=self.from_, codec=make_codec(self.codec, 8000), client_ref=None
            )
            self.placing = True
            try:
                session = await place_call(
                    edge.sb,
                    edge.store,
                    dial,
                    number,
                    self,
                    self.dialled_at,
                    kind="sip",
                    sip_call_id=self.sip_call_id,
                )
            except StorageUnavailable:
                retry = (("Retry-After", "30"),)
                self.reject(503, "storage", reason="Storage Unavailable", headers=retry)
                return
            finally:
                self.placing = False
            self.session = session
            edge.metrics.sip_invite("placed")
            self.channel.leg = session.caller
            self.channel.on_digit = lambda digit: session.digits(digit, source=RFC4733)
            self.channel.media_timeout_s = edge.settings.media_timeout_s
            self.channel.on_media_timeout = session.caller_hangup
            if self.sip_over:  # cancelled (or answered in vain) while the row was written
                session.caller_hangup()
        except asyncio.CancelledError:
            if self.session is None:  # the server stops while the call rings
                self.reject(503, "busy", headers=(("Retry-After", str(RETRY_AFTER_S)),))
        except Exception:
            log.exception("SIP call %s could not be taken", self.key)
            self.reject(500, "error")
        finally:
            if self.session is None:
                self.release()

    def _negotiate(self) -> bool:
        assert self.channel is not None
        address = self.edge.public_address
        self.local = rtp.LocalSession(
            session_id=secrets.randbits(62), version=1, address=address, username="ivr"
        )
        port = self.channel.port
        if self.offer is None:  # a delayed offer: ours goes in the 200, theirs in the ACK
            negotiated = rtp.offer(self.local, address=address, port=port)
            self.our_offer = negotiated.sdp
        else:
            try:
                negotiated = rtp.answer(
                    rtp.parse_sdp(self.offer), self.local, address=address, port=port
                )
            except rtp.NoCommonCodec as exc:
                log.info("SIP call %s refused: no common codec (%s)", self.key, exc)
                self.reject(
                    488, "no_codec", headers=(("Warning", '304 ivr "Media type not available"'),)
                )
                return False
            except rtp.SdpError as exc:
                log.info("SIP call %s refused: bad SDP (%s)", self.key, exc)
                self.reject(400, "bad_sdp", reason="Bad SDP")
                return False
            assert negotiated.stream is not None
            self._stream = negotiated.stream
            self.codec = negotiated.stream.codec
        self.local, self.body = negotiated.session, negotiated.body
        return True

    def reject(
        self,
        status: int,
        outcome: str,
        *,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """A final error response to the INVITE, counted in /metrics as ``outcome``."""
        if not self.sip_over:
            self.sip_over = True
            self.edge.metrics.sip_invite(outcome)
            self.edge.decide(
                lambda now: self.edge.core.reject(
                    self.key, status, now, reason=reason, headers=headers
                )
            )

    # -- the core's events ---------------------------------------------------------

    def ended_by_peer(self) -> None:
        """BYE, CANCEL, or no ACK: the core's call is over (or closing on its own)."""
        if self.session is None and not self.sip_over:
            self.edge.metrics.sip_invite("cancelled")
        self.sip_over = True
        if self.session is not None:
            self.session.caller_hangup()
        elif self.task is not None and not self.placing:
            self.task.cancel()

    def acked(self, sdp_answer: bytes | None) -> None:
        if self.our_offer is None or sdp_answer is None or self.channel is None:
            return
        offer, self.our_offer = self.our_offer, None
        try:
            stream = rtp.take_answer(offer, rtp.parse_sdp(sdp_answer))
        except (rtp.SdpError, rtp.OfferAnswerError) as exc:
            log.info(
                "SIP call %s: the answer in the ACK is unusable (%s): hanging up", self.key, exc
            )
            if self.session is not None:
                self.session.hangup("error")
            return
        self.channel.update(stream)

    def reinvite(self, offer: bytes | None) -> None:
        """Hold, resume, a refresh, a new address: answer, or 488 and the session stays."""
        channel, local = self.channel, self.local
        if channel is None or local is None:
            return
        address = self.edge.public_address
        if offer is None:
            negotiated = rtp.offer(local, address=address, port=channel.port)
            self.our_offer = negotiated.sdp
        else:
            try:
                negotiated = rtp.answer(
                    rtp.parse_sdp(offer),
                    local,
                    address=address,
                    port=channel.port,
                    keep_codec=self.codec,
                )
            except rtp.NoCommonCodec:
                self.edge.decide(lambda now: self.edge.core.reject_reinvite(self.key, 488, now))
                return
            except rtp.SdpError:
                self.edge.decide(
                    lambda now: self.edge.core.reject_reinvite(self.key, 400, now, reason="Bad SDP")
                )
                return
            assert negotiated.stream is not None
            channel.update(negotiated.stream)
        self.local = negotiated.session
        body = negotiated.body
        self.edge.decide(lambda now: self.edge.core.answer_reinvite(self.key, body, now))

    def info(self, content_type: str, body: bytes) -> None:
        digit = info_digit(content_type, body)
        if digit is not None and self.session is not None:
            self.session.digits(digit, source=SIP_INFO)

    # -- the leg's transport (ivr.call.leg.Transport) ------------------------------

    def send_audio(self, payload: bytes) -> bool:
        return self.channel is not None and self.channel.send(payload)

    def send_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "answered" and not self.sip_over:
            body = self.body
            if not self.edge.decide(lambda now: self.edge.core.answer(self.key, body, now)):
                self.sip_over = True  # cancelled just now: the session is ended once placed
        elif kind == "hangup" and not self.sip_over:
            self.sip_over = True
            self.edge.decide(lambda now: self.edge.core.bye(self.key, now))

    def close(self, code: int) -> None:
        """The call is saved: its media figures are added to its row, the media goes."""
        if self.session is not None and self.channel is not None:
            self.edge.save_media(self.session.id, self.channel.stats())
        self.release()

    def release(self) -> None:
        channel = self.channel
        if channel is not None and not channel.closed:
            channel.close()
            report = None if channel.rtcp is None else channel.rtcp.peer_report
            self.edge.metrics.rtp_call_ended(
                channel.counters["foreign"],
                None if report is None else report.loss_percent / 100,
                None if report is None else report.jitter_ms / 1000,
            )
        self.edge.forget(self)

    def stats(self) -> dict[str, Any]:
        return {} if self.channel is None else self.channel.stats()
