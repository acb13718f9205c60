"""The spreadsheet contract (orders/spreadsheet/): reading files and validating rows."""

from __future__ import annotations

import io
import os
from html import unescape
import time
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from orders.spreadsheet import (
    FileRefused,
    ImportContext,
    ImportPreview,
    Table,
    invalid_rows_csv,
    read_table,
    validate,
)
from orders.spreadsheet.read import detect_delimiter, format_size
from orders.models import Batch, Order, OrderStatus, Recipient
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TODAY = date(2026, 6, 1)
HEADER = "name,email,amount\n"


# --- helpers ----------------------------------------------------------------------------


def read(text: str, encoding: str = "utf-8") -> Table:
    return read_table(text.encode(encoding))


def refusal(data: bytes, filename: str = "") -> str:
    with pytest.raises(FileRefused) as caught:
        read_table(data, filename)
    return caught.value.message


@pytest.fixture
def context(gogift_account, global_gift_card, fixed_price_card) -> ImportContext:
    return ImportContext(
        account=gogift_account,
        default_product=global_gift_card,
        today=TODAY,
        products=[global_gift_card, fixed_price_card],
    )


def preview_of(text: str, context: ImportContext) -> ImportPreview:
    return validate(read(text), context)


def messages(preview: ImportPreview, row: int) -> list[str]:
    return [error.message for error in preview.errors if error.row == row]


def only_error(preview: ImportPreview) -> str:
    assert len(preview.errors) == 1, preview.errors
    return preview.errors[0].message


