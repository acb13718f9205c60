"""The import form offers the chosen account's active products only, each with its price rule."""

import html
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from orders.models import Batch
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import person

IMPORT_URL = reverse("admin:orders_batch_import")
PRODUCTS_URL = reverse("admin:orders_batch_import_products")


@pytest.fixture
def catalogs(gogift_account, global_gift_card, fixed_price_card):
    """Two accounts whose catalogs both hold a "Spa Day", and a product no longer offered."""
    other = ProviderAccount.objects.create(name="UGiftMe EU", kind="ugiftme")
    Product.objects.create(account=other, provider_product_id="spa-eu", title="Spa Day", currency="EUR",
                           pricing=PricingKind.FIXED, denominations=["100", "25", "50"])
    Product.objects.create(account=gogift_account, provider_product_id="old", sku="OLD", title="Retired Card",
                           currency="DKK", pricing=PricingKind.FIXED, denominations=["100"], is_active=False)
    return gogift_account, other


def product_options(page) -> list[str]:
    """The texts of the product select's options, as the page shows them."""
    select = re.search(r'<select name="default_product".*?</select>', page.content.decode(), re.S).group()
    return [html.unescape(text) for text in re.findall(r"<option[^>]*>(.*?)</option>", select, re.S)]


def chosen_account(page) -> str | None:
    select = re.search(r'<select name="account".*?</select>', page.content.decode(), re.S).group()
    found = re.search(r'<option value="(\d+)" selected>', select)
    return found and found.group(1)


def test_before_an_account_is_chosen_the_product_list_asks_for_one(admin_client, catalogs):
    page = admin_client.get(IMPORT_URL)

    assert chosen_account(page) is None
    assert product_options(page) == ["Choose an account first"]
    assert "Choose an account below to download a template" in page.content.decode()


def test_the_chosen_account_offers_only_its_active_products_labelled_with_their_price_rules(admin_client, catalogs):
    gogift, _ = catalogs

    page = admin_client.get(IMPORT_URL, {"account": gogift.pk})

    assert chosen_account(page) == str(gogift.pk)
    assert product_options(page) == [
        "None: each row names its product",
        "Spa Day — 500 DKK",
        "The Global Gift Card — 50–5,000 DKK in steps of 10",
    ]


def test_the_other_accounts_spa_day_is_offered_with_its_own_denominations(admin_client, catalogs):
    _, other = catalogs
    page = admin_client.get(IMPORT_URL, {"account": other.pk})
    assert product_options(page) == ["None: each row names its product", "Spa Day — 25, 50, 100 EUR"]


def test_the_only_active_account_is_chosen_from_the_start(admin_client, gogift_account, global_gift_card):
    ProviderAccount.objects.create(name="Switched off", kind="gifty", is_active=False)

    page = admin_client.get(IMPORT_URL)

    assert chosen_account(page) == str(gogift_account.pk)
    assert product_options(page)[1:] == ["The Global Gift Card — 50–5,000 DKK in steps of 10"]
    links = page.content.decode()
    template = reverse("admin:orders_batch_template")
    assert f'id="template-csv" class="button" href="{template}?account={gogift_account.pk}&amp;format=csv"' in links
    assert f'href="{template}?account={gogift_account.pk}&amp;format=xlsx"' in links


def test_after_a_form_error_the_product_list_is_still_the_chosen_accounts(admin_client, catalogs):
    _, other = catalogs

    # No file: the form comes back with its error and the posted choices.
    page = admin_client.post(IMPORT_URL, {"format": "0", "resource": "0", "account": other.pk})

    assert page.status_code == 200 and "This field is required" in page.content.decode()
    assert chosen_account(page) == str(other.pk)
    assert product_options(page) == ["None: each row names its product", "Spa Day — 25, 50, 100 EUR"]


def test_a_forged_product_of_another_account_is_refused_naming_its_account(admin_client, catalogs):
    gogift, other = catalogs
    foreign = Product.objects.get(account=other)

    page = admin_client.post(IMPORT_URL, {
        "import_file": SimpleUploadedFile("r.csv", b"name,email,amount\nAna,ana@example.com,100\n"),
        "format": "0", "resource": "0", "account": gogift.pk, "default_product": foreign.pk,
    })

    text = html.unescape(page.content.decode())
    assert "“Spa Day” belongs to UGiftMe EU, not to GoGift sandbox" in text
    assert "confirm-import" not in text and not Batch.objects.exists()


