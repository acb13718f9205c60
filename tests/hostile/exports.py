"""Exporting orders the ways finance does: the admin's CSV and XLSX, and `export_orders`."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
from django import forms
from django.urls import reverse

from orders.models import Order
from tests.commands import run_command


def admin_export(client, file_format: str) -> bytes:
    """Every order through the order list's export, every column ticked, as "CSV" or "XLSX"."""
    order_ids = list(Order.objects.values_list("pk", flat=True))
    page = client.post(reverse("admin:orders_order_changelist"),
                       {"action": "export_admin_action", "_selected_action": order_ids})
    form = page.context["form"]
    choices = {label.upper(): value for value, label in form.fields["format"].choices}
    data = {"format": choices[file_format], "resource": "0", "export_items": order_ids}
    data.update({name: "on" for name, field in form.fields.items() if isinstance(field, forms.BooleanField)})
    response = client.post(reverse("admin:orders_order_export"), data)
    assert response.status_code == 200, response.status_code
    return response.content


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
