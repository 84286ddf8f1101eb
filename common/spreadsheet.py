"""Cells of the CSV files people open in a spreadsheet (statements, payout files)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell as text. A text that a spreadsheet would run as a formula (a name
    starting with `=`) is quoted with `'`; numbers, negative ones too, are not."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        try:
            Decimal(text)
        except InvalidOperation:
            return "'" + text
    return text
