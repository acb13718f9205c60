"""The spreadsheet contract: reading an uploaded recipient list and checking every row.

Two steps, neither of which writes to the database:

1. ``read_table(data, filename)`` turns the uploaded bytes into a ``Table``: the header
   (the first row with a name and an email column among the first 10 non-blank rows, so
   title lines above it are skipped; ``Table.header_row``) mapped to GiftDesk's fields,
   and the data rows, each with the row number a spreadsheet program shows (blank rows
   keep their numbers, a quoted cell spanning several lines is one row). CSV or XLSX,
   decided by what the file is; anything else, a header without data rows, and any file
   over a limit, raises ``FileRefused`` with a message a staff member can act on.
2. ``validate(table, context)`` checks every row against the account's catalog and
   returns an ``ImportPreview``: valid rows ready to become orders, invalid rows with
   *every* problem of the row (``RowError``), and warnings (duplicates in the file,
   recipients who got or are due to get a card lately, flagged ``ValidRow.recent``) that
   do not stop a row.

``parse_amount(text)`` reads an amount as the amount column does (the digits 0-9 only) and
raises ``NotAnAmount`` with the message; ``send_csv --amount`` and the import form's default
amount use it too. ``COLUMNS`` are the contract's columns in the order the README lists them.

One job per module:
- ``read``: bytes -> records: formats, encodings, delimiters, size limits, zip-bomb guards;
- ``headers``: records -> ``Table``: the columns and their header names, row numbers, the row limit;
- ``amounts``: reading an amount (and quoting a user's value in a message);
- ``rows``: ``Table`` -> ``ImportPreview``: every rule a row must meet, and the warnings;
- ``context``: what validation needs from the database (``ImportContext.for_account``,
  the only read), the preview's types, and the download of the invalid rows;
- ``errors``: ``FileRefused``, which all of them raise;
- ``limits``: the limits a file is read under, as plain values;
- ``bounded``: a workbook parsed in a child process with bounded memory and time.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, not here: the bounded reader's child process imports ``read``
# without setting Django up, and ``context`` needs the models (so the app registry).
EXPORTS = {
    "COLUMNS": "headers",
    "FileRefused": "errors",
    "ImportContext": "context",
    "ImportPreview": "context",
    "InvalidRow": "context",
    "NotAnAmount": "amounts",
    "RowError": "context",
    "SourceRow": "headers",
    "Table": "headers",
    "ValidRow": "context",
    "invalid_rows_csv": "context",
    "parse_amount": "amounts",
    "read_table": "read",
    "validate": "rows",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value