def workbook_bytes(*sheets: tuple[str, list[list]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets:
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def deliver_card(account: ProviderAccount, product: Product, email: str, **order_fields) -> Order:
    """An order as an earlier batch would have left it."""
    batch = Batch.objects.create(name="Earlier batch", account=account)
    recipient = Recipient.objects.create(name="Earlier recipient", email=email)
    fields = {"status": OrderStatus.DELIVERED, **order_fields}
    return Order.objects.create(
        batch=batch,
        recipient=recipient,
        product=product,
        amount=Decimal("100"),
        currency="DKK",
        reference=f"earlier-{Order.objects.count() + 1}",
        **fields,
    )


# --- delimiters and encodings -----------------------------------------------------------


def test_a_comma_separated_file_is_read():
    table = read(HEADER + "Jane Doe,jane@example.com,50\n")
    assert table.delimiter == ","
    assert table.rows[0].cells == {"name": "Jane Doe", "email": "jane@example.com", "amount": "50"}


def test_a_semicolon_separated_file_is_read():
    table = read("name;email;amount\nJane Doe;jane@example.com;50,00\n")
    assert table.delimiter == ";"
    assert table.rows[0].cells["amount"] == "50,00"


def test_a_tab_separated_file_is_read():
    table = read("name\temail\tamount\nJane Doe\tjane@example.com\t50\n")
    assert table.delimiter == "\t"
    assert table.rows[0].cells["email"] == "jane@example.com"


def test_delimiters_inside_quoted_headers_do_not_count():
    assert detect_delimiter('name,email,"notes; more; even more"\n') == ","


def test_a_header_without_any_delimiter_is_one_column():
    assert detect_delimiter("name\nJane Doe\n") == ","


def test_a_one_column_file_is_read_as_one_column_and_refused_for_what_it_lacks():
    message = refusal(b"email\njane@example.com\njohn@example.com\n")
    assert "no name (or first_name and last_name) column" in message
    assert "Columns found: 'email'." in message


def test_utf8_is_read():
    table = read(HEADER + "Søren Ærø,soren@example.com,50\n")
    assert (table.encoding, table.rows[0].cells["name"]) == ("utf-8", "Søren Ærø")


def test_utf8_with_bom_does_not_leak_into_the_first_header():
    table = read_table(b"\xef\xbb\xbf" + (HEADER + "Søren Ærø,soren@example.com,50\n").encode())
    assert table.columns["name"] == "name"
    assert table.rows[0].cells["name"] == "Søren Ærø"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_read(codec):
    bom = "\ufeff".encode(codec)
    table = read_table(bom + (HEADER + "Søren Ærø,soren@example.com,50\n").encode(codec))
    assert table.encoding == "utf-16"
    assert table.rows[0].cells["name"] == "Søren Ærø"


def test_windows_1252_is_read_when_the_file_is_not_utf8():
    table = read(HEADER + "Søren Ærø,soren@example.com,50\n", encoding="cp1252")
    assert table.encoding == "cp1252"
    assert table.rows[0].cells["name"] == "Søren Ærø"


def test_nul_bytes_throughout_a_file_without_a_bom_mean_a_binary_file():
    # Changed on purpose (issue 10): one NUL in a cell is that row's error (test_spreadsheet_title_rows.py);
    # a file made of them, like UTF-16 without its BOM, is still no spreadsheet.
    assert "GiftDesk reads CSV and XLSX files" in refusal((HEADER + "Jane Doe,j@x.com,5\n").encode("utf-16-le"))


# --- header mapping ---------------------------------------------------------------------


def test_headers_match_whatever_the_case_spaces_and_punctuation():
    table = read("Recipient Name;E-mail;Giftcard Value;PHONE;Send On\nJane;jane@example.com;50;+45 1234;\n")
    assert table.columns == {
        "name": "Recipient Name",
        "email": "E-mail",
        "amount": "Giftcard Value",
        "phone": "PHONE",
        "send_on": "Send On",
    }


def test_first_name_and_last_name_columns_make_the_name(context):
    preview = preview_of("First Name,last_name,email,amount\nJane,Doe,jane@example.com,50\n", context)
    assert preview.valid_rows[0].name == "Jane Doe"


def test_a_first_name_column_alone_does_not_give_a_name():
    message = refusal(b"firstname,email\nJane,jane@example.com\n")
    assert "no name (or first_name and last_name) column" in message


def test_a_duplicated_column_is_refused_with_its_column_letters():
    message = refusal(b"name,email,amount,phone,E-Mail\nJane,jane@example.com,50,1,j@x.com\n")
    assert "The column 'email' appears twice (columns B and E)" in message


def test_two_aliases_of_one_field_count_as_a_duplicated_column():
    assert "The column 'name' appears twice (columns A and C)" in refusal(b"name,email,full_name\n")


def test_missing_columns_are_refused_listing_the_columns_found():
    message = refusal(b"Navn,Mail,Amount\nJane,jane@example.com,50\n")
    assert "no name (or first_name and last_name) and no email column" in message
    assert "Columns found: 'Navn', 'Mail', 'Amount'." in message


def test_unknown_columns_are_ignored_and_listed(context):
    preview = preview_of("Department,name,email,amount,Notes\nHR,Jane,jane@example.com,50,x\n", context)
    assert preview.ignored_columns == ["Department", "Notes"]
    assert len(preview.valid_rows) == 1


def test_no_amount_column_and_no_default_amount_refuses_the_file(context):
    table = read("name,email\nJane,jane@example.com\n")
    with pytest.raises(FileRefused, match="no amount column and no default amount"):
        validate(table, context)


# --- row numbers and CSV structure --------------------------------------------------------


def test_blank_rows_are_skipped_but_keep_their_numbers():
    table = read(HEADER + "Jane,jane@example.com,50\n\n , ,\nJohn,john@example.com,60\n")
    assert [row.number for row in table.rows] == [2, 5]
    assert (table.blank_rows, table.data_row_count) == (2, 2)


def test_a_quoted_field_spanning_lines_is_one_row():
    table = read('name,email,message\nJane,jane@example.com,"Dear Jane,\nthank you!"\nJohn,john@example.com,Hi\n')
    assert [row.number for row in table.rows] == [2, 3]
    assert table.rows[0].cells["message"] == "Dear Jane,\nthank you!"


def test_vertical_tab_and_line_separator_inside_a_field_do_not_split_rows():
    table = read("name,email,message\nJa\x0bne,jane@example.com,Line one\u2028line two\nJohn,john@example.com,Hi\n")
    assert [row.number for row in table.rows] == [2, 3]
    assert table.rows[0].cells["message"] == "Line one\u2028line two"


def test_a_row_longer_than_the_header_is_a_row_error_with_its_number(context):
    preview = preview_of(HEADER + "Jane,jane@example.com,50\nJohn,john@example.com,60,oops\n", context)
    assert [row.row for row in preview.valid_rows] == [2]
    assert messages(preview, 3) == ["This row has 4 cells but the header has 3 columns."]


def test_empty_cells_after_the_header_width_are_harmless():
    table = read(HEADER + "Jane,jane@example.com,50,,\n")
    assert table.rows[0].extra_cells_error is None


def test_a_field_longer_than_the_csv_module_default_is_a_row_error_not_a_crash(context):
    preview = preview_of(HEADER + "Jane," + "j" * 140_000 + "@example.com,50\n", context)
    assert "characters long; the limit is 254" in only_error(preview)


def test_a_long_message_over_the_field_limit_is_a_row_error(context):
    preview = preview_of("name,email,amount,message\nJane,jane@example.com,50," + "x" * 1001 + "\n", context)
    assert only_error(preview) == "This cell is 1,001 characters long; the limit is 1,000."


def test_an_unclosed_quote_refuses_the_file_naming_the_row():
    message = refusal((HEADER + 'Jane,jane@example.com,50\n"John,john@example.com,60\n').encode())
    assert message.startswith("Row 3 is not valid CSV")


# --- limits -------------------------------------------------------------------------------


@override_settings(GIFTDESK_IMPORT_MAX_BYTES=1024 * 1024)
def test_a_file_over_the_byte_limit_is_refused_naming_the_limit_before_anything_else():
    message = refusal(b"\0" * (1024 * 1024 * 3 // 2))
    assert message == "The file is 1.5 MB; the limit is 1 MB."


@override_settings(GIFTDESK_IMPORT_MAX_ROWS=3)
def test_more_rows_than_the_limit_are_refused_naming_the_limit():
    message = refusal((HEADER + "Jane,jane@example.com,50\n" * 4).encode())
    assert "the limit is 3" in message


@override_settings(GIFTDESK_IMPORT_MAX_ROWS=3)
def test_blank_rows_do_not_count_towards_the_row_limit():
    table = read(HEADER + "Jane,jane@example.com,50\n\n\n\n" * 3)
    assert table.data_row_count == 3


@override_settings(GIFTDESK_IMPORT_MAX_ROWS=10)
def test_a_huge_file_over_the_row_limit_is_refused_fast():
    started = time.monotonic()
    refusal((HEADER + "Jane,jane@example.com,50\n" * 500_000).encode())
    assert time.monotonic() - started < 1


# --- XLSX ---------------------------------------------------------------------------------


def test_an_xlsx_header_on_the_second_sheet_is_found_and_numbers_lose_their_float_noise():
    data = workbook_bytes(
        ("Read me", [["Gift cards for the summer party"], ["Fill in the next sheet"]]),
        ("Recipients", [["Name", "E-mail", "Amount", "Phone"], ["Jane", "jane@example.com", 50.0, 4512345678], [], ["John", "john@example.com", 12.5, None]]),
    )
    table = read_table(data, "recipients.xlsx")
    assert (table.format, table.sheet) == ("xlsx", "Recipients")
    assert [row.number for row in table.rows] == [2, 4]
    assert table.rows[0].cells == {"name": "Jane", "email": "jane@example.com", "amount": "50", "phone": "4512345678"}
    assert table.rows[1].cells["amount"] == "12.5"


def test_an_xlsx_header_on_the_first_sheet_is_read(context):
    data = workbook_bytes(("Sheet1", [["name", "email", "amount"], ["Jane", "jane@example.com", 50]]), ("Other", [["x"]]))
    preview = validate(read_table(data), context)
    assert preview.valid_rows[0].amount == Decimal("50.00")


def test_xlsx_cells_right_of_the_header_are_ignored_since_a_workbook_cannot_shift_them():
    data = workbook_bytes(("S", [["name", "email"], ["Jane", "jane@example.com", "a note"]]))
    row = read_table(data).rows[0]
    assert (row.extra_cells_error, row.values) == (None, ("Jane", "jane@example.com"))


def test_xlsx_dates_become_iso_dates():
    data = workbook_bytes(("S", [["name", "email", "send_on"], ["Jane", "jane@example.com", datetime(2026, 7, 1, 9, 30)]]))
    assert read_table(data).rows[0].cells["send_on"] == "2026-07-01"


def test_an_xlsx_without_the_required_columns_on_any_sheet_is_refused():
    data = workbook_bytes(("S", [["Navn", "Mail"], ["Jane", "jane@example.com"]]))
    assert "Columns found: 'Navn', 'Mail'" in refusal(data)


def test_what_the_file_is_decides_how_it_is_read_not_its_extension():
    xlsx = workbook_bytes(("S", [["name", "email"], ["Jane", "jane@example.com"]]))
    assert read_table(xlsx, "recipients.csv").format == "xlsx"
    assert read_table(b"name,email\nJane,jane@example.com\n", "recipients.xlsx").format == "csv"


def test_an_old_xls_or_encrypted_workbook_is_refused():
    message = refusal(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(2000), "recipients.xls")
    assert message.startswith("“recipients.xls” looks like an old Excel .xls file or a password-protected workbook.")
    assert message.endswith("Save the spreadsheet as CSV (UTF-8) or as an Excel workbook (.xlsx) and upload it again.")


def test_an_opendocument_spreadsheet_is_refused():
    data = zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet", "content.xml": b"<x/>"})
    assert "OpenDocument spreadsheet (.ods)" in refusal(data, "recipients.ods")


def test_random_binary_is_refused():
    assert "GiftDesk reads CSV and XLSX files" in refusal(b"\x89PNG\r\n\x1a\n" + os.urandom(4000))


def test_a_broken_zip_is_refused():
    data = workbook_bytes(("S", [["name", "email"]]))
    assert "damaged" in refusal(data[: len(data) // 2])


def test_a_zip_that_is_not_a_workbook_is_refused():
    assert "zip archive, not an Excel workbook" in refusal(zip_bytes({"word/document.xml": b"<w/>"}))


def bomb(size: int) -> bytes:
    return zip_bytes({
        "[Content_Types].xml": b"<Types/>",
        "xl/workbook.xml": b"<workbook/>",
        "xl/worksheets/sheet1.xml": b"\0" * size,
    })


@override_settings(GIFTDESK_IMPORT_MAX_BYTES=100_000)
def test_a_workbook_that_unpacks_past_ten_times_the_byte_limit_is_refused_quickly():
    data = bomb(5_000_000)
    started = time.monotonic()
    assert "far more than a recipient list needs" in refusal(data)
    assert time.monotonic() - started < 0.5


def test_a_workbook_member_with_an_absurd_compression_ratio_is_refused():
    assert "far more than a recipient list needs" in refusal(bomb(3_000_000))


# --- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["50", "50.00", "50,00", " 50 ", "50.0"])
def test_well_written_amounts_are_accepted(amount, context):
    preview = preview_of(f'name,email,amount\nJane,jane@example.com,"{amount}"\n', context)
    assert preview.valid_rows[0].amount == Decimal("50.00")


@pytest.mark.parametrize("amount", ["abc", "-5", "1e3", "€50", "1 000", "50.", "1.000,00"])
def test_badly_written_amounts_are_refused_showing_the_value_and_an_example(amount, context):
    preview = preview_of(f'name,email,amount\nJane,jane@example.com,"{amount}"\n', context)
    assert only_error(preview) == (
        f"'{amount}' is not an amount; write it like 50 or 50.00, "
        "without a currency sign or thousands separator."
    )


def test_an_amount_with_more_than_two_decimals_is_refused(context):
    preview = preview_of(HEADER + "Jane,jane@example.com,50.001\n", context)
    assert only_error(preview).startswith("'50.001' has more than two decimals")


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("55", "55 is not a valid value; The Global Gift Card takes 50–5,000 DKK in steps of 10."),
        ("40", "40 is below the minimum; The Global Gift Card takes 50–5,000 DKK in steps of 10."),
        ("5010", "5010 is above the maximum; The Global Gift Card takes 50–5,000 DKK in steps of 10."),
        ("0", "The amount must be greater than zero."),
    ],
)
def test_amounts_outside_the_product_pricing_are_refused_with_the_reason(amount, reason, context):
    preview = preview_of(HEADER + f"Jane,jane@example.com,{amount}\n", context)
    assert only_error(preview) == reason


def test_the_default_amount_is_used_when_there_is_no_amount_column(context):
    context.default_amount = Decimal("100")
    preview = preview_of("name,email\nJane,jane@example.com\n", context)
    assert preview.valid_rows[0].amount == Decimal("100.00")


def test_the_default_amount_is_used_for_an_empty_amount_cell(context):
    context.default_amount = Decimal("100")
    preview = preview_of(HEADER + "Jane,jane@example.com,\nJohn,john@example.com,60\n", context)
    assert [row.amount for row in preview.valid_rows] == [Decimal("100.00"), Decimal("60.00")]


def test_an_empty_amount_cell_without_a_default_is_an_error(context):
    preview = preview_of(HEADER + "Jane,jane@example.com,\n", context)
    assert only_error(preview) == "No amount: fill in the amount column or give a default amount."


def test_totals_are_summed_per_currency_from_the_valid_rows_only(context):
    preview = preview_of(HEADER + "Jane,jane@example.com,50\nJohn,john@example.com,60,50\nAnn,ann@example.com,5000\n", context)
    assert preview.totals == {"DKK": Decimal("5050.00")}


# --- products and currency ----------------------------------------------------------------


def test_a_fixed_price_product_accepts_its_denomination(context, fixed_price_card):
    preview = preview_of("name,email,amount,product\nJane,jane@example.com,500,SPA500DK\n", context)
    assert preview.valid_rows[0].product == fixed_price_card


def test_a_fixed_price_product_refuses_other_amounts(context):
    preview = preview_of("name,email,amount,product\nJane,jane@example.com,450,SPA500DK\n", context)
    assert only_error(preview) == "450 is not a value of Spa Day; choose one of 500 DKK."


def test_a_product_is_found_by_its_provider_product_id(context, fixed_price_card):
    preview = preview_of(f"name,email,amount,product\nJane,jane@example.com,500,{fixed_price_card.provider_product_id}\n", context)
    assert preview.valid_rows[0].product == fixed_price_card


def test_a_product_is_found_by_its_sku_whatever_the_case(context, global_gift_card):
    preview = preview_of(f"name,email,amount,product\nJane,jane@example.com,50,{GLOBAL_GIFT_CARD_SKU.lower()}\n", context)
    assert preview.valid_rows[0].product == global_gift_card


def test_of_several_skus_sharing_a_product_id_the_one_selling_the_amount_is_taken(context, gogift_account):
    skus = [
        Product.objects.create(
            account=gogift_account, provider_product_id="777", sku=f"CINEMA{value}", title="Cinema",
            currency="DKK", pricing=PricingKind.FIXED, denominations=[str(value)],
        )
        for value in (100, 250)
    ]
    context.products += skus
    preview = preview_of("name,email,amount,product\nJane,jane@example.com,250,777\nJohn,john@example.com,300,777\n", context)
    assert preview.valid_rows[0].product == skus[1]
    assert messages(preview, 3) == ["300 is not a value of Cinema; it takes 100 DKK; 250 DKK."]


def test_an_unknown_product_is_an_error_naming_it(context):
    preview = preview_of("name,email,amount,product\nJane,jane@example.com,50,NOPE-1\n", context)
    assert only_error(preview) == (
        "No active product 'NOPE-1' in the catalog of GoGift sandbox. "
        "Fix the product id or SKU, or sync the catalog."
    )


def test_without_a_product_column_or_default_product_the_row_is_invalid(context):
    context.default_product = None
    preview = preview_of(HEADER + "Jane,jane@example.com,50\n", context)
    assert only_error(preview) == "No product: fill in the product column or choose a default product."


def test_a_currency_matching_the_product_in_any_case_is_accepted(context):
    preview = preview_of("name,email,amount,currency\nJane,jane@example.com,50,dkk\n", context)
    assert preview.valid_rows[0].currency == "DKK"


def test_a_currency_other_than_the_products_is_refused_naming_both(context):
    preview = preview_of("name,email,amount,currency\nJane,jane@example.com,50,EUR\n", context)
    assert only_error(preview) == "The currency is EUR but The Global Gift Card is sold in DKK."


# --- send_on ------------------------------------------------------------------------------


def test_send_on_today_is_accepted(context):
    preview = preview_of(f"name,email,amount,send_on\nJane,jane@example.com,50,{TODAY.isoformat()}\n", context)
    assert preview.valid_rows[0].send_on == TODAY


def test_send_on_in_the_past_is_refused(context):
    preview = preview_of("name,email,amount,send_on\nJane,jane@example.com,50,2026-05-31\n", context)
    assert only_error(preview).startswith("2026-05-31 is in the past")


@pytest.mark.parametrize("value", ["01/07/2026", "2026-02-30", "tomorrow"])
def test_a_send_on_that_is_not_an_iso_date_is_refused(value, context):
    preview = preview_of(f"name,email,amount,send_on\nJane,jane@example.com,50,{value}\n", context)
    assert only_error(preview) == f"'{value}' is not a date; write it as YYYY-MM-DD, e.g. 2026-06-01."


# --- names, emails, text ------------------------------------------------------------------


def test_a_valid_row_carries_everything_needed_for_an_order(context, global_gift_card):
    context.default_message = "Thank you!"
    preview = preview_of("name,email,amount,phone,reference\n Jane Doe ,jane@example.com,50,+4512345678,EMP-7\n", context)
    row = preview.valid_rows[0]
    assert (row.row, row.name, row.email, row.phone, row.reference) == (2, "Jane Doe", "jane@example.com", "+4512345678", "EMP-7")
    assert (row.message, row.amount, row.currency, row.product, row.send_on) == ("Thank you!", Decimal("50.00"), "DKK", global_gift_card, None)


def test_a_row_message_replaces_the_default_message(context):
    context.default_message = "Thank you!"
    preview = preview_of("name,email,amount,message\nJane,jane@example.com,50,Happy birthday\n", context)
    assert preview.valid_rows[0].message == "Happy birthday"


def test_a_malformed_email_is_refused(context):
    preview = preview_of(HEADER + "Jane,jane@example,50\n", context)
    assert only_error(preview) == "'jane@example' is not a valid email address (e.g. jane@example.com)."


def test_every_problem_of_a_row_is_reported_under_the_header_the_user_wrote(context):
    preview = preview_of("Full Name;E-mail;Value\n;jane@;abc\n", context)
    assert [(error.row, error.column) for error in preview.errors] == [(2, "Full Name"), (2, "E-mail"), (2, "Value")]
    assert preview.errors[0].message == "The name is empty."


def test_a_missing_email_is_an_error(context):
    preview = preview_of(HEADER + "Jane,,50\n", context)
    assert only_error(preview) == "The email address is empty."


def test_a_control_character_is_an_error_naming_the_column(context):
    preview = preview_of("name,email,amount\nJa\x07ne,jane@example.com,50\n", context)
    assert [(error.column, error.message) for error in preview.errors] == [
        ("name", "This cell contains an invisible control character (U+0007); retype it.")
    ]


def test_a_line_break_is_refused_in_a_name_but_allowed_in_a_message(context):
    preview = preview_of('name,email,amount,message\n"Jane\nDoe",jane@example.com,50,ok\nJohn,john@example.com,50,"Dear John,\nthanks"\n', context)
    assert messages(preview, 2) == ["This cell contains a line break; only the message may span several lines."]
    assert preview.valid_rows[0].message == "Dear John,\nthanks"


# --- warnings -----------------------------------------------------------------------------


def test_an_email_appearing_twice_is_a_warning_not_an_error(context):
    preview = preview_of(HEADER + "Jane,jane@example.com,50\nJohn,john@example.com,50\nJane D,Jane@Example.com,60\n", context)
    assert len(preview.valid_rows) == 3
    assert preview.valid_rows[0].warnings == ["jane@example.com also appears in row 4."]
    assert preview.warnings == ["Row 2: jane@example.com also appears in row 4.", "Row 4: Jane@Example.com also appears in row 2."]


def test_a_later_duplicate_names_the_first_row_and_the_first_counts_the_others(context):
    # Issue 12: each warning names one row, never a list (with 10,000 rows of one email the
    # lists made the preview quadratic: 1.2 GB). An invalid row still counts as an occurrence.
    preview = preview_of(HEADER + "Jane,jane@example.com,50\nJohn,john@example.com,50\nJane D,JANE@example.com,60\n"
                         "Jane E,jane@example.com,55\nJane F, jane@example.com ,70\n", context)
    assert preview.warnings == [
        "Row 2: jane@example.com also appears in 3 other rows, starting at row 4.",
        "Row 4: JANE@example.com also appears in row 2.",
        "Row 6: jane@example.com also appears in row 2.",
    ]
    assert [row.row for row in preview.invalid_rows] == [5]


def test_a_duplicate_of_an_invalid_first_row_names_that_row(context):
    preview = preview_of(HEADER + "Jane,jane@example.com,55\nJane D,jane@example.com,60\nJane E,jane@example.com,70\n", context)
    assert preview.warnings == ["Row 3: jane@example.com also appears in row 2.", "Row 4: jane@example.com also appears in row 2."]


def test_duplicate_warnings_stay_short_however_many_rows_share_an_email(context):
    rows = "".join(f"Person {index},jane@example.com,50\n" for index in range(3000))
    preview = preview_of(HEADER + rows, context)
    assert len(preview.warnings) == 3000
    assert preview.warnings[0] == "Row 2: jane@example.com also appears in 2,999 other rows, starting at row 3."
    assert preview.warnings[-1] == "Row 3001: jane@example.com also appears in row 2."
    assert max(len(warning) for warning in preview.warnings) < 100


def test_a_recent_recipient_is_a_warning(context, gogift_account, global_gift_card):
    deliver_card(gogift_account, global_gift_card, "Jane@Example.com")
    context.recent_recipient_emails = ImportContext.for_account(gogift_account).recent_recipient_emails
    preview = preview_of(HEADER + "Jane,jane@example.com,50\n", context)
    assert preview.warnings == ["Row 2: jane@example.com got or is due to get a card in the last 30 days."]
    assert [row.recent for row in preview.valid_rows] == [True]


def test_for_account_counts_live_recent_orders_of_that_account_only(gogift_account, global_gift_card):
    other = ProviderAccount.objects.create(name="Other", kind="gifty")
    other_card = Product.objects.create(account=other, provider_product_id="1", title="T", currency="EUR", pricing=PricingKind.RANGE)
    deliver_card(gogift_account, global_gift_card, "sent@example.com")
    deliver_card(gogift_account, global_gift_card, "queued@example.com", status=OrderStatus.QUEUED)
    deliver_card(gogift_account, global_gift_card, "failed@example.com", status=OrderStatus.FAILED)
    deliver_card(gogift_account, global_gift_card, "cancelled@example.com", status=OrderStatus.CANCELLED)
    deliver_card(other, other_card, "elsewhere@example.com")
    old = deliver_card(gogift_account, global_gift_card, "old@example.com")
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    context = ImportContext.for_account(gogift_account)
    assert context.recent_recipient_emails == {"sent@example.com", "queued@example.com"}


def test_for_account_loads_the_active_products_of_the_account(gogift_account, global_gift_card, fixed_price_card):
    fixed_price_card.is_active = False
    fixed_price_card.save()
    context = ImportContext.for_account(gogift_account, default_amount=Decimal("50"), today=TODAY)
    assert (context.products, context.today, context.default_amount) == ([global_gift_card], TODAY, Decimal("50"))


# --- download of the invalid rows and the example file ------------------------------------


def test_invalid_rows_csv_lists_row_column_and_problem_with_the_original_cells(context):
    preview = preview_of("name,E-mail,amount,Department\nJane,jane@example,55,HR\nJohn,john@example.com,50,IT\n", context)
    assert invalid_rows_csv(preview).splitlines() == [
        "row,column,problem,name,E-mail,amount,Department",
        "2,E-mail,'jane@example' is not a valid email address (e.g. jane@example.com).,Jane,jane@example,55,HR",
        '2,amount,"55 is not a valid value; The Global Gift Card takes 50–5,000 DKK in steps of 10.",Jane,jane@example,55,HR',
    ]


def test_the_example_file_has_exactly_two_invalid_rows(context):
    table = read_table((EXAMPLES / "recipients.csv").read_bytes(), "recipients.csv")
    preview = validate(table, context)
    assert len(preview.valid_rows) == 10
    assert [(error.row, error.column) for error in preview.errors] == [(5, "email"), (9, "amount")]
    assert preview.warnings == []



# --- issue 10: nothing to send, digits 0-9, NUL in a cell, every missing column, sizes -----


NOTHING_TO_SEND = ("The header is on row 1 but there are no recipient rows under it. "
                   "Add one row per recipient below the header and upload it again.")


@pytest.mark.parametrize("text", [HEADER, HEADER.rstrip("\n"), HEADER + "\n\n , ,\n,,\n"],
                         ids=["header-only", "no-final-newline", "blank-rows"])
def test_a_header_without_recipient_rows_is_refused_as_nothing_to_send(text):
    assert refusal(text.encode()) == NOTHING_TO_SEND


def test_a_workbook_sheet_with_a_header_and_no_rows_is_refused_as_nothing_to_send():
    data = workbook_bytes(("S", [["name", "email", "amount"], [None, None, None]]))
    assert refusal(data) == NOTHING_TO_SEND


def test_a_nul_byte_in_one_cell_is_that_rows_control_character(context):
    preview = preview_of(HEADER + "Ana\x00Hansen,ana@example.com,100\nBo Berg,bo@example.com,100\n", context)
    assert [row.row for row in preview.valid_rows] == [3]
    assert [(error.row, error.column, error.message) for error in preview.errors] == [
        (2, "name", "This cell contains an invisible control character (U+0000); retype it.")
    ]


def test_a_few_nul_bytes_far_into_a_large_utf8_file_are_row_errors_too(context):
    rows = "".join(f"R{number},r{number}@example.com,100\n" for number in range(500))
    table = read_table((HEADER + rows + "Ana\x00,ana@example.com,100\x00\n").encode())
    assert table.rows[-1].cells == {"name": "Ana\x00", "email": "ana@example.com", "amount": "100\x00"}


@pytest.mark.parametrize("data", [
    (HEADER + "Søren,s@example.com,50\n").encode("utf-16-le"),  # UTF-16 without its BOM
    (HEADER + "Søren,s@example.com,50\n").encode("utf-16-be"),
    (HEADER + "Søren,s@example.com,50\n").encode("utf-32-le"),
    "名前,メール,金額\n山田太郎,yamada@example.jp,50\n".encode("utf-16-le"),  # few NUL bytes, not UTF-8
    (HEADER + "Søren,s@example.com,50\n").encode("cp1252") + b"\x00",  # NUL in what is not UTF-8
    (HEADER + "Jane,jane@example.com,50\n" * 200).encode() + b"\x00" * 600,  # text, then a NUL-filled tail
    b"\x89PNG\r\n\x1a\n" + HEADER.encode(),  # a known binary signature
    b"%PDF-1.7\n" + HEADER.encode(),
], ids=["utf16le-no-bom", "utf16be-no-bom", "utf32-no-bom", "utf16-cjk-no-bom", "cp1252-with-nul",
        "nul-tail", "png", "pdf"])
def test_binary_files_and_utf16_without_a_bom_are_still_refused(data):
    assert refusal(data).startswith("This is not a spreadsheet file. GiftDesk reads CSV and XLSX files.")


AMOUNT_DIGITS = ("is not an amount: only the digits 0-9 are accepted; write it like 50 or 50.00, "
                 "without a currency sign or thousands separator.")


@pytest.mark.parametrize("amount", ["٥٠", "５０", "५०", "5٠", "50.٥٠", "۵۰", "50²"],
                         ids=["arabic-indic", "full-width", "devanagari", "mixed", "decimals", "persian", "superscript"])
def test_amounts_with_digits_other_than_0_to_9_are_refused_on_their_row(amount, context):
    preview = preview_of(f"name,email,amount\nJane,jane@example.com,{amount}\nJohn,john@example.com,50\n", context)
    assert [row.row for row in preview.valid_rows] == [3]
    assert only_error(preview) == f"'{amount}' {AMOUNT_DIGITS}"


@pytest.mark.parametrize("value", ["２０２６-０７-０１", "٢٠٢٦-٠٧-٠١", "2026-07-0١"])
def test_a_send_on_date_with_digits_other_than_0_to_9_is_refused(value, context):
    preview = preview_of(f"name,email,amount,send_on\nJane,jane@example.com,50,{value}\n", context)
    assert only_error(preview) == (
        f"'{value}' is not a date: only the digits 0-9 are accepted; write it as YYYY-MM-DD, e.g. 2026-06-01."
    )


def test_ascii_digits_are_still_read_as_before(context):
    preview = preview_of("name,email,amount,send_on\nJane,jane@example.com,1230,2026-07-01\n", context)
    assert (preview.valid_rows[0].send_on, preview.errors) == (date(2026, 7, 1), [])


@pytest.mark.parametrize(("header", "says"), [
    ("email,department", "no name (or first_name and last_name) column, and no amount column"),
    ("name,phone", "no email column, and no amount column"),
    ("phone,department", "no name (or first_name and last_name) and no email column, and no amount column"),
    ("Navn,Mail,Amount", "no name (or first_name and last_name) and no email column."),
    ("name,Mail,Value", "no email column."),
])
def test_a_header_lacking_several_columns_names_every_one_of_them_at_once(header, says):
    message = refusal(f"{header}\nJane,jane@example.com\n".encode())
    assert message.startswith(f"The header row (row 1) has {says}"), message
    assert ("(needed unless you give a default amount)" in message) == ("amount" not in header.lower()
                                                                          and "value" not in header.lower())


def test_the_default_byte_limit_reads_20_mb_as_the_readme_says():
    limit = settings.GIFTDESK_IMPORT_MAX_BYTES
    assert (limit, format_size(limit)) == (20 * 1024 * 1024, "20 MB")


@pytest.mark.parametrize(("size", "message"), [
    (20 * 1024 * 1024 + 1, "The file is just over 20 MB; the limit is 20 MB."),
    (21_000_000, "The file is just over 20 MB; the limit is 20 MB."),  # 20.03 MB
    (22 * 1024 * 1024, "The file is 22 MB; the limit is 20 MB."),
    (int(21.5 * 1024 * 1024), "The file is 21.5 MB; the limit is 20 MB."),
])
def test_an_over_limit_file_is_refused_with_the_readmes_20_mb(size, message):
    assert refusal(b"x" * size) == message


# Through the admin: the same refusals on the upload form, nothing created.


def test_the_admin_refuses_a_header_without_rows_on_the_upload_form(admin_client, emulated_gogift_account):
    from tests.orders.test_admin import upload

    response = upload(admin_client, emulated_gogift_account, b"Recipients\nname,email,amount\n\n")
    html = response.content.decode()
    assert NOTHING_TO_SEND.replace("row 1", "row 2") in html  # the header under its title row
    assert 'name="import_file"' in html and "confirm-import" not in html
    assert not Batch.objects.exists()


AMOUNT_EXAMPLE = "write it like 50 or 50.00, without a currency sign or thousands separator."


@pytest.mark.parametrize("value, refusal", [
    ("٥٠", f"'٥٠' {AMOUNT_DIGITS}"),
    ("२५०", f"'२५०' {AMOUNT_DIGITS}"),
    # Django's DecimalField would read the first as 100 (the other two it refuses, in other words).
    ("1e2", f"'1e2' is not an amount; {AMOUNT_EXAMPLE}"),
    ("NaN", f"'NaN' is not an amount; {AMOUNT_EXAMPLE}"),
    ("Infinity", f"'Infinity' is not an amount; {AMOUNT_EXAMPLE}"),
], ids=["arabic-indic", "devanagari", "exponent", "nan", "infinity"])
def test_the_admin_reads_the_default_amount_as_the_amount_column(admin_client, emulated_gogift_account, value,
                                                                  refusal):
    from tests.orders.test_admin import upload

    response = upload(admin_client, emulated_gogift_account, b"name,email\nJane,jane@example.com\n",
                      default_amount=value)
    html = unescape(response.content.decode())
    assert f'<ul class="errorlist" id="id_default_amount_error"><li>{refusal}</li></ul>' in html
    assert "confirm-import" not in html
    assert not Batch.objects.exists()


def test_the_admin_takes_a_default_amount_with_a_decimal_comma(admin_client, emulated_gogift_account):
    from tests.orders.test_admin import upload

    response = upload(admin_client, emulated_gogift_account, b"name,email\nJane,jane@example.com\n",
                      default_amount="250,00")
    assert response.context["result"].giftdesk_preview.valid_rows[0].amount == Decimal("250.00")
