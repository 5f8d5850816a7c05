"""Phone numbers and DTMF digits: the one check of each for the whole project.

Every place that takes a number (the WebSocket ``dial``, the API, the CLI's
``erase`` and ``export``, load scenarios, the config) asks :func:`is_e164`,
and the store keeps a caller's number only in the form :func:`contact_number`
gives. A number is ``+`` and 2 to 15 digits, the first not ``0``, and nothing
else: not a space, not a trailing newline (``$`` in a Python pattern would
let one through, so the pattern ends with ``\\Z`` and is matched whole).

Pure: no I/O, so the config (which is pure too) can use it.
"""

from __future__ import annotations

import re

DTMF_DIGITS = "0123456789*#ABCD"
_NUMBER = r"\+[1-9][0-9]{1,14}"
E164 = re.compile(rf"\A{_NUMBER}\Z")
# A value that starts with a whole number and then has something that is not a
# digit: what an unanchored check used to let in ("+15550001111 x").
_LEADING = re.compile(rf"\A({_NUMBER})(?![0-9])")
SHOWN_CHARS = 24  # how much of a bad value an error message repeats


def is_e164(value: object) -> bool:
    """Whether ``value`` is exactly an E.164 number (a string and nothing around it)."""
    return isinstance(value, str) and E164.fullmatch(value) is not None


def contact_number(value: str) -> str:
    """The stored form of a caller's number; ValueError for anything but E.164.

    The store calls this before it keeps a contact, so no other form is ever
    stored, found or matched.
    """
    if not is_e164(value):
        raise ValueError(f"not an E.164 number: {shown(value)}")
    return value


def leading_number(value: str) -> str | None:
    """The E.164 number a value starts with, when junk (not a digit) follows it.

    For values stored before the check was anchored: ``"+15550001111 x"`` gives
    ``"+15550001111"``; ``"+1555000111122223333"`` (too many digits) and
    ``"<b>"`` give None.
    """
    found = _LEADING.match(value)
    return None if found is None or found.end() == len(value) else found.group(1)


def shown(value: str) -> str:
    """A bad value as an error message may repeat it: quoted, escaped, and cut short."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"
