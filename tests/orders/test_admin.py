"""The admin screens through Django's test client: import, preview, confirm, send, export."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from orders.exports import HEADER
from orders.models import Batch, Order, OrderStatus
from providers.models import Product, ProviderAccount
from tests.admin_client import confirm_send
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_SECRET

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recipients.csv"
IMPORT_URL = reverse("admin:orders_batch_import")


@pytest.fixture
def staff(admin_client):
    return admin_client


def upload(client, account, content: bytes, name="recipients.csv", **fields):
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    data = {
        "import_file": SimpleUploadedFile(name, content),
        "format": "0",
        "resource": "0",
        "account": account.pk,
        "default_product": product.pk,
        "message": "Thank you!",
        **fields,
    }
    return client.post(IMPORT_URL, data)


def confirm(client, preview_response):
    form = preview_response.context["confirm_form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    return client.post(reverse("admin:orders_batch_process_import"), data)


def test_the_upload_page_offers_the_batch_options(staff, emulated_gogift_account):
    page = staff.get(IMPORT_URL)
    assert page.status_code == 200
    html = page.content.decode()
    for field in ("import_file", "account", "default_product", "default_amount", "message"):
        assert f'name="{field}"' in html


def test_the_preview_lists_valid_and_invalid_rows_and_creates_nothing(staff, emulated_gogift_account):
    response = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes())

    assert response.status_code == 200
    html = response.content.decode()
    assert "10 valid rows will become orders" in html
    assert "2 invalid rows will be left out" in html
    assert "is not a valid email address" in html and "anders.baek@example" in html
    assert "<td>5</td><td>email</td>" in html and "<td>9</td><td>amount</td>" in html
    assert "Total: <strong>11000.00 DKK</strong>" in html
    assert 'download="invalid-rows.csv"' in html
    assert not Batch.objects.exists() and not Order.objects.exists()


def test_confirming_creates_the_batch_with_the_valid_rows_only(staff, emulated_gogift_account, admin_user):
    preview = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes(), batch_name="Christmas 2026")
    response = confirm(staff, preview)

    batch = Batch.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:orders_batch_change", args=[batch.pk])
    assert batch.name == "Christmas 2026" and batch.created_by == admin_user
    assert batch.source_filename == "recipients.csv" and len(batch.source_checksum) == 64
    orders = list(batch.orders.order_by("source_row"))
    assert [order.source_row for order in orders] == [2, 3, 4, 6, 7, 8, 10, 11, 12, 13]
    assert {order.status for order in orders} == {OrderStatus.PENDING}
    assert orders[0].message == "Tak for en fantastisk indsats i år!"


def test_the_batch_page_shows_every_order_and_sends_on_request(staff, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "250"])
    page = staff.get(reverse("admin:orders_batch_change", args=[batch.pk]))
    html = page.content.decode()
    assert "Send this batch" in html and html.count("status-pending") >= 2
    all_orders = staff.get(reverse("admin:orders_order_changelist"), {"batch__id__exact": batch.pk})
    assert all_orders.status_code == 200 and all_orders.content.decode().count("status-pending") == 2

    response = confirm_send(staff, batch)

    assert "Queued 2 orders" in response.content.decode()
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}


def test_sending_a_sent_batch_again_says_why_not(staff, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    confirm_send(staff, batch)
    response = confirm_send(staff, batch)
    assert "has no pending orders to send" in response.content.decode()


def test_an_old_excel_file_is_refused_with_what_to_do(staff, emulated_gogift_account):
    response = upload(staff, emulated_gogift_account, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, name="x.xls")
    html = response.content.decode()
    assert "Save the spreadsheet as CSV" in html
    assert "confirm-import" not in html and not Batch.objects.exists()


def test_a_file_over_the_size_limit_is_refused_naming_the_limit(staff, emulated_gogift_account, settings):
    settings.GIFTDESK_IMPORT_MAX_BYTES = 1024 * 1024  # Sizes are counted as the README does: 1 MB = 1024 KB.
    response = upload(staff, emulated_gogift_account, b"name,email,amount\n" + b"x" * 1_200_000)
    assert "The file is 1.1 MB; the limit is 1 MB" in response.content.decode()


def test_a_file_without_amounts_and_no_default_amount_is_refused(staff, emulated_gogift_account):
    response = upload(staff, emulated_gogift_account, b"name,email\nAna,ana@example.com\n")
    html = response.content.decode()
    assert "The file cannot be imported" in html and "amount" in html
    assert "Traceback" not in html


def test_a_default_product_of_another_account_is_refused(staff, emulated_gogift_account):
    other = ProviderAccount.objects.create(name="Other", kind="gogift")
    foreign = Product.objects.create(account=other, provider_product_id="1", sku="X", title="Foreign",
                                     currency="DKK", pricing="fixed", denominations=["100"])
    response = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes(), default_product=foreign.pk)
    assert "belongs to Other" in response.content.decode()


def test_finance_can_export_orders_as_csv(staff, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "250"])
    order_ids = list(batch.orders.values_list("pk", flat=True))
    # The list action leads to the export page for the selection; its CSV button gives the file.
    redirect = staff.post(reverse("admin:orders_order_changelist"),
                          {"action": "export_selected_orders", "_selected_action": order_ids})
    form_page = staff.get(redirect["Location"])
    assert form_page.status_code == 200 and "2 selected orders" in form_page.content.decode()

    response = staff.post(redirect["Location"], {"format": "csv"})

    assert "text/csv" in response["Content-Type"]
    lines = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == HEADER
    assert len(lines) == 3 and all("@example.com,E000" in line and ",GoGift emulated," in line for line in lines[1:])


def test_the_order_list_shows_status_and_errors(staff, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    Order.objects.filter(batch=batch).update(status=OrderStatus.FAILED, last_error="GoGift refused the order: nope")
    html = staff.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "status-failed" in html and "GoGift refused the order: nope" in html


def test_account_credentials_are_never_shown_back(staff, emulated_gogift_account):
    html = staff.get(reverse("admin:providers_provideraccount_change", args=[emulated_gogift_account.pk])).content.decode()
    assert GOGIFT_TEST_CLIENT_SECRET not in html
    assert "Client ID, Client secret" in html  # which credentials are stored, not their values


def test_test_connection_reports_connected(staff, emulated_gogift_account):
    response = staff.post(reverse("admin:providers_provideraccount_changelist"),
                          {"action": "test_connection", "_selected_action": [emulated_gogift_account.pk]},
                          follow=True)
    assert "Connected." in response.content.decode()
    emulated_gogift_account.refresh_from_db()
    assert emulated_gogift_account.last_check_ok is True


def test_saving_the_account_form_blank_keeps_the_stored_secret(staff, emulated_gogift_account):
    url = reverse("admin:providers_provideraccount_change", args=[emulated_gogift_account.pk])
    account = emulated_gogift_account
    response = staff.post(url, {
        "name": account.name, "kind": account.kind, "environment": account.environment,
        "api_base_url": account.api_base_url, "auth_url": account.auth_url, "settings": "{}",
        "max_cards_per_request": 5, "rate_limit_per_minute": 60, "is_active": "on",
        "credential_client_id": "", "credential_client_secret": "",
    })
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.credentials["client_secret"] == GOGIFT_TEST_CLIENT_SECRET
    assert account.max_cards_per_request == 5


def test_a_large_batch_page_shows_the_first_orders_and_links_to_all(staff, emulated_gogift_account, monkeypatch):
    monkeypatch.setattr("orders.admin.ORDERS_SHOWN", 3)
    batch = make_batch(emulated_gogift_account, ["100"] * 5)
    html = staff.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    assert html.count("status status-pending") == 3  # three rows
    assert 'data-count="waiting">5<' in html  # and the progress bar counts all five
    assert "The first 3 of 5 orders are shown" in html


def test_a_large_preview_shows_the_first_rows_but_counts_them_all(staff, emulated_gogift_account, monkeypatch):
    monkeypatch.setattr("orders.admin_import.PREVIEW_ROWS_SHOWN", 2)
    rows = "".join(f"R{i},r{i}@example.com,100\n" for i in range(5)) + "Bad,bad,55\n"
    response = upload(staff, emulated_gogift_account, ("name,email,amount\n" + rows).encode())
    html = response.content.decode()
    assert "5 valid rows will become orders" in html
    assert "The first 2 of 5 valid rows are shown" in html