def test_a_product_no_longer_offered_is_refused(admin_client, catalogs):
    gogift, _ = catalogs
    retired = Product.objects.get(sku="OLD")
    page = admin_client.post(IMPORT_URL, {
        "import_file": SimpleUploadedFile("r.csv", b"name,email,amount\nAna,ana@example.com,100\n"),
        "format": "0", "resource": "0", "account": gogift.pk, "default_product": retired.pk,
    })
    assert "“Retired Card” is no longer offered by GoGift sandbox" in html.unescape(page.content.decode())


def test_the_product_list_view_gives_the_accounts_active_products_as_labelled(admin_client, catalogs):
    gogift, _ = catalogs

    answer = admin_client.get(PRODUCTS_URL, {"account": gogift.pk}).json()

    assert answer["empty_label"] == "None: each row names its product"
    assert [item["label"] for item in answer["products"]] == [
        "Spa Day — 500 DKK", "The Global Gift Card — 50–5,000 DKK in steps of 10"]
    assert {item["id"] for item in answer["products"]} == set(
        Product.objects.filter(account=gogift, is_active=True).values_list("pk", flat=True))


def test_the_product_list_view_answers_404_for_an_unknown_account(admin_client, catalogs):
    assert admin_client.get(PRODUCTS_URL, {"account": "9999"}).status_code == 404
    assert admin_client.get(PRODUCTS_URL, {"account": "x"}).status_code == 404
    assert admin_client.get(PRODUCTS_URL, {"account": "²"}).status_code == 404  # a digit to isdigit, not to int


@pytest.mark.parametrize("value", ["²", "٣", "x", "-1", "99999999999999999999999"],
                         ids=["superscript", "arabic-indic", "letter", "negative", "too-large"])
def test_a_link_naming_no_product_of_the_account_opens_the_form_without_one(admin_client, catalogs, value):
    gogift, _ = catalogs

    page = admin_client.get(IMPORT_URL, {"account": gogift.pk, "product": value})
    unknown_account = admin_client.get(IMPORT_URL, {"account": value})

    assert page.status_code == 200 and chosen_account(page) == str(gogift.pk)
    select = re.search(r'<select name="default_product".*?</select>', page.content.decode(), re.S).group()
    assert re.findall(r'<option value="([^"]*)" selected>', select) == [""]  # none chosen
    assert unknown_account.status_code == 200 and chosen_account(unknown_account) is None


def test_a_link_naming_the_accounts_product_chooses_it(admin_client, catalogs, global_gift_card):
    gogift, _ = catalogs
    page = admin_client.get(IMPORT_URL, {"account": gogift.pk, "product": global_gift_card.pk})
    assert re.search(rf'<option value="{global_gift_card.pk}" selected>', page.content.decode())


def test_the_product_list_view_needs_the_import_permission(catalogs):
    gogift, _ = catalogs
    finance = Client()
    finance.force_login(person("finance", "Finance"))
    assert finance.get(PRODUCTS_URL, {"account": gogift.pk}).status_code == 403


def test_two_products_that_would_read_the_same_are_told_apart(admin_client, gogift_account):
    for sku in ("SPA-A", "SPA-B"):
        Product.objects.create(account=gogift_account, provider_product_id="spa", sku=sku, title="Spa Day",
                               currency="DKK", pricing=PricingKind.FIXED, denominations=["500"])
    page = admin_client.get(IMPORT_URL, {"account": gogift_account.pk})
    assert product_options(page)[1:] == ["Spa Day — 500 DKK (SPA-A)", "Spa Day — 500 DKK (SPA-B)"]


@pytest.mark.parametrize("fields, rule", [
    ({"pricing": PricingKind.RANGE, "min_amount": "50", "max_amount": "5000", "step": "10"},
     "50–5,000 DKK in steps of 10"),
    ({"pricing": PricingKind.RANGE, "min_amount": "5", "max_amount": "500"}, "5–500 DKK"),
    ({"pricing": PricingKind.RANGE, "min_amount": "12.5"}, "from 12.50 DKK"),
    ({"pricing": PricingKind.FIXED, "denominations": ["100", "25", "39.50"]}, "25, 39.50, 100 DKK"),
])
def test_the_price_rule_reads_as_staff_write_it(fields, rule):
    values = {name: Decimal(value) if name.endswith(("amount", "step")) else value for name, value in fields.items()}
    assert Product(title="Card", currency="DKK", **values).pricing_summary() == rule
