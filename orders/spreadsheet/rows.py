"""Checking every row of a ``Table`` against the account's catalog: ``validate``.

Every problem of a row is reported, under the header text the user wrote: required
fields (name, email, amount unless a default is given), email syntax, the amount and
the product's pricing rules, the product (provider product id or SKU), the currency,
``send_on`` (ISO date, today or later), control characters, line breaks outside the
message, and field lengths. Amounts and dates take the digits 0-9 only: a regex digit
class and ``Decimal`` also take Arabic-Indic or full-width digits ("٥٠" would be 50);
amounts are read by ``amounts.parse_amount``, as the defaults given beside the file are.
Duplicate recipients in the file and recent recipients (``context.recent_recipient_emails``)
are warnings, which do not stop a row.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from giftdesk.text import plural
from orders.spreadsheet.amounts import ONLY_ASCII_DIGITS, NotAnAmount, char_name, has_other_digits, parse_amount, show
from orders.spreadsheet.context import ImportContext, ImportPreview, InvalidRow, RowError, ValidRow
from orders.spreadsheet.errors import FileRefused
from orders.spreadsheet.headers import FIELD_ALIASES, SourceRow, Table, found_columns
from orders.spreadsheet.read import CONTROL_CHARACTER
from providers.models import Product, money

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

# Fields where a line break is legitimate content.
MULTILINE_FIELDS = frozenset({"message"})

CURRENCY_PATTERN = re.compile(r"^[A-Za-z]{3}$")
ISO_DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
LINE_BREAK = re.compile("[\n\r\u2028\u2029]")

_email_validator = EmailValidator()


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
            checked.recent = checked.email.lower() in context.recent_recipient_emails
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
        headers=list(table.headers),
        header_row=table.header_row,
    )


def refuse_missing_amount(table: Table, context: ImportContext) -> None:
    """Without an amount column every row needs the default amount: refuse the file."""
    if "amount" not in table.columns and context.default_amount is None:
        raise FileRefused(
            f"The header row (row {table.header_row}) has no amount column and no default amount "
            "was given. Add an amount column or give a default amount. Columns found: "
            f"{found_columns(table.headers, row=table.header_row)}."
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
        return InvalidRow(source.number, check.errors, source.values)
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


# U+202A-U+202E (embeddings, overrides) and U+2066-U+2069 (isolates): Unicode category Cf.
DIRECTION_OVERRIDE = re.compile("[\u202a-\u202e\u2066-\u2069]")


def text_problem(name: str, value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"This cell is {len(value):,} characters long; the limit is {limit:,}."
    # Control characters are invisible in the spreadsheet but break e-mails, provider
    # APIs and CSV exports; they come from copy-paste out of other systems.
    control = CONTROL_CHARACTER.search(value)
    if control:
        return f"This cell contains an invisible control character ({char_name(control.group())}); retype it."
    # Explicit text-direction overrides make "Ana \u202egpj.exe" read as "Ana exe.jpg":
    # names and emails that show something other than what they hold. Right-to-left text
    # itself (Arabic, Hebrew) needs none of them.
    direction = DIRECTION_OVERRIDE.search(value)
    if direction:
        return (f"This cell contains an invisible text-direction character ({char_name(direction.group())}) "
                "that makes it read differently from what it holds; retype it.")
    if name not in MULTILINE_FIELDS and LINE_BREAK.search(value.strip()):
        return "This cell contains a line break; only the message may span several lines."
    return None


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
    try:
        return parse_amount(text)
    except NotAnAmount as refusal:
        check.error("amount", str(refusal))
        return None


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
    if has_other_digits(text):
        check.error("send_on", f"{show(text)} is not a date: {ONLY_ASCII_DIGITS}; {example}.")
        return None
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


# --- Warnings ---------------------------------------------------------------------------


@dataclass
class Occurrences:
    """Where one email appears in the file: its first two rows and how many rows in all."""

    first: int
    second: int = 0
    count: int = 1


def email_occurrences(rows: list[SourceRow]) -> dict[str, Occurrences]:
    """Lower-cased email -> where it appears (valid rows or not), in one pass: a file of
    50,000 rows with one email costs what one of 50,000 emails does."""
    found: dict[str, Occurrences] = {}
    for row in rows:
        email = row.cells.get("email", "").strip().lower()
        if not email:
            continue
        seen = found.get(email)
        if seen is None:
            found[email] = Occurrences(first=row.number)
        else:
            seen.count += 1
            if seen.count == 2:
                seen.second = row.number
    return found


def row_warnings(row: ValidRow, occurrences: dict[str, Occurrences], context: ImportContext) -> list[str]:
    warnings = []
    duplicate = duplicate_warning(row, occurrences.get(row.email.lower()))
    if duplicate:
        warnings.append(duplicate)
    if row.recent:
        warnings.append(f"{row.email} got or is due to get a card in the last {plural(context.recent_days, 'day')}.")
    return warnings


def duplicate_warning(row: ValidRow, seen: Occurrences | None) -> str | None:
    """A later row names the first one; the first names the second, and counts the rest.
    Never a list of rows: with every row sharing one email, lists made the warnings
    quadratic (10,000 rows: 1.2 GB)."""
    if seen is None or seen.count == 1:
        return None
    if row.row != seen.first:
        return f"{row.email} also appears in row {seen.first}."
    if seen.count == 2:
        return f"{row.email} also appears in row {seen.second}."
    return f"{row.email} also appears in {plural(seen.count - 1, 'other row')}, starting at row {seen.second}."
