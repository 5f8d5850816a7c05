"""Redaction of transcripts: spoken or written runs of digits become ``[redacted]``.

Card numbers and any run of six or more digits, written as digits or spoken
as number words ("four one one one ..."), are replaced by :data:`REDACTED`
before a transcript leaves the worker process, and once more before it is
stored. A run is found across a whole channel, not per segment
(:func:`redaction_mask` over all its words), so a card number read out in
groups with pauses between them is still one run. Pure functions over text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REDACTED = "[redacted]"
MIN_DIGITS = 6  # a run of this many digits or more is redacted

# Digits each number word stands for. Homophones the recogniser writes for
# digits ("for", "to", "won", "ate", "oh") count only inside a run with at
# least three unambiguous digits, so "go to the shop for two hours" is left alone.
_UNITS = {
    "zero": 1,
    "one": 1,
    "two": 1,
    "three": 1,
    "four": 1,
    "five": 1,
    "six": 1,
    "seven": 1,
    "eight": 1,
    "nine": 1,
    "ten": 2,
    "eleven": 2,
    "twelve": 2,
    "thirteen": 2,
    "fourteen": 2,
    "fifteen": 2,
    "sixteen": 2,
    "seventeen": 2,
    "eighteen": 2,
    "nineteen": 2,
    "twenty": 2,
    "thirty": 2,
    "forty": 2,
    "fifty": 2,
    "sixty": 2,
    "seventy": 2,
    "eighty": 2,
    "ninety": 2,
    "hundred": 2,
    "thousand": 3,
    "million": 6,
    "double": 1,  # "double four": the four counts the other one
    "triple": 2,
}
_TENS = {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
_ONES = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
_WEAK = {"oh": 1, "o": 1, "to": 1, "too": 1, "for": 1, "fore": 1, "won": 1, "ate": 1, "nought": 1}
# Words people put between the groups of a card number; they join two runs.
_FILLERS = {"uh", "um", "er", "ah", "and", "then", "dash", "space", "hyphen", "comma", "is"}
_MAX_FILLERS = 2
_DIGITS = re.compile(r"[0-9][0-9 ./-]*")


def _digits(token: str, previous: str | None) -> tuple[int, bool] | None:
    """(digits, unambiguous) that a token stands for, or None if it is not a number."""
    bare = token.lower().strip(".,;:!?\"'()[]")
    if bare and _DIGITS.fullmatch(bare):
        return sum(c.isdigit() for c in bare), True
    if bare in _UNITS:
        if previous in _TENS and bare in _ONES:
            return 0, True  # "twenty three" is two digits, not three
        return _UNITS[bare], True
    if bare in _WEAK:
        return _WEAK[bare], False
    return None


def redaction_mask(tokens: Sequence[str]) -> list[bool]:
    """Which tokens to redact: runs of number words (and fillers between them) of 6+ digits.

    A run is a stretch of number tokens where at most two filler words ("uh",
    "and", "dash") separate one group from the next, so "four one one one uh
    one one one one ..." is one run, as a card number read out in groups is.
    """
    mask = [False] * len(tokens)
    i = 0
    while i < len(tokens):
        first = _digits(tokens[i], None)
        if first is None:
            i += 1
            continue
        start = end = i  # the run is tokens[start:end + 1]
        total, strong = first[0], first[0] if first[1] else 0
        j = i + 1
        while j < len(tokens):
            got = _digits(tokens[j], tokens[j - 1].lower())
            if got is not None:
                total += got[0]
                strong += got[0] if got[1] else 0
                end = j
                j += 1
                continue
            k = j
            while k < len(tokens) and k - j < _MAX_FILLERS and tokens[k].lower() in _FILLERS:
                k += 1
            if k > j and k < len(tokens) and _digits(tokens[k], None) is not None:
                j = k
                continue
            break
        if total >= MIN_DIGITS and strong >= MIN_DIGITS // 2:
            for n in range(start, end + 1):
                mask[n] = True
        i = end + 1
    return mask


def join_redacted(tokens: Sequence[str], mask: Sequence[bool]) -> str:
    """``tokens`` joined by spaces, each run of masked ones as one :data:`REDACTED`."""
    out: list[str] = []
    for token, hidden in zip(tokens, mask, strict=True):
        if not hidden:
            out.append(token)
        elif not out or out[-1] != REDACTED:
            out.append(REDACTED)
    return " ".join(out)


def redact(text: str) -> str:
    """``text`` with every spoken or written run of 6+ digits replaced by ``[redacted]``."""
    tokens = text.split()
    return join_redacted(tokens, redaction_mask(tokens))
