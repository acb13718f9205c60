"""Exporting orders the ways finance does: the admin's CSV and XLSX, and `export_orders`."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
from django.urls import reverse

from orders.models import Order
from tests.commands import run_command


def admin_export(client, file_format: str) -> bytes:
    """Every order through the order list's export ("select all", then the export page's
    button), as "CSV" or "XLSX". The browser posts the ticked boxes of the page shown (one
    here) with `select_across`: the action takes every order the list's filters choose."""
    one_ticked = Order.objects.values_list("pk", flat=True)[:1]
    page = client.post(reverse("admin:orders_order_changelist"),
                       {"action": "export_selected_orders", "_selected_action": list(one_ticked), "select_across": "1"})
    assert page.status_code == 302, page.status_code
    response = client.post(page["Location"], {"format": file_format.lower()})
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def command_export(file_format: str, directory: Path) -> bytes:
    path = directory / f"orders.{file_format}"
    code, output = run_command("export_orders", "--format", file_format, "--output", path)
    assert code == 0, output
    return path.read_bytes()


def xlsx_text(data: bytes) -> str:
    """Every part of a workbook as text, for a plain search."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return "".join(archive.read(name).decode(errors="replace") for name in archive.namelist())


def csv_cells(data: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) for cell in row]


def xlsx_cells(data: bytes) -> list[tuple[str, object]]:
    """(data type, value) of every cell; type "f" is a formula."""
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    return [(cell.data_type, cell.value) for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row]
