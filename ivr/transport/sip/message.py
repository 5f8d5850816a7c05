"""SIP requests and responses: parsed from bytes, built, and serialised (RFC 3261 section 7).

Tolerant in what it accepts (RFC 3261 section 7.3.1 and RFC 4475's spirit):
compact header names, any case, folded lines, LWS before the colon, several
values in one header or repeated headers, bare LF line ends, no blank line
at the end of a datagram, no Content-Length on UDP. Strict in what it emits:
canonical names, one value per line, CRLF, Content-Length always.

Bounded: past :data:`MAX_MESSAGE_BYTES`, :data:`MAX_HEADERS` or
:data:`MAX_LINE_BYTES` the message is refused. Every refusal is one
:class:`BadMessage` with a status and a reason naming the header at fault;
no other exception leaves :func:`parse_message`, whatever the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypedDict, TypeVar

from ivr.transport.sip.errors import BadMessage, SipStateError
from ivr.transport.sip.grammar import Invalid, canonical_name, is_token, split_list
from ivr.transport.sip.headers import (
    CSeq,
    MediaType,
    NameAddr,
    Via,
    parse_call_id,
    parse_cseq,
    parse_media_type,
    parse_name_addr,
    parse_token,
    parse_uint,
    parse_via,
)
from ivr.transport.sip.status import reason_phrase
from ivr.transport.sip.uri import Uri, parse_uri

MAX_MESSAGE_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_LINE_BYTES = 8 * 1024

# Headers whose grammar is a comma list (RFC 3261 section 7.3.1): split into one
# value per entry, so that each is emitted on its own line.
LIST_HEADERS = frozenset(
    {
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Allow-Events", "Content-Encoding", "Content-Language", "Path", "Service-Route",
    }
)  # fmt: skip
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)

Header = tuple[str, str]
T = TypeVar("T")


class _Fields(TypedDict):
    vias: tuple[Via, ...]
    from_: NameAddr
    to: NameAddr
    call_id: str
    cseq: CSeq
    max_forwards: int | None
    contacts: tuple[NameAddr, ...]
    route: tuple[NameAddr, ...]
    record_route: tuple[NameAddr, ...]
    content_type: MediaType | None
    expires: int | None
    allow: tuple[str, ...]
    supported: tuple[str, ...]
    require: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """What requests and responses share: the headers as sent, and typed views of them."""

    headers: tuple[Header, ...]  # canonical names, one value each, Content-Length included
    body: bytes
    vias: tuple[Via, ...]
    from_: NameAddr
    to: NameAddr
    call_id: str
    cseq: CSeq
    max_forwards: int | None
    contacts: tuple[NameAddr, ...]
    route: tuple[NameAddr, ...]
    record_route: tuple[NameAddr, ...]
    content_type: MediaType | None
    expires: int | None
    allow: tuple[str, ...]
    supported: tuple[str, ...]
    require: tuple[str, ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any spelling), or None."""
        name = canonical_name(name)
        return next((v for k, v in self.headers if k == name), None)

    def header_values(self, name: str) -> list[str]:
        name = canonical_name(name)
        return [v for k, v in self.headers if k == name]

    @property
    def top_via(self) -> Via:
        return self.vias[0]


@dataclass(frozen=True, slots=True)
class Request(Message):
    method: str
    uri: Uri

    @property
    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(frozen=True, slots=True)
class Response(Message):
    status: int
    reason: str

    @property
    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


# -- parsing -------------------------------------------------------------------


