"""The spreadsheet contract: reading an uploaded recipient list and checking every row.

Two steps, neither of which writes to the database:

1. ``read_table(data, filename)`` turns the uploaded bytes into a ``Table``: the header
   mapped to GiftDesk's fields and the data rows, each with the row number a spreadsheet
   program shows (header = row 1, blank rows keep their numbers, a quoted cell spanning
   several lines is one row). What the file *is* (its bytes) decides how it is read, never
   its extension: CSV (comma, semicolon or tab; UTF-8 with or without BOM, UTF-16 with
   BOM, Windows-1252) or XLSX. Anything else, and any file over a limit, raises
   ``FileRefused`` with a message a staff member can act on.
2. ``validate(table, context)`` checks every row against the account's catalog and
   returns an ``ImportPreview``: valid rows ready to become orders, invalid rows with
   *every* problem of the row (``RowError``), and warnings (duplicates in the file,
   recipients who got a card recently) that do not stop a row.

``ImportContext.for_account`` gathers what validation needs from the database (the only
read); ``invalid_rows_csv`` renders the invalid rows as a CSV the user can download.

Columns are matched case-, space- and punctuation-insensitively (``E-mail`` = ``email``):
name (``name``, ``recipient_name``, ``full_name``, or ``first_name`` + ``last_name``),
email (``email``, ``recipient_email``, ``email_address``), amount (``amount``, ``value``,
``giftcard_value``; optional when a default amount is given), and optionally
``currency``, ``product`` (provider product id or SKU), ``phone``, ``message``,
``reference``, ``send_on`` (ISO date, today or later). Unknown columns are ignored and
listed; a column given twice refuses the file.

Money is ``Decimal`` throughout, never float.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db.models.functions import Lower
from django.utils import timezone

from providers.models import Product, ProviderAccount, money

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

SAVE_AS_ADVICE = (
    "GiftDesk reads CSV and XLSX files. Save the spreadsheet as CSV (UTF-8) or as an "
    "Excel workbook (.xlsx) and upload it again."
)

# Zip-bomb guards, checked on the zip's directory before openpyxl inflates anything.
ZIP_MAX_UNCOMPRESSED_FACTOR = 10  # total inflated size <= 10 x the upload byte limit
ZIP_MAX_RATIO = 200  # real workbooks inflate 5-50x; deflate bombs reach ~1000x
ZIP_RATIO_MIN_SIZE = 1024 * 1024  # tiny members may have any ratio
ZIP_MAX_MEMBERS = 10_000

# Database column sizes (orders.models.Recipient); a longer value could not be stored.
FIELD_MAX_LENGTHS: dict[str, int] = {
    "name": 200,
    "first_name": 200,
    "last_name": 200,
    "email": 254,
    "phone": 40,
    "reference": 100,
    "product": 100,
}

# field -> accepted header spellings (normalized with `normalize_header`).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "recipient_name", "full_name"),
    "first_name": ("first_name",),
    "last_name": ("last_name",),
    "email": ("email", "recipient_email", "email_address"),
    "amount": ("amount", "value", "giftcard_value"),
    "currency": ("currency",),
    "product": ("product",),
    "phone": ("phone",),
    "message": ("message",),
    "reference": ("reference",),
    "send_on": ("send_on",),
}

# Fields where a line break is legitimate content.
MULTILINE_FIELDS = frozenset({"message"})

AMOUNT_PATTERN = re.compile(r"^(\d{1,10})(?:[.,](\d+))?$")
CURRENCY_PATTERN = re.compile(r"^[A-Za-z]{3}$")
ISO_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
LINE_BREAK = re.compile("[\n\r\u2028\u2029]")
# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; tab, LF and CR excepted.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_email_validator = EmailValidator()


# --------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------


class FileRefused(Exception):
    """The file as a whole cannot be read: wrong format, over a limit, broken header."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class SourceRow:
    """One non-blank data row as read, before validation."""

    number: int  # the row number a spreadsheet program shows
    cells: dict[str, str]  # field -> cell text, for the mapped columns
    extra_cells_error: str | None = None
    values: tuple[str, ...] = ()  # every cell of the row, in file order


