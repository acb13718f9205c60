"""The spreadsheet template: the contract's columns, one example row the import accepts as
it is, the allowed values in notes; CSV and XLSX; and the round trip through the admin."""

import csv
import io

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from orders.models import Batch
from orders.spreadsheet.read import detect_delimiter
from orders.spreadsheet.headers import COLUMNS
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, person

TEMPLATE_URL = reverse("admin:orders_batch_template")
IMPORT_URL = reverse("admin:orders_batch_import")


def download(client, account, file_format="csv", product=None):
    query = {"account": account.pk, "format": file_format, **({"product": product.pk} if product else {})}
    return client.get(TEMPLATE_URL, query)


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def workbook(response):
    return openpyxl.load_workbook(io.BytesIO(response.content))  # not read-only: comments are read


# --- CSV -----------------------------------------------------------------------------------


def test_the_csv_template_of_a_range_product_has_notes_header_and_a_valid_example(
        admin_client, gogift_account, global_gift_card, fixed_price_card):
    response = download(admin_client, gogift_account, product=global_gift_card)

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="giftdesk-template-gogift-sandbox-aec9a553.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
    # The notes are quoted: their ";" must not make the reader take the file for semicolon-separated.
    assert detect_delimiter(response.content.decode("utf-8-sig")) == ","
    title, notes, header, example = csv_rows(response)
    assert len(title) == 1 and "GiftDesk recipients for GoGift sandbox" in title[0]
    assert len(notes) == 1 and notes[0].startswith("Allowed values.")
    assert "The Global Gift Card: 50–5,000 DKK in steps of 10." in notes[0]
    assert "SPA500DK = Spa Day, 500 DKK; AEC9A553 = The Global Gift Card, 50–5,000 DKK in steps of 10." in notes[0]
    assert "send_on (optional): A date as YYYY-MM-DD, today or later" in notes[0]
    assert header == COLUMNS
    assert dict(zip(header, example)) == {
        "name": "Jane Doe", "email": "jane.doe@example.com", "amount": "50", "currency": "DKK",
        "product": GLOBAL_GIFT_CARD_SKU, "phone": "+4512345678", "message": "Thank you for a great year!",
        "reference": "EMP-1001", "send_on": "",
    }


def test_the_csv_template_of_a_denomination_product_uses_one_of_its_values(
        admin_client, gogift_account, global_gift_card, fixed_price_card):
    Product.objects.filter(pk=fixed_price_card.pk).update(denominations=["1000", "500", "2500"])

    response = download(admin_client, gogift_account, product=fixed_price_card)

    *_, header, example = csv_rows(response)
    row = dict(zip(header, example))
    assert (row["amount"], row["currency"], row["product"]) == ("500", "DKK", "SPA500DK")
    assert "Spa Day: 500, 1,000, 2,500 DKK. Other products: see their price rules" in csv_rows(response)[1][0]


def test_without_a_product_the_example_row_uses_the_accounts_first_product(
        admin_client, gogift_account, global_gift_card, fixed_price_card):
    response = download(admin_client, gogift_account)
    assert response["Content-Disposition"] == 'attachment; filename="giftdesk-template-gogift-sandbox.csv"'
    *_, header, example = csv_rows(response)
    assert dict(zip(header, example))["product"] == "SPA500DK"  # "Spa Day" sorts first


def test_a_product_sharing_its_id_with_another_is_named_by_its_sku(admin_client, gogift_account):
    for sku, value in (("SPA-250", "250"), ("SPA-500", "500")):
        Product.objects.create(account=gogift_account, provider_product_id="spa", sku=sku, title="Spa Day",
                               currency="DKK", pricing=PricingKind.FIXED, denominations=[value])
    chosen = Product.objects.get(sku="SPA-500")
    *_, header, example = csv_rows(download(admin_client, gogift_account, product=chosen))
    assert dict(zip(header, example))["product"] == "SPA-500"


def test_an_account_without_active_products_gets_the_columns_and_says_why_there_is_no_example(
        admin_client, gogift_account):
    rows = csv_rows(download(admin_client, gogift_account))
    assert rows[2] == COLUMNS and len(rows) == 3
    assert "GoGift sandbox has no active products yet: sync its catalog" in rows[1][0]


# --- XLSX ----------------------------------------------------------------------------------


