"""Cells of the CSV files profcast writes, made safe to open in a spreadsheet.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by
Excel, LibreOffice and Google Sheets (CSV injection, OWASP). Such a cell is written with a leading
apostrophe, which spreadsheets show as text. Numbers are left alone: ``-0.5`` in a float column is a
number, not a formula; only text (object and string columns, and the index and header) is changed.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def safe_cell(value):
    """``value`` with a leading apostrophe when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not is_plain_number(value):
        return "'" + value
    return value


def is_plain_number(text: str) -> bool:
    """``'-0.5'``, ``'+3e2'``: text that is one number (a spreadsheet reads it as that number and runs nothing);
    a lone ``-`` (the ranking's empty cell) too."""
    return text == "-" or PLAIN_NUMBER.fullmatch(text) is not None


def neutralised(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells, index labels and column names are ``safe_cell``s; numbers unchanged."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column].dtype):
            safe[column] = safe[column].map(safe_cell)
    if safe.index.dtype == object:
        safe.index = safe.index.map(safe_cell)
    safe.columns = [safe_cell(column) for column in safe.columns]
    return safe


def to_safe_csv(table: pd.DataFrame, path_or_buffer=None, **options):
    """``table.to_csv(...)`` with ``neutralised`` cells: every CSV profcast writes goes through here."""
    return neutralised(table).to_csv(path_or_buffer, **options)
