"""A spreadsheet to start from: the contract's columns, one example row that the import
accepts as it is, and the allowed values of every column, for one account (and product).

CSV: two title rows hold the notes, above the header (the reader skips title rows above
the header). XLSX: a note (comment) on each header cell, and a second sheet "Allowed
values" listing the account's products with their price rules and each column's format.
The example row is built from the same catalog and rules the import checks
(`orders.spreadsheet`), so uploading the template unchanged gives one valid row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal

import xlsxwriter
from django.utils.text import slugify

from orders.product_choices import account_products
from orders.spreadsheet.headers import COLUMNS
from orders.spreadsheet.rows import Catalog
from providers.models import PricingKind, Product, ProviderAccount, money

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
RECIPIENTS_SHEET = "Recipients"
ALLOWED_VALUES_SHEET = "Allowed values"
PRODUCTS_IN_CSV_NOTE = 30  # a catalog of hundreds would make the title row unreadable
EXAMPLE_ROWS_WITH_LISTS = 1000  # XLSX: rows below the header that offer the product list


@dataclass(frozen=True)
class ColumnNote:
    column: str
    required: str  # "required", "optional", ...
    text: str


@dataclass(frozen=True)
class ProductLine:
    key: str  # what the product column takes for it: its SKU, else its provider product id
    product: Product
    rule: str


@dataclass(frozen=True)
class TemplateFile:
    filename: str
    content_type: str
    content: bytes


@dataclass
class Template:
    account: ProviderAccount
    products: list[ProductLine]
    example: dict[str, str | Decimal] | None  # None when the account has no active product
    notes: list[ColumnNote]


def spreadsheet_template(*, account: ProviderAccount, product: Product | None = None,
                         file_format: str) -> TemplateFile:
    """The template file for `account` (and `product`) as CSV or XLSX."""
    if file_format not in FORMATS:
        raise ValueError(f"Unknown template format {file_format!r}; use csv or xlsx.")
    template = template_contents(account, product)
    content = template_csv(template) if file_format == "csv" else template_xlsx(template)
    return TemplateFile(filename=template_filename(account, product, file_format),
                        content_type=FORMATS[file_format], content=content)


def template_filename(account: ProviderAccount, product: Product | None, file_format: str) -> str:
    name = slugify(account.name) or f"account-{account.pk}"
    if product is not None:
        name += "-" + (slugify(product.sku or product.provider_product_id) or f"product-{product.pk}")
    return f"giftdesk-template-{name}.{file_format}"


# --- What the template says ---------------------------------------------------------------


def template_contents(account: ProviderAccount, product: Product | None = None) -> Template:
    products = list(account_products(account))
    catalog = Catalog(products)
    lines = [ProductLine(key=product_key(item, catalog), product=item, rule=item.pricing_summary()) for item in products]
    shown = next((line for line in lines if product is not None and line.product.pk == product.pk),
                 lines[0] if lines else None)
    return Template(
        account=account,
        products=lines,
        example=example_row(shown) if shown else None,
        notes=column_notes(account, lines, shown),
    )


def product_key(product: Product, catalog: Catalog) -> str:
    """What to write in the product column so the import finds this very product: the SKU
    when it names only this product, else the provider product id."""
    if product.sku and catalog.candidates(product.sku) == [product]:
        return product.sku
    return product.provider_product_id


def example_amount(product: Product) -> Decimal:
    """An amount the product sells: its smallest denomination, or the bottom of its range."""
    if product.pricing == PricingKind.FIXED:
        return min(product.denomination_amounts, default=Decimal(0))  # none: nothing sells it
    if product.min_amount is not None:
        return product.min_amount
    return product.step or min(product.max_amount or Decimal(50), Decimal(50))


def example_row(line: ProductLine) -> dict[str, str | Decimal]:
    # Every field filled, as a real row would be; send_on left empty so the example never
    # turns into a date in the past.
    return {
        "name": "Jane Doe",
        "email": "jane.doe@example.com",
        "amount": example_amount(line.product),
        "currency": line.product.currency,
        "product": line.key,
        "phone": "+4512345678",
        "message": "Thank you for a great year!",
        "reference": "EMP-1001",
        "send_on": "",
    }


def column_notes(account: ProviderAccount, lines: list[ProductLine], shown: ProductLine | None) -> list[ColumnNote]:
    currencies = sorted({line.product.currency for line in lines})
    if shown is None:
        amounts = f"{account} has no active products yet: sync its catalog, then download the template again."
        products = amounts
    else:
        amounts = f"{shown.product.title}: {shown.rule}."
        if len(lines) > 1:
            amounts += " Other products: see their price rules in the product list."
        products = (f"The SKU or product id of one of {account}'s products (see the product list), e.g. "
                    f"{shown.key} for {shown.product.title}. Empty: the default product chosen on the import form.")
    return [
        ColumnNote("name", "required", "The recipient's full name, as the card shows it. Or two columns "
                                       "first_name and last_name instead."),
        ColumnNote("email", "required", "The recipient's email address: the card is sent there."),
        ColumnNote("amount", "required unless the import form gives a default amount",
                   f"Digits, with a decimal point or comma if needed: 50 or 50.00; no currency sign, no "
                   f"thousands separator. {amounts}"),
        ColumnNote("currency", "optional", "The product's currency, three letters"
                   + (f" ({', '.join(currencies)})." if currencies else ".") + " Empty: the product's."),
        ColumnNote("product", "optional when the import form gives a default product", products),
        ColumnNote("phone", "optional", "The recipient's phone number, e.g. +4512345678."),
        ColumnNote("message", "optional", "The greeting on this card; may span several lines. Empty: the "
                                          "message given on the import form."),
        ColumnNote("reference", "optional", "Your own reference, e.g. an employee number (up to 100 "
                                            "characters): kept on the order, searchable and exported."),
        ColumnNote("send_on", "optional", "A date as YYYY-MM-DD, today or later: the card waits until that "
                                          "day. Empty: sent when the batch is sent."),
    ]


def product_list_text(lines: list[ProductLine]) -> str:
    shown = [f"{line.key} = {line.product.title}, {line.rule}" for line in lines[:PRODUCTS_IN_CSV_NOTE]]
    more = len(lines) - len(shown)
    return "; ".join(shown) + (f"; and {more} more (the XLSX template lists them all)" if more > 0 else "")


# --- CSV ----------------------------------------------------------------------------------


def template_csv(template: Template) -> bytes:
    """Two title rows (what the file is; the allowed values), the header, the example row."""
    buffer = io.StringIO(newline="")
    # The notes quoted whatever they hold: a semicolon outside quotes in the first line would
    # make the reader take the file for semicolon-separated.
    titles = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    titles.writerow([
        f"GiftDesk recipients for {template.account}: one row per gift card under the header row. "
        "Replace the example row with your recipients. These two note rows may stay."
    ])
    notes = " ".join(f"{note.column} ({note.required}): {note.text}" for note in template.notes)
    products = f" Products: {product_list_text(template.products)}." if template.products else ""
    titles.writerow([f"Allowed values. {notes}{products}"])
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    if template.example is not None:
        writer.writerow([cell_text(template.example[column]) for column in COLUMNS])
    # With a BOM, so Excel opens it as UTF-8 ("–", "ø").
    return buffer.getvalue().encode("utf-8-sig")


def cell_text(value: str | Decimal) -> str:
    return money(value) if isinstance(value, Decimal) else value


# --- XLSX ---------------------------------------------------------------------------------


def template_xlsx(template: Template) -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = workbook.add_format({"bold": True, "bg_color": "#E8EEF4", "border": 1})
    text = workbook.add_format({"num_format": "@"})  # ids and phone numbers stay text
    wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
    title = workbook.add_format({"bold": True, "font_size": 13})

    sheet = workbook.add_worksheet(RECIPIENTS_SHEET)
    notes = {note.column: note for note in template.notes}
    widths = {"name": 22, "email": 28, "amount": 10, "currency": 10, "product": 22, "phone": 16,
              "message": 36, "reference": 14, "send_on": 12}
    for index, column in enumerate(COLUMNS):
        sheet.set_column(index, index, widths[column], text if column in ("product", "phone", "reference") else None)
        sheet.write_string(0, index, column, bold)
        note = notes[column]
        sheet.write_comment(0, index, f"{column} ({note.required}): {note.text}",
                            {"x_scale": 2.2, "y_scale": 2.2, "author": "GiftDesk"})
    if template.example is not None:
        for index, column in enumerate(COLUMNS):
            value = template.example[column]
            if isinstance(value, Decimal):
                sheet.write_number(1, index, float(value))
            elif value:
                sheet.write_string(1, index, value)
    sheet.freeze_panes(1, 0)
    if template.products:
        # A drop-down of the products' keys; a warning only, since a product id works too.
        last = 3 + len(template.products)
        sheet.data_validation(1, COLUMNS.index("product"), EXAMPLE_ROWS_WITH_LISTS, COLUMNS.index("product"), {
            "validate": "list",
            "source": f"='{ALLOWED_VALUES_SHEET}'!$A$4:$A${last}",
            "error_type": "warning",
            "error_title": "Not in the product list",
            "error_message": "GiftDesk will look this product up by SKU or product id.",
        })

    allowed = workbook.add_worksheet(ALLOWED_VALUES_SHEET)
    allowed.set_column(0, 0, 24)
    allowed.set_column(1, 1, 40, wrap)
    allowed.set_column(2, 2, 40, wrap)
    allowed.set_column(3, 5, 20)
    allowed.write_string(0, 0, f"Products of {template.account}", title)
    row = 2
    allowed.write_row(row, 0, ["product (write this)", "title", "price rule", "currency", "provider product id",
                               "SKU"], bold)
    if not template.products:
        allowed.write_string(row + 1, 0, notes["product"].text)
    for line in template.products:
        row += 1
        allowed.write_row(row, 0, [line.key, line.product.title, line.rule, line.product.currency,
                                   line.product.provider_product_id, line.product.sku])
    row = max(row, 3) + 2
    allowed.write_string(row, 0, "Columns", title)
    row += 1
    allowed.write_row(row, 0, ["column", "required", "what to write"], bold)
    for note in template.notes:
        row += 1
        allowed.write_row(row, 0, [note.column, note.required, note.text])
    workbook.close()
    return buffer.getvalue()