@dataclass
class Table:
    """An uploaded file read into rows, with its header mapped to GiftDesk's fields."""

    columns: dict[str, str]  # field -> header text as the user wrote it
    ignored_columns: list[str]
    rows: list[SourceRow]
    format: str  # "csv" or "xlsx"
    encoding: str = ""
    delimiter: str = ""
    data_row_count: int = 0
    blank_rows: int = 0
    headers: list[str] = field(default_factory=list)  # the whole header row
    sheet: str = ""  # XLSX: the sheet that was read


@dataclass(frozen=True)
class RowError:
    row: int
    column: str  # the header text the user wrote (or the field name)
    message: str

    def __str__(self) -> str:
        where = f"Row {self.row}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass
class ValidRow:
    row: int
    name: str
    email: str
    phone: str
    reference: str
    message: str
    amount: Decimal
    currency: str
    product: Product
    send_on: date | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class InvalidRow:
    row: int
    cells: dict[str, str]
    errors: list[RowError]
    values: tuple[str, ...] = ()


@dataclass
class ImportPreview:
    valid_rows: list[ValidRow]
    invalid_rows: list[InvalidRow]
    ignored_columns: list[str]
    warnings: list[str]  # every row's warnings, each prefixed with "Row N: "
    totals: dict[str, Decimal]  # currency -> sum of the valid rows
    errors: list[RowError]  # every invalid row's errors, in row order
    blank_rows: int
    headers: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return bool(self.invalid_rows)

    @property
    def row_count(self) -> int:
        return len(self.valid_rows) + len(self.invalid_rows)


@dataclass
class ImportContext:
    """What validation needs besides the file: the account, its catalog, the defaults."""

    account: ProviderAccount
    default_product: Product | None = None
    default_amount: Decimal | None = None
    default_message: str = ""
    today: date = field(default_factory=timezone.localdate)
    products: list[Product] = field(default_factory=list)
    recent_recipient_emails: set[str] = field(default_factory=set)
    recent_days: int = field(default_factory=lambda: settings.GIFTDESK_RECENT_RECIPIENT_DAYS)

    @classmethod
    def for_account(
        cls,
        account: ProviderAccount,
        *,
        default_product: Product | None = None,
        default_amount: Decimal | None = None,
        default_message: str = "",
        today: date | None = None,
    ) -> ImportContext:
        return cls(
            account=account,
            default_product=default_product,
            default_amount=default_amount,
            default_message=default_message,
            today=today or timezone.localdate(),
            products=list(Product.objects.filter(account=account, is_active=True)),
            recent_recipient_emails=recent_recipient_emails(account),
        )


def recent_recipient_emails(account: ProviderAccount) -> set[str]:
    """Lower-cased emails that got (or are getting) a card from `account` lately."""
    from orders.models import Order, OrderStatus  # orders.models imports providers only

    since = timezone.now() - timedelta(days=settings.GIFTDESK_RECENT_RECIPIENT_DAYS)
    emails = (
        Order.objects.filter(batch__account=account, created_at__gte=since)
        .exclude(status__in=[OrderStatus.CANCELLED, OrderStatus.FAILED])
        .annotate(email_lower=Lower("recipient__email"))
        .values_list("email_lower", flat=True)
        .distinct()
    )
    return set(emails)


# --------------------------------------------------------------------------------------
# Reading: bytes -> Table
# --------------------------------------------------------------------------------------


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


def max_data_rows() -> int:
    return settings.GIFTDESK_IMPORT_MAX_ROWS


def refuse_too_many_rows() -> FileRefused:
    limit = max_data_rows()
    return FileRefused(
        f"The file has more than {limit:,} rows of recipients; the limit is {limit:,}. "
        "Split it into several files."
    )


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
    import openpyxl  # only needed for workbooks

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


# --- From records to a Table (shared by CSV and XLSX) ------------------------------------


