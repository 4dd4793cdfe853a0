"""CSV cells a spreadsheet would not evaluate.

Why: results.csv carries text from the study file (model paths, experiment names, error
messages). A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a
formula by spreadsheet programs (CSV injection, as OWASP describes it): `=cmd|' /C calc'!A0` in
a model name would run when a colleague opens the file. Such a text cell is written with a
leading `'`, which spreadsheets show as text; numbers are numbers and stay as they are.
"""
from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """`value`, or `'value` for a text cell a spreadsheet would evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_csv_frame(frame):
    """A copy of a pandas frame with every text cell made safe (numbers untouched)."""
    from pandas.api.types import is_numeric_dtype

    out = frame.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):  # object or string columns (pandas' text dtypes)
            out[column] = out[column].map(safe_cell)
    return out
