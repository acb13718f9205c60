"""From a sheet's records to a ``Table``: the header mapped to GiftDesk's fields, the rows
under it numbered as a spreadsheet program shows them.

Columns are matched case-, space- and punctuation-insensitively (``E-mail`` = ``email``):
name (``name``, ``recipient_name``, ``full_name``, or ``first_name`` + ``last_name``),
email (``email``, ``recipient_email``, ``email_address``), amount (``amount``, ``value``,
``giftcard_value``), and optionally ``currency``, ``product``, ``phone``, ``message``,
``reference``, ``send_on``. Unknown columns are ignored and listed; a column given twice,
or no name or email column, refuses the file (naming every missing column, amount too).

The header is the first row holding a name and an email column among the first
``HEADER_SEARCH_ROWS`` non-blank rows: exports from HR systems put a title line or two
above it. Rows keep the numbers a spreadsheet program shows (a title on row 1, the header
on row 2: the first data row is row 3); blank rows are skipped but keep their numbers; the
row limit counts data rows only and stops reading as soon as it is passed. A second bound,
on the row number itself (blank rows included), stops reading a sheet of endless empty
rows: the data-row limit alone would read every one of them. A header without a single
data row under it refuses the file, naming the header's row (``no_data_rows``).

No Django here: the limits come as arguments (``ReadLimits``), so the bounded reader's
child process can build the table without setting Django up.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from orders.spreadsheet.errors import FileRefused, HeaderNotFound
from orders.spreadsheet.limits import ReadLimits

# The contract's columns, in the order the README lists them: the template's header row and
# the import page's field list. first_name + last_name may stand in for name.
COLUMNS = ["name", "email", "amount", "currency", "product", "phone", "message", "reference", "send_on"]

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


MAX_CELLS_KEPT = 16_384  # Excel's last column, XFD
# The header is looked for in this many non-blank rows from the top: enough for an HR
# export's title lines, few enough that a file of endless title-like rows is refused at once.
HEADER_SEARCH_ROWS = 10
# A cell longer than this is no column name (the longest spelling is 14 letters); it is
# not normalized, so a title row of one 20 MB cell costs nothing to look at.
HEADER_CELL_MAX_CHARS = 100


@dataclass
class SourceRow:
    """One non-blank data row as read, before validation."""

    number: int  # the row number a spreadsheet program shows
    cells: dict[str, str]  # field -> cell text, for the mapped columns
    extra_cells_error: str | None
    values: tuple[str, ...]  # every cell of the row, in file order


@dataclass
class Table:
    """An uploaded file read into rows, with its header mapped to GiftDesk's fields."""

    columns: dict[str, str]  # field -> header text as the user wrote it
    ignored_columns: list[str]
    rows: list[SourceRow]
    format: str  # "csv" or "xlsx"
    headers: list[str]  # the whole header row
    encoding: str = ""  # CSV: as detected
    delimiter: str = ""  # CSV: as detected
    data_row_count: int = 0
    blank_rows: int = 0
    sheet: str = ""  # XLSX: the sheet that was read
    header_row: int = 1  # the row number of the header; the rows above it were titles


@dataclass
class HeaderMap:
    columns: dict[str, str]  # field -> header text
    indexes: dict[str, int]  # field -> 0-based column index
    ignored: list[str]
    width: int  # columns up to the last named header


def build_table(records: Iterator[list[str]], *, file_format: str, limits: ReadLimits) -> Table:
    """Find the header, map it, and collect the data rows under it with their numbers."""
    header_row, header = find_header(records, limits)
    return table_under_header(header_row, header, records, file_format=file_format, limits=limits)


def find_header(records: Iterator[list[str]], limits: ReadLimits) -> tuple[int, list[str]]:
    """The first row holding the required columns, among the first non-blank rows.

    Consumes `records` up to and including the header, so the caller reads on from the
    row under it. Raises ``HeaderNotFound`` naming every column missing from the row that
    comes closest (the one with the most known columns; the first non-blank one if none).
    """
    closest: tuple[dict[str, list[int]], int, list[str]] = ({}, 1, [])  # (positions, row number, record)
    searched = 0
    for number, record in enumerate(records, start=1):
        if number > limits.max_sheet_rows:
            raise refuse_too_many_sheet_rows(limits.max_sheet_rows)
        if is_blank(record):
            continue
        # A header is no wider than a spreadsheet: a title "row" of a million cells is
        # looked at up to Excel's last column, not to its end.
        positions = known_positions(record[:MAX_CELLS_KEPT])
        if holds_required_columns(positions):
            return number, record
        if not searched or len(positions) > len(closest[0]):
            closest = (positions, number, record)
        searched += 1
        if searched == HEADER_SEARCH_ROWS:
            break
    positions, number, record = closest
    raise missing_columns_refusal(positions, record, number, searched_rows=searched)


def table_under_header(
    header_row: int,
    header: list[str],
    records: Iterator[list[str]],
    *,
    file_format: str,
    limits: ReadLimits,
) -> Table:
    """Map the header found on `header_row`; `records` are the rows under it."""
    header_map = map_header(header, header_row)
    table = Table(
        columns=header_map.columns,
        ignored_columns=header_map.ignored,
        rows=[],
        format=file_format,
        headers=list(header[: header_map.width]),
        header_row=header_row,
    )
    limit = limits.max_rows
    for number, record in enumerate(records, start=header_row + 1):
        if number > limits.max_sheet_rows:
            # Checked before the row is looked at: the rest of the sheet is never read.
            raise refuse_too_many_sheet_rows(limits.max_sheet_rows)
        if is_blank(record):
            # Skipped but counted: later rows keep the numbers the spreadsheet shows.
            table.blank_rows += 1
            continue
        table.data_row_count += 1
        if table.data_row_count > limit:
            raise refuse_too_many_rows(limit)  # stop reading now: refuse fast, not late
        table.rows.append(source_row(number, record, header_map))
    if not table.data_row_count:
        # "No valid rows" would read as a check that failed; there was nothing to check.
        raise FileRefused(no_data_rows(header_row))
    return table


