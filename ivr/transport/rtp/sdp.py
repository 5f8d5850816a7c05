"""Session descriptions (RFC 4566): the text of an SDP body to a model and back.

Parsing is tolerant where peers differ and strict where a mistake would
mislead us:

* CRLF or bare LF line ends, blank lines skipped, the lines of a section
  in any order (a=rtpmap before c=, say), attributes we do not know kept as
  they came, and missing ``s=`` or ``t=`` lines defaulted;
* but a body over :data:`MAX_SDP_BYTES`, text that is not UTF-8, a line
  that is not ``<type>=<value>``, a type letter RFC 4566 does not define
  (section 5: a parser MUST reject or ignore such a description), a session
  line inside a media section, or a malformed ``o=``, ``c=``, ``m=``,
  ``rtpmap``, ``fmtp``, ``ptime`` or ``maxptime`` raise :class:`SdpError`
  naming the line.

Building is strict: lines in section 5's order (v o s i u e p c b t r z k
a, then per media m i c b k a), CRLF after every line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ivr.transport.rtp.errors import SdpError

MAX_SDP_BYTES = 16 * 1024  # a SIP body; linphone's dozen codecs and ICE fit in 3 KiB
LINE_TYPES = frozenset("vosiuepcbtrzkam")
MEDIA_LINE_TYPES = frozenset("icbka")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")  # RFC 4566 section 6
_SESSION_ORDER = "iuep"  # section 5: after s=, before c=
_MAX_DIGITS = 20  # a 64-bit number: o= ids, m= ports, rtpmap rates
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 4566 section 9, token-char
_NUMBER = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line: who made the description, and which version of it (section 5.2)."""

    username: str
    session_id: int
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def value(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (section 5.7); ``address`` may carry a multicast ``/ttl``."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def unspecified(self) -> bool:
        """``0.0.0.0`` (or ``::``): send nothing there (RFC 3264 section 8.4)."""
        return self.host in ("0.0.0.0", "::")

    def value(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``a=`` line: a property (``value`` None) or ``name:value``."""

    name: str
    value: str | None = None

    def text(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap`` (section 6): a payload type's encoding and clock rate."""

    encoding: str
    clock_rate: int
    channels: int | None = None

    def value(self, payload_type: int) -> str:
        tail = "" if self.channels is None else f"/{self.channels}"
        return f"{payload_type} {self.encoding}/{self.clock_rate}{tail}"


def _attribute_values(attributes: tuple[Attribute, ...], name: str) -> list[str]:
    return [a.value or "" for a in attributes if a.name.lower() == name]


@dataclass(frozen=True, slots=True)
class Media:
    """One media section: its ``m=`` line and the lines under it."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    other: tuple[tuple[str, str], ...] = ()  # i=, b=, k= lines: (type, value), in order

    def values(self, name: str) -> list[str]:
        """The values of every attribute called ``name`` (case-insensitive)."""
        return _attribute_values(self.attributes, name.lower())

    def has(self, name: str) -> bool:
        return any(a.name.lower() == name.lower() for a in self.attributes)

    def rtpmaps(self) -> dict[int, RtpMap]:
        """The ``a=rtpmap`` lines by payload type (the first wins if repeated)."""
        maps: dict[int, RtpMap] = {}
        for value in self.values("rtpmap"):
            pt, rtpmap = _parse_rtpmap(value)
            maps.setdefault(pt, rtpmap)
        return maps

    def fmtps(self) -> dict[str, str]:
        """The ``a=fmtp`` parameters by format."""
        out: dict[str, str] = {}
        for value in self.values("fmtp"):
            fmt, _, params = value.partition(" ")
            out.setdefault(fmt, params.strip())
        return out

    def line(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join([self.media, port, self.proto, *self.formats])


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    times: tuple[str, ...] = ("0 0",)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()
    other: tuple[tuple[str, str], ...] = ()  # i u e p b r z k lines: (type, value), in order
    version: int = 0

    def values(self, name: str) -> list[str]:
        return _attribute_values(self.attributes, name.lower())

    def direction(self, media: Media) -> str:
        """The media's direction attribute, else the session's, else ``sendrecv`` (section 6)."""
        for attributes in (media.attributes, self.attributes):
            found = [a.name.lower() for a in attributes if a.name.lower() in DIRECTIONS]
            if found:
                return found[-1]
        return "sendrecv"

    def connection_for(self, media: Media) -> Connection | None:
        return media.connection or self.connection

    def to_bytes(self) -> bytes:
        """The body on the wire: section 5's line order, CRLF line ends."""

        def typed(kinds: str, other: tuple[tuple[str, str], ...]) -> list[str]:
            return [f"{t}={v}" for k in kinds for t, v in other if t == k]

        lines = [f"v={self.version}", f"o={self.origin.value()}", f"s={self.name}"]
        lines += typed(_SESSION_ORDER, self.other)
        if self.connection is not None:
            lines.append(f"c={self.connection.value()}")
        lines += typed("b", self.other)
        lines += [f"t={t}" for t in self.times]
        lines += typed("rzk", self.other)
        lines += [f"a={a.text()}" for a in self.attributes]
        for media in self.media:
            lines.append(f"m={media.line()}")
            lines += typed("i", media.other)
            if media.connection is not None:
                lines.append(f"c={media.connection.value()}")
            lines += typed("bk", media.other)
            lines += [f"a={a.text()}" for a in media.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()


# ------------------------------------------------------------------ parsing


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body; :class:`SdpError` naming the line if it cannot be used."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_SDP_BYTES:
        raise SdpError(f"an SDP body of {len(raw)} bytes is over the {MAX_SDP_BYTES}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SdpError(f"the body is not UTF-8 (byte {e.start})") from None
    return _Parser().run(text)


@dataclass(slots=True)
class _Draft:
    """One section being read: the session (``m`` empty) or a media section."""

    m: str = ""
    number: int = 0  # where the m= line is, to name it in an error
    text: str = ""
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)


class _Parser:
    def __init__(self) -> None:
        self.origin: Origin | None = None
        self.name: str | None = None
        self.times: list[str] = []
        self.session = _Draft()
        self.media: list[Media] = []
        self.current: _Draft | None = None

    def run(self, text: str) -> SessionDescription:
        seen_version = False
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            if len(line) < 2 or line[1] != "=" or line[0] not in LINE_TYPES:
                why = "not a <type>=<value> line of RFC 4566"
                if len(line) >= 2 and line[1] == "=":
                    why = f"unknown line type {line[0]!r} (RFC 4566 section 5)"
                raise SdpError(why, number, line)
            if "\r" in line or "\x00" in line:
                raise SdpError("a stray CR or NUL inside the line", number, line)
            kind, value = line[0], line[2:]
            try:
                if not seen_version:
                    if kind != "v" or value.strip() != "0":
                        raise SdpError("an SDP body starts with v=0")
                    seen_version = True
                else:
                    self.line(kind, value, number, line)
            except SdpError as e:
                if e.line_number:
                    raise
                raise SdpError(str(e), number, line) from None
        if not seen_version:
            raise SdpError("an empty body: no v=0 line")
        self.close_media()
        if self.origin is None:
            raise SdpError("no o= line (RFC 4566 section 5.2)")
        return SessionDescription(
            origin=self.origin,
            name="-" if self.name is None else self.name,
            connection=self.session.connection,
            times=tuple(self.times) or ("0 0",),
            attributes=tuple(self.session.attributes),
            media=tuple(self.media),
            other=tuple(self.session.other),
        )

    def line(self, kind: str, value: str, number: int, text: str) -> None:
        if kind == "m":
            self.close_media()
            self.current = _Draft(m=value, number=number, text=text)
            return
        draft = self.current
        if draft is not None:
            if kind not in MEDIA_LINE_TYPES:
                raise SdpError(f"{kind}= is a session line, not allowed in a media section")
            if kind == "c":
                # Several c= lines are for layered multicast; the first is ours.
                draft.connection = draft.connection or _parse_connection(value)
            elif kind == "a":
                draft.attributes.append(_parse_attribute(value))
            else:
                draft.other.append((kind, value))
            return
        draft = self.session
        if kind == "v":
            raise SdpError("v= comes once, first")
        if kind == "o":
            if self.origin is not None:
                raise SdpError("a second o= line")
            self.origin = _parse_origin(value)
        elif kind == "s":
            if self.name is not None:
                raise SdpError("a second s= line")
            self.name = value
        elif kind == "c":
            if draft.connection is not None:
                raise SdpError("a second c= line in the session section")
            draft.connection = _parse_connection(value)
        elif kind == "t":
            self.times.append(value)
        elif kind == "a":
            draft.attributes.append(_parse_attribute(value))
        else:
            draft.other.append((kind, value))

    def close_media(self) -> None:
        draft = self.current
        if draft is None:
            return
        self.current = None
        try:
            self.media.append(self.finish(draft))
        except SdpError as e:
            raise SdpError(str(e), draft.number, draft.text) from None

    def finish(self, draft: _Draft) -> Media:
        fields = draft.m.split()
        if len(fields) < 3:
            raise SdpError("m= needs <media> <port> <proto> <fmt> ...")
        port_text, _, count_text = fields[1].partition("/")
        port = _number(port_text, "port")
        if port > 65535:
            raise SdpError(f"port {port} is over 65535")
        count = _number(count_text, "port count") if count_text else None
        if port and draft.connection is None and self.session.connection is None:
            raise SdpError("no c= line for this media, nor for the session (RFC 4566 section 5.7)")
        return Media(
            media=fields[0],
            port=port,
            proto=fields[2],
            formats=tuple(fields[3:]),
            port_count=count,
            connection=draft.connection,
            attributes=tuple(draft.attributes),
            other=tuple(draft.other),
        )


def _number(text: str, what: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise SdpError(f"{what} {text[:24]!r} is not a number of at most {_MAX_DIGITS} digits")
    return int(text)


def _parse_origin(value: str) -> Origin:
    fields = value.split()
    if len(fields) != 6:
        raise SdpError("o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <addr>")
    user, sess_id, version, nettype, addrtype, address = fields
    return Origin(
        user, _number(sess_id, "sess-id"), _number(version, "sess-version"), address, nettype,
        addrtype,
    )  # fmt: skip


def _parse_connection(value: str) -> Connection:
    fields = value.split()
    if len(fields) != 3:
        raise SdpError("c= needs <nettype> <addrtype> <connection-address>")
    nettype, addrtype, address = fields
    return Connection(address, addrtype, nettype)


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpError(f"attribute name {name[:24]!r} is not a token")
    attribute = Attribute(name, rest if colon else None)
    lowered = name.lower()
    if lowered == "rtpmap":
        _parse_rtpmap(rest)
    elif lowered == "fmtp" and not rest.split(" ", 1)[0]:
        raise SdpError("fmtp needs <format> <parameters>")
    elif lowered in ("ptime", "maxptime"):
        parse_ms(rest, lowered)
    return attribute


def _parse_rtpmap(value: str) -> tuple[int, RtpMap]:
    pt_text, _, mapping = value.strip().partition(" ")
    parts = mapping.strip().split("/")
    if not 2 <= len(parts) <= 3 or not parts[0]:
        raise SdpError("rtpmap needs <payload type> <encoding>/<clock rate>[/<channels>]")
    pt = _number(pt_text, "rtpmap payload type")
    if pt > 127:
        raise SdpError(f"payload type {pt} is over 127")
    rate = _number(parts[1], "clock rate")
    channels = _number(parts[2], "channels") if len(parts) == 3 else None
    return pt, RtpMap(parts[0], rate, channels)


def parse_ms(value: str, what: str = "ptime") -> int:
    """A ``ptime``/``maxptime`` value in whole ms (``20``; ``20.0`` or ``22.5`` are cut to ms)."""
    match = re.fullmatch(r"\s*([0-9]{1,6})(?:\.[0-9]*)?\s*", value)
    if match is None or int(match.group(1)) == 0:
        raise SdpError(f"{what} {value[:24]!r} is not a positive number of milliseconds")
    return int(match.group(1))
