"""The small pieces of RFC 3261 section 25's grammar that every header shares.

Tokens, quoted strings, ``;name=value`` parameters, comma-separated lists,
and the header names (long, compact, canonical). Each function either
returns a value or raises :class:`Invalid`, a private ``ValueError`` that
:mod:`ivr.transport.sip.message` turns into a ``BadMessage`` naming the
header. Everything is written as linear scans or anchored regexes without
nested repetition, so hostile input costs time proportional to its length.
"""

from __future__ import annotations

import re

# RFC 3261 section 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`"
# / "'" / "~")
TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# A parameter value: token, host (IPv6 included, RFC 3261 section 25.1 gen-value)
# or a quoted string (scanned separately). Tolerant: anything but separators.
_VALUE_RE = re.compile(r"[^;,?\s\"<>]+")
# URI parameter names take more than tokens (RFC 3261 section 25.1 paramchar).
_URI_NAME_RE = re.compile(r"[^;=?,\s\"<>]+")
WS = " \t"
# hostname / IPv4address (tolerant: underscores, as some hosts have) / IPv6reference
HOST_RE = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*\.?|\[[0-9A-Fa-f:.]+\]")

Params = tuple[tuple[str, str | None], ...]


class Invalid(ValueError):
    """A header value that does not follow its grammar; the text says what is wrong."""


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None


def skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in WS:
        i += 1
    return i


def scan_quoted(text: str, i: int) -> int:
    """The index just past the quoted string starting at ``text[i] == '"'`` (RFC 3261 25.1)."""
    n = len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise Invalid("unterminated quoted string")


def unquote(text: str) -> str:
    """The content of a quoted string, quoted-pairs resolved; other text as it is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 section 7.3.1), commas in quotes or
    in ``<...>`` not counting. Empty elements (``a, , b``) are skipped."""
    parts: list[str] = []
    start, i, n, angle = 0, 0, len(value), False
    while i < n:
        c = value[i]
        if c == '"' and not angle:
            i = scan_quoted(value, i)
            continue
        if c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            parts.append(value[start:i].strip(WS))
            start = i + 1
        i += 1
    if angle:
        raise Invalid("unclosed '<'")
    parts.append(value[start:].strip(WS))
    return [p for p in parts if p]


def parse_params(text: str, *, header: bool = True) -> Params:
    """``*( SEMI name [ EQUAL value ] )`` with LWS allowed around ``;`` and ``=``.

    Names are lower-cased (they compare case-insensitively, RFC 3261 sections
    7.3.1 and 19.1.4); values keep their text, quotes included, so that what
    is echoed is what came. URI parameters (``header=False``) take no quoted
    values and no LWS.
    """
    params: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while True:
        if header:
            i = skip_ws(text, i)
        if i >= n:
            return tuple(params)
        if text[i] != ";":
            raise Invalid(f"unexpected {text[i : i + 12]!r}")
        i = skip_ws(text, i + 1) if header else i + 1
        m = (TOKEN_RE if header else _URI_NAME_RE).match(text, i)
        if m is None:
            raise Invalid(f"bad parameter at {text[i : i + 12]!r}")
        name, i = m.group().lower(), m.end()
        j = skip_ws(text, i) if header else i
        value: str | None = None
        if j < n and text[j] == "=":
            j = skip_ws(text, j + 1) if header else j + 1
            if header and j < n and text[j] == '"':
                end = scan_quoted(text, j)
            else:
                vm = _VALUE_RE.match(text, j)
                if vm is None:
                    raise Invalid(f"parameter {name!r} has no value")
                end = vm.end()
            value, i = text[j:end], end
        params.append((name, value))


def param(params: Params, name: str) -> str | None:
    """The value of parameter ``name`` ("" for a flag such as ``;lr``), None if absent."""
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


# RFC 3261 section 7.3.3 and the IANA registry of compact forms.
COMPACT = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
# Names whose usual spelling is not plain Title-Case per dash-separated word.
_SPECIAL = {
    n.lower(): n
    for n in (
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
        "MIME-Version",
        "RSeq",
        "RAck",
        "SIP-ETag",
        "SIP-If-Match",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
    )
}


def canonical_name(name: str) -> str:
    """``"v"`` -> ``"Via"``, ``"call-id"`` -> ``"Call-ID"``, ``"x-foo"`` -> ``"X-Foo"``."""
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    if low in _SPECIAL:
        return _SPECIAL[low]
    return "-".join(part[:1].upper() + part[1:] for part in low.split("-"))
