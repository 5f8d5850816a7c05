"""A tiny SIP UAS and RTP sink over UDP on loopback, for checking the real tools.

SIPp's own ``uas`` scenario answers calls but cannot tell what arrives in
RTP. :class:`MiniUas` answers like a plain phone and keeps everything it is
sent, so a test can assert on the INVITE's SDP, on the digits that arrived
as RFC 4733 telephone-events and on the audio packets. It is written from
raw text and ``struct`` on purpose: it shares no code with the server's SIP
and RTP cores, so a test that passes against it says something about the
tool, not about our own parser.

What it does, per request (RFC 3261, the minimum a UA needs):

* INVITE without a To tag: 100, then 180, then (after ``answer_after_s``)
  200 with an SDP answer that keeps the offer's payload type numbers and
  points RTP at :attr:`rtp_port`; a number not in ``numbers`` (when given)
  gets 404; a retransmitted INVITE gets the last response again;
* INVITE with a To tag (re-INVITE): 200 whose SDP mirrors the offer's
  direction (``sendonly`` gets ``recvonly``, ``inactive`` gets ``inactive``,
  RFC 3264 section 6.1);
* CANCEL before the 200: 200 to it and 487 to the INVITE (RFC 3261 9.2);
* ACK: kept; BYE, OPTIONS, INFO: 200.

It does not retransmit its 200 (loopback does not lose datagrams) and sends
no RTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from tests.sipkit.process import LOOPBACK

COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}
COMPACT |= {"c": "content-type"}
EVENT_KEYS = "0123456789*#ABCD"


@dataclass(frozen=True)
class SipMessage:
    """A request as text: its first line, headers (lower-case names, in order), body."""

    start: str
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        return self.start.split(" ")[1]

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    @property
    def user(self) -> str:
        """The Request-URI's user part: the dialled number."""
        found = re.match(r"sips?:([^@;>]+)@", self.uri)
        return found.group(1) if found else ""


def parse_sip(data: bytes) -> SipMessage:
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded line
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.append((COMPACT.get(key, key), value.strip()))
    return SipMessage(lines[0].strip(), tuple(headers), body)


@dataclass(frozen=True)
class Sdp:
    """What an SDP body says about its first audio stream."""

    address: str
    port: int
    formats: tuple[int, ...]
    rtpmap: dict[int, str]
    direction: str
    ptime: int | None

    @property
    def event_pt(self) -> int | None:
        """The telephone-event type at 8 kHz, the rate of G.711 (RFC 4733 section 2.1)."""
        events = [pt for pt, enc in self.rtpmap.items() if enc.lower() == "telephone-event/8000"]
        return events[0] if events else None

    def encoding(self, pt: int) -> str:
        """``PCMU/8000`` for 0 even without an rtpmap (RFC 3551's static types)."""
        return self.rtpmap.get(pt, {0: "PCMU/8000", 8: "PCMA/8000", 13: "CN/8000"}.get(pt, "?"))


def parse_sdp(body: str) -> Sdp:
    address, port, direction = "", 0, "sendrecv"
    formats: tuple[int, ...] = ()
    ptime: int | None = None
    rtpmap: dict[int, str] = {}
    in_audio = False
    for raw in body.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            if in_audio:
                break  # only the first audio stream
            parts = line[2:].split()
            in_audio = parts[0] == "audio"
            if in_audio:
                port, formats = int(parts[1]), tuple(int(f) for f in parts[3:])
        elif line.startswith("c=") and (in_audio or not address):
            address = line.split()[-1]
        elif in_audio and line.startswith("a=rtpmap:"):
            pt, _, enc = line[len("a=rtpmap:") :].partition(" ")
            rtpmap[int(pt)] = enc.strip()
        elif in_audio and line.startswith("a=ptime:"):
            ptime = int(float(line[len("a=ptime:") :]))
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            direction = line[2:]
    return Sdp(address, port, formats, rtpmap, direction, ptime)


@dataclass(frozen=True)
class RtpPacket:
    arrived: float  # time.monotonic()
    pt: int
    marker: bool
    seq: int
    ts: int
    ssrc: int
    payload: bytes


@dataclass(frozen=True)
class Event:
    """One RFC 4733 telephone-event block (section 2.3)."""

    ts: int
    code: int
    end: bool
    volume: int
    duration: int

    @property
    def key(self) -> str:
        return EVENT_KEYS[self.code] if self.code < len(EVENT_KEYS) else f"<{self.code}>"


