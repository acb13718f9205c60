"""Reading an uploaded file's bytes into a ``Table``.

What the file *is* (its bytes) decides how it is read, never its extension: CSV (comma,
semicolon or tab; UTF-8 with or without BOM, UTF-16 with BOM, Windows-1252) or XLSX (the
first sheet whose header row has the required columns). ODS, old ``.xls``, encrypted or
broken workbooks, binary files and files over the byte limit raise ``FileRefused`` with a
"save it as CSV or XLSX" message a staff member can act on. Each format yields records
(lists of cell texts, one per spreadsheet row); ``headers`` finds the header among the
first rows (title lines may stand above it) and makes the ``Table``.

A workbook is checked here (its zip directory) and then parsed in a child process with
bounded memory and time (``bounded``), which calls ``read_xlsx`` below. No Django in this
module: the limits come as arguments, so that child never sets Django up.

openpyxl (read-only, streaming) and not python-calamine, although calamine parses a
50,000-row sheet 7x faster (bench/xlsx_read.py): calamine builds the whole sheet as one
dense range before handing out a row, so reading cannot stop at the row limits, blank rows
(counted by the "last row read" bound) vanish, and one cell in column XFD pads every row to
16,384 cells (a 5,000-row sheet: 2.6 GB). Its inflating is also its own, past our part cap.
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
from xml.etree import ElementTree

from openpyxl.reader.excel import ExcelReader
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

from orders.spreadsheet import bounded
from orders.spreadsheet.errors import FileRefused, HeaderNotFound, NotValidCsv
from orders.spreadsheet.headers import Table, find_header, last_filled_index, table_under_header
from orders.spreadsheet.limits import ReadLimits

SAVE_AS_ADVICE = (
    "GiftDesk reads CSV and XLSX files. Save the spreadsheet as CSV (UTF-8) or as an "
    "Excel workbook (.xlsx) and upload it again."
)

# Zip-bomb guards, checked on the zip's directory before openpyxl inflates anything.
ZIP_MAX_UNCOMPRESSED_FACTOR = 10  # total inflated size <= 10 x the upload byte limit
ZIP_MAX_RATIO = 200  # real workbooks inflate 5-50x; deflate bombs reach ~1000x
ZIP_RATIO_MIN_SIZE = 1024 * 1024  # tiny members may have any ratio
ZIP_MAX_MEMBERS = 10_000
EXPAT_NO_MEMORY = 1  # xml.parsers.expat.errors.codes[XML_ERROR_NO_MEMORY]

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; tab, LF and CR excepted.
# Many of them mean a binary file here; one in a cell is a row error (rows.py).
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# More control characters than 1 in this many (5%) is a binary file, not text with a few
# pasted into it. Text in UTF-16 without a BOM is half NUL bytes; a NUL copied into one
# cell of a CSV is one byte in thousands.
BINARY_CONTROL_SHARE = 20
# Files that are surely not spreadsheets, known by their first bytes (zip and OLE2 are
# told apart in read_table). Each holds a byte no text starts with, or a word no header does.
BINARY_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"%PDF-", b"\x1f\x8b",
    b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x7fELF", b"SQLite format 3\x00",
)
NOT_A_SPREADSHEET = f"This is not a spreadsheet file. {SAVE_AS_ADVICE}"


def read_table(data: bytes, filename: str = "", limits: ReadLimits | None = None) -> Table:
    """Read an uploaded file; raise FileRefused when it is not something we can read."""
    limits = limits or ReadLimits.from_settings()
    refuse_if_too_large(data, limits)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        check_workbook_archive(data, filename, limits)
        return bounded.read_workbook(data, filename, limits)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        # OLE2 compound file: Excel 97-2003 .xls, or an .xlsx encrypted with a password
        # (Excel wraps encrypted workbooks in OLE2, whatever the extension says).
        raise FileRefused(
            f"{describe(filename)} looks like an old Excel .xls file or a password-protected "
            f"workbook. {SAVE_AS_ADVICE}"
        )
    return read_csv(data, limits)


def describe(filename: str) -> str:
    return f"“{filename}”" if filename else "This file"


def refuse_if_too_large(data: bytes, limits: ReadLimits) -> None:
    if len(data) > limits.max_bytes:
        raise FileRefused(too_large_message(len(data), limits.max_bytes))


def too_large_message(size: int, limit: int) -> str:
    """The one wording of an over-limit file, for the admin, send_csv and read_table."""
    shown = format_size(size)
    if shown == format_size(limit):
        shown = f"just over {shown}"  # never "The file is 20 MB; the limit is 20 MB"
    return f"The file is {shown}; the limit is {format_size(limit)}."


def format_size(size: int) -> str:
    """Sizes as the README gives them: 1 MB = 1024 KB = 1024 x 1024 bytes, so the default
    limit of 20,971,520 bytes is "20 MB" (counted in millions it would read "21 MB")."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            value = Decimal(size) / scale
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{size} bytes"


