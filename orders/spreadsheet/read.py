"""Reading an uploaded file's bytes into a ``Table``.

What the file *is* (its bytes) decides how it is read, never its extension: CSV (comma,
semicolon or tab; UTF-8 with or without BOM, UTF-16 with BOM, Windows-1252) or XLSX (the
first sheet whose header row has the required columns). ODS, old ``.xls``, encrypted or
broken workbooks, binary files and files over the byte limit raise ``FileRefused`` with a
"save it as CSV or XLSX" message a staff member can act on. Each format yields records
(lists of cell texts, one per spreadsheet row); ``headers.build_table`` makes the
``Table``.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import openpyxl
from django.conf import settings

from orders.spreadsheet.errors import FileRefused
from orders.spreadsheet.headers import Table, build_table, last_filled_index, map_header

SAVE_AS_ADVICE = (
    "GiftDesk reads CSV and XLSX files. Save the spreadsheet as CSV (UTF-8) or as an "
    "Excel workbook (.xlsx) and upload it again."
)

# Zip-bomb guards, checked on the zip's directory before openpyxl inflates anything.
ZIP_MAX_UNCOMPRESSED_FACTOR = 10  # total inflated size <= 10 x the upload byte limit
ZIP_MAX_RATIO = 200  # real workbooks inflate 5-50x; deflate bombs reach ~1000x
ZIP_RATIO_MIN_SIZE = 1024 * 1024  # tiny members may have any ratio
ZIP_MAX_MEMBERS = 10_000

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; tab, LF and CR excepted.
# Many of them mean a binary file here; one in a cell is a row error (rows.py).
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def read_table(data: bytes, filename: str = "") -> Table:
    """Read an uploaded file; raise FileRefused when it is not something we can read."""
    refuse_if_too_large(data)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return read_zip(data, filename)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        # OLE2 compound file: Excel 97-2003 .xls, or an .xlsx encrypted with a password
        # (Excel wraps encrypted workbooks in OLE2, whatever the extension says).
        raise FileRefused(
            f"{describe(filename)} looks like an old Excel .xls file or a password-protected "
            f"workbook. {SAVE_AS_ADVICE}"
        )
    return read_csv(data)


def describe(filename: str) -> str:
    return f"“{filename}”" if filename else "This file"


def refuse_if_too_large(data: bytes) -> None:
    limit = settings.GIFTDESK_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise FileRefused(f"The file is {format_size(len(data))}; the limit is {format_size(limit)}.")


def format_size(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            value = Decimal(size) / scale
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{size} bytes"


# --- CSV --------------------------------------------------------------------------------


def read_csv(data: bytes) -> Table:
    text, encoding = decode_text(data)
    delimiter = detect_delimiter(text)
    records = csv_records(text, delimiter)
    table = build_table(records, file_format="csv")
    table.encoding = encoding
    table.delimiter = delimiter
    return table


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode by BOM, else strict UTF-8, else Windows-1252. Refuse binary files."""
    if data.startswith(b"\xef\xbb\xbf"):
        text, encoding = decode_or_refuse(data[3:], "utf-8"), "utf-8-sig"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # The "utf-16" codec reads the BOM to pick the byte order, and drops it.
        text, encoding = decode_or_refuse(data, "utf-16"), "utf-16"
    elif b"\x00" in data:
        # NUL never occurs in text outside UTF-16; this is a binary file.
        raise FileRefused(f"This is not a spreadsheet file. {SAVE_AS_ADVICE}")
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            # Excel's "CSV" on Windows writes Windows-1252 (e.g. "Søren Ærø").
            text, encoding = decode_or_refuse(data, "cp1252"), "cp1252"
    if looks_binary(text):
        raise FileRefused(f"This is not a spreadsheet file. {SAVE_AS_ADVICE}")
    return text, encoding


def decode_or_refuse(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise FileRefused(
            f"This file is not readable text in any encoding GiftDesk knows. {SAVE_AS_ADVICE}"
        ) from None


def looks_binary(text: str, sample_size: int = 4096) -> bool:
    """Many control characters early on: a binary file that happened to decode."""
    sample = text[:sample_size]
    controls = len(CONTROL_CHARACTER.findall(sample))
    return "\x00" in sample or controls > len(sample) // 20


def detect_delimiter(text: str) -> str:
    """Comma, semicolon or tab: the most frequent in the header line, outside quotes.

    csv.Sniffer is not used: it guesses wrong on one-column files (picking a letter or
    a space as the delimiter). A header without any candidate is a one-column file.
    """
    counts = {",": 0, ";": 0, "\t": 0}
    in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char in "\r\n":
            break
        elif not in_quotes and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda delimiter: counts[delimiter])  # ties: first listed
    return best if counts[best] else ","


