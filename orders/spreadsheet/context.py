"""What validation needs besides the file, and what it gives back.

``ImportContext.for_account`` gathers what the checks need from the database (the
account's active products, its recent recipients): the contract's only read.
``ImportPreview`` is the result: valid rows ready to become orders, invalid rows with
*every* problem of the row (``RowError``), and warnings that do not stop a row.
``invalid_rows_csv`` renders the invalid rows as a CSV the user can download.

Money is ``Decimal`` throughout, never float.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from orders.recent_recipients import recent_orders
from orders.spreadsheet.headers import header_row_note
from providers.models import Product, ProviderAccount


@dataclass(frozen=True)
class RowError:
    row: int
    column: str  # the header text the user wrote (or the field name)
    message: str


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
    # The recipient got or is due to get a card from the account lately (`orders.recent_recipients`):
    # set by validation, worded among the warnings, and what the preview's "Leave out" choice leaves out.
    recent: bool = False


@dataclass
class InvalidRow:
    row: int
    errors: list[RowError]
    values: tuple[str, ...]  # every cell of the row as uploaded, in file order


@dataclass
class ImportPreview:
    valid_rows: list[ValidRow]
    invalid_rows: list[InvalidRow]
    ignored_columns: list[str]
    warnings: list[str]  # every row's warnings, each prefixed with "Row N: "
    totals: dict[str, Decimal]  # currency -> sum of the valid rows
    errors: list[RowError]  # every invalid row's errors, in row order
    headers: list[str]  # the header row as uploaded, for the download
    header_row: int = 1  # where the header was found; the rows above it were titles

    @property
    def header_row_note(self) -> str:
        """"Row 3 was taken as the header; ..." when it is not row 1, else ""."""
        return header_row_note(self.header_row)


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
    """Lower-cased emails that got or are due to get a card from `account` lately (not a
    cancelled or failed order: `orders.recent_recipients`)."""
    orders = recent_orders(days=settings.GIFTDESK_RECENT_RECIPIENT_DAYS).filter(batch__account=account)
    return set(orders.order_by().values_list("email_key", flat=True).distinct())


def invalid_rows_csv(preview: ImportPreview) -> str:
    """One line per problem: row, column, problem, then the row's cells as uploaded.

    The caller should encode it as UTF-8 with a BOM ("utf-8-sig") so Excel opens it right.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["row", "column", "problem", *preview.headers])
    for invalid in preview.invalid_rows:
        for error in invalid.errors:
            writer.writerow([error.row, error.column, error.message, *invalid.values])
    return buffer.getvalue()
