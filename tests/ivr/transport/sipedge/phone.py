"""A small SIP phone for in-process tests: UDP signalling and an RTP socket, on loopback."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

PCMU_OFFER = (
    "v=0\r\no=phone 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na={direction}\r\n"
)


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))


class Phone:
    """One caller: INVITE, ACK, in-dialog requests; what came back, parsed a little."""

    def __init__(self, server: tuple[str, int], caller: str = "+15557654321") -> None:
        self.server = server
        self.caller = caller
        self.sip = _Inbox()
        self.rtp = _Inbox()
        self.call_id = f"phone-{time.monotonic_ns()}@127.0.0.1"
        self.cseq = 1
        self.to_tag = ""
        self.branch = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self.sip, local_addr=("127.0.0.1", 0))
        await loop.create_datagram_endpoint(lambda: self.rtp, local_addr=("127.0.0.1", 0))

    @property
    def port(self) -> int:
        assert self.sip.transport is not None
        return int(self.sip.transport.get_extra_info("sockname")[1])

    @property
    def rtp_port(self) -> int:
        assert self.rtp.transport is not None
        return int(self.rtp.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        for inbox in (self.sip, self.rtp):
            if inbox.transport is not None:
                inbox.transport.close()

    def offer(self, direction: str = "sendrecv") -> str:
        return PCMU_OFFER.format(port=self.rtp_port, direction=direction)

    def request(
        self, method: str, to: str, body: str = "", content_type: str = "application/sdp"
    ) -> None:
        if method not in ("ACK", "CANCEL"):
            self.cseq += 1 if method != "INVITE" or self.to_tag else 0
        self.branch += 1
        tag = f";tag={self.to_tag}" if self.to_tag else ""
        lines = [
            f"{method} sip:{to}@127.0.0.1:{self.server[1]} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-phone-{self.branch};rport",
            f"From: <sip:{self.caller}@127.0.0.1:{self.port}>;tag=phone1",
            f"To: <sip:{to}@127.0.0.1:{self.server[1]}>{tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <sip:phone@127.0.0.1:{self.port}>",
            "Max-Forwards: 70",
        ]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body.encode())}")
        self.send(("\r\n".join(lines) + "\r\n\r\n" + body).encode())

    def send(self, data: bytes) -> None:
        assert self.sip.transport is not None
        self.sip.transport.sendto(data, self.server)

    async def response(self, status: int, timeout: float = 5.0) -> str:
        """The next response with ``status`` (others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            data, _ = await asyncio.wait_for(self.sip.queue.get(), max(left, 0.01))
            text = data.decode(errors="replace")
            if text.startswith(f"SIP/2.0 {status} "):
                tag = re.search(r"^To:.*;tag=([^;\s]+)", text, re.MULTILINE | re.IGNORECASE)
                if tag and 200 <= status < 300:
                    self.to_tag = tag.group(1)
                return text

    async def response_or_request(self, start: str, timeout: float = 5.0) -> str:
        """The next message whose first line starts with ``start`` ("BYE", "SIP/2.0 200")."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            data, _ = await asyncio.wait_for(self.sip.queue.get(), max(left, 0.01))
            text = data.decode(errors="replace")
            if text.startswith(start):
                return text

    async def call(self, to: str = "+15550100") -> str:
        """INVITE, the 200 OK, the ACK; returns the 200's text."""
        self.request("INVITE", to, self.offer())
        ok = await self.response(200)
        self.request("ACK", to)
        return ok

    def server_rtp_port(self, ok: str) -> int:
        found = re.search(r"^m=audio (\d+) ", ok, re.MULTILINE)
        assert found is not None, ok
        return int(found.group(1))

    def drain_rtp(self) -> int:
        n = 0
        while not self.rtp.queue.empty():
            self.rtp.queue.get_nowait()
            n += 1
        return n
