"""Exporting orders for the books: the columns, each cell made safe to open in a spreadsheet,
and the file written row by row, so memory stays flat however many orders there are.

Used by the order list's export (orders/admin_export.py: `csv_chunks` streamed to the
browser, `xlsx_write` to a temporary file), by `manage.py export_orders` and the scheduled
export (`orders_export`, orders/scheduled_exports.py). All write the same columns, read in
one query (`for_export`), and escape every text cell the same way.

Formula injection (OWASP "CSV injection"): a spreadsheet runs a cell that begins with
`=`, `+`, `-` or `@` (tab and carriage return can hide such a start). Names, campaigns
and batch names come from uploaded spreadsheets and error texts from providers, so every
text cell that begins with one of them gets a leading `'`: the spreadsheet shows it as
text and runs nothing.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import xlsxwriter
from django.db.models import Case, Expression, F, QuerySet, When
from django.utils import timezone

from orders.models import Order, OrderStatus
from providers.models import ProviderAccount

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

TEXT, MONEY, TIME = "text", "money", "time"
CSV, XLSX = "csv", "xlsx"
FORMATS = (CSV, XLSX)
XLSX_MAX_ORDERS = 1_048_575  # Excel's rows, less the header


def formula_safe(text: str) -> str:
    """The text as a spreadsheet will show it without running it."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


@dataclass(frozen=True)
class Column:
    name: str  # the header
    # An attribute of the order, or what the database computes for it (a lookup across its
    # relations, an expression): read in the same query, never a query per row.
    source: str | Expression
    kind: str = TEXT

    @cached_property
    def attribute(self) -> str:
        return self.source if isinstance(self.source, str) and "__" not in self.source else f"export_{self.name}"

    def value(self, order: Order):
        return getattr(order, self.attribute)


# Finance's columns (issue 11). Times are the server's TIME_ZONE; money is exact.
COLUMNS = [
    Column("reference", "reference"),  # ours, sent to the provider with the order
    Column("created_at", "created_at", TIME),
    Column("sent_at", "submitted_at", TIME),
    Column("delivered_at", Case(When(status=OrderStatus.DELIVERED, then=F("completed_at"))), TIME),
    Column("batch", "batch__name"),
    Column("campaign", "batch__campaign"),
    Column("uploaded_by", "batch__created_by__username"),
    Column("approved_by", "batch__approved_by__username"),
    Column("recipient_name", "recipient__name"),
    Column("recipient_email", "recipient__email"),
    Column("recipient_reference", "recipient__reference"),  # the spreadsheet's own
    Column("provider", "batch__account__kind"),
    Column("account", "batch__account__name"),
    Column("product", "product__title"),
    Column("amount", "amount", MONEY),  # face value
    Column("currency", "currency"),
    Column("cost", "cost", MONEY),  # as charged by the provider
    Column("cost_currency", "cost_currency"),
    Column("provider_order_id", "provider_order_id"),
    Column("status", "status"),
    Column("last_error", "last_error"),
    Column("card_code", "card_code_masked"),  # never the code itself
]

# One query, one model instance per row (not one per related row), and no secret or large
# field loaded: only the order's own columns above, a property by the field it reads.
PROPERTY_FIELDS = {"card_code_masked": "card_code_last4"}
ORDER_FIELDS = [PROPERTY_FIELDS.get(column.source, column.source) for column in COLUMNS
                if column.attribute == column.source]
ANNOTATIONS = {column.attribute: F(column.source) if isinstance(column.source, str) else column.source
               for column in COLUMNS if column.attribute != column.source}


CHUNK_SIZE = 2000  # orders read per round trip of `.iterator()`: what memory holds at once


def for_export(queryset: QuerySet) -> QuerySet:
    return queryset.select_related(None).only(*ORDER_FIELDS).annotate(**ANNOTATIONS)


def text_cell(column: Column, value, zone: tzinfo) -> str:
    """A cell of a text file (CSV): exact money, ISO times with their offset, safe text."""
    if value is None:
        return ""
    if column.kind == MONEY:
        return str(value)
    if column.kind == TIME:
        return value.astimezone(zone).isoformat(timespec="seconds")
    return formula_safe(str(value))


def native_cell(column: Column, value, zone: tzinfo):
    """A cell of a workbook: numbers, naive local times (Excel has no time zones), safe text."""
    if value is None:
        return None
    if column.kind == MONEY:
        return value
    if column.kind == TIME:
        return value.astimezone(zone).replace(tzinfo=None)
    return formula_safe(str(value))


# --- The scriptable export ---------------------------------------------------------------------

class ExportRefused(Exception):
    """An option or the output is wrong; the message says what to do."""


@dataclass
class ExportCriteria:
    """Which orders: created on or after `created_from`, on or before `created_to` (local
    dates, both inclusive), of one account, in one status. Empty means no restriction."""

    created_from: date | None = None
    created_to: date | None = None
    account: ProviderAccount | None = None
    status: str | None = None

    def queryset(self) -> QuerySet:
        orders = Order.objects.all()
        if self.created_from:
            orders = orders.filter(created_at__gte=_start_of(self.created_from))
        if self.created_to:
            orders = orders.filter(created_at__lt=_start_of(self.created_to + timedelta(days=1)))
        if self.account:
            orders = orders.filter(batch__account=self.account)
        if self.status:
            orders = orders.filter(status=self.status)
        return orders


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExportRefused(f"{option} {text!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-12-31.") from None


