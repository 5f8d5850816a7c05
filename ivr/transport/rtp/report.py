"""Our side of RTCP for one call: what we report every interval, and what the peer reports.

The driver calls :meth:`RtcpSession.build` every ``REPORT_INTERVAL_S``
(randomised with :func:`ivr.transport.rtp.rtcp.report_interval_s` if it
likes) and sends the datagram to the peer's RTCP port, and passes every
datagram from that port to :meth:`RtcpSession.receive`. Time is NTP time
(:func:`ivr.transport.rtp.rtcp.ntp_timestamp` of the wall clock), passed in:
the same clock stamps our SRs, measures how long we held the peer's last SR
(DLSR) and when the peer's report about us arrived, so the round trip of
section 6.4.1 (arrival - LSR - DLSR) needs no other clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.transport.rtp.receiver import CLOCK_RATE, RtpReceiver
from ivr.transport.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_rtcp,
    ntp_middle,
    parse_rtcp,
)
from ivr.transport.rtp.sender import RtpSender
from ivr.transport.rtp.sequence import TIMESTAMP_MOD

CNAME_ITEM = 1


@dataclass(frozen=True, slots=True)
class PeerReport:
    """The peer's last report block about our stream: how our audio reaches it."""

    fraction_lost: int  # 1/256, over its last interval
    cumulative_lost: int
    highest_sequence: int
    jitter: int  # timestamp units
    round_trip_s: float | None  # None until the peer has heard one of our SRs

    @property
    def loss_percent(self) -> float:
        return self.fraction_lost * 100 / 256

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / CLOCK_RATE


class RtcpSession:
    """Builds our compound reports and keeps what the peer's tell us."""

    def __init__(self, ssrc: int, cname: str) -> None:
        self.ssrc = ssrc
        self.cname = cname
        self.peer_report: PeerReport | None = None
        self.peer_cname: str | None = None
        self.peer_bye: Goodbye | None = None
        self.reports_received = 0
        # Per peer SSRC: the middle 32 bits of its last SR's NTP time, and
        # when (our NTP time) it arrived: the LSR and DLSR we send back.
        self._last_sr: dict[int, tuple[int, int]] = {}
        self._sent_at_reports = (0, 0)  # our packet count at the last two reports

    def receive(self, datagram: bytes, arrival_ntp: int) -> tuple[RtcpPacket, ...]:
        """Take one datagram from the RTCP port; :class:`MalformedRtcp` if it is not RTCP."""
        packets = parse_rtcp(datagram)
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._last_sr[packet.ssrc] = (ntp_middle(packet.sender.ntp_timestamp), arrival_ntp)
            if isinstance(packet, SenderReport | ReceiverReport):
                self.reports_received += 1
                for block in packet.blocks:
                    if block.ssrc == self.ssrc:
                        self.peer_report = _peer_report(block, arrival_ntp)
            elif isinstance(packet, SourceDescription):
                for chunk in packet.chunks:
                    if chunk.cname is not None and chunk.ssrc != self.ssrc:
                        self.peer_cname = chunk.cname
            elif isinstance(packet, Goodbye):
                self.peer_bye = packet
        return packets

    def build(
        self,
        now_ntp: int,
        *,
        sender: RtpSender | None = None,
        receiver: RtpReceiver | None = None,
        bye: str | None = None,
    ) -> bytes:
        """This interval's compound packet: SR or RR, SDES CNAME, and a BYE if ``bye`` is given.

        An SR when we sent RTP since the report before last (section 6.4),
        with ``sender``'s counts and its next frame's timestamp for ``now``;
        a report block about the peer's stream when ``receiver`` has heard
        one (appendix A.3's numbers; this starts its next interval).
        """
        blocks: tuple[ReportBlock, ...] = ()
        if receiver is not None and (report := receiver.report()) is not None:
            source, loss = report
            lsr, dlsr = 0, 0
            if source in self._last_sr:
                lsr, arrived = self._last_sr[source]
                dlsr = ((now_ntp - arrived) >> 16) & 0xFFFFFFFF
            blocks = (
                ReportBlock(
                    ssrc=source,
                    fraction_lost=loss.fraction_lost,
                    cumulative_lost=loss.cumulative_lost,
                    highest_sequence=loss.extended_highest,
                    jitter=loss.jitter % TIMESTAMP_MOD,
                    last_sr=lsr,
                    delay_since_last_sr=dlsr,
                ),
            )
        sent = 0 if sender is None else sender.packets_sent
        first: SenderReport | ReceiverReport
        if sender is not None and sent > self._sent_at_reports[0]:
            info = SenderInfo(now_ntp, sender.timestamp, sent, sender.octets_sent)
            first = SenderReport(self.ssrc, info, blocks)
        else:
            first = ReceiverReport(self.ssrc, blocks)
        self._sent_at_reports = (self._sent_at_reports[1], sent)
        packets: list[RtcpPacket] = [
            first,
            SourceDescription((SdesChunk(self.ssrc, ((CNAME_ITEM, self.cname.encode()),)),)),
        ]
        if bye is not None:
            packets.append(Goodbye((self.ssrc,), bye or None))
        return build_rtcp(packets)


def _peer_report(block: ReportBlock, arrival_ntp: int) -> PeerReport:
    """Section 6.4.1: round trip = arrival - LSR - DLSR, all in 1/65536 s."""
    rtt: float | None = None
    if block.last_sr:
        units = (ntp_middle(arrival_ntp) - block.last_sr - block.delay_since_last_sr) % (1 << 32)
        if units < 1 << 31:  # a negative round trip is a clock step, not a measurement
            rtt = units / 65536
    return PeerReport(
        fraction_lost=block.fraction_lost,
        cumulative_lost=block.cumulative_lost,
        highest_sequence=block.highest_sequence,
        jitter=block.jitter,
        round_trip_s=rtt,
    )
