"""One call's media: its RTP and RTCP sockets around the sans-I/O RTP core.

Each call has an even RTP port from the configured range and the odd one
above it for RTCP (RFC 3550 section 11). Symmetric RTP (RFC 4961): our
packets go where the peer's packets come from, once one has come (a phone
behind NAT cannot know its public address for its SDP); until then, to the
address in its SDP. A packet from the SDP's address latches at once; from
another address (NAT), ``LATCH_PACKETS`` in sequence of one SSRC from that
address, in a payload type we answered, are needed (the packets before
are dropped), so one stray packet cannot take the call over. Once
latched, packets from anywhere else are counted and dropped; a new
offer/answer with another address latches again. A datagram that is not
RTP is counted and dropped by the receiver.

The media clock drives both paths: every tick the leg sends its frame
(:meth:`RtpChannel.send`), which also polls the receiver, so frames that
waited in the reorder buffer and presses whose end packets were lost come
out on time. RTCP reports go out every 5 s or so (randomised, section
6.3.1), and the peer's reports are kept (:attr:`RtpChannel.rtcp`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from ivr.call.leg import Leg
from ivr.transport import rtp
from media.errors import BadFrame

log = logging.getLogger("ivr.sip.media")

Address = tuple[str, int]
LATCH_PACKETS = 2  # from an address the SDP did not give, in sequence, before we latch
DigitSink = Callable[[str], None]


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            # An IPv4 address comes as (host, port) already; IPv6 adds flow info and scope.
            self.on_datagram(data, addr if len(addr) == 2 else (str(addr[0]), int(addr[1])))
        except Exception:  # one bad packet never takes the call (or the edge) down
            log.exception("a media datagram could not be handled; dropped")

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable and the like: the peer may not be listening yet

    def sendto(self, data: bytes, addr: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


class PortRange:
    """The RTP ports of the range, even ones each with the odd one above for RTCP."""

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self._free = list(range(low + low % 2, high, 2))
        random.shuffle(self._free)  # not the next one: a late packet of the last call
        self._used: set[int] = set()

    @property
    def free(self) -> int:
        return len(self._free)

    def bind(self) -> tuple[socket.socket, socket.socket, int] | None:
        """Two bound UDP sockets (RTP, RTCP) and the RTP port; None if the range is used up."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(len(self._free)):
            port = self._free.pop(0)
            pair = []
            try:
                for p in (port, port + 1):
                    s = socket.socket(family, socket.SOCK_DGRAM)
                    pair.append(s)
                    s.setblocking(False)
                    s.bind((self.host, p))
            except OSError:  # taken by another process: try the next, this one later
                for s in pair:
                    s.close()
                self._free.append(port)
                continue
            self._used.add(port)
            return pair[0], pair[1], port
        return None

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.discard(port)
            self._free.append(port)