def parse_message(data: bytes, *, datagram: bool = True) -> Request | Response:
    """One message from a datagram (``datagram=True``) or from a stream parser's frame.

    On UDP the body runs to the end of the datagram when Content-Length is
    absent, and a longer body is cut to Content-Length (RFC 3261 section
    18.3); a shorter one is refused. From a stream, Content-Length is
    required and must match (the stream parser framed by it).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise BadMessage(513, f"Message Too Large: over {MAX_MESSAGE_BYTES} bytes")
    data = data.lstrip(b"\r\n")  # CRLFs before the start line are ignored (RFC 3261 7.5)
    blank = _BLANK_LINE.search(data)
    head, rest = (data[: blank.start()], data[blank.end() :]) if blank else (data, b"")
    start, headers = split_head(head)
    body = _frame_body(start, headers, rest, datagram=datagram)
    if start.startswith("SIP/"):
        return _parse_response(start, headers, body)
    return _parse_request(start, headers, body)


def split_head(head: bytes) -> tuple[str, tuple[Header, ...]]:
    """The start line and the unfolded headers of a header section (RFC 3261 section 7.3.1).

    A header that cannot be decoded is left out and the first such fault is
    raised after the rest was read, so that the error carries what was good.
    """
    lines = head.split(b"\n")
    if lines[-1] in (b"", b"\r"):  # a datagram's head cut after its last CRLF
        lines.pop()
    logical: list[bytes] = []
    for line in lines:
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t") and logical:
            logical[-1] += b" " + line.lstrip(b" \t")  # folding is a single SP
        else:
            logical.append(line)
    first = logical[0] if logical else b""
    start = first.decode("utf-8", "replace")
    if not first or _CONTROL.search(start) or "\ufffd" in start:
        raise BadMessage(400, "Bad start line")
    if len(logical) - 1 > MAX_HEADERS:
        raise BadMessage(400, f"Bad message: more than {MAX_HEADERS} headers", start_line=start)
    headers: list[Header] = []
    fault: str | None = None
    for line in logical[1:]:
        raw_name = line.partition(b":")[0].strip(b" \t").decode("ascii", "replace")[:40]
        name = canonical_name(raw_name) if is_token(raw_name) else ""
        problem = None
        if len(line) > MAX_LINE_BYTES:
            problem = f"Bad {name or 'header'}: line over {MAX_LINE_BYTES} bytes"
        elif b":" not in line or not name:
            problem = f"Bad header line {raw_name[:20]!r}"
        else:
            try:
                value = line.partition(b":")[2].decode("utf-8").strip(" \t")
            except UnicodeDecodeError:
                problem = f"Bad {name}: not UTF-8"
            else:
                if _CONTROL.search(value):
                    problem = f"Bad {name}: control character"
        if problem is not None:
            fault = fault or problem
            continue
        if name in LIST_HEADERS:
            try:
                headers.extend((name, v) for v in split_list(value))
            except Invalid as exc:
                fault = fault or f"Bad {name}: {exc}"
        else:
            headers.append((name, value))
    if fault is not None:
        raise BadMessage(400, fault, start_line=start, headers=tuple(headers))
    return start, tuple(headers)


def _frame_body(start: str, headers: tuple[Header, ...], rest: bytes, *, datagram: bool) -> bytes:
    values = {v for k, v in headers if k == "Content-Length"}
    if not values:
        if datagram:
            return rest
        raise _error(start, headers, "Missing Content-Length")  # RFC 3261 section 18.3
    if len(values) > 1:
        raise _error(start, headers, "Bad Content-Length: more than one")
    try:
        length = parse_uint(values.pop())
    except Invalid as exc:
        raise _error(start, headers, f"Bad Content-Length: {exc}") from None
    if len(rest) < length or (not datagram and len(rest) != length):
        raise _error(
            start, headers, f"Bad Content-Length: {length}, but the body has {len(rest)} bytes"
        )
    return rest[:length]


def _error(start: str, headers: tuple[Header, ...], reason: str, status: int = 400) -> BadMessage:
    return BadMessage(status, reason, start_line=start, headers=headers)


def _parse_request(start: str, headers: tuple[Header, ...], body: bytes) -> Request:
    # RFC 3261 section 7.1: Method SP Request-URI SP SIP-Version, single spaces (RFC 4475
    # sections 3.1.2.6 to 3.1.2.8: LWS in or around the Request-URI is refused).
    parts = start.split(" ")
    if len(parts) != 3 or not is_token(parts[0]):
        raise _error(start, headers, "Bad request line")
    method, uri_text, version = parts
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise _error(start, headers, f"Version Not Supported: {version[:12]}", 505)
        raise _error(start, headers, "Bad request line")
    try:
        uri = parse_uri(uri_text)
    except Invalid as exc:
        raise _error(start, headers, f"Bad Request-URI: {exc}") from None
    fields = _typed(start, headers)
    if fields["cseq"].method != method:
        raise _error(start, headers, f"Bad CSeq: method is not {method}")
    return Request(headers=headers, body=body, method=method, uri=uri, **fields)


def _parse_response(start: str, headers: tuple[Header, ...], body: bytes) -> Response:
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0" or len(code) != 3 or not code.isascii() or not code.isdigit():
        raise _error(start, headers, "Bad status line")
    if not 100 <= int(code) <= 699:
        raise _error(start, headers, f"Bad status line: status {code}")
    fields = _typed(start, headers)
    return Response(headers=headers, body=body, status=int(code), reason=reason, **fields)


def _typed(start: str, headers: tuple[Header, ...]) -> _Fields:
    def values(name: str) -> list[str]:
        found = [v for k, v in headers if k == name]
        if name in LIST_HEADERS:  # a built message may hold a list in one value
            try:
                return [item for v in found for item in split_list(v)]
            except Invalid as exc:
                raise _error(start, headers, f"Bad {name}: {exc}") from None
        return found

    def each(name: str, parse: Callable[[str], T]) -> tuple[T, ...]:
        try:
            return tuple(parse(v) for v in values(name))
        except Invalid as exc:
            raise _error(start, headers, f"Bad {name}: {exc}") from None

    def one(name: str, parse: Callable[[str], T]) -> T | None:
        found = each(name, parse)
        if len(found) > 1 and len(set(values(name))) > 1:
            raise _error(start, headers, f"Bad {name}: more than one")
        return found[0] if found else None

    def required(name: str, parse: Callable[[str], T]) -> T:
        value = one(name, parse)
        if value is None:
            raise _error(start, headers, f"Missing {name}")
        return value

    vias = each("Via", parse_via)
    if not vias:
        raise _error(start, headers, "Missing Via")
    if vias[0].branch is None:
        raise _error(start, headers, "Bad Via: no branch")  # RFC 3261 section 8.1.1.7
    from_ = required("From", parse_name_addr)
    to = required("To", parse_name_addr)
    call_id = required("Call-ID", parse_call_id)
    cseq = required("CSeq", parse_cseq)
    contact_values = values("Contact")
    star = contact_values == ["*"]  # REGISTER's "remove all" (RFC 3261 section 10.2.2)
    try:
        expires = one("Expires", parse_uint)
    except BadMessage:
        expires = 3600  # RFC 3261 section 20.19: a malformed value counts as 3600
    return _Fields(
        vias=vias,
        from_=from_,
        to=to,
        call_id=call_id,
        cseq=cseq,
        max_forwards=one("Max-Forwards", parse_uint),
        contacts=() if star else each("Contact", parse_name_addr),
        route=each("Route", parse_name_addr),
        record_route=each("Record-Route", parse_name_addr),
        content_type=one("Content-Type", parse_media_type),
        expires=expires,
        allow=each("Allow", parse_token),
        supported=each("Supported", parse_token),
        require=each("Require", parse_token),
    )


# -- building and serialising --------------------------------------------------


def make_request(method: str, uri: Uri, headers: Iterable[Header], body: bytes = b"") -> Request:
    """A request from its parts, checked by the same rules as a parsed one."""
    hs = _outgoing(headers, body)
    fields = _checked(f"{method} {uri} SIP/2.0", hs)
    return Request(headers=hs, body=body, method=method, uri=uri, **fields)


def make_response(
    status: int, headers: Iterable[Header], body: bytes = b"", reason: str | None = None
) -> Response:
    hs = _outgoing(headers, body)
    reason = reason_phrase(status) if reason is None else reason
    if _CONTROL.search(reason) or not 100 <= status <= 699:
        raise SipStateError(f"status line cannot be sent: {status} {reason[:40]!r}")
    fields = _checked(f"SIP/2.0 {status} {reason}", hs)
    return Response(headers=hs, body=body, status=status, reason=reason, **fields)


def _checked(start: str, headers: tuple[Header, ...]) -> _Fields:
    try:
        return _typed(start, headers)
    except BadMessage as exc:
        raise SipStateError(f"refusing to build {start!r}: {exc}") from None


def _outgoing(headers: Iterable[Header], body: bytes) -> tuple[Header, ...]:
    out = [(canonical_name(k), v) for k, v in headers if canonical_name(k) != "Content-Length"]
    for name, value in out:
        if _CONTROL.search(value) or not is_token(name):
            raise SipStateError(f"header {name!r} cannot be sent: {value[:40]!r}")
    out.append(("Content-Length", str(len(body))))
    return tuple(out)


def serialize(message: Request | Response) -> bytes:
    """The wire form: CRLF line ends, one header per line, Content-Length last and true."""
    lines = [message.start_line]
    lines.extend(f"{k}: {v}" for k, v in message.headers if k != "Content-Length")
    lines.append(f"Content-Length: {len(message.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + message.body