def csv_records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Yield each CSV record (one spreadsheet row each, blank lines included as [])."""
    # The csv module caps a field at 131,072 characters by default and raises past it.
    # No field can be longer than the (size-limited) file, so lift the cap to that; an
    # over-long field then becomes a row error in validation instead of a crash.
    ensure_csv_field_limit(settings.GIFTDESK_IMPORT_MAX_BYTES + 1)
    # newline="" hands line endings to the csv module, which only breaks rows on \r and
    # \n outside quotes. str.splitlines() would also split on \x0b, \x0c, \x1c-\x1e,
    # \x85, \u2028 and \u2029 and shift every row number after them.
    # strict=True: an unclosed quote is an error instead of silently swallowing the
    # rest of the file into one cell.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    row_number = 0
    while True:
        row_number += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileRefused(
                f"Row {row_number} is not valid CSV ({exc}). Check the quotes in that row, "
                "or save the file again from your spreadsheet program."
            ) from None
        yield record


def ensure_csv_field_limit(minimum: int) -> None:
    if csv.field_size_limit() < minimum:
        csv.field_size_limit(minimum)


# --- XLSX -------------------------------------------------------------------------------


def read_zip(data: bytes, filename: str) -> Table:
    """A zip file: an XLSX workbook is read; ODS, other zips and broken ones are refused."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise FileRefused(
            f"{describe(filename)} looks like a damaged workbook or zip file. {SAVE_AS_ADVICE}"
        ) from None
    with archive:
        refuse_zip_bomb(archive)
        names = set(archive.namelist())
        if is_ods(archive, names):
            raise FileRefused(
                f"{describe(filename)} looks like an OpenDocument spreadsheet (.ods). {SAVE_AS_ADVICE}"
            )
        if not {"[Content_Types].xml", "xl/workbook.xml"} <= names:
            raise FileRefused(
                f"{describe(filename)} is a zip archive, not an Excel workbook. {SAVE_AS_ADVICE}"
            )
    return read_xlsx(data, filename)


def refuse_zip_bomb(archive: zipfile.ZipFile) -> None:
    """Refuse a zip whose members would inflate to far more than any real workbook.

    Checked on the zip directory before anything is inflated: a few hundred KB of
    deflated XML can otherwise take gigabytes of memory in openpyxl. Lying sizes in the
    directory do not help an attacker: zipfile stops at the declared size and the CRC
    check then fails, which we report as a damaged workbook.
    """
    members = archive.infolist()
    limit = settings.GIFTDESK_IMPORT_MAX_BYTES * ZIP_MAX_UNCOMPRESSED_FACTOR
    total = sum(member.file_size for member in members)
    suspicious = any(
        member.file_size > ZIP_RATIO_MIN_SIZE
        and member.file_size > ZIP_MAX_RATIO * max(member.compress_size, 1)
        for member in members
    )
    if len(members) > ZIP_MAX_MEMBERS or total > limit or suspicious:
        raise FileRefused(
            f"This workbook would unpack to {format_size(total)}, far more than a recipient "
            f"list needs; GiftDesk does not open it. {SAVE_AS_ADVICE}"
        )


def is_ods(archive: zipfile.ZipFile, names: set[str]) -> bool:
    if "mimetype" not in names:
        return False
    with archive.open("mimetype") as member:
        mimetype = member.read(100)  # bounded: the member is ours to distrust
    return mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet")


def read_xlsx(data: bytes, filename: str) -> Table:
    """Read the first sheet whose header row has the required columns."""
    try:
        # read_only streams rows instead of building every cell object; data_only gives
        # the values Excel last computed instead of formulas.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises KeyError, zip, XML and its own errors alike
        raise FileRefused(
            f"{describe(filename)} could not be opened as an Excel workbook; it may be damaged. "
            f"{SAVE_AS_ADVICE}"
        ) from None
    try:
        return read_first_matching_sheet(workbook.worksheets)
    except FileRefused:
        raise
    except Exception:  # a damaged sheet part surfaces only while streaming rows
        raise FileRefused(
            f"{describe(filename)} could not be read to the end; the workbook may be damaged. "
            f"{SAVE_AS_ADVICE}"
        ) from None
    finally:
        workbook.close()  # read-only workbooks keep the archive open until closed


def read_first_matching_sheet(sheets: list[Any]) -> Table:
    first_refusal: FileRefused | None = None
    for sheet in sheets:
        # Some writers store a wrong <dimension>; without it openpyxl reads every row.
        sheet.reset_dimensions()
        header = xlsx_header(sheet)
        try:
            map_header(header)
        except FileRefused as refusal:
            first_refusal = first_refusal or refusal
            continue
        # Only the header's columns are read. Unlike CSV, a workbook cannot shift a cell
        # into the wrong column, so a note right of the table is harmless; and a stray
        # cell at column XFD would otherwise pad every row to 16,384 values.
        width = max(last_filled_index(header) + 1, 1)
        rows = sheet.iter_rows(min_row=2, max_col=width, values_only=True)
        records = (cell_texts(row) for row in rows)
        table = build_table(prepend(header, records), file_format="xlsx")
        table.sheet = sheet.title
        return table
    if first_refusal is None:
        raise FileRefused("The workbook has no sheets.")
    raise first_refusal


def xlsx_header(sheet: Any) -> list[str]:
    for row in sheet.iter_rows(min_row=1, max_row=1, values_only=True):
        return cell_texts(row)
    return []


def prepend(first: list[str], rest: Iterable[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def cell_texts(values: Iterable[Any]) -> list[str]:
    return [cell_text(value) for value in values]


def cell_text(value: Any) -> str:
    """A cell's value as the text a user sees in the spreadsheet."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Excel keeps 15 significant digits; going through them drops float noise
        # (0.1 + 0.2) and the ".0" of whole numbers (50.0 -> "50").
        number = Decimal(format(value, ".15g")).normalize()
        return format(number, "f")
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)
