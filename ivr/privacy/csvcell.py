"""CSV cells a spreadsheet will not run as formulas (OWASP: CSV injection).

A spreadsheet that opens a CSV file reads a cell starting with ``=``, ``+``,
``-`` or ``@`` (and, in some, a tab or carriage return) as a formula, so a
caller's ``client_ref`` or an agent's name such as ``=HYPERLINK(...)`` would
run on the reader's machine. Every text cell that starts with one of those
gets a leading ``'``, which spreadsheets read as "this is text". That
includes E.164 numbers (``+15557654321`` is written ``'+15557654321``):
otherwise a spreadsheet reads them as arithmetic and drops the ``+``. A
program reading the file gets the value back by removing that one ``'``.
Numbers (``int``, ``float``) and empty cells are written as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class RowWriter(Protocol):
    """What :func:`csv.writer` returns, as far as this module needs it."""

    def writerow(self, row: Iterable[Any], /) -> Any:
        """Write one row."""


def cell(value: Any) -> Any:
    """``value`` as it may go into a CSV cell: text that could start a formula gets ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_row(writer: RowWriter, row: Iterable[Any]) -> None:
    """Write one row with every cell made safe by :func:`cell`."""
    writer.writerow([cell(v) for v in row])
