"""From a sheet's records to a ``Table``: the header mapped to GiftDesk's fields, the rows
under it numbered as a spreadsheet program shows them.

Columns are matched case-, space- and punctuation-insensitively (``E-mail`` = ``email``):
name (``name``, ``recipient_name``, ``full_name``, or ``first_name`` + ``last_name``),
email (``email``, ``recipient_email``, ``email_address``), amount (``amount``, ``value``,
``giftcard_value``), and optionally ``currency``, ``product``, ``phone``, ``message``,
``reference``, ``send_on``. Unknown columns are ignored and listed; a column given twice,
or no name or email column, refuses the file.

Rows are numbered from the header (row 1); blank rows are skipped but keep their
numbers; the row limit counts data rows only and stops reading as soon as it is passed.
A second bound, on the row number itself (blank rows included), stops reading a sheet of
endless empty rows: the data-row limit alone would read every one of them.

No Django here: the limits come as arguments (``ReadLimits``), so the bounded reader's
child process can build the table without setting Django up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from orders.spreadsheet.errors import FileRefused
from orders.spreadsheet.limits import ReadLimits

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


@dataclass
class HeaderMap:
    columns: dict[str, str]  # field -> header text
    indexes: dict[str, int]  # field -> 0-based column index
    ignored: list[str]
    width: int  # columns up to the last named header


def build_table(records: Iterator[list[str]], *, file_format: str, limits: ReadLimits) -> Table:
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
    limit = limits.max_rows
    for number, record in enumerate(records, start=2):
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
    return table


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
            ignored.append(shortened(text))
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
    names = [f"'{shortened(text)}'" for text in header if text.strip()]
    if not names:
        return "none (row 1 is empty)"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


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