# --- CSV --------------------------------------------------------------------------------


def read_csv(data: bytes, limits: ReadLimits) -> Table:
    text, encoding = decode_text(data)
    refusals: list[FileRefused] = []
    for delimiter in delimiters_to_try(text):
        records = csv_records(text, delimiter, limits)
        try:
            header_row, header = find_header(records, limits)
        except (HeaderNotFound, NotValidCsv) as refusal:
            # A title line decided the delimiter ("Gift cards, summer" above a semicolon
            # file): the header may show up under another one.
            refusals.append(refusal)
            continue
        table = table_under_header(header_row, header, records, file_format="csv", limits=limits)
        table.encoding = encoding
        table.delimiter = delimiter
        return table
    raise closest_refusal(refusals)


def closest_refusal(refusals: list[FileRefused]) -> FileRefused:
    """Of the refusals under each delimiter, the one about the row with the most GiftDesk
    columns ("no email column" beats "no name, no email"); on a tie, the first line's
    delimiter's."""
    return max(refusals, key=lambda refusal: getattr(refusal, "known_columns", -1))


def delimiters_to_try(text: str) -> list[str]:
    """The first line's delimiter, then any other that occurs in the file at all (one
    that does not cannot split a header into a name and an email column)."""
    first = detect_delimiter(text)
    return [first] + [delimiter for delimiter in DELIMITERS if delimiter != first and delimiter in text]


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode by BOM, else strict UTF-8, else Windows-1252. Refuse binary files."""
    if data.startswith(b"\xef\xbb\xbf"):
        text, encoding = decode_or_refuse(data[3:], "utf-8"), "utf-8-sig"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # The "utf-16" codec reads the BOM to pick the byte order, and drops it.
        text, encoding = decode_or_refuse(data, "utf-16"), "utf-16"
    elif data.startswith(BINARY_SIGNATURES) or data.count(b"\x00") > len(data) // BINARY_CONTROL_SHARE:
        # Many NULs: UTF-16 or UTF-32 without a BOM, or a binary file.
        raise FileRefused(NOT_A_SPREADSHEET)
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            if b"\x00" in data:
                # A few NULs in what is not UTF-8 either: UTF-16 without a BOM of text in a
                # non-Latin script (few NUL bytes), or binary. A stray NUL in a cell is
                # read (and reported on its row) only in an otherwise valid UTF-8 file.
                raise FileRefused(NOT_A_SPREADSHEET) from None
            # Excel's "CSV" on Windows writes Windows-1252 (e.g. "Søren Ærø").
            text, encoding = decode_or_refuse(data, "cp1252"), "cp1252"
    if looks_binary(text):
        raise FileRefused(NOT_A_SPREADSHEET)
    return text, encoding


def decode_or_refuse(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise FileRefused(
            f"This file is not readable text in any encoding GiftDesk knows. {SAVE_AS_ADVICE}"
        ) from None


def looks_binary(text: str, sample_size: int = 4096) -> bool:
    """Many control characters (NUL included) early on: a binary file that happened to
    decode. A few are text pasted from elsewhere: a row error each (rows.py)."""
    sample = text[:sample_size]
    controls = len(CONTROL_CHARACTER.findall(sample))
    return controls > len(sample) // BINARY_CONTROL_SHARE


DELIMITERS = (",", ";", "\t")
DELIMITER_SAMPLE_CHARS = 64 * 1024


def detect_delimiter(text: str) -> str:
    """Comma, semicolon or tab: the most frequent in the first line, outside quotes.

    csv.Sniffer is not used: it guesses wrong on one-column files (picking a letter or
    a space as the delimiter). A first line without any candidate is a one-column file,
    or a title line (``read_csv`` then tries the other delimiters).
    """
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    # A first line of megabytes (one huge quoted title cell) is counted on its start only.
    for char in text[:DELIMITER_SAMPLE_CHARS]:
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char in "\r\n":
            break
        elif not in_quotes and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda delimiter: counts[delimiter])  # ties: first listed
    return best if counts[best] else ","


def csv_records(text: str, delimiter: str, limits: ReadLimits) -> Iterator[list[str]]:
    """Yield each CSV record (one spreadsheet row each, blank lines included as [])."""
    # The csv module caps a field at 131,072 characters by default and raises past it.
    # No field can be longer than the (size-limited) file, so lift the cap to that; an
    # over-long field then becomes a row error in validation instead of a crash.
    ensure_csv_field_limit(limits.max_bytes + 1)
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
            raise NotValidCsv(
                f"Row {row_number} is not valid CSV ({exc}). Check the quotes in that row, "
                "or save the file again from your spreadsheet program."
            ) from None
        yield record


def ensure_csv_field_limit(minimum: int) -> None:
    if csv.field_size_limit() < minimum:
        csv.field_size_limit(minimum)


# --- XLSX -------------------------------------------------------------------------------


def check_workbook_archive(data: bytes, filename: str, limits: ReadLimits) -> None:
    """A zip file: refuse bombs, ODS, other zips and broken ones before anything is inflated."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise FileRefused(
            f"{describe(filename)} looks like a damaged workbook or zip file. {SAVE_AS_ADVICE}"
        ) from None
    with archive:
        refuse_zip_bomb(archive, limits)
        names = set(archive.namelist())
        if is_ods(archive, names):
            raise FileRefused(
                f"{describe(filename)} looks like an OpenDocument spreadsheet (.ods). {SAVE_AS_ADVICE}"
            )
        if not {"[Content_Types].xml", "xl/workbook.xml"} <= names:
            raise FileRefused(
                f"{describe(filename)} is a zip archive, not an Excel workbook. {SAVE_AS_ADVICE}"
            )


