"""The order list's export (issue 11, orders/admin_export.py): the page counts and names what
the list's filters, search or selection chose; the file (CSV streamed, XLSX from a temporary
file) has exactly those orders, the columns of `manage.py export_orders`, in a number of
queries that does not grow with the orders and in memory that stays flat (on PostgreSQL
through a server-side cursor closed with the response); a selection of more than 1,000
orders exports (no HTTP 400); a large count warns that the XLSX takes time; only
`orders.export_order` may; each export is one audit entry. Escaping of every formula
prefix: test_exports.py."""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import tracemalloc
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
from django.core.management import call_command
from django.db import connection
from django.http import FileResponse, StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from orders.exports import CSV_ROWS_PER_CHUNK, HEADER
from orders.models import Batch, Order, OrderStatus, Recipient
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import make_batch, person

CHANGELIST = reverse("admin:orders_order_changelist")
EXPORT_URL = reverse("admin:orders_order_export")
FILE_NAME = re.compile(r'attachment; filename="orders-\d{4}-\d{2}-\d{2}-\d{4}\.(csv|xlsx)"')


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def finance(db) -> Client:
    return signed_in(person("fiona", "Finance"))


@pytest.fixture
def sender(db) -> Client:
    return signed_in(person("sam", "Senders"))


def bulk_orders(product: Product, count: int, *, status=OrderStatus.DELIVERED, user=None, start: int = 0) -> Batch:
    """`count` orders in one batch, written in bulk (the engine plays no part in an export)."""
    batch = Batch.objects.create(name=f"Bulk {start}", campaign="HR - Q4", account=product.account,
                                 created_by=user, approved_by=user)
    recipients = Recipient.objects.bulk_create([
        Recipient(name=f"Person {i}", email=f"person{i}@example.com", reference=f"E{i:06d}")
        for i in range(start, start + count)])
    Order.objects.bulk_create([
        Order(batch=batch, recipient=recipient, product=product, amount=Decimal("100.00"),
              currency=product.currency, reference=f"GD-T-{i:08d}", source_row=i - start + 2, status=status,
              provider_order_id=f"GG-{i}", cost=Decimal("101.25"), cost_currency=product.currency,
              last_error="-Refused: out of stock" if i % 7 == 0 else "")
        for i, recipient in zip(range(start, start + count), recipients)])
    return batch


def file_of(response) -> bytes:
    """The whole file of a streamed response, as the browser receives it."""
    return b"".join(response.streaming_content)


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def xlsx_rows(content: bytes) -> list[tuple]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    return list(sheet.iter_rows(values_only=True))


def references(content: bytes) -> list[str]:
    return sorted(row["reference"] for row in csv_rows(content))


# --- The page follows the list ---------------------------------------------------------------

@pytest.fixture
def three_orders(global_gift_card):
    """A failed order for anna@, a pending one for anna@ and a pending one for bo@."""
    orders = list(make_batch(global_gift_card.account, ["100", "200", "300"]).orders.order_by("source_row"))
    emails = ["anna@example.com", "anna@example.com", "bo@example.com"]
    for order, email in zip(orders, emails):
        Recipient.objects.filter(pk=order.recipient_id).update(email=email)
    Order.objects.filter(pk=orders[0].pk).update(status=OrderStatus.FAILED)
    return [order.reference for order in orders]


@pytest.mark.parametrize("query, chosen, words", [
    ("", [0, 1, 2], []),
    ("status__exact=failed", [0], ["Status: Failed"]),
    ("q=anna%40example.com", [0, 1], ["Search: “anna@example.com”"]),
    ("status__exact=pending&q=anna%40example.com", [1], ["Status: Pending", "Search: “anna@example.com”"]),
])
def test_the_page_and_the_file_follow_the_lists_filters_and_search(finance, three_orders, query, chosen, words):
    listing = finance.get(f"{CHANGELIST}?{query}").content.decode()
    button = re.search(r'<a href="([^"]+)" id="export-orders"', listing).group(1).replace("&amp;", "&")
    assert button == (f"{EXPORT_URL}?{query}" if query else EXPORT_URL)  # the button carries the list's query

    page = finance.get(button)
    html = page.content.decode()
    count = f"<strong>{len(chosen)} order{'s' if len(chosen) != 1 else ''}</strong>"
    assert page.status_code == 200 and count in html
    assert re.findall(r"<li>(.*?)</li>", html.split('id="export-criteria"')[1].split("</ul>")[0]
                      if words else "") == words
    if not words:
        assert "no filter or search is applied" in html
    for file_format in ("csv", "xlsx"):
        response = finance.post(button, {"format": file_format})
        content = file_of(response)
        exported = references(content) if file_format == "csv" else sorted(row[0] for row in xlsx_rows(content)[1:])
        assert exported == sorted(three_orders[index] for index in chosen), file_format
        assert FILE_NAME.fullmatch(response["Content-Disposition"])


