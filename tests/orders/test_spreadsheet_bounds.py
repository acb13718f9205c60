"""A workbook is read with bounded work: rows, inflated bytes, memory and time (issue 8,
finding 4). The hostile workbooks come from tests/hostile_files.py, built in memory."""

from __future__ import annotations

import io
import os
import time
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from orders.models import Batch, Order
from orders.spreadsheet import FileRefused, read_table
from orders.spreadsheet.read import CappedZipFile
from providers.models import Product
from tests import hostile_files
from tests.commands import send_csv
from tests.fixtures.data import GLOBAL_GIFT_CARD_ID, GLOBAL_GIFT_CARD_SKU

PART_TOO_LARGE = "One part of this workbook unpacks to 190.7 MB; GiftDesk reads at most 100 MB per part."
PAST_LAST_ROW = "The file goes on past row 100,000, the last row GiftDesk reads (blank rows included)."
TOO_MUCH_MEMORY = "This workbook needs more than 120 MB of memory to read"
TOO_SLOW = "This workbook takes more than 2 seconds to read"
REMEDY = "Save it as CSV, or remove the empty rows and unused cells, and upload it again."


@cache
def blank_rows_bomb_200mb() -> bytes:
    return hostile_files.blank_rows_bomb()  # 1.8 MB on disk, 200 MB of sheet XML


@cache
def blank_rows_60mb() -> bytes:
    return hostile_files.blank_rows_bomb(60_000_000)  # under the part cap: 10 million rows


def refusal(data: bytes) -> str:
    with pytest.raises(FileRefused) as caught:
        read_table(data, "recipients.xlsx")
    return caught.value.message


def children_left() -> list[str]:
    """This process's child processes, zombies included."""
    children = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            children.append(f"{status.parent.name} {fields[0]}")
    return children


def upload_as_sender(client, account, content: bytes):
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    return client.post(reverse("admin:orders_batch_import"), {
        "import_file": SimpleUploadedFile("recipients.xlsx", content), "format": "0", "resource": "0",
        "account": account.pk, "default_product": product.pk,
    })


# --- blank rows ---------------------------------------------------------------------------


def test_the_200_mb_blank_rows_workbook_is_refused_at_once_from_its_zip_directory():
    data = blank_rows_bomb_200mb()
    started = time.monotonic()
    message = refusal(data)
    assert time.monotonic() - started < 2
    assert message.startswith(PART_TOO_LARGE) and message.endswith(REMEDY)
    assert len(data) < 2_000_000


def test_blank_rows_under_the_part_cap_stop_reading_at_the_last_row_read():
    started = time.monotonic()
    message = refusal(blank_rows_60mb())
    assert time.monotonic() - started < 10  # the whole sheet takes minutes
    assert message.startswith(PAST_LAST_ROW)


def test_the_blank_rows_workbook_is_refused_in_the_admin_for_a_sender_creating_nothing(
    sender, emulated_gogift_account
):
    started = time.monotonic()
    response = upload_as_sender(sender, emulated_gogift_account, blank_rows_bomb_200mb())
    html = response.content.decode()
    assert time.monotonic() - started < 5
    assert "GiftDesk reads at most 100 MB per part" in html
    assert "confirm-import" not in html
    assert not Batch.objects.exists() and not Order.objects.exists()


def test_blank_rows_past_the_last_row_read_are_refused_in_the_admin(sender, emulated_gogift_account):
    response = upload_as_sender(sender, emulated_gogift_account, blank_rows_60mb())
    html = response.content.decode()
    assert "the last row GiftDesk reads (blank rows included)" in html
    assert "confirm-import" not in html and not Batch.objects.exists()


@pytest.mark.parametrize("workbook", [blank_rows_bomb_200mb, blank_rows_60mb])
def test_send_csv_refuses_the_blank_rows_workbook_with_exit_two(workbook, emulated_gogift_account, tmp_path):
    path = tmp_path / "recipients.xlsx"
    path.write_bytes(workbook())
    started = time.monotonic()
    code, output = send_csv(path, "--account", emulated_gogift_account.name, "--product", GLOBAL_GIFT_CARD_ID)
    assert time.monotonic() - started < 10
    assert code == 2, output
    assert "Refused:" in output and "empty rows" in output
    assert not Batch.objects.exists() and not Order.objects.exists()


@override_settings(GIFTDESK_IMPORT_MAX_ROWS=10)
def test_rows_after_the_data_limit_are_not_read():
    # 10 allowed, 100,000 more, then XML that does not parse: read to the end, the file
    # would be "damaged"; read to the limit, it has too many rows.
    data = hostile_files.rows_after_the_data(10, 100_000, broken_tail=True)
    started = time.monotonic()
    assert "the limit is 10" in refusal(data)
    assert time.monotonic() - started < 4