def refuse_zip_bomb(archive: zipfile.ZipFile, limits: ReadLimits) -> None:
    """Refuse a zip whose members would inflate to far more than any real workbook.

    Checked on the zip directory before anything is inflated: a few hundred KB of
    deflated XML can otherwise take gigabytes of memory in openpyxl. The directory may
    lie; ``CappedZipFile`` holds each part to the same cap while it is inflated.
    """
    members = archive.infolist()
    limit = limits.max_bytes * ZIP_MAX_UNCOMPRESSED_FACTOR
    total = sum(member.file_size for member in members)
    suspicious = any(
        member.file_size > ZIP_RATIO_MIN_SIZE
        and member.file_size > ZIP_MAX_RATIO * max(member.compress_size, 1)
        for member in members
    )
    if len(members) > ZIP_MAX_MEMBERS:
        raise FileRefused(
            f"This workbook is made of {len(members):,} parts, far more than a recipient list "
            f"needs; GiftDesk does not open it. {SAVE_AS_ADVICE}"
        )
    if total > limit or suspicious:
        raise FileRefused(
            f"This workbook would unpack to {format_size(total)}, far more than a recipient "
            f"list needs; GiftDesk does not open it. {SAVE_AS_ADVICE}"
        )
    largest = max((member.file_size for member in members), default=0)
    if largest > limits.max_unzipped_bytes:
        raise refuse_part_too_large(largest, limits.max_unzipped_bytes)