def test_the_list_page_number_is_not_a_filter(finance, three_orders):
    # The list's third page (or "show all") is how it was looked at: the export takes every page.
    listing = finance.get(f"{CHANGELIST}?status__exact=pending&p=1&all=").content.decode()
    button = re.search(r'<a href="([^"]+)" id="export-orders"', listing).group(1).replace("&amp;", "&")
    assert button == f"{EXPORT_URL}?status__exact=pending"
    response = finance.post(f"{EXPORT_URL}?status__exact=pending&p=7", {"format": "csv"})
    assert references(file_of(response)) == sorted(three_orders[1:])


def test_a_date_range_and_another_lookup_are_named_in_words(finance, global_gift_card, settings):
    settings.TIME_ZONE = "Europe/Copenhagen"
    batch = make_batch(global_gift_card.account, ["100", "200"])
    first, second = batch.orders.order_by("source_row")
    Order.objects.filter(pk=first.pk).update(created_at=timezone.make_aware(datetime(2026, 2, 10, 12)))
    Order.objects.filter(pk=second.pk).update(created_at=timezone.make_aware(datetime(2026, 3, 10, 12)))
    query = (f"created_at__range__gte=2026-02-01&created_at__range__lte=2026-02-28&batch__id__exact={batch.pk}"
             "&amount__gte=50")

    html = finance.get(f"{EXPORT_URL}?{query}").content.decode()

    assert "<strong>1 order</strong> matches" in html
    assert "Date created: 2026-02-01, 2026-02-28" in html  # in the totals page's words
    assert f"Batch: {batch}" in html
    assert "amount__gte = 50" in html  # a lookup no sidebar filter offers, named as it is
    assert references(file_of(finance.post(f"{EXPORT_URL}?{query}", {"format": "csv"}))) == [first.reference]


def test_filters_that_do_not_apply_go_back_to_the_list_with_a_message(finance, three_orders):
    response = finance.get(f"{EXPORT_URL}?no_such_field=1", follow=True)
    assert response.redirect_chain[-1][0].startswith(CHANGELIST)
    assert "do not apply to orders" in response.content.decode()


def test_an_unknown_format_is_refused_with_a_message(finance, three_orders):
    response = finance.post(EXPORT_URL, {"format": "pdf"}, follow=True)
    assert "Choose CSV or XLSX" in response.content.decode()
    assert not AuditEntry.objects.filter(action=AuditAction.EXPORT).exists()


def test_a_large_export_says_the_xlsx_takes_time_and_names_the_command(finance, global_gift_card, monkeypatch):
    monkeypatch.setattr("orders.admin_export.LARGE_EXPORT", 3)
    bulk_orders(global_gift_card, 3)
    assert 'id="export-large"' not in finance.get(EXPORT_URL).content.decode()  # 3 is not more than 3

    bulk_orders(global_gift_card, 1, start=3)
    page = finance.get(EXPORT_URL).content.decode()

    notice = page.split('id="export-large"')[1].split("</ul>")[0]
    assert "The CSV starts downloading at once" in notice and "The XLSX is sent only once it is complete" in notice
    assert "<code>manage.py export_orders</code> or the scheduled export" in notice
    assert 'id="export-xlsx"' in page  # still offered


def test_more_orders_than_an_xlsx_sheet_holds_are_offered_as_csv_only(finance, global_gift_card, monkeypatch):
    monkeypatch.setattr("orders.admin_export.XLSX_MAX_ORDERS", 2)
    bulk_orders(global_gift_card, 3)

    page = finance.get(EXPORT_URL).content.decode()
    refused = finance.post(EXPORT_URL, {"format": "xlsx"}, follow=True).content.decode()

    assert 'id="export-csv"' in page and 'id="export-xlsx"' not in page and "do not fit in one XLSX sheet" in page
    assert "do not fit in one XLSX sheet: filter the list to fewer orders, or export CSV." in refused
    assert not AuditEntry.objects.filter(action=AuditAction.EXPORT).exists()


