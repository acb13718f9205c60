"""An order of a 50-card GoGift basket, in a real browser (issue 10, finding 2): the page is no
wider than the screen at 1400 and at 1000 pixels, calls collapsed or open, and shows none of
the basket's other recipients. Screenshots: var/screenshots/order-page-*.png."""

from decimal import Decimal

import pytest
from django.urls import reverse

from orders import dispatch
from orders.batches import batch_create, batch_send
from orders.models import Order, OrderStatus
from orders.spreadsheet import ValidRow
from providers.models import Product, ProviderAccount
from tests.browser.pages import log_in, page_checked, shot, watch
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU

pytestmark = pytest.mark.browser

CARDS = 50
WIDTHS = (1400, 1000)


def fifty_card_basket(account) -> list[Order]:
    ProviderAccount.objects.filter(pk=account.pk).update(max_cards_per_request=CARDS)
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    rows = [ValidRow(row=index + 2, name=f"Employee Number{index:02d} Longname", email=f"employee.{index:02d}@example.com",
                     phone="", reference=f"EMP-{1001 + index}", message="Tak for en fantastisk indsats i år!",
                     amount=Decimal(100 + 10 * index), currency="DKK", product=product, send_on=None)
               for index in range(CARDS)]
    batch = batch_create(account=account, rows=rows, source_filename="recipients.csv")
    batch_send(batch=batch)
    dispatch.account_pump(account.pk, budget_seconds=60)
    return list(batch.orders.select_related("recipient").order_by("id"))


def test_an_order_page_of_a_fifty_card_basket_fits_the_screen_and_shows_only_its_card(
    browser_page, live_server, admin_user, emulated_gogift_account
):
    orders = fifty_card_basket(emulated_gogift_account)
    assert {order.status for order in orders} == {OrderStatus.DELIVERED}
    order = orders[CARDS // 2]
    assert {call.orders.count() for call in order.provider_calls.all()} == {CARDS}  # one basket of 50
    # The longest things the page's other fields may hold: the provider's details, an error text.
    Order.objects.filter(pk=order.pk).update(
        provider_details={"balance": "350.00", "expires_at": "2029-12-06", "claim_hint": "x" * 400},
        last_error="GoGift said: " + "an-unbroken-provider-error-text-" * 12)
    page = watch(browser_page)
    log_in(page, live_server, admin_user)
    url = f"{live_server.url}{reverse('admin:orders_order_change', args=[order.pk])}"

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        page.wait_for_selector("#provider-calls details.provider-call")
        calls = page.locator("#provider-calls details.provider-call")
        assert calls.count() == order.provider_calls.count()
        assert all(not calls.nth(index).evaluate("element => element.open") for index in range(calls.count()))
        shot(page, f"order-page-{width}")  # page_checked: no wider than the window

        for index in range(calls.count()):
            calls.nth(index).locator("summary").click()
        assert all(calls.nth(index).evaluate("element => element.open") for index in range(calls.count()))
        shot(page, f"order-page-{width}-calls-open")

        text = page.inner_text("#content")
        assert order.recipient.email in text and "EMP-1026" in text
        shown = [other.recipient.email for other in orders if other.pk != order.pk and other.recipient.email in text]
        assert shown == []
        assert "25 other cards of this call hidden" in text and "Hidden: 49 entries about other cards of this call." in text

    # "Caused by" in the history opens the call it names.
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(url)
    delivered_by = page.locator("td.field-caused_by a").last
    target = delivered_by.get_attribute("href")
    assert "/baskets/finalize" in delivered_by.inner_text() and "127.0.0.1" not in delivered_by.inner_text()
    delivered_by.click()
    page.wait_for_function(f"document.querySelector('{target}').open")
    page_checked(page)

    # The list finds the order by the spreadsheet's reference, shown in its own column.
    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}")
    page.fill("#searchbar", "EMP-1026")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("td.field-spreadsheet_reference")
    assert page.locator("#result_list tbody tr").count() == 1
    assert page.inner_text("#result_list tbody td.field-spreadsheet_reference") == "EMP-1026"
    shot(page, "order-page-search")