def refuse_part_too_large(size: int | None, limit: int) -> FileRefused:
    unpacks = f"unpacks to {format_size(size)}" if size else "unpacks to more than that"
    return FileRefused(
        f"One part of this workbook {unpacks}; GiftDesk reads at most {format_size(limit)} "
        f"per part. {bounded.REMEDY}"
    )


class CappedPart(io.RawIOBase):
    """A zip member being inflated that refuses to give more than `cap` bytes in all."""

    def __init__(self, part: Any, cap: int) -> None:
        super().__init__()
        self._part = part
        self._cap = cap
        self._left = cap

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # Ask for one byte past what is left: getting it proves the part is too big.
        wanted = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data = self._part.read(wanted)
        self._left -= len(data)
        if self._left < 0:
            raise refuse_part_too_large(None, self._cap)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._part.close()
        super().close()


class CappedZipFile(zipfile.ZipFile):
    """A zip whose members are held to `cap` inflated bytes while they are read.

    CPython's zipfile stops at the size its directory declares, but that is its own
    detail; the cap is ours, counted on the bytes actually inflated.
    """

    def __init__(self, file: Any, cap: int) -> None:
        super().__init__(file)
        self.cap = cap

    def open(self, name: Any, mode: str = "r", pwd: bytes | None = None, **kwargs: Any) -> Any:
        part = super().open(name, mode, pwd, **kwargs)
        return CappedPart(part, self.cap) if mode == "r" else part


class UnsizedSheet(ReadOnlyWorksheet):
    """openpyxl's read-only sheet, minus the size scan it makes when opened.

    Looking for ``<dimension>``, openpyxl parses up to the end of ``<sheetData>`` when
    the element is missing, keeping every parsed row element: the whole sheet, read
    before the first row is asked for (3.3 GB for 200 MB of blank rows). We ignore that
    size anyway (``reset_dimensions``), so the scan is skipped.
    """

    def _get_size(self) -> None:
        pass


class BoundedExcelReader(ExcelReader):
    """openpyxl's reader, read-only, over a ``CappedZipFile``, opening ``UnsizedSheet``s."""

    def __init__(self, data: bytes, limits: ReadLimits) -> None:
        # read_only streams rows instead of building every cell object; data_only gives
        # the values Excel last computed instead of formulas.
        super().__init__(io.BytesIO(data), read_only=True, data_only=True)
        self.archive.close()
        self.archive = CappedZipFile(io.BytesIO(data), limits.max_unzipped_bytes)
        self.valid_files = self.archive.namelist()

    def read_strings(self) -> None:
        # As openpyxl does (the part named in the manifest, through the capped archive),
        # with a lighter reader of each string: ``read_shared_strings``.
        part = self.package.find(SHARED_STRINGS)
        if part is not None:
            with self.archive.open(part.PartName[1:]) as source:
                self.shared_strings = read_shared_strings(source)

    def read_worksheets(self) -> None:
        # As openpyxl does in read-only mode; chart sheets are no worksheets, so skipped.
        for sheet, rel in self.parser.find_sheets():
            if rel.target in self.valid_files and "chartsheet" not in rel.Type:
                worksheet = UnsizedSheet(self.wb, sheet.name, rel.target, self.shared_strings)
                worksheet.sheet_state = sheet.state
                self.wb._sheets.append(worksheet)


SHARED_STRING_TAG = f"{{{SHEET_MAIN_NS}}}si"


def read_shared_strings(source: Any) -> list[str]:
    """The shared strings, exactly as openpyxl's ``read_string_table`` gives them (the
    plain text and the rich-text runs of each ``<si>``, phonetic runs left out, "x005F_"
    escapes dropped), without building its ``Text`` object tree per string: that tree was
    40% of the time to read a 50,000-row workbook (bench/xlsx_read.py)."""
    strings = []
    for _, node in iterparse(source):
        if node.tag == SHARED_STRING_TAG:
            strings.append(shared_string_text(node).replace("x005F_", ""))
            node.clear()
    return strings


