"""The SIP edge in-process, with the test config: what SIPp's scenarios do not reach."""

from __future__ import annotations

import asyncio
import random
import re
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ivr.call.session import CallSession
from ivr.server.app import sip_edge_key
from ivr.server.keys import store_key, switchboard_key
from ivr.transport.sipedge import dialled_number
from ivr.transport.sipedge.info import info_digit
from tests.conftest import AppFactory
from tests.ivr.transport.sipedge.phone import Phone

Client = TestClient[web.Request, web.Application]


def _sip(config_data: dict[str, Any], **more: Any) -> dict[str, Any]:
    low = random.randrange(30000, 39000, 2)
    config_data["sip"] = {"enabled": True, "port": 0, "rtp_ports": f"{low}-{low + 19}", **more}
    return config_data


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _phone(client: Client, caller: str = "+15557654321") -> Phone:
    edge = client.app[sip_edge_key]
    phone = Phone(("127.0.0.1", edge.port), caller)
    await phone.open()
    return phone


def _session(client: Client) -> CallSession:
    (session,) = client.app[switchboard_key].calls.values()
    return session


def _rtp(seq: int, ts: int, payload: bytes, pt: int = 0, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + payload


def test_dialled_numbers_with_or_without_plus() -> None:
    assert dialled_number("15550100") == "+15550100"
    assert dialled_number("+15550100") == "+15550100"
    assert dialled_number("anonymous") is None
    assert dialled_number("+1555 0100") is None
    assert dialled_number(None) is None


def test_info_bodies() -> None:
    assert info_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n") == "5"
    assert info_digit("application/dtmf-relay", b"Signal= 11\r\n") == "#"
    assert info_digit("application/dtmf-relay", b"signal=*") == "*"
    assert info_digit("application/dtmf", b"7") == "7"
    assert info_digit("application/dtmf-relay", b"Duration=160") is None
    assert info_digit("application/dtmf-relay", b"Signal=55") is None
    assert info_digit("application/dtmf", b"\xff") is None


async def test_info_digit_chooses_and_garbage_disturbs_nothing(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client)
    try:
        ok = await phone.call()
        server_rtp = ("127.0.0.1", phone.server_rtp_port(ok))
        session = _session(client)
        (session_key,) = client.app[sip_edge_key].calls
        assert session.caller.codec.name == "pcmu"
        # Our RTP, then hostile noise: junk on the SIP port, junk and a stranger's
        # packet on the RTP port. None of it may touch the call.
        assert phone.rtp.transport is not None
        for i in range(5):
            phone.rtp.transport.sendto(_rtp(100 + i, 160 * i, b"\x7f" * 160), server_rtp)
        await _until(lambda: session.caller.stats.frames_received >= 4)
        phone.send(b"\x00\xff garbage")
        phone.send(b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n")
        phone.rtp.transport.sendto(b"\x00" * 7, server_rtp)
        loop = asyncio.get_running_loop()
        stranger, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        stranger.sendto(_rtp(9, 0, b"\x00" * 160, ssrc=0x666), server_rtp)
        stranger.close()
        channel = client.app[sip_edge_key].calls[session_key].channel
        assert channel is not None
        await _until(lambda: channel.counters["foreign"] == 1)
        await _until(lambda: session.flow.node == "consent")
        phone.request("INFO", "+15550100", "Signal=1\r\nDuration=100\r\n", "application/dtmf-relay")
        await phone.response(200)
        await _until(lambda: session.flow.node == "recorded")
        dtmf = [e for e in session._events if e[1] == "dtmf"]
        assert [(e[2]["digit"], e[2]["source"]) for e in dtmf] == [("1", "sip_info")]
        assert session.caller.stats.frames_malformed == 0
        phone.request("BYE", "+15550100")
        await phone.response(200)
        await asyncio.wait_for(session.wait_finished(), 10)
        row = await client.app[store_key].calls.get(session.id)
        assert (row.end_reason, row.transport, row.sip_call_id) == ("caller", "sip", phone.call_id)
        await _until(lambda: client.app[sip_edge_key]._writes == set())
        row = await client.app[store_key].calls.get(session.id)
        assert row.media is not None
        assert row.media["packets_received"] == 5
        assert row.media["packets_sent"] > 0
        assert client.app[sip_edge_key].calls == {}
        metrics = await (await client.get("/metrics")).text()
        assert 'ivr_sip_invites_total{outcome="placed"} 1.0' in metrics
        assert "ivr_sip_malformed_total 2.0" in metrics
        assert "ivr_rtp_foreign_packets_total 1.0" in metrics
    finally:
        phone.close()


async def test_no_rtp_while_the_caller_holds(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client)
    try:
        await phone.call()
        await asyncio.sleep(0.3)
        assert phone.drain_rtp() >= 10  # the prompt, every 20 ms
        phone.request("INVITE", "+15550100", phone.offer("sendonly"))
        held = await phone.response(200)
        phone.request("ACK", "+15550100")
        assert "a=recvonly" in held
        await asyncio.sleep(0.1)
        phone.drain_rtp()  # what was on its way
        await asyncio.sleep(0.4)
        assert phone.drain_rtp() == 0
        phone.request("INVITE", "+15550100", phone.offer("sendrecv"))
        resumed = await phone.response(200)
        phone.request("ACK", "+15550100")
        assert "a=sendrecv" in resumed
        await asyncio.sleep(0.3)
        assert phone.drain_rtp() >= 10
        phone.request("BYE", "+15550100")
        await phone.response(200)
    finally:
        phone.close()


@pytest.mark.parametrize(
    ("caller", "to", "status"),
    [
        ("+15557654321", "+15559999999", 404),
        ("anonymous", "+15550100", 403),
        ("+15557654321", "sales", 404),
    ],
)
async def test_refused_before_anything_is_bound(
    start_app: AppFactory, config_data: dict[str, Any], caller: str, to: str, status: int
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client, caller)
    try:
        phone.request("INVITE", to, phone.offer())
        await phone.response(status)
        assert client.app[sip_edge_key].ports.free == 10
        assert client.app[switchboard_key].calls == {}
        metrics = await (await client.get("/metrics")).text()
        outcome = "not_found" if status == 404 else "forbidden"
        assert f'ivr_sip_invites_total{{outcome="{outcome}"}} 1.0' in metrics
        assert 'ivr_sip_invites_total{outcome="placed"} 0.0' in metrics
    finally:
        phone.close()


async def test_503_with_retry_after_at_the_sip_call_limit(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data, max_calls=1))
    first, second = await _phone(client), await _phone(client, "+15557654322")
    try:
        await first.call()
        second.request("INVITE", "+15550100", second.offer())
        busy = await second.response(503)
        assert "\r\nRetry-After: 5" in busy
        first.request("BYE", "+15550100")
        await first.response(200)
    finally:
        first.close()
        second.close()


async def test_the_edge_stops_with_the_app(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client)
    try:
        await phone.call()
        session = _session(client)
        await client.close()  # shutdown: the call ends, a BYE goes to the caller
        assert session.reason == "shutdown"
        bye, _ = await asyncio.wait_for(phone.sip.queue.get(), 5)
        while not bye.startswith(b"BYE "):
            bye, _ = await asyncio.wait_for(phone.sip.queue.get(), 5)
    finally:
        phone.close()


async def test_a_delayed_offer_gets_ours_and_takes_the_answer_in_the_ack(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client)
    try:
        phone.request("INVITE", "+15550100")  # no SDP
        ok = await phone.response(200)
        assert "m=audio" in ok
        assert "a=rtpmap:8 PCMA/8000" in ok
        assert "a=sendrecv" in ok
        answer = phone.offer().replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("0 PCMU", "8 PCMA")
        phone.request("ACK", "+15550100", answer)
        await asyncio.sleep(0.3)
        packets = []
        while not phone.rtp.queue.empty():
            packets.append(phone.rtp.queue.get_nowait()[0])
        assert len(packets) >= 10
        assert {p[1] & 0x7F for p in packets} == {8}  # PCMA, as the answer chose
        phone.request("BYE", "+15550100")
        await phone.response(200)
    finally:
        phone.close()


async def test_the_200_is_retransmitted_until_the_ack(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client)
    try:
        phone.request("INVITE", "+15550100", phone.offer())
        first = await phone.response(200)
        started = time.monotonic()
        again = await phone.response(200, timeout=2)  # T1 = 500 ms later (RFC 3261 13.3.1.4)
        assert 0.3 < time.monotonic() - started < 1.0
        assert again.split("\r\n\r\n")[0] == first.split("\r\n\r\n")[0]
        phone.request("ACK", "+15550100")
        await asyncio.sleep(0.1)
        while not phone.sip.queue.empty():
            phone.sip.queue.get_nowait()
        await asyncio.sleep(1.2)  # past the next retransmission, had there been one
        assert phone.sip.queue.empty()
        phone.request("BYE", "+15550100")
        await phone.response(200)
    finally:
        phone.close()


async def test_a_call_without_rtp_is_hung_up_after_the_media_timeout(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data, media_timeout_s=0.5))
    phone = await _phone(client)
    try:
        await phone.call()
        session = _session(client)
        started = time.monotonic()
        bye = await phone.response_or_request("BYE", timeout=3)
        assert 0.4 < time.monotonic() - started < 1.5
        assert bye.startswith("BYE ")
        assert session.reason == "caller"
    finally:
        phone.close()


