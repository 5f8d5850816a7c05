"""SIP and SIPS URIs (RFC 3261 section 19.1), tel URIs (RFC 3966) and the rest, opaquely.

A trunk may put ``tel:+15550100`` in the Request-URI, a phone puts
``sip:+15550100@pbx.example;user=phone``; both give the dialled number as
:attr:`Uri.user`. Other schemes (``mailto:``, ``urn:``) parse, so that a
From header with one does not fail the whole message; the core answers 416
when one is the Request-URI (RFC 3261 section 8.2.2.1).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ivr.transport.sip.grammar import (
    HOST_RE,
    Invalid,
    Params,
    format_params,
    param,
    parse_params,
)

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3261 section 25.1: user-unreserved and password characters, left unescaped.
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
_ANY_WS = re.compile(r"[\s<>\"]")  # never in a URI unescaped (RFC 3986 section 2)
_PORT_RE = re.compile(r":[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class Uri:
    """A URI; ``user`` is unescaped (``%2B1555`` is ``+1555``); ``host`` keeps IPv6 brackets."""

    scheme: str  # lower case
    host: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: str = ""  # after "?", as written
    opaque: str = ""  # all after "scheme:" for a scheme other than sip, sips, tel

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    @property
    def transport(self) -> str:
        """``UDP``, ``TCP``, ``TLS``...: the ``transport`` parameter, or TLS for sips."""
        value = self.param("transport")
        if value:
            return value.upper()
        return "TLS" if self.scheme == "sips" else "UDP"

    @property
    def default_port(self) -> int:
        return 5061 if self.scheme == "sips" or self.transport == "TLS" else 5060

    @property
    def bare_host(self) -> str:
        """The host without IPv6 brackets, as a socket address wants it."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __str__(self) -> str:
        if not self.is_sip and self.scheme != "tel":
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(urllib.parse.quote(self.user, safe=_USER_SAFE, errors="surrogateescape"))
            if self.password is not None:
                out.append(":")
                out.append(
                    urllib.parse.quote(self.password, safe=_PASSWORD_SAFE, errors="surrogateescape")
                )
            if self.scheme != "tel":
                out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append(f"?{self.headers}")
        return "".join(out)


def _unescape(text: str) -> str:
    return urllib.parse.unquote(text, errors="surrogateescape")


def parse_uri(text: str) -> Uri:
    """Parse one URI (no angle brackets, no surrounding whitespace)."""
    if not text or _ANY_WS.search(text):
        raise Invalid(f"bad URI {text[:40]!r}" if text else "empty URI")
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None or not rest:
        raise Invalid(f"bad URI {text[:40]!r}")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        if "@" in rest:
            try:
                return _parse_sip(scheme, rest, with_user=True)
            except Invalid:
                pass  # an "@" in a parameter or header: try the URI without user part
        return _parse_sip(scheme, rest, with_user=False)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise Invalid("tel URI without a number")
        params = ";" + params if params else ""
        return Uri("tel", user=_unescape(number), params=_uri_params(params))
    return Uri(scheme, opaque=rest)


def _uri_params(text: str) -> Params:
    return parse_params(text, header=False)


def _parse_sip(scheme: str, rest: str, *, with_user: bool) -> Uri:
    user = password = None
    if with_user:
        userinfo, _, rest = rest.partition("@")
        user, has_password, pw = userinfo.partition(":")
        if not user:
            raise Invalid("empty user part")
        user = _unescape(user)
        password = _unescape(pw) if has_password else None
    rest, _, headers = rest.partition("?")
    hostport, semi, params = rest.partition(";")
    if hostport.startswith("["):
        close = hostport.find("]")
        host, after = hostport[: close + 1], hostport[close + 1 :]
        if close < 0:
            raise Invalid("unclosed IPv6 reference")
    else:
        host, colon, port_text = hostport.partition(":")
        after = colon + port_text
    if HOST_RE.fullmatch(host) is None:
        raise Invalid(f"bad host {host[:40]!r}")
    port = None
    if after:
        if _PORT_RE.fullmatch(after) is None:
            raise Invalid(f"bad port {after[:12]!r}")
        port = int(after[1:])
        if not 0 < port < 65536:
            raise Invalid(f"port {port} out of range")
    return Uri(
        scheme,
        host=host,
        user=user,
        password=password,
        port=port,
        params=_uri_params(semi + params),
        headers=headers,
    )
