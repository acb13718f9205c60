"""The import form in a real browser: choosing an account refills the product list with that
account's products and prices (a static script, under the Content-Security-Policy), a file
already chosen stays chosen, and "Download a template" gives the account's spreadsheet.
"""

import csv
import io

import pytest
from django.urls import reverse

from orders.models import Batch
from providers.models import Product
from tests.browser.pages import ROOT, downloaded, log_in, page_checked, shot, watch
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "recipients.csv"
GOGIFT_PRODUCTS = [
    "None: each row names its product",
    "Euro Gift Card — 10–500 EUR in steps of 5",
    "Restaurant Gift Card — 100–2,000 DKK in steps of 50",
    "Spa Day — 250 DKK",
    "Spa Day — 500 DKK",
    "The Global Gift Card — 50–5,000 DKK in steps of 10",
    "Wine Tasting — 400 DKK",
]
GIFTY_PRODUCTS = [
    "None: each row names its product",
    "Dinner for two — 75 EUR",
    "Gift card — 5–500 EUR",
    "High tea for two — 39.50 EUR",
]


def products_offered(page) -> list[str]:
    return page.locator("#id_default_product option").all_inner_texts()


def wait_for_products(page, first_product: str) -> None:
    page.wait_for_function(
        """(label) => [...document.querySelectorAll("#id_default_product option")]
                       .some((option) => option.text === label)""", arg=first_product)


def test_choosing_an_account_offers_its_products_and_its_template(
        browser_page, live_server, admin_user, emulated_gogift_account, emulated_gifty_account, tmp_path):
    page = watch(browser_page)
    log_in(page, live_server, admin_user)

    page.goto(f"{live_server.url}{reverse('admin:orders_batch_import')}")
    assert products_offered(page) == ["Choose an account first"]
    assert page.locator("#template-csv").is_hidden()
    assert "Choose an account below to download a template" in page.inner_text("#import-template")
    shot(page, "import-form-1-no-account")

    # A file chosen first is still there after the account changes: the form is not reloaded.
    page.set_input_files("#id_import_file", str(EXAMPLE))
    page.select_option("#id_account", label=emulated_gogift_account.name)
    wait_for_products(page, GOGIFT_PRODUCTS[1])
    assert products_offered(page) == GOGIFT_PRODUCTS
    shot(page, "import-form-2-gogift-products")

    page.select_option("#id_account", label=emulated_gifty_account.name)
    wait_for_products(page, GIFTY_PRODUCTS[1])
    assert products_offered(page) == GIFTY_PRODUCTS
    assert page.eval_on_selector("#id_import_file", "input => input.files.length") == 1
    assert "for Gifty emulated" in page.inner_text("#template-links")

    page.select_option("#id_account", label=emulated_gogift_account.name)
    wait_for_products(page, GOGIFT_PRODUCTS[1])
    page.select_option("#id_default_product", label="The Global Gift Card — 50–5,000 DKK in steps of 10")
    card = Product.objects.get(account=emulated_gogift_account, sku=GLOBAL_GIFT_CARD_SKU)
    assert page.get_attribute("#template-csv", "href") == (
        f"{reverse('admin:orders_batch_template')}?account={emulated_gogift_account.pk}&product={card.pk}&format=csv")
    assert "for GoGift emulated, The Global Gift Card" in page.inner_text("#template-links")
    shot(page, "import-form-3-product-chosen")

    download = downloaded(page, "#template-csv")
    assert download.filename == "giftdesk-template-gogift-emulated-aec9a553.csv"
    rows = list(csv.reader(io.StringIO(download.text, newline="")))
    assert rows[2][:3] == ["name", "email", "amount"]
    assert dict(zip(rows[2], rows[3]))["product"] == GLOBAL_GIFT_CARD_SKU

    xlsx = downloaded(page, "#template-xlsx")
    workbook = tmp_path / xlsx.filename
    workbook.write_bytes(xlsx.content)

    # The template, uploaded as it came, previews one valid row.
    page.set_input_files("#id_import_file", str(workbook))
    page.click("input[type=submit]")
    page.wait_for_selector("#confirm-import")
    assert "1 valid row" in page.inner_text("#content")
    assert page.locator("#invalid-rows").count() == 0
    shot(page, "import-form-4-template-preview")
    assert not Batch.objects.exists()
    page_checked(page)
