"""Finance's totals above the order list (issue 11), in a real browser: a Finance user opens the
order list filtered by status, order_totals.js fills the box above the list with that filter's
totals per currency, and the breakdowns open below it. Every page passes `page_checked` (no
policy violation, script error, server error or sideways scrolling). Screenshots:
var/screenshots/order-totals-1-list.png, order-totals-2-breakdowns.png."""

import pytest
from django.urls import reverse

from orders.models import Batch, OrderStatus
from tests.browser.pages import ADMIN_PASSWORD, arrived, log_in, page_checked, shot, watch
from tests.fixtures.data import person
from tests.orders.test_order_totals import account_with_product, at, orders_made

pytestmark = pytest.mark.browser

DELIVERED, FAILED = OrderStatus.DELIVERED, OrderStatus.FAILED


def finance_user():
    user = person("fiona", "Finance")
    user.set_password(ADMIN_PASSWORD)
    user.save()
    return user


def test_the_order_list_filtered_by_status_shows_its_totals_and_their_breakdowns(browser_page, live_server):
    gogift = account_with_product("GoGift DK", "gogift", "DKK")
    gifty = account_with_product("Gifty NL", "gifty", "EUR")
    orders_made(Batch.objects.create(name="Christmas DK", account=gogift, campaign="Christmas 2024"),
                ("12500.00", "DKK", DELIVERED, "12500.00", "DKK", at(1, 15)),
                ("750.50", "DKK", DELIVERED, "751.75", "DKK", at(2, 3)),
                ("400.00", "DKK", FAILED, None, "", at(2, 4)))
    orders_made(Batch.objects.create(name="Christmas NL", account=gifty, campaign="Christmas 2024"),
                ("25.00", "EUR", DELIVERED, "25.00", "EUR", at(2, 10)),
                ("40.10", "EUR", DELIVERED, "299.00", "DKK", at(3, 1)))
    orders_made(Batch.objects.create(name="Onboarding", account=gogift, campaign=""),
                ("1000.00", "DKK", DELIVERED, None, "", at(3, 10)))
    page = watch(browser_page)
    log_in(page, live_server, finance_user())

    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}?status__exact=delivered")
    arrived(page, "#order-totals[data-loaded=true] #order-totals-per-currency")
    dkk = page.locator('#order-totals-per-currency tr[data-currency="DKK"]')
    eur = page.locator('#order-totals-per-currency tr[data-currency="EUR"]')
    assert page.locator("#order-totals-per-currency tbody tr").count() == 2
    assert dkk.locator('[data-field="orders"]').inner_text() == "3"
    assert dkk.locator('[data-field="face_value"]').inner_text() == "14,250.50 DKK"  # not the failed 400.00
    assert dkk.locator('[data-field="cost"]').inner_text().split("\n") == [
        "13,251.75 DKK", "1 bought order without a cost"]
    assert eur.locator('[data-field="face_value"]').inner_text() == "65.10 EUR"
    assert eur.locator('[data-field="cost"]').inner_text().split("\n") == ["25.00 EUR", "299.00 DKK"]
    # Right-aligned, and the breakdowns collapsed until opened.
    assert dkk.locator('[data-field="face_value"]').evaluate("cell => getComputedStyle(cell).textAlign") == "right"
    breakdowns = page.locator("#order-totals details.giftdesk-totals-breakdown")
    assert breakdowns.count() == 4
    assert not any(breakdowns.nth(index).evaluate("element => element.open") for index in range(4))
    assert "Totals of these 5 orders" in page.inner_text("#order-totals")
    shot(page, "order-totals-1-list")

    for index in range(4):
        breakdowns.nth(index).locator("summary").click()
    assert all(breakdowns.nth(index).evaluate("element => element.open") for index in range(4))
    by_provider = page.locator("#order-totals-by-provider tbody tr")
    assert [by_provider.nth(i).get_attribute("data-group") + " " + by_provider.nth(i).get_attribute("data-currency")
            for i in range(by_provider.count())] == ["Gifty EUR", "GoGift DKK"]
    by_campaign = page.inner_text("#order-totals-by-campaign")
    assert "Christmas 2024" in by_campaign and "No campaign" in by_campaign
    march = page.locator('#order-totals-by-month tr[data-group="March 2025"][data-currency="DKK"]')
    assert march.locator('[data-field="face_value"]').inner_text() == "1,000.00 DKK"
    shot(page, "order-totals-2-breakdowns")

    # The whole list: the totals come on the link's click, not with every opening of the list.
    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}")
    arrived(page, "#order-totals-link")
    assert page.inner_text("#order-totals-link") == "Show totals for all orders"
    assert page.locator("#order-totals-per-currency").count() == 0
    page.click("#order-totals-link")
    arrived(page, "#order-totals[data-loaded=true] #order-totals-per-currency")
    assert page.url.endswith(reverse("admin:orders_order_changelist"))  # stayed on the list
    assert page.locator('#order-totals-per-currency tr[data-currency="DKK"] [data-field="face_value"]') \
        .inner_text() == "14,650.50 DKK"  # with the failed 400.00
    page_checked(page)

    # A filter no order matches: the box says so, without a script error.
    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}?status__exact=cancelled")
    arrived(page, "#order-totals[data-loaded=true] #order-totals-content")
    assert "No orders match these filters." in page.inner_text("#order-totals")
    page_checked(page)

    # Without the script, the box's link opens the same totals as a page.
    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}?status__exact=delivered")
    totals_url = page.get_attribute("#order-totals", "data-totals-url")
    assert totals_url == f"{reverse('admin:orders_order_totals')}?status__exact=delivered"
    page.goto(f"{live_server.url}{totals_url}")
    arrived(page, "#order-totals-per-currency")
    assert "Status: Delivered." in page.inner_text("#order-totals-chosen")
    page_checked(page)