# --- Selections --------------------------------------------------------------------------------

def test_the_action_leads_to_the_page_of_the_selected_orders(finance, three_orders):
    ids = list(Order.objects.filter(reference__in=three_orders[1:]).values_list("pk", flat=True))

    redirect = finance.post(f"{CHANGELIST}?status__exact=pending&o=2",
                            {"action": "export_selected_orders", "_selected_action": ids})

    assert redirect.status_code == 302
    url = urlsplit(redirect["Location"])
    assert url.path == EXPORT_URL
    assert parse_qs(url.query) == {"id__in": [",".join(map(str, ids))], "o": ["2"]}
    page = finance.get(redirect["Location"]).content.decode()
    assert "<strong>2 selected orders</strong> chosen in the list." in page
    assert references(file_of(finance.post(redirect["Location"], {"format": "csv"}))) == sorted(three_orders[1:])
    entry = AuditEntry.objects.get(action=AuditAction.EXPORT)
    assert "2 selected in the list" in entry.summary and "filtered by" not in entry.summary


@pytest.fixture
def fifteen_hundred(global_gift_card):
    bulk_orders(global_gift_card, 1500)
    bulk_orders(global_gift_card, 20, status=OrderStatus.FAILED, start=5000)  # not chosen below
    return Order.objects.filter(status=OrderStatus.DELIVERED)


def test_select_all_of_1500_filtered_orders_exports_them_all(finance, fifteen_hundred):
    page_ids = list(fifteen_hundred.order_by("-id").values_list("pk", flat=True)[:100])  # the page's checkboxes

    redirect = finance.post(f"{CHANGELIST}?status__exact=delivered", {
        "action": "export_selected_orders", "_selected_action": page_ids, "select_across": "1"})

    assert redirect.status_code == 302 and redirect["Location"] == f"{EXPORT_URL}?status__exact=delivered"
    page = finance.get(redirect["Location"])
    assert page.status_code == 200 and "<strong>1,500 orders</strong> match" in page.content.decode()
    response = finance.post(redirect["Location"], {"format": "csv"})
    assert response.status_code == 200
    assert references(file_of(response)) == sorted(fifteen_hundred.values_list("reference", flat=True))


def test_1500_selected_orders_by_id_export_without_http_400(finance, fifteen_hundred):
    # As many ids as a selection can name: one parameter, never a form field per order.
    ids = ",".join(str(pk) for pk in fifteen_hundred.values_list("pk", flat=True))
    url = f"{EXPORT_URL}?id__in={ids}"

    page = finance.get(url)
    csv_file = finance.post(url, {"format": "csv"})
    xlsx_file = finance.post(url, {"format": "xlsx"})

    assert (page.status_code, csv_file.status_code, xlsx_file.status_code) == (200, 200, 200)
    assert "<strong>1,500 selected orders</strong>" in page.content.decode()
    assert len(csv_rows(file_of(csv_file))) == 1500
    assert len(xlsx_rows(file_of(xlsx_file))) == 1501  # and the header
    entry = AuditEntry.objects.filter(action=AuditAction.EXPORT).order_by("pk").last()
    assert "Exported 1500 orders (150,000.00 DKK) as XLSX from the admin; 1500 selected in the list." \
        in entry.summary


# --- Cost: queries and memory ------------------------------------------------------------------

@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_number_of_queries_does_not_grow_with_the_orders(finance, global_gift_card, file_format):
    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = finance.post(EXPORT_URL, {"format": file_format})
            file_of(response)  # the streamed file is read while it is sent (then closed, as a server does)
        return len(queries)

    users = [person("uma"), person("ulf")]
    bulk_orders(global_gift_card, 1, user=users[0])
    one = queries_for_export()
    for index in range(4):  # other batches, uploaders and approvers: no query per batch or user
        bulk_orders(global_gift_card, 50, user=users[index % 2], start=100 * (index + 1))
    assert queries_for_export() == one


