"""The spending dashboard in a real browser (issue 11): Playwright driving Debian's Chromium
against a live server.

Finance logs in, opens the dashboard from the start page, and sees each currency's chart
drawn by Chart.js (served from static/, under the strict Content-Security-Policy): the canvas
has a size and dashboard.js marked it drawn. A bar leads to the orders it counts. The page
passes `page_checked` (no policy violation, no script error, nothing wider than the window)
at 1400 and at 1000 px, and with no order at all; screenshots:
var/screenshots/dashboard-1-finance.png, dashboard-2-narrow.png and dashboard-3-empty.png.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from orders.attention import RECENT_FAILURE_DAYS
from orders.models import Batch, Order, OrderStatus, Recipient
from providers.models import PricingKind, Product, ProviderAccount
from tests.browser.pages import arrived, log_in, page_checked, shot, watch

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
_serial = count(1)


def finance_user() -> User:
    user = User.objects.create_user("fiona.finance", "fiona@example.com", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))  # the migrated group (browser_page restores it)
    return user


def bought(card: Product, amount: str, created, status=OrderStatus.DELIVERED, **fields) -> Order:
    batch, _ = Batch.objects.get_or_create(name=f"{card.account.name} batch", account=card.account)
    serial = next(_serial)
    made = Order.objects.create(
        batch=batch, product=card, amount=Decimal(amount), currency=card.currency, status=status,
        recipient=Recipient.objects.create(name=f"Recipient {serial}", email=f"r{serial}@example.com"),
        reference=f"gd-browser-{serial}", **fields)
    Order.objects.filter(pk=made.pk).update(created_at=created)
    return made


def card(account: ProviderAccount, currency: str) -> Product:
    return Product.objects.create(account=account, provider_product_id=f"p-{next(_serial)}", title=f"{currency} card",
                                  currency=currency, pricing=PricingKind.RANGE)


@pytest.fixture
def a_year_of_spend():
    """Two providers in DKK and one in EUR, over several months; one failed order."""
    now = timezone.now()
    gogift = ProviderAccount.objects.create(name="GoGift DK", kind="gogift", balance=Decimal("48250.00"),
                                            balance_currency="DKK", balance_checked_at=now,
                                            last_checked_at=now, last_check_ok=True,
                                            last_check_message="Credentials accepted.")
    gifty = ProviderAccount.objects.create(name="Gifty NL", kind="gifty", last_checked_at=now, last_check_ok=False,
                                           last_check_message="Gifty answered 401: the API token is wrong.",
                                           blocked_reason="Gifty refused the API token.")
    dkk, gifty_dkk, eur = card(gogift, "DKK"), card(gifty, "DKK"), card(gifty, "EUR")
    this_month = []
    for months_ago in range(6):
        when = now - timedelta(days=31 * months_ago)
        made = [bought(dkk, f"{1500 + 250 * months_ago}.00", when),
                bought(gifty_dkk, f"{400 + 100 * months_ago}.00", when),
                bought(eur, "75.50", when, status=OrderStatus.PROCESSING)]
        if months_ago == 0:
            this_month = made
    bought(dkk, "900.00", now, status=OrderStatus.FAILED, completed_at=now, last_error="Refused by the provider.")
    bought(gifty_dkk, "100.00", now, status=OrderStatus.QUEUED)  # waits: Gifty NL is paused
    return {"this month": this_month}


DRAWN_PIXELS = """(canvas) => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let index = 3; index < data.length; index += 4) { if (data[index]) { painted += 1; } }
    return painted;
}"""

# Where Chart.js drew the GoGift bar of this month (the first dataset's last bar), in page pixels.
BAR_AT = """(canvas) => {
    const bar = window.Chart.getChart(canvas).getDatasetMeta(0).data.at(-1);
    const box = canvas.getBoundingClientRect();
    return {x: box.left + bar.x, y: box.top + (bar.y + bar.base) / 2};
}"""


def test_finance_opens_the_dashboard_from_the_start_page_and_the_charts_are_drawn(
    browser_page, live_server, a_year_of_spend
):
    page = watch(browser_page)
    log_in(page, live_server, finance_user(), PASSWORD)
    page.click("a#spending-dashboard")
    arrived(page, "#spend-per-month")
    assert page.url.endswith(reverse("admin:orders_order_dashboard")), page.url
    assert page.inner_text("#content h1") == "Spending dashboard"

    charts = page.locator("canvas[data-chart-data]")
    assert charts.count() == 2  # DKK and EUR: never one chart across currencies
    page.wait_for_selector('canvas[data-chart-data][data-drawn="true"]')
    for index in range(charts.count()):
        canvas = charts.nth(index)
        assert canvas.get_attribute("data-drawn") == "true"
        box = canvas.bounding_box()
        assert box["width"] > 300 and box["height"] > 200, box
        assert canvas.evaluate(DRAWN_PIXELS) > 1000, "the canvas is blank"
    # The numbers are in a table too, right-aligned.
    page.click("#spend-1 details summary")
    figure = page.locator("#spend-1 td.giftdesk-number").first
    assert figure.evaluate("(cell) => getComputedStyle(cell).textAlign") == "right"
    assert "48,250.00 DKK" in page.inner_text("#dashboard-accounts")
    attention = page.inner_text("#dashboard-attention")
    assert f"1 order failed in the past {RECENT_FAILURE_DAYS} days" in attention
    assert "1 order waits on Gifty NL, whose sending is paused" in attention
    shot(page, "dashboard-1-finance")

    page.set_viewport_size({"width": 1000, "height": 900})
    page.wait_for_function("""() => [...document.querySelectorAll("canvas[data-chart-data]")]
                              .every((canvas) => canvas.getBoundingClientRect().right <= window.innerWidth)""")
    assert charts.first.bounding_box()["width"] > 300
    # Every table fits: none hides a column behind its own scroll bar.
    hidden = page.evaluate("""() => [...document.querySelectorAll(".giftdesk-table-scroll")]
        .filter((box) => box.offsetParent && box.scrollWidth > box.clientWidth + 1)
        .map((box) => box.closest("[id]").id)""")
    assert hidden == [], hidden
    shot(page, "dashboard-2-narrow")

    # This month's GoGift bar leads to the order list of exactly those orders.
    point = charts.first.evaluate(BAR_AT)
    page.mouse.click(point["x"], point["y"])
    arrived(page, "#result_list")
    references = page.locator("#result_list tbody tr td.field-giftdesk_reference, "
                              "#result_list tbody tr th.field-giftdesk_reference").all_inner_texts()
    assert references == [a_year_of_spend["this month"][0].reference], references
    page_checked(page)


def test_the_dashboard_without_any_order_says_so_and_draws_nothing(browser_page, live_server):
    page = watch(browser_page)
    log_in(page, live_server, finance_user(), PASSWORD)
    page.goto(f"{live_server.url}{reverse('admin:orders_order_dashboard')}")
    arrived(page, "#spend-per-month")
    assert page.locator("canvas").count() == 0
    assert page.inner_text("#no-spend") == "No order was bought in the past 12 months."
    assert page.evaluate("() => typeof window.Chart") == "function"  # loaded, with nothing to draw
    assert "No account is paused" in page.inner_text("#dashboard-attention")
    assert "No provider account yet." in page.inner_text("#dashboard-accounts")
    shot(page, "dashboard-3-empty")
    page_checked(page)
