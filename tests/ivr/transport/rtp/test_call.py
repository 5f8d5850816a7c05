"""A whole call through the core, as the driver will run it: SDP, RTP both ways, RTCP, hold."""

from __future__ import annotations

import random

from ivr.call.leg import Leg
from ivr.transport.rtp.events import DigitPressed, DigitReleased
from ivr.transport.rtp.framing import transcode
from ivr.transport.rtp.negotiation import LocalSession, Negotiated, answer
from ivr.transport.rtp.receiver import RtpReceiver
from ivr.transport.rtp.report import RtcpSession
from ivr.transport.rtp.rtcp import REPORT_INTERVAL_S, SenderReport, ntp_timestamp, parse_rtcp
from ivr.transport.rtp.sdp import parse_sdp
from ivr.transport.rtp.sender import RtpSender
from media.frame import codec
from tests.ivr.transport.rtp.helpers import tone
from tests.ivr.transport.rtp.offers import HOLD_SENDONLY, LINPHONE, RESUME

TICK_S = 0.02
ALAW_SILENCE = 0xD5
EPOCH_S = 1_700_000_000.0  # the wall clock the driver would read, here scripted


def test_a_call_from_offer_to_hold_and_back() -> None:
    rng = random.Random(7)
    # The offer in, our answer out: linphone prefers PCMA.
    ours = LocalSession(session_id=rng.getrandbits(62), version=1, address="203.0.113.7")
    result = answer(parse_sdp(LINPHONE), ours, address="203.0.113.7", port=40000)
    stream = result.stream
    assert stream is not None
    assert (stream.codec, stream.ptime_ms) == ("pcma", 20)
    leg = Leg(codec(stream.codec, 8000), transport=None)
    rx = stream.receiver()
    tx = stream.sender(rng.getrandbits)
    rtcp = RtcpSession(tx.ssrc, "ivr-call-1@203.0.113.7")

    # The phone sends PCMA at 30 ms (ptime is what a receiver asks for; we
    # repacketise whatever comes), presses 5 at 1 s, and reports back.
    phone_tx = RtpSender(
        8, ssrc=0x5EED, sequence=65000, timestamp=4_000_000_000, ptime_ms=30, event_payload_type=101
    )
    phone_rx = RtpReceiver({0: "pcmu", 8: "pcma", 101: "telephone-event"}, "pcma")
    phone_rtcp = RtcpSession(phone_tx.ssrc, "alice@192.168.1.50")

    sent_by_phone: list[bytes] = []
    heard_by_leg: list[bytes] = []
    sent_by_us: list[bytes] = []
    heard_by_phone: list[bytes] = []
    digits: list[object] = []
    next_report_s = REPORT_INTERVAL_S
    for tick in range(400):  # 8 s
        now = tick * TICK_S
        if tick == 50:
            assert phone_tx.send_digit("5", duration_ms=120)
        sent_by_phone.append(tone(160, tick))
        got = [rx.receive(d, now + 0.005) for d in phone_tx.push(sent_by_phone[-1])]
        got.append(rx.poll(now + 0.01))
        for received in got:
            for frame in received.frames:
                leg.receive_audio(frame)
                heard_by_leg.append(frame)
            digits += received.digits
        leg.take_inbound()
        # Our side sends the switch's frame of this tick.
        sent_by_us.append(tone(160, 1000 + tick))
        for datagram in tx.push(sent_by_us[-1]):
            heard_by_phone += phone_rx.receive(datagram, now + 0.004).frames
        if now >= next_report_s:
            report = rtcp.build(ntp_timestamp(EPOCH_S + now), sender=tx, receiver=rx)
            assert isinstance(phone_rtcp.receive(report, ntp_timestamp(EPOCH_S + now + 0.03))[0],
                              SenderReport)  # fmt: skip
            back = phone_rtcp.build(
                ntp_timestamp(EPOCH_S + now + 0.05), sender=phone_tx, receiver=phone_rx
            )
            rtcp.receive(back, ntp_timestamp(EPOCH_S + now + 0.08))
            next_report_s += REPORT_INTERVAL_S

    # The key press: one press, its duration (120 ms, up to the 20 ms grid and
    # the 10 ms of audio it took the place of), and silence where it was.
    assert [type(d) for d in digits] == [DigitPressed, DigitReleased]
    released = digits[1]
    assert isinstance(released, DigitReleased)
    assert released.digit == "5"
    assert 120 <= released.duration_ms < 140
    heard = b"".join(heard_by_leg)
    sent = b"".join(sent_by_phone)[: len(heard)]
    changed = [i for i in range(len(heard)) if heard[i] != sent[i]]
    assert all(heard[i] == ALAW_SILENCE for i in changed)
    assert changed[-1] - changed[0] < released.duration  # one span: the press
    assert len(heard_by_leg) >= 398  # all but the phone's last part-packet
    stats = rx.statistics()
    assert (stats.lost, stats.late, stats.duplicates, stats.malformed) == (0, 0, 0, 0)
    assert leg.stats.frames_malformed == 0
    # The phone heard exactly what we sent.
    assert heard_by_phone == sent_by_us
    # RTCP: the phone's report on us; the round trip is 0.08 s less the 0.02 s
    # the phone held our SR (DLSR): 0.03 s each way.
    assert rtcp.peer_report is not None
    assert rtcp.peer_report.cumulative_lost == 0
    assert rtcp.peer_report.round_trip_s is not None
    assert abs(rtcp.peer_report.round_trip_s - 0.06) < 0.001
    assert rtcp.peer_cname == "alice@192.168.1.50"
    assert phone_rtcp.peer_cname == "ivr-call-1@203.0.113.7"

    # A re-INVITE holds us (a=sendonly): we answer recvonly and stop sending.
    def reanswer(body: bytes, session: LocalSession) -> Negotiated:
        return answer(
            parse_sdp(body), session, address="203.0.113.7", port=40000, keep_codec=stream.codec
        )

    held = reanswer(HOLD_SENDONLY, result.session)
    assert held.stream is not None
    held.stream.update(tx, rx)
    assert tx.push(bytes(160)) == []
    # Held, we are a sender for the two reports after our last packet, then
    # a receiver only (RFC 3550 section 6.4).
    kinds = [
        type(parse_rtcp(rtcp.build(ntp_timestamp(EPOCH_S + t), sender=tx))[0]).__name__
        for t in (9, 14, 19)
    ]
    assert kinds == ["SenderReport", "SenderReport", "ReceiverReport"]
    resumed = reanswer(RESUME, held.session)
    assert resumed.stream is not None
    assert resumed.sdp.origin.session_version == held.sdp.origin.session_version + 1
    resumed.stream.update(tx, rx)
    # SIPp's re-INVITEs offer PCMU only: the leg keeps PCMA, the wire is PCMU.
    assert resumed.stream.codec == "pcmu"
    (first,) = tx.push(b"\xd5" * 160)  # A-law silence from the leg
    assert first[1] == 0x80  # the marker (a new talkspurt after the hold), PT 0
    assert first[12:] == transcode(b"\xd5" * 160, "pcma", "pcmu") == b"\xfe" * 160  # +8 either way
    # And the phone sends PCMU now: the leg still gets A-law frames.
    phone_tx.configure(0, 20, 101, range(16), "pcmu")
    new = [tone(160, 400 + i) for i in range(4)]
    frames = [
        f
        for i, x in enumerate(new)
        for d in phone_tx.push(x)
        for f in rx.receive(d, 20 + i * TICK_S).frames
    ]
    expected = transcode(transcode(b"".join(new[1:3]), "pcma", "pcmu"), "pcmu", "pcma")
    assert expected in b"".join(frames)
    assert rx.statistics().unknown_payload == 0