def test_the_xlsx_template_has_notes_on_the_header_and_an_allowed_values_sheet(
        admin_client, gogift_account, global_gift_card, fixed_price_card):
    response = download(admin_client, gogift_account, "xlsx", product=global_gift_card)

    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"] == 'attachment; filename="giftdesk-template-gogift-sandbox-aec9a553.xlsx"'
    book = workbook(response)
    assert book.sheetnames == ["Recipients", "Allowed values"]
    sheet = book["Recipients"]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == COLUMNS
    assert rows[1] == ["Jane Doe", "jane.doe@example.com", 50, "DKK", GLOBAL_GIFT_CARD_SKU, "+4512345678",
                       "Thank you for a great year!", "EMP-1001", None]
    assert len(rows) == 2
    notes = {cell.value: cell.comment.text for cell in sheet[1]}
    assert set(notes) == set(COLUMNS)
    assert "The Global Gift Card: 50–5,000 DKK in steps of 10." in notes["amount"]
    assert notes["send_on"].startswith("send_on (optional): A date as YYYY-MM-DD")

    allowed = [list(row) for row in book["Allowed values"].iter_rows(values_only=True)]
    assert ["SPA500DK", "Spa Day", "500 DKK", "DKK", "256314825926730001", "SPA500DK"] in allowed
    assert [GLOBAL_GIFT_CARD_SKU, "The Global Gift Card", "50–5,000 DKK in steps of 10", "DKK",
            "256314825926729728", GLOBAL_GIFT_CARD_SKU] in allowed
    columns = [row[0] for row in allowed]
    assert all(column in columns for column in COLUMNS)


def test_the_xlsx_template_of_a_denomination_product(admin_client, gogift_account, fixed_price_card):
    sheet = workbook(download(admin_client, gogift_account, "xlsx", product=fixed_price_card))["Recipients"]
    assert [cell.value for cell in sheet[2]][2:5] == [500, "DKK", "SPA500DK"]
    assert "Spa Day: 500 DKK." in sheet["C1"].comment.text


# --- The view: what it refuses ---------------------------------------------------------------


def test_an_unknown_account_product_or_format_is_refused_clearly(admin_client, gogift_account, global_gift_card):
    other = ProviderAccount.objects.create(name="Other", kind="gogift")
    foreign = Product.objects.create(account=other, provider_product_id="1", sku="X", title="Foreign",
                                     currency="DKK", pricing=PricingKind.FIXED, denominations=["100"])
    inactive = ProviderAccount.objects.create(name="Off", kind="gogift", is_active=False)

    unknown_account = admin_client.get(TEMPLATE_URL, {"account": "9999", "format": "csv"})
    garbled_account = admin_client.get(TEMPLATE_URL, {"account": "'; drop", "format": "csv"})
    # "²" is a digit to str.isdigit but not to int: refused like any other non-id, not a 500.
    superscript_account = admin_client.get(TEMPLATE_URL, {"account": "²", "format": "csv"})
    inactive_account = download(admin_client, inactive)
    foreign_product = download(admin_client, gogift_account, product=foreign)
    superscript_product = admin_client.get(TEMPLATE_URL, {"account": gogift_account.pk, "product": "²",
                                                          "format": "csv"})
    bad_format = download(admin_client, gogift_account, "pdf")

    for response in (unknown_account, garbled_account, superscript_account, inactive_account):
        assert response.status_code == 404 and "No active account has this id" in response.content.decode()
    for response in (foreign_product, superscript_product):
        assert response.status_code == 404
        assert "GoGift sandbox has no active product with this id" in response.content.decode()
    assert bad_format.status_code == 400 and "use format=csv or format=xlsx" in bad_format.content.decode()


def test_a_finance_user_without_the_import_permission_gets_403(gogift_account, global_gift_card):
    finance = Client()
    finance.force_login(person("finance", "Finance"))
    assert download(finance, gogift_account).status_code == 403
    assert download(finance, gogift_account, "xlsx").status_code == 403


def test_the_template_needs_a_login(client, gogift_account, global_gift_card):
    response = download(client, gogift_account)
    assert response.status_code == 302 and "/login/" in response.url


# --- The round trip: the template, uploaded unchanged, previews one valid row ------------------

EMULATED = ["emulated_gogift_account", "emulated_giftronaut_account", "emulated_gifty_account",
            "emulated_ugiftme_account"]


def upload_unchanged(client, account, response, file_format):
    return client.post(IMPORT_URL, {
        "import_file": SimpleUploadedFile(f"template.{file_format}", response.content),
        "format": "0", "resource": "0", "account": account.pk,
    })


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize("fixture", EMULATED)
def test_every_template_uploaded_unchanged_previews_exactly_one_valid_row(admin_client, request, fixture,
                                                                         file_format):
    account = request.getfixturevalue(fixture)
    for product in [None, *Product.objects.filter(account=account, is_active=True)]:
        template = download(admin_client, account, file_format, product=product)

        preview = upload_unchanged(admin_client, account, template, file_format)

        assert "result" in preview.context, (product, preview.context["form"].errors)  # the file was read
        result = preview.context["result"]
        assert not result.base_errors, (product, [str(error.error) for error in result.base_errors])
        checked = result.giftdesk_preview
        assert (len(checked.valid_rows), len(checked.invalid_rows)) == (1, 0), (product, checked.errors)
        if product is not None:
            assert checked.valid_rows[0].product == product
        assert 'id="confirm-import"' in preview.content.decode()
    assert not Batch.objects.exists()