@override_settings(GIFTDESK_IMPORT_MAX_SHEET_ROWS=50)
def test_reading_stops_at_the_last_row_read_too():
    data = hostile_files.rows_after_the_data(10, 100, broken_tail=True)
    assert refusal(data).startswith("The file goes on past row 50,")


@override_settings(GIFTDESK_IMPORT_MAX_SHEET_ROWS=50)
def test_the_last_row_read_is_a_setting_and_counts_blank_rows_of_a_csv_too():
    data = b"name,email,amount\nJane,jane@example.com,50\n" + b"\n" * 100
    assert refusal(data).startswith("The file goes on past row 50,")


# --- inflated bytes -----------------------------------------------------------------------


def test_a_part_whose_directory_size_lies_is_refused_without_inflating_it():
    data = hostile_files.lying_directory()  # declares 4 KB, inflates to 200 MB
    started = time.monotonic()
    message = refusal(data)
    assert time.monotonic() - started < 5
    assert "the workbook may be damaged" in message  # CPython stops at the declared size; the CRC fails


def test_a_part_is_held_to_the_cap_while_it_is_inflated_whatever_the_directory_says():
    data = hostile_files.rows_after_the_data(10, 1000)  # a sheet of 160 KB
    with CappedZipFile(io.BytesIO(data), cap=100_000) as archive:
        with pytest.raises(FileRefused) as caught:
            archive.read(hostile_files.SHEET_PATH)
        assert archive.read("xl/workbook.xml").startswith(b"<?xml")
    assert "GiftDesk reads at most 97.7 KB per part" in caught.value.message


@override_settings(GIFTDESK_IMPORT_MAX_UNZIPPED_BYTES=100_000)
def test_the_part_cap_is_a_setting():
    assert "GiftDesk reads at most 97.7 KB per part" in refusal(hostile_files.rows_after_the_data(10, 1000))


# --- memory and time ----------------------------------------------------------------------


@override_settings(GIFTDESK_IMPORT_READ_MEMORY_MB=120)
def test_a_workbook_that_needs_too_much_memory_is_refused_with_the_limit_named(
    sender, emulated_gogift_account
):
    # Four 24 MB shared strings: 0.8 MB on disk, about 145 MB to read (a normal workbook: under 80 MB).
    # The cap was 160 MB while the header lookup also copied the 24 MB first cell; it no longer does.
    data = hostile_files.shared_strings_bomb(strings=4, length=24_000_000)
    message = refusal(data)
    assert message.startswith(TOO_MUCH_MEMORY) and message.endswith(REMEDY)
    response = upload_as_sender(sender, emulated_gogift_account, data)
    assert TOO_MUCH_MEMORY in response.content.decode()
    assert not Batch.objects.exists()
    assert children_left() == []


@override_settings(GIFTDESK_IMPORT_READ_SECONDS=2)
def test_a_workbook_that_takes_too_long_is_killed_refused_and_leaves_no_zombie():
    # Five million rows all numbered 2: no row limit ever sees them.
    data = hostile_files.repeated_row_number()
    started = time.monotonic()
    message = refusal(data)
    assert time.monotonic() - started < 4
    assert message.startswith(TOO_SLOW) and message.endswith(REMEDY)
    assert children_left() == []


def test_the_reader_runs_in_a_child_process_without_touching_the_parents_memory():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table = read_table(hostile_files.rows_after_the_data(100, 0), "recipients.xlsx")
    assert len(table.rows) == 100 and table.rows[-1].cells["email"] == "p101@example.com"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss > 0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 20_000  # KB


# --- the same table as before -------------------------------------------------------------


def test_a_normal_workbook_reads_the_same_through_the_child_as_in_process():
    import openpyxl

    from orders.spreadsheet.limits import ReadLimits
    from orders.spreadsheet.read import read_xlsx

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in [
        ["Name", "E-mail", "Amount", "Send on", "Notes", "Message"],
        ["Jane", "jane@example.com", 50.0, datetime(2026, 7, 1, 9, 30), "n", "  "],
        [],
        ["Søren Ærø", "soren@example.com", 12.5, None, None, "Tak!\nfor i år"],
        ["  ", "bo@example.com", 100, "2026-08-01", "x", None, "right of the header"],
    ]:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()

    through_child = read_table(data, "recipients.xlsx")
    assert through_child == read_xlsx(data, "recipients.xlsx", ReadLimits.from_settings())
    assert [row.number for row in through_child.rows] == [2, 4, 5]
    assert through_child.rows[0].cells["message"] == "  "


def test_a_huge_header_cell_is_shortened_in_the_message():
    message = refusal(("x" * 100_000 + ",other\n").encode())
    assert len(message) < 500 and "'xxxxx" in message and "…'" in message
