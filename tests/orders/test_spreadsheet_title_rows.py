"""Title rows above the header (issue 10, finding 7): HR exports put a title line or two
above the header. The header is the first row holding a name and an email column among
the first 10 non-blank rows; rows keep the numbers a spreadsheet shows; the preview and
send_csv say which row was taken as the header."""

from __future__ import annotations

import io
import time

import openpyxl
import pytest

from orders.models import Batch, Order
from orders.spreadsheet import FileRefused, ImportContext, read_table, validate
from orders.spreadsheet.headers import HEADER_SEARCH_ROWS, header_row_note
from tests.commands import send_csv
from tests.fixtures.data import GLOBAL_GIFT_CARD_ID
from tests.hostile import workbooks
from tests.orders.test_admin import confirm, upload

ROW = "Jane Doe,jane@example.com,50\n"


def refusal(data: bytes) -> str:
    with pytest.raises(FileRefused) as caught:
        read_table(data, "recipients")
    return caught.value.message


def workbook_bytes(*sheets: tuple[str, list[list]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets:
        sheet = workbook.create_sheet(title)
        for number, row in enumerate(rows, start=1):
            for column, value in enumerate(row, start=1):
                sheet.cell(number, column, value)  # an empty list leaves the row empty
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- CSV ----------------------------------------------------------------------------------


def test_a_title_on_row_1_makes_row_2_the_header_and_row_3_the_first_data_row():
    table = read_table(("Gift cards for the summer party\nname,email,amount\n" + ROW).encode())
    assert table.header_row == 2
    assert [row.number for row in table.rows] == [3]
    assert table.rows[0].cells == {"name": "Jane Doe", "email": "jane@example.com", "amount": "50"}


def test_a_file_whose_header_is_row_1_says_so():
    table = read_table(("name,email,amount\n" + ROW).encode())
    assert (table.header_row, [row.number for row in table.rows]) == (1, [2])


def test_two_title_lines_and_a_blank_one_keep_the_row_numbers_a_spreadsheet_shows():
    text = "ACME A/S\nExported 2026-06-01 by HR\n\nname,email,amount\n" + ROW + "\n" + ROW.replace("Jane", "John")
    table = read_table(text.encode())
    assert table.header_row == 4
    assert [row.number for row in table.rows] == [5, 7]


@pytest.mark.parametrize(("title", "delimiter"), [
    ("Gift cards", ";"),  # no delimiter at all in the title line
    ("Gift cards, summer 2026", ";"),  # a comma in the title, a semicolon file
    ("Gift cards; summer 2026", "\t"),
    ("Gift cards\tsummer", ","),
])
def test_the_delimiter_is_the_headers_not_the_title_lines(title, delimiter):
    header = delimiter.join(["name", "email", "amount"])
    row = delimiter.join(["Jane Doe", "jane@example.com", "50,00" if delimiter != "," else "50"])
    table = read_table(f"{title}\n{header}\n{row}\n".encode())
    assert (table.delimiter, table.header_row) == (delimiter, 2)
    assert table.rows[0].cells["email"] == "jane@example.com"


def test_a_quoted_all_fields_semicolon_file_under_a_comma_title_is_read():
    # Read with the comma of the title line, '"name";"email"' is a CSV error, not a header.
    text = 'Recipients, June\n"name";"email";"amount"\n"Jane Doe";"jane@example.com";"50"\n'
    table = read_table(text.encode())
    assert (table.delimiter, table.header_row, table.rows[0].number) == (";", 2, 3)


@pytest.mark.parametrize("codec", ["utf-8-sig", "cp1252", "utf-16"])
def test_title_rows_are_found_in_every_encoding(codec):
    table = read_table(("Gavekort til Søren Ærø's afdeling\nname;email;amount\nSøren;s@example.com;50\n").encode(codec))
    assert (table.header_row, table.rows[0].cells["name"]) == (2, "Søren")


def test_the_header_may_be_the_tenth_non_blank_row_whatever_the_blank_rows_between():
    titles = "".join(f"Title line {number}\n\n" for number in range(1, HEADER_SEARCH_ROWS))
    table = read_table((titles + "name,email,amount\n" + ROW).encode())
    assert table.header_row == 2 * (HEADER_SEARCH_ROWS - 1) + 1
    assert table.rows[0].number == table.header_row + 1


def test_a_header_below_the_first_ten_non_blank_rows_is_not_looked_for():
    titles = "".join(f"Title line {number}\n" for number in range(1, HEADER_SEARCH_ROWS + 1))
    message = refusal((titles + "name,email,amount\n" + ROW).encode())
    assert "no name (or first_name and last_name) and no email column" in message
    assert f"the first {HEADER_SEARCH_ROWS} non-blank rows" in message


def test_without_a_header_the_refusal_names_every_missing_column_of_the_closest_row():
    message = refusal("Employees of ACME\nNavn;E-mail;Beløb\nJane;jane@example.com;50\n".encode())
    assert message.startswith(
        "The header row (row 2) has no name (or first_name and last_name) column, and no amount column "
        "(needed unless you give a default amount). Columns found: 'Navn', 'E-mail', 'Beløb'."
    ), message


def test_a_title_row_naming_only_some_columns_is_not_taken_as_the_header():
    table = read_table(("Name and e-mail of each recipient\nEmail,Name,Amount\n" + "jane@example.com,Jane,50\n").encode())
    assert table.header_row == 2 and table.columns["name"] == "Name"


def test_a_duplicated_column_in_a_header_under_a_title_is_still_refused():
    message = refusal(b"Recipients\nname,email,amount,E-Mail\nJane,jane@example.com,50,j@x.com\n")
    assert "The column 'email' appears twice (columns B and D)" in message


def test_endless_title_like_rows_are_refused_at_once():
    data = workbooks.endless_titles_csv()
    started = time.monotonic()
    message = refusal(data)
    assert time.monotonic() - started < 1.0
    assert "no name (or first_name and last_name) and no email column" in message


@pytest.mark.parametrize("data", [
    b'"' + b"Title words " * (19 * 1024 * 1024 // 12) + b'"\n',  # one quoted 19 MB cell
    b"Title;words, " * (19 * 1024 * 1024 // 13),  # a row of 1.5 million cells, under two delimiters
], ids=["one-huge-cell", "a-million-cells"])
def test_a_huge_title_row_is_refused_in_seconds_not_minutes(data):
    started = time.monotonic()
    message = refusal(data)
    assert time.monotonic() - started < 5.0  # 0.5-1.5 s here; it took 25-35 s before the cell caps
    assert message.startswith("The header row (row 1) has no name (or first_name and last_name) and no email column")


def test_a_header_under_titles_without_data_rows_is_refused_naming_the_header_row():
    assert refusal(b"Recipients\nname,email,amount\n\n") == (
        "The header is on row 2 but there are no recipient rows under it. "
        "Add one row per recipient below the header and upload it again."
    )


def test_the_amount_refusal_names_the_row_the_header_was_found_on(gogift_account, global_gift_card):
    table = read_table(("Recipients\nname,email\n" + "Jane,jane@example.com\n").encode())
    context = ImportContext(account=gogift_account, default_product=global_gift_card, products=[global_gift_card])
    with pytest.raises(FileRefused, match=r"The header row \(row 2\) has no amount column and no default amount"):
        validate(table, context)


def test_row_errors_carry_the_numbers_the_spreadsheet_shows(gogift_account, global_gift_card):
    table = read_table(("Recipients\n\nname,email,amount\n" + ROW + "John,not-an-email,50\n").encode())
    context = ImportContext(account=gogift_account, default_product=global_gift_card, products=[global_gift_card])
    preview = validate(table, context)
    assert [row.row for row in preview.valid_rows] == [4]
    assert [(error.row, error.column) for error in preview.errors] == [(5, "email")]
    assert preview.header_row == 3


@pytest.mark.parametrize(("row", "note"), [
    (1, ""),
    (2, "Row 2 was taken as the header; the row above it was skipped."),
    (3, "Row 3 was taken as the header; the 2 rows above it were skipped."),
])
def test_the_note_says_which_row_was_taken_as_the_header(row, note):
    assert header_row_note(row) == note


# --- XLSX ---------------------------------------------------------------------------------


def test_a_workbook_title_and_empty_row_above_the_header_keep_the_sheet_row_numbers():
    data = workbook_bytes(("Recipients", [
        ["Gift cards for the summer party"], [], ["Name", "E-mail", "Amount"],
        ["Jane", "jane@example.com", 50], [], ["John", "john@example.com", 60],
    ]))
    table = read_table(data, "recipients.xlsx")
    assert (table.format, table.sheet, table.header_row) == ("xlsx", "Recipients", 3)
    assert [row.number for row in table.rows] == [4, 6]
    assert table.rows[1].cells == {"name": "John", "email": "john@example.com", "amount": "60"}


def test_the_first_sheet_whose_top_rows_hold_a_header_is_read():
    data = workbook_bytes(
        ("Read me", [["How to fill in this workbook"], ["One recipient per row"], ["Amounts in DKK"]]),
        ("Recipients", [["ACME gift cards"], ["name", "email", "amount"], ["Jane", "jane@example.com", 50]]),
        ("Old", [["name", "email", "amount"], ["Old", "old@example.com", 10]]),
    )
    table = read_table(data, "recipients.xlsx")
    assert (table.sheet, table.header_row, table.rows[0].number) == ("Recipients", 2, 3)


def test_a_workbook_without_a_header_in_its_top_rows_is_refused_naming_the_missing_columns():
    data = workbook_bytes(("S", [["ACME gift cards"], ["Navn", "Mail", "Amount"], ["Jane", "jane@example.com", 50]]))
    message = refusal(data)
    assert "The header row (row 2) has no name (or first_name and last_name) and no email column." in message
    assert "Columns found: 'Navn', 'Mail', 'Amount'." in message


def test_a_workbook_of_endless_title_rows_is_refused_quickly():
    data = workbooks.endless_titles_xlsx()
    started = time.monotonic()
    message = refusal(data)
    assert time.monotonic() - started < 5.0
    assert "the first 10 non-blank rows" in message


# --- The admin preview and send_csv -------------------------------------------------------


def test_the_preview_says_which_row_was_the_header_and_the_orders_keep_the_sheet_rows(
    admin_client, emulated_gogift_account
):
    content = ("ACME A/S\nGift cards, June\nname,email,amount\n" + ROW + "John Roe,john@example.com,60\n").encode()
    preview = upload(admin_client, emulated_gogift_account, content)

    html = preview.content.decode()
    assert ('<p id="header-row-note" class="giftdesk-note">Row 3 was taken as the header; '
            "the 2 rows above it were skipped.</p>") in html
    assert "2 valid rows will become orders" in html
    assert not Batch.objects.exists()
    assert confirm(admin_client, preview).status_code == 302
    assert sorted(Order.objects.values_list("source_row", flat=True)) == [4, 5]


def test_the_preview_says_nothing_about_the_header_when_it_is_row_1(admin_client, emulated_gogift_account):
    preview = upload(admin_client, emulated_gogift_account, ("name,email,amount\n" + ROW).encode())
    assert "1 valid row will become an order" in preview.content.decode()
    assert "header-row-note" not in preview.content.decode()


def test_send_csv_prints_the_header_note_and_numbers_rows_as_the_sheet(emulated_gogift_account, tmp_path):
    path = tmp_path / "hr_export.csv"
    path.write_bytes(("Gift cards\nname;email;amount\nJane;jane@example.com;50\nJohn;john@;60\n").encode())

    code, output = send_csv(path, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID,
                            "--dry-run")

    assert code == 1, output
    assert "Row 2 was taken as the header; the row above it was skipped." in output
    assert "Row 4, email: 'john@' is not a valid email address" in output
    assert "1 valid row (50.00 DKK), 1 invalid row." in output
    assert not Batch.objects.exists()
