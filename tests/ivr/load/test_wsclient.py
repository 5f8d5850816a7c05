"""The runner's WebSocket client: the frame codec alone, then against a real aiohttp server."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.load.wsclient import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    HandshakeFailed,
    ProtocolViolation,
    WsConnection,
    accept_key,
    check_handshake,
    connect,
    encode_frame,
)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def unmask(frame: bytes) -> tuple[int, bytes]:
    """Decode one client frame (test side)."""
    b0, b1 = frame[0], frame[1]
    assert b1 & 0x80, "client frames must be masked"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = struct.unpack("!H", frame[2:4])[0], 4
    elif n == 127:
        n, pos = struct.unpack("!Q", frame[2:10])[0], 10
    mask, data = frame[pos : pos + 4], frame[pos + 4 : pos + 4 + n]
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_accept_key_is_rfc_6455s_example() -> None:
    # RFC 6455 section 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_handshake_needs_101_and_the_right_accept() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    check_handshake(
        b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        key,
    )
    with pytest.raises(HandshakeFailed, match="404"):
        check_handshake(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0", key)
    with pytest.raises(HandshakeFailed, match="Accept"):
        check_handshake(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope", key)


@pytest.mark.parametrize("size", [0, 5, 125, 126, 320, 65535, 65536])
def test_client_frames_are_masked_and_round_trip(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = encode_frame(OP_BINARY, payload)
    assert frame[0] == 0x82
    assert unmask(frame) == (OP_BINARY, payload)
    assert encode_frame(OP_BINARY, payload) != frame or size == 0  # a fresh mask each time


def test_frames_split_anywhere_come_out_whole() -> None:
    stream = (
        server_frame(OP_TEXT, b'{"type": "answered"}')
        + server_frame(OP_BINARY, bytes(320))
        + server_frame(OP_BINARY, b"x" * 70000)
    )
    reader = FrameReader()
    out: list[tuple[int, bytes]] = []
    for i in range(len(stream)):
        out += reader.feed(stream[i : i + 1])
    assert out == [
        (OP_TEXT, b'{"type": "answered"}'),
        (OP_BINARY, bytes(320)),
        (OP_BINARY, b"x" * 70000),
    ]
    assert FrameReader().feed(stream) == out


def test_fragmented_messages_are_reassembled_around_control_frames() -> None:
    reader = FrameReader()
    out = reader.feed(
        server_frame(OP_TEXT, b"hel", fin=False)
        + server_frame(OP_PING, b"p")
        + server_frame(OP_CONT, b"lo", fin=False)
        + server_frame(OP_CONT, b"!")
    )
    assert out == [(OP_PING, b"p"), (OP_TEXT, b"hello!")]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x82\x85abcd12345", "masked"),
        (b"\xc2\x01x", "reserved"),
        (server_frame(OP_CONT, b"x"), "nothing to continue"),
        (server_frame(OP_PING, b"x" * 126), "control"),
        (server_frame(OP_TEXT, b"a", fin=False) + server_frame(OP_TEXT, b"b"), "inside"),
        (struct.pack("!BBQ", 0x82, 127, 1 << 40), "limit"),
    ],
)
def test_protocol_violations_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolViolation, match=why):
        FrameReader().feed(data)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


class EventRecorder:
    """Everything a connection delivers, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_text(self, text: str, now: float) -> None:
        self.events.append(("text", text))

    def on_binary(self, data: bytes, now: float) -> None:
        assert type(data) is bytes
        self.events.append(("binary", data))

    def on_close(self, code: int | None, now: float) -> None:
        self.events.append(("close", code))