def find_account(name: str) -> ProviderAccount:
    account = ProviderAccount.objects.filter(name=name).first()
    if account is None:
        names = ", ".join(ProviderAccount.objects.values_list("name", flat=True)) or "none yet"
        raise ExportRefused(f"No account named {name!r}. Accounts: {names}.")
    return account


def check_format(file_format: str) -> str:
    if file_format not in FORMATS:
        raise ExportRefused(f"Unknown format {file_format!r}: use {' or '.join(FORMATS)}.")
    return file_format


def check_status(status: str) -> str:
    if status not in OrderStatus.values:
        raise ExportRefused(f"No order status {status!r}. Statuses: {', '.join(OrderStatus.values)}.")
    return status


def orders_export(*, criteria: ExportCriteria, file_format: str, path: Path, chunk_size: int = CHUNK_SIZE) -> int:
    """Write the matching orders to `path` as CSV or XLSX; return how many were written.

    The file is written next to `path` under a temporary name and renamed when complete,
    so a failed export never leaves half a file (and never replaces a good one). It is
    readable by its owner only: it holds recipients' personal data.
    """
    check_format(file_format)
    path = Path(path)
    if path.is_dir():
        raise ExportRefused(f"Cannot write {path}: it is a directory. Give a file name.")
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise ExportRefused(f"Cannot write {path}: {exc.strerror}. Choose a directory you can write to.") from exc
    os.close(handle)
    orders = for_export(criteria.queryset()).order_by("created_at", "id").iterator(chunk_size=chunk_size)
    try:
        count = WRITERS[file_format](orders, Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


# --- The writers: the admin's and the scriptable export's -------------------------------------

HEADER = [column.name for column in COLUMNS]
CSV_BOM = "\ufeff"  # Excel then reads the file as UTF-8 (names such as "Søren" stay intact)
CSV_ROWS_PER_CHUNK = 500  # lines per piece of a streamed CSV: few writes, little memory


def csv_chunks(orders: Iterable[Order], rows_per_chunk: int = CSV_ROWS_PER_CHUNK) -> Iterator[str]:
    """The CSV as text, `rows_per_chunk` lines at a time (the BOM and the header first): what
    the admin streams to the browser and `csv_write` writes to a file. Only one chunk's
    lines are ever held."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # "\r\n" line ends, as RFC 4180 and Excel have them
    buffer.write(CSV_BOM)
    writer.writerow(HEADER)
    zone = timezone.get_current_timezone()
    rows = iter(orders)
    try:
        for count, order in enumerate(rows, start=1):
            writer.writerow([text_cell(column, column.value(order), zone) for column in COLUMNS])
            if count % rows_per_chunk == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        # A download the browser left closes this generator (the server closes the response):
        # close the database cursor now, not whenever the iterator is collected. On PostgreSQL
        # it is a WITH HOLD cursor that would otherwise outlive the request on a kept connection.
        if hasattr(rows, "close"):
            rows.close()


class _Counted:
    """Iterates `items` once, counting them: how many a writer wrote."""

    def __init__(self, items: Iterable):
        self.items, self.count = items, 0

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


def csv_write(orders: Iterable[Order], path: Path) -> int:
    counted = _Counted(orders)
    with Path(path).open("w", newline="", encoding="utf-8") as stream:
        for chunk in csv_chunks(counted):
            stream.write(chunk)
    return counted.count


def xlsx_too_many() -> str:
    return f"More than {XLSX_MAX_ORDERS:,} orders do not fit in one XLSX sheet: export fewer orders, or CSV."


def xlsx_write(orders: Iterable[Order], target: Path | BinaryIO) -> int:
    """The orders as one sheet, to a file name or an open binary file (the admin's temporary
    file); raises ExportRefused past Excel's last row."""
    # constant_memory writes each row to disk as it goes; text goes in with write_string, so
    # no cell is ever a formula, a number or a link by guesswork.
    workbook = xlsxwriter.Workbook(str(target) if isinstance(target, (str, Path)) else target, {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
        "strings_to_urls": False,
    })
    bold = workbook.add_format({"bold": True})
    formats = {MONEY: workbook.add_format({"num_format": "0.00"}),
               TIME: workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})}
    sheet = workbook.add_worksheet("Orders")
    sheet.freeze_panes(1, 0)
    for index, column in enumerate(COLUMNS):
        sheet.set_column(index, index, 20 if column.kind == TIME else 16)
        sheet.write_string(0, index, column.name, bold)
    count, zone = 0, timezone.get_current_timezone()
    try:
        for count, order in enumerate(orders, start=1):
            if count > XLSX_MAX_ORDERS:
                raise ExportRefused(xlsx_too_many())
            for index, column in enumerate(COLUMNS):
                value = native_cell(column, column.value(order), zone)
                if value is None or value == "":
                    continue  # a blank cell costs nothing in the file
                if column.kind == MONEY:
                    sheet.write_number(count, index, value, formats[MONEY])
                elif column.kind == TIME:
                    sheet.write_datetime(count, index, value, formats[TIME])
                else:
                    sheet.write_string(count, index, value)
    finally:
        workbook.close()
    return count


WRITERS: dict[str, Callable[[Iterable[Order], Path], int]] = {CSV: csv_write, XLSX: xlsx_write}