def peak_memory_while_exporting(client: Client) -> tuple[int, int]:
    """(peak bytes allocated while the CSV is requested and consumed, bytes received)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = client.post(EXPORT_URL, {"format": "csv"})
        assert isinstance(response, StreamingHttpResponse) and response.streaming
        received = sum(len(chunk) for chunk in response.streaming_content)
        return tracemalloc.get_traced_memory()[1], received
    finally:
        tracemalloc.stop()


def test_the_csv_is_streamed_in_flat_memory(finance, global_gift_card, monkeypatch):
    # Rows are read CHUNK_SIZE at a time, and for a moment two reads are held (the next one is
    # fetched before the last is let go): smaller reads, so both sets span several of them.
    monkeypatch.setattr("orders.admin_export.CHUNK_SIZE", 500)
    bulk_orders(global_gift_card, 2_000)
    peak_memory_while_exporting(finance)  # once first: what the first request of all loads is no export's
    small_peak, small_size = peak_memory_while_exporting(finance)
    bulk_orders(global_gift_card, 18_000, start=2_000)

    # Sent in pieces, the first before most orders are read: the header and a few hundred lines.
    chunks = iter(finance.post(EXPORT_URL, {"format": "csv"}).streaming_content)
    first = next(chunks).decode("utf-8-sig").splitlines()
    assert first[0] == ",".join(HEADER) and len(first) == CSV_ROWS_PER_CHUNK + 1
    assert len(list(chunks)) == 20_000 // CSV_ROWS_PER_CHUNK  # the rest, and the empty end

    large_peak, large_size = peak_memory_while_exporting(finance)
    assert large_size > 9 * small_size  # ten times the orders went out...
    assert large_peak <= 1.5 * small_peak, (small_peak, large_peak)  # ...in the same memory


def unlinked_temporary_files() -> set[str]:
    """The files this process holds open that have no name left (Linux: /proc/self/fd)."""
    held = {os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink()}
    return {target for target in held
            if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)")}


def test_the_xlsx_temporary_file_is_gone_once_the_response_is_closed(finance, global_gift_card):
    bulk_orders(global_gift_card, 3)
    before = unlinked_temporary_files()

    response = finance.post(EXPORT_URL, {"format": "xlsx"})

    assert isinstance(response, FileResponse)
    held = unlinked_temporary_files() - before
    assert len(held) == 1  # while it is sent: an open file without a name nobody else can open
    assert int(response["Content-Length"]) == len(file_of(response))  # read to the end: closed by the response
    assert unlinked_temporary_files() - before == set()


def pg_cursors() -> list[tuple[str, bool]]:
    """The server-side cursors open on this connection: (name, WITH HOLD)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, is_holdable FROM pg_cursors")
        return cursor.fetchall()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="server-side cursors are PostgreSQL's")
@pytest.mark.parametrize("conn_max_age", [0, 600], ids=["connection per request", "persistent connection"])
def test_on_postgresql_the_csv_reads_a_server_side_cursor_closed_with_the_response(
        migrated_roles_restored, global_gift_card, monkeypatch, conn_max_age):
    # Outside a test transaction, as in production (autocommit, ATOMIC_REQUESTS off).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", conn_max_age)
    connection.close()  # the next connection takes CONN_MAX_AGE
    finance = signed_in(person("fiona", "Finance"))
    bulk_orders(global_gift_card, 3 * CSV_ROWS_PER_CHUNK)

    response = finance.post(EXPORT_URL, {"format": "csv"})
    assert pg_cursors() == []  # nothing read before the server asks for the first piece
    chunks = iter(response.streaming_content)
    next(chunks)
    [(_, with_hold)] = pg_cursors()  # read in chunks, not all at once...
    assert with_hold  # ...by a cursor that outlives the autocommit of its DECLARE
    response.close()  # what the WSGI server does, also when the browser leaves mid-file

    if conn_max_age:
        assert connection.connection is not None and pg_cursors() == []  # kept, without the cursor
    else:
        assert connection.connection is None  # closed at the end of the request, cursor and all


# --- Who, and the audit trail -------------------------------------------------------------------

