"""Typed values of the headers the core reads (RFC 3261 section 20).

Each parser takes one header value (one element of a comma list, already
unfolded) and returns a frozen value or raises :class:`Invalid`. The typed
values keep ``raw``, the text as it came, because a response echoes From,
To and the lower Vias as received (RFC 3261 section 8.2.6.2): strict peers
compare them character by character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ivr.transport.sip.grammar import (
    HOST_RE,
    TOKEN_RE,
    WS,
    Invalid,
    Params,
    format_params,
    is_token,
    param,
    parse_params,
    quote,
    scan_quoted,
    unquote,
)
from ivr.transport.sip.uri import Uri, parse_uri

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 section 8.1.1.7

# RFC 3261 section 20.42: sent-protocol SP sent-by *( SEMI via-params ), with LWS
# allowed around "/" and ":" (RFC 4475 section 3.1.1.1 shows it).
_VIA_RE = re.compile(
    r"(?P<proto>[^\s/]+)[ \t]*/[ \t]*(?P<version>[^\s/]+)[ \t]*/[ \t]*(?P<transport>[^\s/]+)"
    r"[ \t]+(?P<host>\[[^\]\s]*\]|[^\s;:\[]+)(?:[ \t]*:[ \t]*(?P<port>[^\s;]*))?(?P<params>.*)",
    re.DOTALL,
)
_DIGITS_RE = re.compile(r"[0-9]{1,10}")
_CSEQ_RE = re.compile(r"([0-9]{1,10})[ \t]+(\S+)")
_MEDIA_RE = re.compile(r"([^\s/;]+)[ \t]*/[ \t]*([^\s/;]+)(.*)", re.DOTALL)
# Unquoted display names: tokens and LWS (RFC 3261 section 25.1); we also take
# UTF-8 letters, as phones send them, but never the separators.
_BAD_DISPLAY = re.compile(r"[\"<>,;\\]")
MAX_UINT32 = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Via:
    transport: str  # upper case: UDP, TCP, TLS, SCTP, WS...
    host: str  # as written; IPv6 in brackets
    port: int | None
    params: Params
    raw: str

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def sent_by(self) -> str:
        """``host:port`` with the transport's default port, for transaction matching (17.2.3)."""
        port = self.port or (5061 if self.transport == "TLS" else 5060)
        return f"{self.host.lower()}:{port}"

    def with_params(self, **values: str) -> Via:
        """A copy with parameters set (an existing one replaced in place, others appended)."""
        params = list(self.params)
        for name, value in values.items():
            for i, (key, _) in enumerate(params):
                if key == name:
                    params[i] = (name, value)
                    break
            else:
                params.append((name, value))
        via = replace(self, params=tuple(params))
        return replace(via, raw=str(via))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To, Contact, Route, Record-Route: ``"Name" <uri>;params``."""

    uri: Uri
    display_name: str = ""
    params: Params = ()
    raw: str = ""

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag") or None

    def with_tag(self, tag: str) -> NameAddr:
        addr = replace(self, params=(*self.params, ("tag", tag)))
        return replace(addr, raw=f"{self.raw or str(self)};tag={tag}")

    def __str__(self) -> str:
        name = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str  # lower case
    subtype: str  # lower case
    params: Params = ()

    @property
    def essence(self) -> str:
        """``type/subtype``, what compares (``application/sdp``)."""
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return f"{self.essence}{format_params(self.params)}"


def parse_via(text: str) -> Via:
    m = _VIA_RE.fullmatch(text.strip(WS))
    if m is None:
        raise Invalid("not 'SIP/2.0/transport host'")
    if m["proto"].upper() != "SIP" or m["version"] != "2.0":
        raise Invalid(f"not SIP/2.0 ({m['proto'][:8]!r}/{m['version'][:8]!r})")
    if not is_token(m["transport"]):
        raise Invalid(f"bad transport {m['transport'][:12]!r}")
    host = m["host"]
    if HOST_RE.fullmatch(host) is None:
        raise Invalid(f"bad host {host[:40]!r}")
    port = None
    if m["port"] is not None:
        port = _port(m["port"])
    params = parse_params(m["params"])
    branch = param(params, "branch")
    if branch is not None and not is_token(branch):
        raise Invalid("bad branch")
    rport = param(params, "rport")
    if rport:
        _port(rport)
    return Via(m["transport"].upper(), host, port, params, text.strip(WS))


def _port(text: str) -> int:
    if _DIGITS_RE.fullmatch(text) is None or not 0 < int(text) < 65536:
        raise Invalid(f"bad port {text[:12]!r}")
    return int(text)


def parse_name_addr(text: str) -> NameAddr:
    """``name-addr`` or ``addr-spec``, then header parameters (RFC 3261 section 20.10)."""
    s = text.strip(WS)
    display = ""
    if s.startswith('"'):
        end = scan_quoted(s, 0)
        display, rest = unquote(s[:end]), s[end:].lstrip(WS)
        if not rest.startswith("<"):
            raise Invalid("a display name without <URI>")
    elif "<" in s:
        at = s.index("<")
        display, rest = " ".join(s[:at].split()), s[at:]
        if _BAD_DISPLAY.search(display):
            raise Invalid("bad display name (quote it)")
    else:
        # addr-spec: the URI ends at the first ";", its parameters are the header's (20.10)
        at = s.find(";")
        uri_text, params = (s, "") if at < 0 else (s[:at], s[at:])
        return NameAddr(_uri(uri_text.rstrip(WS)), "", parse_params(params), s)
    close = rest.find(">")
    if close < 0:
        raise Invalid("'<' without '>'")
    return NameAddr(_uri(rest[1:close].strip(WS)), display, parse_params(rest[close + 1 :]), s)


def _uri(text: str) -> Uri:
    if not text:
        raise Invalid("no URI")
    return parse_uri(text)


def parse_cseq(text: str) -> CSeq:
    m = _CSEQ_RE.fullmatch(text.strip(WS))
    if m is None or not is_token(m[2]) or int(m[1]) > MAX_UINT32:
        raise Invalid("not 'number METHOD'")
    return CSeq(int(m[1]), m[2])


def parse_uint(text: str, maximum: int = MAX_UINT32) -> int:
    text = text.strip(WS)
    if _DIGITS_RE.fullmatch(text) is None:
        raise Invalid(f"not a number: {text[:12]!r}")
    return min(int(text), maximum)


def parse_media_type(text: str) -> MediaType:
    m = _MEDIA_RE.fullmatch(text.strip(WS))
    if m is None or not is_token(m[1]) or not is_token(m[2]):
        raise Invalid("not 'type/subtype'")
    return MediaType(m[1].lower(), m[2].lower(), parse_params(m[3]))


def parse_token(text: str) -> str:
    text = text.strip(WS)
    if TOKEN_RE.fullmatch(text) is None:
        raise Invalid(f"bad token {text[:20]!r}")
    return text


def parse_call_id(text: str) -> str:
    """RFC 3261 section 25.1: ``word ["@" word]``; we take any run without whitespace."""
    text = text.strip(WS)
    if not text or any(c in WS for c in text):
        raise Invalid("empty or with whitespace")
    return text
