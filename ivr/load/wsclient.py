"""A lean WebSocket client (RFC 6455) for virtual callers: a sans-I/O codec, an asyncio driver.

The runner must cost far less per call than the server it measures (the
issue asks for under half of a bare aiohttp server's CPU per call), so this
client has no task per connection and no queue per message: ``data_received``
parses frames in place and hands each one straight to a :class:`Receiver`,
stamped with the time its bytes arrived; sending encodes and writes at once
and never awaits. websockets' general-purpose core costs several times more
per 20 ms frame, which is what the runner does 100 times a second per call.

What it implements of RFC 6455, and nothing more:

* the opening handshake (section 4.1): ``Sec-WebSocket-Key`` and the check of
  ``Sec-WebSocket-Accept``; no extensions, no subprotocols;
* framing (section 5.2): every client frame masked with a fresh random key
  (section 5.3), server frames unmasked (a masked one is a protocol error,
  1002); 7-bit, 16-bit and 64-bit lengths; fragmented messages reassembled
  (section 5.4);
* control frames (section 5.5): ping answered with pong, close echoed, then
  the server closes TCP (section 7.1.1), or we do after ``CLOSE_TIMEOUT_S``.

:class:`FrameReader` and :func:`encode_frame` are pure (bytes in, frames or
bytes out); :class:`WsConnection` only moves bytes between them and a socket.
The codec and its driver share one module (about 410 lines) so that the
per-frame path stays in one place to read and to profile.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from typing import Protocol, cast
from urllib.parse import urlsplit

from ivr.load.errors import RequestFailed

try:  # websockets ships a C implementation of the XOR mask, and a Python one
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask as _apply_mask

CLOSE_TIMEOUT_S = 5.0
MASK_POOL_BYTES = 1 << 16
MAX_MESSAGE_BYTES = 1 << 20
MAX_HANDSHAKE_BYTES = 16 * 1024
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Receiver(Protocol):
    """What a connection delivers to; every method returns at once."""

    def on_text(self, text: str, now: float) -> None: ...

    def on_binary(self, data: bytes, now: float) -> None: ...

    def on_close(self, code: int | None, now: float) -> None: ...


class HandshakeFailed(RequestFailed, ConnectionError):
    """The server did not upgrade the connection to a WebSocket."""


class ProtocolViolation(RequestFailed, ConnectionError):
    """The server broke RFC 6455 (a masked frame, a bad length, a stray continuation)."""


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def handshake_request(host: str, port: int, path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def check_handshake(head: bytes, key: str) -> None:
    """Check the response head (up to the blank line); :class:`HandshakeFailed` unless 101."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        raise HandshakeFailed(f"the server answered {lines[0]!r}, not 101 Switching Protocols")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeFailed("wrong Sec-WebSocket-Accept")


class _MaskPool:
    """Fresh masking keys (RFC 6455 section 5.3: from a strong source of entropy), 4 bytes
    at a time from one large ``os.urandom`` read: one system call per 16384 frames."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self._pool = os.urandom(MASK_POOL_BYTES)
        self._pos = 0

    def take(self) -> bytes:
        pos = self._pos
        if pos >= MASK_POOL_BYTES:
            self._pool, pos = os.urandom(MASK_POOL_BYTES), 0
        self._pos = pos + 4
        return self._pool[pos : pos + 4]


masks = _MaskPool()

# The first two or four bytes of a final, masked binary frame of each payload length
# below 65536, built on first use: an audio frame's length never changes.
_BINARY_HEADS: dict[int, bytes] = {}


def _binary_head(n: int) -> bytes:
    head = _BINARY_HEADS.get(n)
    if head is None:
        head = _BINARY_HEADS[n] = (
            struct.pack("!BB", 0x82, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x82, 0xFE, n)
        )
    return head


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final, masked client frame (RFC 6455 section 5.2)."""
    mask = masks.take() if mask is None else mask
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + (_apply_mask(payload, mask) if n else b"")


class FrameReader:
    """Server frames out of a byte stream: feed bytes, get ``(opcode, payload)`` messages.

    Fragmented messages come out whole; control frames come out as they arrive.
    """

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buf = b""
        self._fragments: list[bytes] = []
        self._fragment_op = 0
        self._max = max_message_bytes

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80:
                raise ProtocolViolation("the server sent a masked frame")
            if b0 & 0x70:
                raise ProtocolViolation("reserved bits set (no extension was agreed)")
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if length > self._max:
                raise ProtocolViolation(f"a frame of {length} bytes (limit {self._max})")
            end = pos + head + length
            if end > n:
                break
            opcode, fin = b0 & 0x0F, b0 & 0x80
            payload = buf[pos + head : end]
            pos = end
            if opcode >= OP_CLOSE:
                if not fin or length > 125:
                    raise ProtocolViolation("a fragmented or long control frame")
                out.append((opcode, payload))
            elif opcode == OP_CONT:
                if not self._fragments:
                    raise ProtocolViolation("a continuation frame with nothing to continue")
                self._fragments.append(payload)
                if fin:
                    out.append((self._fragment_op, b"".join(self._fragments)))
                    self._fragments = []
            elif self._fragments:
                raise ProtocolViolation("a new message inside a fragmented one")
            elif fin:
                out.append((opcode, payload))
            else:
                self._fragment_op = opcode
                self._fragments = [payload]
        self._buf = buf[pos:] if pos < n else b""
        return out

    @property
    def idle(self) -> bool:
        """No partial frame and no partial message held: the next byte starts a frame."""
        return not self._buf and not self._fragments