@dataclass
class HeaderMap:
    columns: dict[str, str]  # field -> header text
    indexes: dict[str, int]  # field -> 0-based column index
    ignored: list[str]
    width: int  # columns up to the last named header


def build_table(records: Iterator[list[str]], *, file_format: str) -> Table:
    """Map the header (row 1) and collect the data rows with their spreadsheet numbers."""
    header = next(records, [])
    header_map = map_header(header)
    table = Table(
        columns=header_map.columns,
        ignored_columns=header_map.ignored,
        rows=[],
        format=file_format,
        headers=list(header[: header_map.width]),
    )
    limit = max_data_rows()
    for number, record in enumerate(records, start=2):
        if is_blank(record):
            # Skipped but counted: later rows keep the numbers the spreadsheet shows.
            table.blank_rows += 1
            continue
        table.data_row_count += 1
        if table.data_row_count > limit:
            raise refuse_too_many_rows()  # stop reading now: refuse fast, not late
        table.rows.append(source_row(number, record, header_map))
    return table


def source_row(number: int, record: list[str], header_map: HeaderMap) -> SourceRow:
    cells = {
        name: (record[index] if index < len(record) else "")
        for name, index in header_map.indexes.items()
    }
    filled = last_filled_index(record) + 1
    return SourceRow(
        number=number,
        cells=cells,
        extra_cells_error=extra_cells_error(filled, header_map.width),
        values=tuple(record[:filled]),
    )


def extra_cells_error(filled: int, width: int) -> str | None:
    """A filled cell right of the header: the row does not line up with the columns
    (typically an unquoted comma in a CSV). tablib raises on such rows; we report the
    row instead. Empty trailing cells, as some programs write them, are harmless.
    """
    if filled <= width:
        return None
    return f"This row has {filled} cells but the header has {width} columns."


def last_filled_index(record: list[str]) -> int:
    for index in range(len(record) - 1, -1, -1):
        if record[index].strip():
            return index
    return -1


def is_blank(record: list[str]) -> bool:
    return all(not cell.strip() for cell in record)


def normalize_header(text: str) -> str:
    """Lower-case, letters and digits only: "E-mail" = "email", "First Name" = "first_name"."""
    return "".join(char for char in text.lower() if char.isalnum())


ALIAS_TO_FIELD: dict[str, str] = {
    normalize_header(alias): name for name, aliases in FIELD_ALIASES.items() for alias in aliases
}


def map_header(header: list[str]) -> HeaderMap:
    positions: dict[str, list[int]] = defaultdict(list)
    ignored: list[str] = []
    for index, text in enumerate(header):
        name = ALIAS_TO_FIELD.get(normalize_header(text))
        if name:
            positions[name].append(index)
        elif text.strip():
            ignored.append(text.strip())
    refuse_duplicate_columns(positions)
    refuse_missing_columns(positions, header)
    indexes = {name: found[0] for name, found in positions.items()}
    return HeaderMap(
        columns={name: header[index].strip() for name, index in indexes.items()},
        indexes=indexes,
        ignored=ignored,
        width=last_filled_index(header) + 1,
    )


def refuse_duplicate_columns(positions: dict[str, list[int]]) -> None:
    for name, found in positions.items():
        if len(found) > 1:
            letters = [column_letter(index) for index in found]
            times = "twice" if len(found) == 2 else f"{len(found)} times"
            listed = ", ".join(letters[:-1]) + " and " + letters[-1]
            raise FileRefused(
                f"The column '{name}' appears {times} (columns {listed}). "
                "Remove or rename all but one of them."
            )


def refuse_missing_columns(positions: dict[str, list[int]], header: list[str]) -> None:
    missing = []
    if "name" not in positions and not {"first_name", "last_name"} <= positions.keys():
        missing.append("name (or first_name and last_name)")
    if "email" not in positions:
        missing.append("email")
    if missing:
        raise FileRefused(
            f"The header row (row 1) has no {' and no '.join(missing)} column. "
            f"Columns found: {found_columns(header)}."
        )


