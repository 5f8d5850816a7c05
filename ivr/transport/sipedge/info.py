"""The key in a SIP INFO body: ``application/dtmf-relay`` (``Signal=5``) or ``application/dtmf``.

Neither type has an RFC of its own; both are what phones and PBXs send
(Cisco's dtmf-relay; RFC 6086 section 4 leaves the packages to usage).
``Signal`` is a key of ``0-9*#A-D``, or 10 and 11 for ``*`` and ``#`` (as
the RFC 4733 event codes, which some senders use). Anything else is no key.
"""

from __future__ import annotations

from ivr.e164 import DTMF_DIGITS

MAX_BODY = 256
_CODES = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}


def info_digit(content_type: str, body: bytes) -> str | None:
    """The key an INFO body carries, or None."""
    if len(body) > MAX_BODY:
        return None
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if content_type == "application/dtmf":
        value = text
    else:
        value = ""
        for line in text.splitlines():
            name, sep, rest = line.partition("=")
            if sep and name.strip().lower() == "signal":
                value = rest.strip()
                break
    value = _CODES.get(value, value).upper()
    return value if len(value) == 1 and value in DTMF_DIGITS else None
