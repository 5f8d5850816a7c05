"""Framing SIP messages on a stream (TCP, TLS): RFC 3261 section 18.3, RFC 5626 section 3.5.1.

On a stream, Content-Length is what separates one message from the next,
so it is required; a message without it, or with a bad one, leaves no way
to find the next message, and the connection must be closed. The parser
then stays broken: every later :meth:`StreamParser.feed` raises the same
error. CRLFs between messages are ignored (RFC 3261 section 7.5); a double
CRLF is a keep-alive ping that wants a single CRLF back (RFC 5626).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivr.transport.sip.errors import BadMessage
from ivr.transport.sip.grammar import Invalid
from ivr.transport.sip.headers import parse_uint
from ivr.transport.sip.message import MAX_MESSAGE_BYTES, split_head

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class Ping:
    """A CRLFCRLF keep-alive arrived; send :data:`PONG` back (RFC 5626 section 3.5.1)."""


class StreamParser:
    """Bytes of one connection in, whole messages (as bytes, for ``parse_message``) out."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # how far the search for the blank line got
        self._max = max_message_bytes
        self._broken: BadMessage | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | Ping]:
        """Take bytes; return every message (and ping) they complete, in order."""
        if self._broken is not None:
            raise self._broken
        self._buffer += data
        out: list[bytes | Ping] = []
        try:
            while (item := self._next()) is not None:
                out.append(item)
        except BadMessage as exc:
            self._broken = exc
            self._buffer.clear()
            raise
        return out

    def _next(self) -> bytes | Ping | None:
        buf = self._buffer
        while buf[:2] == b"\r\n":
            if buf[:4] == b"\r\n\r\n":
                del buf[:4]
                self._scanned = 0
                return Ping()
            if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                return None  # a ping or a CRLF before a message: wait and see
            del buf[:2]
        if not buf:
            return None
        blank = _BLANK_LINE.search(buf, max(0, self._scanned - 3))
        if blank is None:
            self._scanned = len(buf)
            if len(buf) > self._max:
                raise BadMessage(513, f"Message Too Large: no end of headers in {self._max} bytes")
            return None
        head = bytes(buf[: blank.start()])
        try:
            start, headers = split_head(head)
        except BadMessage as exc:  # a bad header other than Content-Length still frames
            start, headers = exc.start_line, exc.headers
        values = {v for k, v in headers if k == "Content-Length"}
        if len(values) != 1:
            reason = "Missing Content-Length" if not values else "Bad Content-Length: more than one"
            raise BadMessage(400, reason, start_line=start, headers=headers)
        try:
            length = parse_uint(values.pop())
        except Invalid as exc:
            raise BadMessage(
                400, f"Bad Content-Length: {exc}", start_line=start, headers=headers
            ) from None
        total = blank.end() + length
        if total > self._max:
            raise BadMessage(
                513, f"Message Too Large: {total} bytes", start_line=start, headers=headers
            )
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]
        self._scanned = 0
        return frame