def found_columns(header: list[str], shown: int = 20) -> str:
    names = [f"'{text.strip()}'" for text in header if text.strip()]
    if not names:
        return "none (row 1 is empty)"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: the letters a spreadsheet shows above a column."""
    letters = ""
    number = index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


# --------------------------------------------------------------------------------------
# Validation: Table -> ImportPreview
# --------------------------------------------------------------------------------------


def validate(table: Table, context: ImportContext) -> ImportPreview:
    """Check every row; collect every problem of each row, and the warnings."""
    refuse_missing_amount(table, context)
    catalog = Catalog(context.products)
    limits = field_limits()
    occurrences = email_occurrences(table.rows)
    valid_rows: list[ValidRow] = []
    invalid_rows: list[InvalidRow] = []
    for source in table.rows:
        checked = check_row(source, table, context, catalog, limits)
        if isinstance(checked, ValidRow):
            checked.warnings = row_warnings(checked, occurrences, context)
            valid_rows.append(checked)
        else:
            invalid_rows.append(checked)
    return ImportPreview(
        valid_rows=valid_rows,
        invalid_rows=invalid_rows,
        ignored_columns=list(table.ignored_columns),
        warnings=[f"Row {row.row}: {warning}" for row in valid_rows for warning in row.warnings],
        totals=totals_by_currency(valid_rows),
        errors=[error for row in invalid_rows for error in row.errors],
        blank_rows=table.blank_rows,
        headers=list(table.headers),
    )


def refuse_missing_amount(table: Table, context: ImportContext) -> None:
    """Without an amount column every row needs the default amount: refuse the file."""
    if "amount" not in table.columns and context.default_amount is None:
        raise FileRefused(
            "The header row (row 1) has no amount column and no default amount was given. "
            f"Add an amount column or give a default amount. Columns found: "
            f"{found_columns(table.headers)}."
        )


def totals_by_currency(rows: list[ValidRow]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[row.currency] += row.amount
    return dict(totals)


class Catalog:
    """The account's active products, found by provider product id or by SKU."""

    def __init__(self, products: list[Product]) -> None:
        self.by_sku: dict[str, Product] = {}
        self.by_id: dict[str, list[Product]] = defaultdict(list)
        for product in products:
            if product.sku:
                self.by_sku[product.sku.casefold()] = product
            self.by_id[product.provider_product_id.casefold()].append(product)

    def candidates(self, value: str) -> list[Product]:
        key = value.casefold()
        if key in self.by_sku:
            return [self.by_sku[key]]
        return list(self.by_id.get(key, []))


class RowCheck:
    """One row being checked: its cells, its column names, the errors found so far."""

    def __init__(self, source: SourceRow, table: Table) -> None:
        self.source = source
        self.table = table
        self.errors: list[RowError] = []
        self.unusable: set[str] = set()  # fields whose text already failed a check

    def has(self, name: str) -> bool:
        return name in self.table.columns

    def raw(self, name: str) -> str:
        return self.source.cells.get(name, "")

    def text(self, name: str) -> str:
        """The cell, trimmed; "" when its text already failed (so it is reported once)."""
        return "" if name in self.unusable else self.raw(name).strip()

    def column(self, name: str) -> str:
        if name == "name" and not self.has("name") and self.has("first_name"):
            return f"{self.table.columns['first_name']} / {self.table.columns['last_name']}"
        return self.table.columns.get(name, name)

    def error(self, name: str, message: str) -> None:
        self.errors.append(RowError(self.source.number, self.column(name), message))