async def test_a_call_over_tcp_gets_our_bye_on_its_connection(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    edge = client.app[sip_edge_key]
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    here = writer.get_extra_info("sockname")[1]
    phone = await _phone(client)  # for its SDP and RTP port only
    try:
        body = phone.offer().encode()
        head = (
            f"INVITE sip:+15550100@127.0.0.1:{edge.port};transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{here};branch=z9hG4bK-tcp-1\r\n"
            f"From: <sip:+15557654321@127.0.0.1>;tag=tcp1\r\n"
            f"To: <sip:+15550100@127.0.0.1>\r\n"
            f"Call-ID: tcp-call@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:phone@127.0.0.1:{here};transport=tcp>\r\nMax-Forwards: 70\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        seen = b""
        while b"SIP/2.0 200 OK" not in seen:
            seen += await asyncio.wait_for(reader.read(65536), 5)
        ok = seen.split(b"SIP/2.0 200 OK", 1)[1].decode()
        found = re.search(r"^To:.*;tag=([^;\s]+)", ok, re.MULTILINE)
        assert found is not None
        tag = found.group(1)
        writer.write(
            (
                f"ACK sip:+15550100@127.0.0.1:{edge.port};transport=tcp SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP 127.0.0.1:{here};branch=z9hG4bK-tcp-2\r\n"
                f"From: <sip:+15557654321@127.0.0.1>;tag=tcp1\r\n"
                f"To: <sip:+15550100@127.0.0.1>;tag={tag}\r\n"
                f"Call-ID: tcp-call@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
                f"Content-Length: 0\r\n\r\n"
            ).encode()
        )
        session = _session(client)
        await asyncio.sleep(0.2)
        session.hangup("error")  # the server ends the call: a BYE, on this connection
        seen = b""
        while b"BYE sip:" not in seen:
            seen += await asyncio.wait_for(reader.read(65536), 1)  # not the ACK's timeout
        assert b"Via: SIP/2.0/TCP" in seen.split(b"BYE sip:", 1)[1]
    finally:
        writer.close()
        phone.close()


async def test_symmetric_rtp_latches_to_a_natted_source_after_two_packets(
    start_app: AppFactory, config_data: dict[str, Any]
) -> None:
    client = await start_app(_sip(config_data))
    phone = await _phone(client)
    loop = asyncio.get_running_loop()
    nat_inbox: asyncio.Queue[bytes] = asyncio.Queue()

    class Nat(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            nat_inbox.put_nowait(data)

    nat, _ = await loop.create_datagram_endpoint(Nat, local_addr=("127.0.0.1", 0))
    try:
        ok = await phone.call()
        server_rtp = ("127.0.0.1", phone.server_rtp_port(ok))
        session = _session(client)
        channel = client.app[sip_edge_key].calls[next(iter(client.app[sip_edge_key].calls))].channel
        assert channel is not None
        # The phone's packets come from another port than its SDP said (a NAT).
        nat.sendto(_rtp(500, 0, b"\x7f" * 160), server_rtp)
        await asyncio.sleep(0.05)
        assert channel.counters["foreign"] == 1  # one packet is not enough
        assert channel.remote == ("127.0.0.1", phone.rtp_port)
        for i in range(1, 6):
            nat.sendto(_rtp(500 + i, 160 * i, b"\x7f" * 160), server_rtp)
        await _until(lambda: session.caller.stats.frames_received >= 4)
        assert channel.remote == nat.get_extra_info("sockname")[:2]
        await asyncio.wait_for(nat_inbox.get(), 1)  # our RTP follows the latch
        # Now the SDP's own port is a stranger.
        assert phone.rtp.transport is not None
        phone.rtp.transport.sendto(_rtp(900, 0, b"\x00" * 160), server_rtp)
        await _until(lambda: channel.counters["foreign"] == 2)
        phone.request("BYE", "+15550100")
        await phone.response(200)
    finally:
        nat.close()
        phone.close()