def no_data_rows(header_row: int) -> str:
    """The refusal of a header with nothing under it: where the header is, and what to add."""
    return (f"The header is on row {header_row} but there are no recipient rows under it. "
            "Add one row per recipient below the header and upload it again.")


def header_row_note(header_row: int) -> str:
    """What the preview and send_csv say when the header is not row 1 (the rows above it may
    be titles or blank: they were skipped either way)."""
    if header_row <= 1:
        return ""
    if header_row == 2:
        return "Row 2 was taken as the header; the row above it was skipped."
    return f"Row {header_row} was taken as the header; the {header_row - 1} rows above it were skipped."


def refuse_too_many_rows(limit: int) -> FileRefused:
    return FileRefused(
        f"The file has more than {limit:,} rows of recipients; the limit is {limit:,}. "
        "Split it into several files."
    )


def refuse_too_many_sheet_rows(limit: int) -> FileRefused:
    return FileRefused(
        f"The file goes on past row {limit:,}, the last row GiftDesk reads (blank rows "
        "included). Remove the empty rows below your list, or split it into several files, "
        "and upload it again."
    )


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
        # Kept for the download of invalid rows, up to a spreadsheet's width: a CSV row of
        # ten million cells would otherwise be copied whole (hundreds of MB).
        values=tuple(record[: min(filled, MAX_CELLS_KEPT)]),
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


NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")  # \w is str.isalnum() plus "_"


def normalize_header(text: str) -> str:
    """Lower-case, letters and digits only: "E-mail" = "email", "First Name" = "first_name"."""
    return NOT_LETTER_OR_DIGIT.sub("", text.lower())


ALIAS_TO_FIELD: dict[str, str] = {
    normalize_header(alias): name for name, aliases in FIELD_ALIASES.items() for alias in aliases
}


def column_positions(header: list[str]) -> tuple[dict[str, list[int]], list[str]]:
    """field -> the 0-based indexes of the cells naming it; and the unknown headers."""
    positions = known_positions(header)
    known = {index for found in positions.values() for index in found}
    ignored = [shortened(text) for index, text in enumerate(header) if index not in known and text.strip()]
    return positions, ignored


def known_positions(header: list[str]) -> dict[str, list[int]]:
    """field -> the 0-based indexes of the cells naming it."""
    positions: dict[str, list[int]] = defaultdict(list)
    for index, text in enumerate(header):
        name = field_named(text)
        if name:
            positions[name].append(index)
    return positions


def field_named(text: str) -> str | None:
    if len(text) > HEADER_CELL_MAX_CHARS:
        return None
    return ALIAS_TO_FIELD.get(normalize_header(text))


def has_name(positions: dict[str, list[int]]) -> bool:
    return "name" in positions or {"first_name", "last_name"} <= positions.keys()


def holds_required_columns(positions: dict[str, list[int]]) -> bool:
    # Amount is not required here: a default amount may stand in for it (rows.validate
    # refuses its absence when none is given).
    return has_name(positions) and "email" in positions


def map_header(header: list[str], row: int = 1) -> HeaderMap:
    positions, ignored = column_positions(header)
    refuse_duplicate_columns(positions)
    if not holds_required_columns(positions):
        raise missing_columns_refusal(positions, header, row)
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


def missing_columns_refusal(
    positions: dict[str, list[int]], header: list[str], row: int, *, searched_rows: int = 1
) -> HeaderNotFound:
    """Every required column the row lacks, in one message: fixing one and being refused
    for the next wastes a round trip. Amount is named with its condition, since whether a
    default amount is given is not known here."""
    missing = []
    if not has_name(positions):
        missing.append("name (or first_name and last_name)")
    if "email" not in positions:
        missing.append("email")
    text = f"The header row (row {row}) has no {' and no '.join(missing)} column"
    if "amount" not in positions:
        text += ", and no amount column (needed unless you give a default amount)"
    searched = (
        f" GiftDesk looks for the header (a row with a name and an email column) in the first "
        f"{HEADER_SEARCH_ROWS} non-blank rows."
        if searched_rows > 1
        else ""
    )
    return HeaderNotFound(f"{text}. Columns found: {found_columns(header, row=row)}.{searched}", len(positions))


def found_columns(header: list[str], shown: int = 20, row: int = 1) -> str:
    # Counted up to a spreadsheet's width: a CSV row may hold millions of cells.
    filled = [text for text in header[:MAX_CELLS_KEPT] if text.strip()]
    if not filled:
        return f"none (row {row} is empty)"
    names = [f"'{shortened(text)}'" for text in filled[:shown]]
    if len(header) > MAX_CELLS_KEPT:
        more = f" and more (the row has {len(header):,} cells)"
    else:
        more = f" and {len(filled) - shown:,} more" if len(filled) > shown else ""
    return ", ".join(names) + more


def shortened(text: str, limit: int = 60) -> str:
    """A header as messages show it: a cell can hold megabytes, a message should not."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: the letters a spreadsheet shows above a column."""
    letters = ""
    number = index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters
