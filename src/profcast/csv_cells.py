"""Cells of the CSV files profcast writes, made safe to open in a spreadsheet.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by
Excel, LibreOffice and Google Sheets (CSV injection, OWASP). Such a cell is written with a leading
apostrophe, which spreadsheets show as text. Numbers are left alone: ``-0.5`` in a float column is a
number, not a formula; only text (object and string columns, and the index and header) is changed.
"""

from __future__ import annotations

import csv
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


def is_text(dtype) -> bool:
    """Whether a column of ``dtype`` may hold text (object or string): only those are neutralised."""
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def neutralised(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells, index labels and column names are ``safe_cell``s; numbers unchanged."""
    safe = table.copy()
    for column in safe.columns:
        if is_text(safe[column].dtype):
            safe[column] = safe[column].map(safe_cell)
    if is_text(safe.index.dtype):
        safe.index = safe.index.map(safe_cell)
    safe.columns = [safe_cell(column) for column in safe.columns]
    return safe


def to_safe_csv(table: pd.DataFrame, path_or_buffer=None, **options):
    """``table.to_csv(...)`` with ``neutralised`` cells: every CSV profcast writes goes through here."""
    safe = neutralised(table)
    if holds_carriage_return(safe):
        # pandas leaves a cell with a bare CR unquoted, which ends the row there for a reader: "x\r=cmd()"
        # would start a row with a formula. Quoting every text cell keeps the CR inside its cell.
        options.setdefault("quoting", csv.QUOTE_NONNUMERIC)
    return safe.to_csv(path_or_buffer, **options)


def holds_carriage_return(table: pd.DataFrame) -> bool:
    """Whether any text cell, index label or column name of ``table`` holds a carriage return."""
    texts = [*map(str, table.columns), *(str(label) for label in table.index if isinstance(label, str))]
    for column in table.columns:
        if is_text(table[column].dtype):
            texts += [value for value in table[column] if isinstance(value, str)]
    return any("\r" in text for text in texts)
