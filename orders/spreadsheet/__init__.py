"""The spreadsheet contract: reading an uploaded recipient list and checking every row.

Two steps, neither of which writes to the database:

1. ``read_table(data, filename)`` turns the uploaded bytes into a ``Table``: the header
   mapped to GiftDesk's fields and the data rows, each with the row number a spreadsheet
   program shows (header = row 1, blank rows keep their numbers, a quoted cell spanning
   several lines is one row). CSV or XLSX, decided by what the file is; anything else,
   and any file over a limit, raises ``FileRefused`` with a message a staff member can
   act on.
2. ``validate(table, context)`` checks every row against the account's catalog and
   returns an ``ImportPreview``: valid rows ready to become orders, invalid rows with
   *every* problem of the row (``RowError``), and warnings (duplicates in the file,
   recipients who got a card recently) that do not stop a row.

One job per module:
- ``read``: bytes -> records: formats, encodings, delimiters, size limits, zip-bomb guards;
- ``headers``: records -> ``Table``: header names to fields, row numbers, the row limit;
- ``rows``: ``Table`` -> ``ImportPreview``: every rule a row must meet, and the warnings;
- ``context``: what validation needs from the database (``ImportContext.for_account``,
  the only read), the preview's types, and the download of the invalid rows;
- ``errors``: ``FileRefused``, which all of them raise.
"""

from orders.spreadsheet.context import (
    ImportContext,
    ImportPreview,
    InvalidRow,
    RowError,
    ValidRow,
    invalid_rows_csv,
)
from orders.spreadsheet.errors import FileRefused
from orders.spreadsheet.headers import SourceRow, Table
from orders.spreadsheet.read import read_table
from orders.spreadsheet.rows import validate

__all__ = [
    "FileRefused",
    "ImportContext",
    "ImportPreview",
    "InvalidRow",
    "RowError",
    "SourceRow",
    "Table",
    "ValidRow",
    "invalid_rows_csv",
    "read_table",
    "validate",
]