def handshake_response(key: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def deliver(chunks: list[bytes]) -> tuple[list[tuple[str, Any]], list[tuple[int, bytes]]]:
    """Feed the handshake and ``chunks`` to a connection, one read each, as asyncio does."""

    async def run() -> tuple[list[tuple[str, Any]], list[tuple[int, bytes]]]:
        rec = EventRecorder()
        conn = WsConnection("ws://127.0.0.1:1/v1/call", rec)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        # The handshake goes in a read of its own, then each chunk.
        for chunk in [handshake_response(conn._key), *chunks]:
            if chunk:
                conn.data_received(chunk)
        assert conn.opened.done()
        sent = [unmask(frame) for frame in transport.written[1:]]
        return rec.events, sent

    return asyncio.run(run())


def expected_events(stream: bytes) -> tuple[list[tuple[str, Any]], list[tuple[int, bytes]]]:
    """What the general path (the reader alone, all bytes at once) makes of ``stream``."""
    events: list[tuple[str, Any]] = []
    pongs: list[tuple[int, bytes]] = []
    for opcode, payload in FrameReader().feed(stream):
        if opcode == OP_BINARY:
            events.append(("binary", payload))
        elif opcode == OP_TEXT:
            events.append(("text", payload.decode("utf-8", "replace")))
        elif opcode == OP_PING:
            pongs.append((OP_PONG, payload))
    return events, pongs


PAYLOAD_SIZES = [0, 1, 2, 125, 126, 127, 160, 320, 640, 65535, 65536]
# A message: its kind, payload size and byte, and for a fragmented one a ping in between.
Message = tuple[str, int, int, bool]


def server_frames(messages: list[Message]) -> list[bytes]:
    frames: list[bytes] = []
    for kind, size, fill, ping in messages:
        payload = bytes([fill]) * size
        if kind == "binary":
            frames.append(server_frame(OP_BINARY, payload))
        elif kind == "text":
            frames.append(server_frame(OP_TEXT, b'{"type": "prompt"}'))
        elif kind == "ping":
            frames.append(server_frame(OP_PING, payload[:125]))
        else:
            op = OP_TEXT if kind == "fragmented text" else OP_BINARY
            frames.append(server_frame(op, payload[: size // 2], fin=False))
            if ping:
                frames.append(server_frame(OP_PING, b"p"))
            frames.append(server_frame(OP_CONT, payload[size // 2 :]))
    return frames


messages = st.lists(
    st.tuples(
        # Mostly audio; some text, pings, fragmented messages.
        st.sampled_from(["binary"] * 4 + ["text", "ping", "fragmented", "fragmented text"]),
        st.sampled_from(PAYLOAD_SIZES),
        # Payload bytes that look like frame headers, to catch a parse off the frame start.
        st.sampled_from([0x00, 0x82, 0x7E, 0x7F, 0xFE, 0x01, 0x40]),
        st.booleans(),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(messages=messages, data=st.data())
def test_every_split_of_the_stream_gives_the_frames_of_the_general_path(
    messages: list[Message], data: st.DataObject
) -> None:
    frames = server_frames(messages)
    stream = b"".join(frames)
    cuts = set(data.draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    # Reads that end at, or a few bytes either side of, frame boundaries and headers:
    # whole frames per read, and every way of cutting a header or a payload's end.
    end = 0
    for frame in frames:
        for at in (end, end + 2, end + 4, end + len(frame)):
            offset = data.draw(st.sampled_from([None, None, 0, 0, -3, -2, -1, 1, 2, 3]))
            if offset is not None:
                cuts.add(min(max(at + offset, 0), len(stream)))
        end += len(frame)
    ends = sorted(cuts)
    chunks = [stream[lo:hi] for lo, hi in zip([0, *ends], [*ends, len(stream)], strict=True)]
    assert deliver(chunks) == expected_events(stream)


def test_frames_in_the_handshakes_read_and_in_one_read_are_all_delivered() -> None:
    audio = server_frame(OP_BINARY, bytes(range(160)) * 2)
    text = server_frame(OP_TEXT, b'{"type": "answered"}')
    events, pongs = deliver([audio + audio + text + audio + server_frame(OP_PING, b"x") + audio])
    assert (
        events
        == [("binary", bytes(range(160)) * 2)] * 2
        + [("text", '{"type": "answered"}')]
        + [("binary", bytes(range(160)) * 2)] * 2
    )
    assert pongs == [(OP_PONG, b"x")]


def test_a_protocol_violation_in_a_read_closes_with_1002() -> None:
    audio = server_frame(OP_BINARY, bytes(320))
    masked = b"\x82\xfe\x01\x40" + bytes(324)  # MASK bit set: never from a server
    events, sent = deliver([audio, masked, audio])
    # As the reader alone does: the bad read is dropped, the close is sent once.
    assert events == [("binary", bytes(320))] * 2
    assert sent == [(0x8, struct.pack("!H", 1002))]


class Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.binaries: list[bytes] = []
        self.closed: int | None = -1

    def on_text(self, text: str, now: float) -> None:
        self.texts.append(text)

    def on_binary(self, data: bytes, now: float) -> None:
        self.binaries.append(data)

    def on_close(self, code: int | None, now: float) -> None:
        self.closed = code


async def test_against_aiohttp_echo_ping_and_close(aiohttp_server: Any) -> None:
    pongs: list[bytes] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await ws.ping(b"are you there")
        async for msg in ws:
            if msg.type == WSMsgType.PONG:
                pongs.append(msg.data)
            elif msg.type == WSMsgType.TEXT:
                if msg.data == "bye":
                    await ws.close(code=4000)
                    break
                await ws.send_str(msg.data.upper())
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    server = await aiohttp_server(app)
    rec = Recorder()
    conn = await connect(f"ws://127.0.0.1:{server.port}/ws", rec)
    conn.send_text("hello")
    conn.send_binary(bytes(range(200)))
    await asyncio.sleep(0.1)
    assert rec.texts == ["HELLO"]
    assert rec.binaries == [bytes(range(200))[::-1]]
    assert pongs == [b"are you there"]
    conn.send_text("bye")
    await asyncio.wait_for(conn.closed, 5)
    assert rec.closed == 4000 == conn.close_code
    assert not conn.is_open
    conn.send_text("too late")  # a no-op once closed


async def test_a_refused_upgrade_is_a_handshake_failure(aiohttp_server: Any) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="no websocket here", status=404)

    app = web.Application()
    app.router.add_get("/ws", plain)
    server = await aiohttp_server(app)
    with pytest.raises(HandshakeFailed, match="404"):
        await connect(f"ws://127.0.0.1:{server.port}/ws", Recorder())


async def test_nobody_listening_is_a_connection_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await connect(f"ws://127.0.0.1:{port}/v1/call", Recorder(), timeout_s=2)


async def test_closing_from_the_client_completes_the_handshake(aiohttp_server: Any) -> None:
    seen: list[Any] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            seen.append(msg.type)
        seen.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    server = await aiohttp_server(app)
    rec = Recorder()
    conn = await connect(f"ws://127.0.0.1:{server.port}/ws", rec)
    conn.close(1000)
    await asyncio.wait_for(conn.closed, 5)
    assert rec.closed == 1000
    assert seen == [1000]