def shared_string_text(node: Any) -> str:
    # openpyxl matches the children by local name, in any namespace; of several <t> in one
    # element the last counts.
    plain = None
    runs = []
    for child in node:
        name = local_name(child.tag)
        if name == "t":
            plain = child.text
        elif name == "r":
            text = None
            for part in child:
                if local_name(part.tag) == "t":
                    text = part.text
            if text is not None:
                runs.append(text)
    return "".join(runs) if plain is None else plain + "".join(runs)


def local_name(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def open_workbook(data: bytes, limits: ReadLimits) -> Any:
    reader = BoundedExcelReader(data, limits)
    reader.read()
    return reader.wb


def is_ods(archive: zipfile.ZipFile, names: set[str]) -> bool:
    if "mimetype" not in names:
        return False
    with archive.open("mimetype") as member:
        mimetype = member.read(100)  # bounded: the member is ours to distrust
    return mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet")


def read_xlsx(data: bytes, filename: str, limits: ReadLimits) -> Table:
    """Read the first sheet whose header row has the required columns.

    Run by ``bounded`` in its child process, after ``check_workbook_archive``.
    """
    try:
        workbook = open_workbook(data, limits)
    except FileRefused:
        raise
    except Exception as exc:  # openpyxl raises KeyError, zip, XML and its own errors alike
        refuse_if_out_of_memory(exc)
        raise FileRefused(
            f"{describe(filename)} could not be opened as an Excel workbook; it may be damaged. "
            f"{SAVE_AS_ADVICE}"
        ) from None
    try:
        return read_first_matching_sheet(workbook.worksheets, limits)
    except FileRefused:
        raise
    except Exception as exc:  # a damaged sheet part surfaces only while streaming rows
        refuse_if_out_of_memory(exc)
        raise FileRefused(
            f"{describe(filename)} could not be read to the end; the workbook may be damaged. "
            f"{SAVE_AS_ADVICE}"
        ) from None
    finally:
        workbook.close()  # read-only workbooks keep the archive open until closed


def refuse_if_out_of_memory(exc: BaseException) -> None:
    """Re-raise running out of memory as MemoryError, however the parser reported it.

    expat reports a failed allocation as an XML error ("out of memory"), and openpyxl
    may wrap it in its own; either would otherwise read as a damaged workbook.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MemoryError) or (
            isinstance(seen, ElementTree.ParseError) and seen.code == EXPAT_NO_MEMORY
        ):
            raise MemoryError from exc
        seen = seen.__cause__ or seen.__context__


def read_first_matching_sheet(sheets: list[Any], limits: ReadLimits) -> Table:
    first_refusal: FileRefused | None = None
    for sheet in sheets:
        # Some writers store a wrong <dimension>; without it openpyxl reads every row.
        sheet.reset_dimensions()
        try:
            header_row, header = sheet_header(sheet, limits)
        except HeaderNotFound as refusal:
            first_refusal = first_refusal or refusal
            continue
        # Only the header's columns are read. Unlike CSV, a workbook cannot shift a cell
        # into the wrong column, so a note right of the table is harmless; and a stray
        # cell at column XFD would otherwise pad every row to 16,384 values.
        width = max(last_filled_index(header) + 1, 1)
        rows = sheet.iter_rows(min_row=header_row + 1, max_col=width, values_only=True)
        records = (cell_texts(row) for row in rows)
        table = table_under_header(header_row, header, records, file_format="xlsx", limits=limits)
        table.sheet = sheet.title
        return table
    if first_refusal is None:
        raise FileRefused("The workbook has no sheets.")
    raise first_refusal


def sheet_header(sheet: Any, limits: ReadLimits) -> tuple[int, list[str]]:
    """The sheet's header row and its number, read in a pass that stops there."""
    top_rows = sheet.iter_rows(values_only=True)
    try:
        return find_header((cell_texts(row) for row in top_rows), limits)
    finally:
        close = getattr(top_rows, "close", None)
        if close:
            close()  # closes the sheet part now, not when the generator is collected


def cell_texts(values: Iterable[Any]) -> list[str]:
    # Text cells (most of them) are taken as they are, without a call each.
    return [value if type(value) is str else cell_text(value) for value in values]


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