def parse_rtp(data: bytes, arrived: float) -> RtpPacket | None:
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first, second, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < start + 4:
            return None
        start += 4 + 4 * struct.unpack("!H", data[start + 2 : start + 4])[0]
    end = len(data) - (data[-1] if first & 0x20 else 0)
    return RtpPacket(arrived, second & 0x7F, bool(second & 0x80), seq, ts, ssrc, data[start:end])


@dataclass
class Dialog:
    call_id: str
    tag: str
    invite: SipMessage
    offer: Sdp | None
    source: tuple[str, int]
    last_response: bytes = b""
    answered: bool = False
    cancelled: bool = False
    acked: bool = False
    ended: bool = False
    reinvites: list[SipMessage] = field(default_factory=list)


class MiniUas:
    """``async with MiniUas() as uas:`` dial ``uas.uri("+15550100")``; then assert."""

    def __init__(
        self,
        *,
        numbers: set[str] | None = None,
        answer_after_s: float = 0.0,
        ring: bool = True,
        mirror: bool = True,
    ) -> None:
        """``numbers``: the only users answered (others get 404); ``mirror=False``
        answers every offer ``sendrecv`` (a broken hold, for negative tests)."""
        self.numbers = numbers
        self.answer_after_s = answer_after_s
        self.ring = ring
        self.mirror = mirror
        self.requests: list[SipMessage] = []
        self.dialogs: dict[str, Dialog] = {}
        self.rtp: list[RtpPacket] = []
        self.sip_port = 0
        self.rtp_port = 0
        self._sip: asyncio.DatagramTransport | None = None
        self._media: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    def uri(self, user: str) -> str:
        return f"sip:{user}@{LOOPBACK}:{self.sip_port}"

    async def __aenter__(self) -> MiniUas:
        loop = asyncio.get_running_loop()
        uas = self

        class Sip(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                uas._on_sip(data, (str(addr[0]), int(addr[1])))

        class Media(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                packet = parse_rtp(data, time.monotonic())
                if packet is not None and not 72 <= packet.pt <= 76:  # not RTCP (RFC 5761)
                    uas.rtp.append(packet)
                    uas._changed.set()

        sip, _ = await loop.create_datagram_endpoint(Sip, local_addr=(LOOPBACK, 0))
        media, _ = await loop.create_datagram_endpoint(Media, local_addr=(LOOPBACK, 0))
        self._sip, self._media = sip, media
        self.sip_port = int(sip.get_extra_info("sockname")[1])
        self.rtp_port = int(media.get_extra_info("sockname")[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for transport in (self._sip, self._media):
            if transport is not None:
                transport.close()

    # -- what arrived ------------------------------------------------------------

    def invites(self) -> list[SipMessage]:
        return [
            r
            for r in self.requests
            if r.method == "INVITE" and ";tag=" not in (r.header("to") or "")
        ]

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def events(self, pt: int | None = None) -> list[Event]:
        """Every telephone-event block that arrived (at ``pt``, else the offer's event type)."""
        if pt is None:
            offers = [d.offer for d in self.dialogs.values() if d.offer is not None]
            pt = next((o.event_pt for o in offers if o.event_pt is not None), 101)
        found = []
        for packet in self.rtp:
            if packet.pt != pt:
                continue
            payload = packet.payload
            for at in range(0, len(payload) - len(payload) % 4, 4):
                code, flags, duration = struct.unpack("!BBH", payload[at : at + 4])
                found.append(Event(packet.ts, code, bool(flags & 0x80), flags & 0x3F, duration))
        return found

    def presses(self, pt: int | None = None) -> str:
        """The keys pressed, once each: an event is keyed by its RTP timestamp (RFC 4733 2.5)."""
        seen: dict[tuple[int, int], str] = {}
        for event in self.events(pt):
            seen.setdefault((event.ts, event.code), event.key)
        return "".join(seen.values())

    def audio(self, pt: int) -> list[RtpPacket]:
        return [p for p in self.rtp if p.pt == pt]

    async def wait_for(self, check: Callable[[], object], timeout_s: float) -> None:
        """Wait until ``check()`` is true (re-checked on each SIP message or RTP packet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not check():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"not true within {timeout_s} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # -- answering ---------------------------------------------------------------

    def _on_sip(self, data: bytes, source: tuple[str, int]) -> None:
        if not data.strip() or data.startswith(b"SIP/2.0"):
            return  # keep-alive, or a response (we send no requests)
        try:
            request = parse_sip(data)
        except (ValueError, IndexError):
            return
        self.requests.append(request)
        self._changed.set()
        call_id = request.header("call-id") or ""
        dialog = self.dialogs.get(call_id)
        method = request.method
        if method == "INVITE" and dialog is None:
            self._new_call(request, call_id, source)
        elif (
            method == "INVITE"
            and dialog is not None
            and ";tag=" not in (request.header("to") or "")
        ):
            self._send(dialog.last_response, source)  # a retransmission
        elif method == "INVITE" and dialog is not None:
            dialog.reinvites.append(request)
            offer = parse_sdp(request.body) if request.body.strip() else dialog.offer
            self._reply(request, source, 200, dialog.tag, self._answer_sdp(offer, reinvite=True))
        elif method == "ACK" and dialog is not None:
            dialog.acked = True
        elif method == "CANCEL" and dialog is not None and not dialog.answered:
            dialog.cancelled = True
            self._reply(request, source, 200, dialog.tag)
            dialog.last_response = self._reply(dialog.invite, source, 487, dialog.tag)
        elif method == "BYE" and dialog is not None:
            dialog.ended = True
            self._reply(request, source, 200, dialog.tag)
        elif method in ("BYE", "CANCEL") and dialog is None:
            self._reply(request, source, 481, secrets.token_hex(4))
        elif method != "ACK":
            self._reply(request, source, 200, dialog.tag if dialog else secrets.token_hex(4))

    def _new_call(self, request: SipMessage, call_id: str, source: tuple[str, int]) -> None:
        offer = parse_sdp(request.body) if request.body.strip() else None
        dialog = Dialog(call_id, secrets.token_hex(4), request, offer, source)
        self.dialogs[call_id] = dialog
        dialog.last_response = self._reply(request, source, 100, None)
        if self.numbers is not None and request.user not in self.numbers:
            dialog.last_response = self._reply(request, source, 404, dialog.tag)
            return
        if self.ring:
            dialog.last_response = self._reply(request, source, 180, dialog.tag)
        task = asyncio.get_running_loop().create_task(self._answer_later(dialog))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_later(self, dialog: Dialog) -> None:
        await asyncio.sleep(self.answer_after_s)
        if dialog.cancelled:
            return
        dialog.answered = True
        sdp = self._answer_sdp(dialog.offer, reinvite=False)
        dialog.last_response = self._reply(dialog.invite, dialog.source, 200, dialog.tag, sdp)

    def _answer_sdp(self, offer: Sdp | None, *, reinvite: bool) -> str:
        audio = [pt for pt in (offer.formats if offer else (0, 8)) if pt in (0, 8)][:1] or [0]
        formats = [*audio]
        event = offer.event_pt if offer else 101
        if event is not None:
            formats.append(event)
        direction = "sendrecv"
        if offer is not None and self.mirror:
            direction = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(
                offer.direction, offer.direction
            )
            if offer.address == "0.0.0.0":
                direction = "recvonly"
        names = {0: "PCMU/8000", 8: "PCMA/8000"}
        lines = [
            "v=0",
            f"o=minuas 1 {2 if reinvite else 1} IN IP4 {LOOPBACK}",
            "s=-",
            f"c=IN IP4 {LOOPBACK}",
            "t=0 0",
            f"m=audio {self.rtp_port} RTP/AVP {' '.join(map(str, formats))}",
            *(f"a=rtpmap:{pt} {names[pt]}" for pt in audio),
        ]
        if event is not None:
            lines += [f"a=rtpmap:{event} telephone-event/8000", f"a=fmtp:{event} 0-15"]
        lines += ["a=ptime:20", f"a={direction}"]
        return "\r\n".join(lines) + "\r\n"

    def _reply(
        self,
        request: SipMessage,
        source: tuple[str, int],
        status: int,
        tag: str | None,
        sdp: str | None = None,
    ) -> bytes:
        reasons = {100: "Trying", 180: "Ringing", 200: "OK", 404: "Not Found"}
        reasons |= {481: "Call/Transaction Does Not Exist", 487: "Request Terminated"}
        to = request.header("to") or ""
        if tag is not None and ";tag=" not in to:
            to = f"{to};tag={tag}"
        lines = [f"SIP/2.0 {status} {reasons.get(status, 'OK')}"]
        lines += [f"Via: {via}" for via in request.all("via")]
        lines += [f"From: {request.header('from')}", f"To: {to}"]
        lines += [f"Call-ID: {request.header('call-id')}", f"CSeq: {request.header('cseq')}"]
        if status == 200 or status == 180:
            lines.append(f"Contact: <sip:minuas@{LOOPBACK}:{self.sip_port}>")
        body = sdp or ""
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        data = ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
        self._send(data, source)
        return data

    def _send(self, data: bytes, target: tuple[str, int]) -> None:
        if self._sip is not None and data:
            self._sip.sendto(data, target)
