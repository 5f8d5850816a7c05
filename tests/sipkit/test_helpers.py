"""The kit's own parts, without the tools: the mini UAS, the pcap reader, the child process."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.sipkit import conftest, pcap, sipp
from tests.sipkit.conftest import tone
from tests.sipkit.process import (
    LOOPBACK,
    Child,
    free_port,
    free_port_range,
    padded_wav,
    port_is_free,
    read_wav,
    write_wav,
)
from tests.sipkit.uas import MiniUas, parse_rtp, parse_sdp, parse_sip

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 8 0 99 101\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:99 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=ptime:30\r\na=sendonly\r\nm=video 4002 RTP/AVP 96\r\na=recvonly\r\n"
)


def invite(port: int, user: str = "+15550100", body: str = OFFER) -> bytes:
    return (
        f"INVITE sip:{user}@{LOOPBACK} SIP/2.0\r\n"
        f"v: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK1\r\n"
        f"f: <sip:+15557654321@{LOOPBACK}>;tag=a\r\nt: <sip:{user}@{LOOPBACK}>\r\n"
        f"i: call-1\r\nCSeq: 1 INVITE\r\nSubject: folded\r\n  on two lines\r\n"
        f"c: application/sdp\r\nl: {len(body)}\r\n\r\n{body}"
    ).encode()


def test_a_request_with_compact_and_folded_headers_parses() -> None:
    request = parse_sip(invite(5060))
    assert request.method == "INVITE"
    assert request.user == "+15550100"
    assert request.header("call-id") == "call-1"
    assert request.header("subject") == "folded on two lines"
    assert request.all("via") == [f"SIP/2.0/UDP {LOOPBACK}:5060;branch=z9hG4bK1"]


def test_the_sdp_of_the_first_audio_stream_is_read() -> None:
    sdp = parse_sdp(OFFER)
    assert (sdp.port, sdp.formats, sdp.ptime, sdp.direction) == (
        4000,
        (8, 0, 99, 101),
        30,
        "sendonly",
    )
    assert sdp.event_pt == 101  # the 8 kHz one, not the first listed
    assert sdp.encoding(0) == "PCMU/8000"  # static, without an rtpmap


def test_rtp_with_csrcs_an_extension_and_padding_gives_its_payload() -> None:
    header = struct.pack("!BBHII", 0xB1, 0x80 | 101, 7, 1234, 99) + struct.pack("!I", 5)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    packet = parse_rtp(header + extension + b"\x01\x8a\x00\xa0" + b"\x00\x00\x03", 0.0)
    assert packet is not None
    assert (packet.pt, packet.marker, packet.seq, packet.ts) == (101, True, 7, 1234)
    assert packet.payload == b"\x01\x8a\x00\xa0"
    assert parse_rtp(b"\x00" * 12, 0.0) is None  # version 0


async def test_the_mini_uas_answers_mirrors_and_counts_each_press_once() -> None:
    async with MiniUas(numbers={"+15550100"}) as uas:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        try:
            port = sock.getsockname()[1]
            sock.sendto(invite(port), (LOOPBACK, uas.sip_port))
            replies = [(await loop.sock_recv(sock, 4096)).decode() for _ in range(3)]
            assert [r.split("\r\n")[0] for r in replies] == [
                "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK",
            ]  # fmt: skip
            answer = parse_sdp(replies[2].split("\r\n\r\n", 1)[1])
            assert (answer.port, answer.formats, answer.direction) == (
                uas.rtp_port,
                (8, 101),
                "recvonly",
            )
            # one press (three end packets), then the same key again later: two presses
            for ts, end in ((160, False), (160, True), (160, True), (160, True), (960, True)):
                rtp = struct.pack("!BBHII", 0x80, 101, ts, ts, 1) + bytes(
                    [1, 0x80 * end | 10, 0, 160]
                )
                sock.sendto(rtp, (LOOPBACK, uas.rtp_port))
            await uas.wait_for(lambda: len(uas.events()) == 5, 2.0)
            assert uas.presses() == "11"
            sock.sendto(
                invite(port, user="+15550999").replace(b"call-1", b"call-2"),
                (LOOPBACK, uas.sip_port),
            )
            replies = [(await loop.sock_recv(sock, 4096)).decode() for _ in range(2)]
            assert replies[1].startswith("SIP/2.0 404 ")
        finally:
            sock.close()


def test_a_wav_is_padded_with_silence_and_other_rates_are_refused(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "a.wav", tone(100))
    samples, rate, channels = read_wav(padded_wav(src, tmp_path / "b.wav", 0.5))
    assert (len(samples), rate, channels) == (8000, 8000, 1)
    assert samples[:1600] == tone(100)
    assert samples[1600:] == bytes(8000 - 1600)
    with pytest.raises(ValueError, match="16000 Hz"):
        padded_wav(write_wav(tmp_path / "c.wav", tone(100), 16000), tmp_path / "d.wav", 1)


async def test_a_child_and_what_it_started_are_ended() -> None:
    async with Child(["sh", "-c", "sleep 30 & echo started; wait"], grace_s=0.5) as child:
        await child.wait_for_output("started", 5.0)
        group = child.process.pid if child.process else 0
    assert child.returncode is not None
    for _ in range(100):  # the backgrounded sleep goes with the group
        await asyncio.sleep(0.01)
        if not live_members(group):
            break
    assert live_members(group) == []


def live_members(group: int) -> list[int]:
    """Processes of the group that are not zombies (a container's init may not reap them)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.tools("sipp")
def test_the_shipped_g711a_pcap_is_30_ms_of_pcma_per_packet() -> None:
    packets = pcap.read_rtp(sipp.shipped_pcap("g711a"))
    assert len(packets) == 236
    assert {p.pt for p in packets} == {8}
    assert {len(p.payload) for p in packets} == {240}
    assert pcap.ptime_ms(sipp.shipped_pcap("g711a"), 8) == 30.0
    assert packets[0].marker
    assert len(pcap.audio_payload(sipp.shipped_pcap("g711a"), 8)) == 56640
    speech = pcap.decoded_audio(sipp.shipped_pcap("g711a"), 8)
    assert speech.dtype == np.dtype(np.int16)
    assert len(speech) == 56640
    assert np.abs(speech).max() > 1000  # speech, not silence


@pytest.mark.tools("sipp")
@pytest.mark.parametrize(
    ("name", "code"), [("dtmf_2833_1", 1), ("dtmf_2833_9", 9), ("dtmf_2833_pound", 11)]
)
def test_the_shipped_dtmf_pcaps_are_one_rfc_4733_press_each(name: str, code: int) -> None:
    packets = pcap.read_rtp(sipp.shipped_pcap(name))
    assert {p.pt for p in packets} == {101}
    assert len({p.ts for p in packets}) == 1
    blocks = [struct.unpack("!BBH", p.payload) for p in packets]
    assert {b[0] for b in blocks} == {code}
    assert [b[1] >> 7 for b in blocks] == [0] * 7 + [1] * 3  # seven updates, three ends
    assert packets[0].marker
    assert blocks[-1][2] == 2240


def test_free_ports_are_free_and_ranges_start_even() -> None:
    low, high = free_port_range(20)
    assert (high - low + 1, low % 2) == (20, 0)
    assert all(port_is_free(p, tcp=False) for p in range(low, high + 1))
    port = free_port()
    assert port_is_free(port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind((LOOPBACK, port))
        assert not port_is_free(port, tcp=False)


class FakeItem:
    """Just what the tools hook reads of a test item."""

    def __init__(self, *tools: str) -> None:
        self.marker = pytest.mark.tools(*tools).mark

    def iter_markers(self, name: str) -> list[pytest.Mark]:
        return [self.marker] if name == "tools" else []


def test_a_missing_tool_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "available", lambda tool: tool != "linphone")
    monkeypatch.delenv("CI", raising=False)
    conftest.pytest_runtest_setup(FakeItem("sipp"))  # type: ignore[arg-type]  # installed: runs
    with pytest.raises(pytest.skip.Exception, match="linphone"):
        conftest.pytest_runtest_setup(FakeItem("sipp", "linphone"))  # type: ignore[arg-type]
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"not installed: linphone \(run .ci/setup"):
        conftest.pytest_runtest_setup(FakeItem("linphone"))  # type: ignore[arg-type]