class WsConnection(asyncio.Protocol):
    """One client WebSocket connection."""

    def __init__(self, url: str, receiver: Receiver) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a WebSocket URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "wss" else 80)
        self.path = parts.path or "/"
        self.secure = parts.scheme == "wss"
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._head = b""
        self._reader = FrameReader()
        self._framing = False  # the handshake is done: the bytes are frames
        # The fast receive path may run: framing, and the reader holds no partial
        # frame or message (and did not just refuse a read as a protocol violation).
        self._fast = False
        self._open = False
        self._close_sent = False
        self._close_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(handshake_request(self.host, self.port, self.path, self._key))

    def data_received(self, data: bytes) -> None:
        if not self._fast:
            if self._framing:
                self._frame_data(data, time.monotonic())
            else:
                self._handshake_data(data)
            return
        # The fast path, for what a read almost always holds: whole, final, unmasked
        # binary frames of under 64 KiB (the audio), each handed over as it is sliced
        # from the read. At the first other byte (text, control, a fragment, a frame
        # cut by the read), the rest of the read goes to the general path, which is
        # what it would have done with the whole read (the reader was idle).
        n = len(data)
        if n >= 4 and data[0] == 0x82 and data[1] == 126 and (data[2] << 8) + data[3] == n - 4:
            # The commonest read of all: exactly one audio frame of 126..65535 bytes.
            self.receiver.on_binary(data[4:], time.monotonic())
            return
        now = time.monotonic()
        pos = 0
        while n - pos >= 2 and data[pos] == 0x82:  # FIN, no RSV bits, binary
            length = data[pos + 1]  # the MASK bit is clear below 126
            if length < 126:
                start = pos + 2
            elif length == 126 and n - pos >= 4:
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            else:
                break  # masked (a violation), a 64-bit length, or a cut header
            end = start + length
            if end > n:
                break
            self.receiver.on_binary(data[start:end], now)
            pos = end
        if pos < n:
            self._frame_data(data[pos:] if pos else data, now)

    def _handshake_data(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HANDSHAKE_BYTES:
                self._fail(HandshakeFailed("the handshake response is too long"))
            return
        head, rest = self._head[:end], self._head[end + 4 :]
        self._head = b""
        try:
            check_handshake(head, self._key)
        except HandshakeFailed as exc:
            self._fail(exc)
            return
        self._open = True
        self._framing = self._fast = True
        self.opened.set_result(None)
        if rest:
            self._frame_data(rest, time.monotonic())

    def _frame_data(self, data: bytes, now: float) -> None:
        """The general receive path: every kind of frame, split anywhere."""
        reader = self._reader
        try:
            frames = reader.feed(data)
        except ProtocolViolation:
            self._fast = False  # the reader dropped this read, as ever; the next goes to it
            self._send_close(1002)
            return
        self._fast = reader.idle
        receiver = self.receiver
        for opcode, payload in frames:
            if opcode == OP_BINARY:
                receiver.on_binary(payload, now)
            elif opcode == OP_TEXT:
                receiver.on_text(payload.decode("utf-8", "replace"), now)
            elif opcode == OP_PING:
                if self._open:
                    self._write(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._send_close(self.close_code if self.close_code != 1005 else 1000)
                self._open = False

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
            self.receiver.on_close(self.close_code, time.monotonic())

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # -- sending ----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def send_text(self, text: str) -> None:
        if self._open:
            self._write(encode_frame(OP_TEXT, text.encode()))

    def send_binary(self, data: bytes) -> None:
        if not self._open:
            return
        n = len(data)
        if n >= 65536:
            self._write(encode_frame(OP_BINARY, data))
            return
        # The common case, inlined: an audio frame, its header looked up, its
        # fresh mask (RFC 6455 section 5.3) taken from the pool as in masks.take().
        pool = masks
        pos = pool._pos
        if pos >= MASK_POOL_BYTES:
            pool._pool, pos = os.urandom(MASK_POOL_BYTES), 0
        pool._pos = pos + 4
        mask = pool._pool[pos : pos + 4]
        head = _BINARY_HEADS.get(n) or _binary_head(n)
        # Open means the handshake is done, so the transport is set.
        self.transport.write(head + mask + _apply_mask(data, mask))  # type: ignore[union-attr]

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2)."""
        if self._open:
            self._open = False
            self._send_close(code)
        elif self.transport is not None and not self.opened.done():
            self.transport.abort()

    def _send_close(self, code: int) -> None:
        if not self._close_sent and self.transport is not None:
            self._close_sent = True
            self._write(encode_frame(OP_CLOSE, struct.pack("!H", code)))
            # The server closes TCP after the closing handshake; we do if it does not.
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT_S, self.transport.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(url: str, receiver: Receiver, timeout_s: float = 10.0) -> WsConnection:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) and complete the handshake."""
    loop = asyncio.get_running_loop()
    conn = WsConnection(url, receiver)
    try:
        async with asyncio.timeout(timeout_s):
            await loop.create_connection(
                lambda: conn, conn.host, conn.port, ssl=True if conn.secure else None
            )
            await conn.opened
    except BaseException:
        conn.abort()
        raise
    return conn