def check_row(
    source: SourceRow,
    table: Table,
    context: ImportContext,
    catalog: Catalog,
    limits: dict[str, int],
) -> ValidRow | InvalidRow:
    check = RowCheck(source, table)
    if source.extra_cells_error:
        check.errors.append(RowError(source.number, "", source.extra_cells_error))
    check_texts(check, limits)
    name = check_name(check)
    email = check_email(check)
    amount = check_amount(check, context)
    product = check_product(check, context, catalog, amount)
    check_currency(check, product)
    send_on = check_send_on(check, context.today)
    if check.errors or product is None or amount is None:
        return InvalidRow(source.number, dict(source.cells), check.errors, source.values)
    return ValidRow(
        row=source.number,
        name=name,
        email=email,
        phone=check.text("phone"),
        reference=check.text("reference"),
        message=check.text("message") or context.default_message,
        amount=amount,
        currency=product.currency,
        product=product,
        send_on=send_on,
    )


def field_limits() -> dict[str, int]:
    """field -> the longest text accepted: the setting, or less where the database says so."""
    longest = settings.GIFTDESK_IMPORT_MAX_FIELD_CHARS
    return {name: min(longest, FIELD_MAX_LENGTHS.get(name, longest)) for name in FIELD_ALIASES}


def check_texts(check: RowCheck, limits: dict[str, int]) -> None:
    """Control characters, line breaks and length, for every mapped cell."""
    for name, value in check.source.cells.items():
        problem = text_problem(name, value, limits[name])
        if problem:
            check.error(name, problem)
            check.unusable.add(name)


