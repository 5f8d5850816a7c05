"""What may appear in logs: phone numbers masked, never tokens, passwords or audio."""

from __future__ import annotations


def mask_number(number: str | None) -> str:
    """Keep the country prefix and the last two digits: ``+1555*****00``."""
    if not number:
        return "-"
    if len(number) <= 6:
        return number[:2] + "*" * max(len(number) - 2, 0)
    return number[:5] + "*" * (len(number) - 7) + number[-2:]