def test_finance_may_export_and_a_sender_may_not(finance, sender, three_orders):
    listing = finance.get(CHANGELIST).content.decode()
    assert "Export these orders" in listing and 'value="export_selected_orders"' in listing
    assert finance.get(EXPORT_URL).status_code == 200
    assert finance.post(EXPORT_URL, {"format": "csv"}).status_code == 200

    listing = sender.get(CHANGELIST)
    assert listing.status_code == 200  # Senders read the list...
    assert "Export these orders" not in listing.content.decode()  # ...without the button
    assert "export_selected_orders" not in listing.content.decode()  # or the action
    assert sender.get(EXPORT_URL).status_code == 403
    assert sender.post(EXPORT_URL, {"format": "csv"}).status_code == 403
    assert sender.post(EXPORT_URL, {"format": "xlsx"}).status_code == 403
    assert AuditEntry.objects.filter(action=AuditAction.EXPORT).count() == 1  # Finance's only


def test_the_export_permission_without_reading_orders_exports_nothing(db, three_orders):
    from django.contrib.auth.models import Permission

    user = person("xena")
    user.user_permissions.add(Permission.objects.get(codename="export_order", content_type__app_label="orders"))
    client = signed_in(user)

    assert (client.get(EXPORT_URL).status_code, client.post(EXPORT_URL, {"format": "csv"}).status_code) == (403, 403)
    assert not AuditEntry.objects.filter(action=AuditAction.EXPORT).exists()


def eur_account() -> Product:
    account = ProviderAccount.objects.create(name="Gifty NL", kind="gifty")
    return Product.objects.create(account=account, provider_product_id="gc", sku="GIFTY-EUR", title="Gifty card",
                                  currency="EUR", pricing=PricingKind.RANGE, min_amount=Decimal("5"),
                                  max_amount=Decimal("500"), step=Decimal("1"))


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_each_export_is_an_audit_entry_with_count_totals_and_filters(finance, global_gift_card, file_format):
    make_batch(global_gift_card.account, ["100", "250"])
    make_batch(eur_account().account, ["25", "40"], sku="GIFTY-EUR")
    make_batch(global_gift_card.account, ["1000"])
    Order.objects.filter(amount=Decimal("1000")).update(status=OrderStatus.FAILED)

    response = finance.post(f"{EXPORT_URL}?status__exact=pending&q=example.com", {"format": file_format})
    file_of(response)

    entry = AuditEntry.objects.get(action=AuditAction.EXPORT)
    assert (entry.username, entry.amounts) == ("fiona", {"DKK": "350.00", "EUR": "65.00"})
    assert (f"Exported 4 orders (350.00 DKK and 65.00 EUR) as {file_format.upper()} from the admin; "
            "filtered by status__exact=pending; search “example.com”.") == entry.summary


# --- The same columns as export_orders ---------------------------------------------------------

def test_the_admin_files_have_the_columns_and_cells_of_export_orders(finance, global_gift_card, tmp_path, admin_user):
    batch = bulk_orders(global_gift_card, 5, user=admin_user)
    sent = timezone.make_aware(datetime(2026, 3, 2, 9))
    Order.objects.filter(batch=batch).update(submitted_at=sent, completed_at=sent, card_code_last4="WXYZ")
    call_command("export_orders", "--format", "csv", "--output", str(tmp_path / "o.csv"), stdout=io.StringIO())
    call_command("export_orders", "--format", "xlsx", "--output", str(tmp_path / "o.xlsx"), stdout=io.StringIO())

    admin_csv = csv_rows(file_of(finance.post(EXPORT_URL, {"format": "csv"})))
    admin_xlsx = xlsx_rows(file_of(finance.post(EXPORT_URL, {"format": "xlsx"})))
    command_csv = csv_rows((tmp_path / "o.csv").read_bytes())
    command_xlsx = xlsx_rows((tmp_path / "o.xlsx").read_bytes())

    assert list(admin_csv[0]) == list(command_csv[0]) == HEADER
    assert list(admin_xlsx[0]) == list(command_xlsx[0]) == HEADER
    # The list shows the newest first, the command the oldest: the same lines either way.
    assert sorted(admin_csv, key=lambda row: row["reference"]) == command_csv
    assert sorted(admin_xlsx[1:]) == sorted(command_xlsx[1:])
    assert command_csv[0]["card_code"] == "••••WXYZ" and command_csv[0]["uploaded_by"] == admin_user.username