def text_problem(name: str, value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"This cell is {len(value):,} characters long; the limit is {limit:,}."
    # Control characters are invisible in the spreadsheet but break e-mails, provider
    # APIs and CSV exports; they come from copy-paste out of other systems.
    control = CONTROL_CHARACTER.search(value)
    if control:
        return f"This cell contains an invisible control character ({char_name(control.group())}); retype it."
    if name not in MULTILINE_FIELDS and LINE_BREAK.search(value.strip()):
        return "This cell contains a line break; only the message may span several lines."
    return None


def char_name(char: str) -> str:
    return f"U+{ord(char):04X}"


def check_name(check: RowCheck) -> str:
    if check.has("name"):
        name = check.text("name")
    else:
        name = " ".join(part for part in (check.text("first_name"), check.text("last_name")) if part)
    name_failed = check.unusable & {"name", "first_name", "last_name"}
    if not name and not name_failed:
        check.error("name", "The name is empty.")
    elif len(name) > FIELD_MAX_LENGTHS["name"]:
        check.error("name", f"The name is {len(name)} characters long; the limit is {FIELD_MAX_LENGTHS['name']}.")
    return name


def check_email(check: RowCheck) -> str:
    email = check.text("email")
    if not email:
        if "email" not in check.unusable:
            check.error("email", "The email address is empty.")
        return ""
    try:
        _email_validator(email)
    except ValidationError:
        check.error("email", f"{show(email)} is not a valid email address (e.g. jane@example.com).")
    return email


def check_amount(check: RowCheck, context: ImportContext) -> Decimal | None:
    text = check.text("amount")
    if "amount" in check.unusable:
        return None
    if not text:
        if context.default_amount is not None:
            return Decimal(context.default_amount).quantize(Decimal("0.01"))
        check.error("amount", "No amount: fill in the amount column or give a default amount.")
        return None
    amount, problem = parse_amount(text)
    if problem:
        check.error("amount", problem)
    return amount


def parse_amount(text: str) -> tuple[Decimal | None, str | None]:
    """ "50", "50.00" and "50,00" (comma as the decimal separator) -> Decimal("50.00")."""
    example = "write it like 50 or 50.00, without a currency sign or thousands separator"
    match = AMOUNT_PATTERN.match(text)
    if not match:
        return None, f"{show(text)} is not an amount; {example}."
    if match.group(2) is not None and len(match.group(2)) > 2:
        return None, f"{show(text)} has more than two decimals; {example}."
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None, f"{show(text)} is not an amount; {example}."
    return amount.quantize(Decimal("0.01")), None


def check_product(
    check: RowCheck, context: ImportContext, catalog: Catalog, amount: Decimal | None
) -> Product | None:
    value = check.text("product")
    if "product" in check.unusable:
        return None
    if value:
        candidates = catalog.candidates(value)
        if not candidates:
            check.error(
                "product",
                f"No active product {show(value)} in the catalog of {context.account.name}. "
                "Fix the product id or SKU, or sync the catalog.",
            )
            return None
    elif context.default_product is not None:
        candidates = [context.default_product]
    else:
        check.error("product", "No product: fill in the product column or choose a default product.")
        return None
    return pick_product(check, candidates, amount)


def pick_product(check: RowCheck, candidates: list[Product], amount: Decimal | None) -> Product:
    """Several SKUs may share a product id (fixed denominations): take the one that sells
    `amount`; when none does, say what the product takes."""
    if amount is None:
        return candidates[0]
    problems = []
    for product in candidates:
        problem = product.amount_error(amount)
        if problem is None:
            return product
        problems.append(problem)
    if len(candidates) == 1:
        check.error("amount", problems[0])
    else:
        takes = "; ".join(product.pricing_summary() for product in candidates)
        check.error("amount", f"{money(amount)} is not a value of {candidates[0].title}; it takes {takes}.")
    return candidates[0]


def check_currency(check: RowCheck, product: Product | None) -> None:
    currency = check.text("currency")
    if not currency:
        return
    if not CURRENCY_PATTERN.match(currency):
        check.error("currency", f"{show(currency)} is not a currency code; write three letters, e.g. DKK.")
    elif product is not None and currency.upper() != product.currency.upper():
        check.error(
            "currency",
            f"The currency is {currency.upper()} but {product.title} is sold in {product.currency}.",
        )


def check_send_on(check: RowCheck, today: date) -> date | None:
    text = check.text("send_on")
    if not text:
        return None
    example = f"write it as YYYY-MM-DD, e.g. {today.isoformat()}"
    try:
        if not ISO_DATE_PATTERN.match(text):
            raise ValueError
        send_on = date.fromisoformat(text)
    except ValueError:
        check.error("send_on", f"{show(text)} is not a date; {example}.")
        return None
    if send_on < today:
        check.error(
            "send_on",
            f"{send_on.isoformat()} is in the past; give today or a later date, or leave it empty to send now.",
        )
    return send_on


def show(value: str, limit: int = 60) -> str:
    """A user's value quoted for a message: shortened, invisible characters made visible."""
    shortened = value if len(value) <= limit else value[:limit] + "…"
    visible = "".join(char if char.isprintable() else char_name(char) for char in shortened)
    return f"'{visible}'"


# --- Warnings ---------------------------------------------------------------------------


def email_occurrences(rows: list[SourceRow]) -> dict[str, list[int]]:
    """Lower-cased email -> the rows it appears in (valid or not)."""
    found: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        email = row.cells.get("email", "").strip().lower()
        if email:
            found[email].append(row.number)
    return found


def row_warnings(row: ValidRow, occurrences: dict[str, list[int]], context: ImportContext) -> list[str]:
    email = row.email.lower()
    warnings = []
    others = [number for number in occurrences.get(email, []) if number != row.row]
    if others:
        warnings.append(f"{row.email} also appears in {plural_rows(others)}.")
    if email in context.recent_recipient_emails:
        warnings.append(f"{row.email} received a card in the last {context.recent_days} days.")
    return warnings


def plural_rows(numbers: list[int]) -> str:
    listed = ", ".join(str(number) for number in numbers)
    return f"row {listed}" if len(numbers) == 1 else f"rows {listed}"


# --------------------------------------------------------------------------------------
# Download of the invalid rows
# --------------------------------------------------------------------------------------


def invalid_rows_csv(preview: ImportPreview) -> str:
    """One line per problem: row, column, problem, then the row's cells as uploaded.

    The caller should encode it as UTF-8 with a BOM ("utf-8-sig") so Excel opens it right.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["row", "column", "problem", *preview.headers])
    for invalid in preview.invalid_rows:
        values = invalid.values or tuple(invalid.cells.values())
        for error in invalid.errors:
            writer.writerow([error.row, error.column, error.message, *values])
    return buffer.getvalue()