class RtpChannel:
    """The RTP and RTCP of one call: receive into the leg, send the leg's frames, report."""

    def __init__(self, ports: PortRange, pair: tuple[socket.socket, socket.socket, int]) -> None:
        self._ports = ports
        rtp_sock, rtcp_sock, self.port = pair
        self._socks = (rtp_sock, rtcp_sock)
        self._rtp = _Socket(self._rtp_in)
        self._rtcp = _Socket(self._rtcp_in)
        self.leg: Leg | None = None  # set when the call is placed; frames before go nowhere
        self.on_digit: DigitSink | None = None
        self.on_media_timeout: Callable[[], None] | None = None
        self.media_timeout_s = 0.0  # 0: never
        self._expect_since = time.monotonic()
        self.rx: rtp.RtpReceiver | None = None
        self.tx: rtp.RtpSender | None = None
        self.rtcp: rtp.RtcpSession | None = None
        self.stream: rtp.AudioStream | None = None
        self._remote: Address | None = None  # where RTP goes (SDP, then latched)
        self._remote_rtcp: Address | None = None
        self._latched: Address | None = None
        self._latched_rtcp: Address | None = None
        self._sdp_remote: Address | None = None
        self._candidate: tuple[Address, int, int, int] | None = None  # addr, ssrc, seq, count
        self._report: asyncio.TimerHandle | None = None
        self.closed = False
        self.counters = {"foreign": 0, "malformed_rtcp": 0}

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._rtp, sock=self._socks[0])
        await loop.create_datagram_endpoint(lambda: self._rtcp, sock=self._socks[1])

    # -- negotiation -------------------------------------------------------------

    def start(self, codec: str, stream: rtp.AudioStream | None, cname: str) -> None:
        """Start RTP in the leg's ``codec``; ``stream`` None: our offer awaits its answer."""
        if stream is not None:
            self.rx, self.tx = stream.receiver(), stream.sender(secrets.randbits)
        else:  # a delayed offer: receive what we offered, send nothing until the answer
            self.rx = rtp.RtpReceiver({0: "pcmu", 8: "pcma", 101: "telephone-event"}, codec)
            self.tx = rtp.RtpSender.start(0, secrets.randbits, event_payload_type=101)
            self.tx.sending = False
        self.rtcp = rtp.RtcpSession(self.tx.ssrc, cname)
        if stream is not None:
            self._use(stream)
        self._schedule_report()

    def update(self, stream: rtp.AudioStream) -> None:
        """A new offer/answer (re-INVITE, or the answer in the ACK): the same SSRC goes on."""
        assert self.tx is not None
        assert self.rx is not None
        stream.update(self.tx, self.rx)
        self._use(stream)

    def _use(self, stream: rtp.AudioStream) -> None:
        old = self.stream
        self.stream = stream
        self._expect_since = time.monotonic()
        if stream.remote_address is None:
            self._remote = self._remote_rtcp = None
            return
        sdp_remote = (stream.remote_address, stream.remote_port)
        self._sdp_remote = sdp_remote
        if old is None or (old.remote_address, old.remote_port) != sdp_remote:
            self._latched = self._latched_rtcp = None  # it moved: latch again
            self._candidate = None
        self._remote = self._latched or sdp_remote
        self._remote_rtcp = self._latched_rtcp or (stream.remote_address, stream.remote_rtcp_port)

    @property
    def remote(self) -> Address | None:
        return self._remote

    # -- receiving ---------------------------------------------------------------

    def _rtp_in(self, data: bytes, addr: Address) -> None:
        rx = self.rx
        if rx is None or self.closed:
            return
        now = time.monotonic()
        if self._latched is not None:
            if addr != self._latched:
                self.counters["foreign"] += 1
                return
            self._deliver(rx.receive(data, now))
            return
        try:
            packet = rtp.parse_packet(data)
        except rtp.MalformedPacket:
            rx.receive(data, now)  # counted there
            return
        if packet.payload_type not in rx.formats or not self._may_latch(addr, packet):
            self.counters["foreign"] += 1
            return
        self._latched = addr
        if self._remote is not None:
            self._remote = addr
        self._deliver(rx.receive_packet(packet, now))

    def _may_latch(self, addr: Address, packet: rtp.RtpPacket) -> bool:
        if addr == self._sdp_remote:
            return True
        c = self._candidate
        if c is not None and c[:2] == (addr, packet.ssrc) and packet.sequence == (c[2] + 1) % 65536:
            count = c[3] + 1
        else:
            count = 1
        self._candidate = (addr, packet.ssrc, packet.sequence, count)
        return count >= LATCH_PACKETS

    def _deliver(self, got: rtp.Received) -> None:
        leg = self.leg
        if leg is not None:
            # exactly like WebSocket frames; always whole, so never a BadFrame (a zero-cost
            # try, where a suppress() per frame cost 2% of the server at 300 calls)
            try:
                for frame in got.frames:
                    leg.receive_audio(frame)
            except BadFrame:
                log.error("the frame assembler gave a frame of the wrong size; dropped")
        if self.on_digit is not None:
            for digit in got.digits:
                if isinstance(digit, rtp.DigitPressed):  # once per press (RFC 4733 2.5.1.4)
                    self.on_digit(digit.digit)

    def _rtcp_in(self, data: bytes, addr: Address) -> None:
        if self.rtcp is None or self.closed:
            return
        rtp_peer = self._latched or self._sdp_remote
        if (self._latched_rtcp is not None and addr != self._latched_rtcp) or (
            rtp_peer is not None and addr[0] != rtp_peer[0]  # RTCP comes from the RTP's host
        ):
            self.counters["foreign"] += 1
            return
        try:
            self.rtcp.receive(data, rtp.ntp_timestamp(time.time()))
        except rtp.MalformedRtcp:
            self.counters["malformed_rtcp"] += 1
            return
        if self._latched_rtcp is None:
            self._latched_rtcp = addr
            if self._remote_rtcp is not None:
                self._remote_rtcp = addr

    # -- sending -----------------------------------------------------------------

    def send(self, payload: bytes) -> bool:
        """The leg's frame of this tick (sent as RTP unless held); polls the receiver too."""
        if self.closed or self.tx is None or self.rx is None:
            return False
        now = time.monotonic()
        self._deliver(self.rx.poll(now))
        stream = self.stream
        if self.media_timeout_s and stream is not None and stream.receive and stream.send:
            last = max(
                self.rx.last_arrival_s or 0.0, self._expect_since, self.rx.listening_since_s or 0.0
            )
            if now - last >= self.media_timeout_s and self.on_media_timeout is not None:
                callback, self.on_media_timeout = self.on_media_timeout, None
                log.info("no RTP for %.0f s: the call is hung up", now - last)
                asyncio.get_running_loop().call_soon(callback)  # not inside the clock's tick
        packets = self.tx.push(payload)
        if self._remote is not None:
            for datagram in packets:
                self._rtp.sendto(datagram, self._remote)
        return True

    def _schedule_report(self) -> None:
        delay = rtp.report_interval_s(random.random())
        self._report = asyncio.get_running_loop().call_later(delay, self._send_report)

    def _send_report(self, bye: str | None = None) -> None:
        if self.rtcp is not None and self._remote_rtcp is not None:
            packet = self.rtcp.build(
                rtp.ntp_timestamp(time.time()), sender=self.tx, receiver=self.rx, bye=bye
            )
            self._rtcp.sendto(packet, self._remote_rtcp)
        if bye is None and not self.closed:
            self._schedule_report()

    def stats(self) -> dict[str, Any]:
        """Figures for the call's record: what we received, what the peer reports of us."""
        out: dict[str, Any] = {"rtp_port": self.port}
        if self.rx is not None:
            s = self.rx.statistics()
            out.update(
                packets_received=s.packets,
                packets_lost=s.lost,
                jitter_ms=round(s.jitter_ms, 2),
                malformed=s.malformed,
            )
        if self.tx is not None:
            out["packets_sent"] = self.tx.packets_sent
        report = None if self.rtcp is None else self.rtcp.peer_report
        if report is not None:
            out["peer_loss_percent"] = round(report.loss_percent, 2)
            out["peer_jitter_ms"] = round(report.jitter_ms, 2)
            out["peer_cumulative_lost"] = report.cumulative_lost
        return out

    def close(self) -> None:
        """Flush, say goodbye in RTCP (section 6.6), close both sockets and give the port back."""
        if self.closed:
            return
        if self.tx is not None and self._remote is not None:
            for datagram in self.tx.flush():
                self._rtp.sendto(datagram, self._remote)
        if self._report is not None:
            self._report.cancel()
        if self.tx is not None:
            self._send_report(bye="")
        self.closed = True
        self.leg = None
        self.on_digit = None
        for proto, sock in ((self._rtp, self._socks[0]), (self._rtcp, self._socks[1])):
            if proto.transport is not None:
                proto.transport.close()
            else:
                sock.close()
        self._ports.release(self.port)
