"""Finance's totals of the order list's filtered orders (issue 11): `orders.reports.order_totals`
and the admin's totals URL (orders/admin_totals.py), exact to the cent, per currency, with
breakdowns by provider, account, campaign and month created."""

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Batch, Order, OrderStatus, Recipient
from orders.reports import month, order_groups, order_totals
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import account_with_product, person

TOTALS_URL = reverse("admin:orders_order_totals")
LIST_URL = reverse("admin:orders_order_changelist")
FRAGMENT = {"HTTP_X_GIFTDESK_FRAGMENT": "totals"}  # as static/giftdesk/order_totals.js asks
UTC = ZoneInfo("UTC")
D = Decimal



def orders_made(batch: Batch, *orders: tuple) -> None:
    """(amount, currency, status, cost or None, cost currency, created in UTC) per order."""
    product = batch.account.products.first()
    for amount, currency, status, cost, cost_currency, created in orders:
        index = Order.objects.count()
        recipient = Recipient.objects.create(name=f"Person {index}", email=f"person{index}@example.com",
                                             reference=f"EMP-{index:04d}")
        order = Order.objects.create(batch=batch, recipient=recipient, product=product, amount=D(amount),
                                     currency=currency, reference=f"GD-T-{index:05d}", status=status,
                                     cost=None if cost is None else D(cost), cost_currency=cost_currency,
                                     provider_order_id=f"P-{index}")
        Order.objects.filter(pk=order.pk).update(created_at=created)  # auto_now_add otherwise


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


DELIVERED, PROCESSING, FAILED = OrderStatus.DELIVERED, OrderStatus.PROCESSING, OrderStatus.FAILED
CANCELLED, PENDING = OrderStatus.CANCELLED, OrderStatus.PENDING


@pytest.fixture
def spending(db, gogift_account):
    """Five batches over four accounts of three providers, three currencies, three campaigns
    (one blank) and three months; one cost charged in another currency, one cost missing,
    and two orders created on the evening of a month's last day (UTC), which is the next
    month in Copenhagen."""
    gifty = account_with_product("Gifty NL", "gifty", "EUR")
    ugiftme = account_with_product("UGiftMe US", "ugiftme", "USD")
    gogift_se = account_with_product("GoGift SE", "gogift", "DKK")
    Product.objects.create(account=gogift_account, provider_product_id="g1", sku="AEC9A553", title="Global",
                           currency="DKK", pricing=PricingKind.RANGE, min_amount=D("50"), max_amount=D("5000"),
                           step=D("10"))

    def batch(name, account, campaign):
        return Batch.objects.create(name=name, account=account, campaign=campaign)

    orders_made(batch("Christmas DK", gogift_account, "Christmas 2024"),
                ("500.00", "DKK", DELIVERED, "500.00", "DKK", at(1, 15)),
                ("250.50", "DKK", PROCESSING, None, "", at(1, 31, 23, 30)),  # 1 Feb 00:30 in Copenhagen
                ("100.00", "DKK", FAILED, None, "", at(1, 10)))
    orders_made(batch("Christmas NL", gifty, "Christmas 2024"),
                ("25.00", "EUR", DELIVERED, "25.00", "EUR", at(2, 10)),
                ("40.10", "EUR", DELIVERED, "40.10", "EUR", at(2, 28, 23, 0)),  # 1 March 00:00 in Copenhagen
                ("10.00", "EUR", CANCELLED, None, "", at(2, 12)))
    orders_made(batch("US thank-yous", ugiftme, ""),
                ("100.00", "USD", DELIVERED, "92.35", "EUR", at(3, 5)),  # charged in EUR
                ("0.10", "USD", PENDING, None, "", at(3, 6)))
    orders_made(batch("Onboarding March", gogift_account, "Onboarding"),
                ("1000.00", "DKK", DELIVERED, "1001.25", "DKK", at(3, 10)),
                ("15.00", "EUR", DELIVERED, "111.90", "DKK", at(3, 11)))
    orders_made(batch("Onboarding SE", gogift_se, "Onboarding"),
                ("200.00", "DKK", DELIVERED, "200.00", "DKK", at(1, 20)))
    return {"gogift": gogift_account, "gifty": gifty, "ugiftme": ugiftme, "gogift_se": gogift_se}


@pytest.fixture
def copenhagen(settings):
    settings.TIME_ZONE = "Europe/Copenhagen"


def test_the_totals_per_currency_are_exact_and_never_mix_currencies(spending, copenhagen):
    totals = order_totals(Order.objects.all())

    assert [t.currency for t in totals.per_currency] == ["DKK", "EUR", "USD"]
    dkk, eur, usd = totals.per_currency
    assert (dkk.orders, dkk.face_value, dkk.bought_orders, dkk.bought_face_value) == (5, D("2050.50"), 4, D("1950.50"))
    assert dkk.cost == {"DKK": D("1701.25")} and dkk.bought_without_cost == 1  # the processing 250.50 has none
    assert (eur.orders, eur.face_value, eur.bought_orders, eur.bought_face_value) == (4, D("90.10"), 3, D("80.10"))
    assert eur.cost == {"EUR": D("65.10"), "DKK": D("111.90")} and eur.bought_without_cost == 0
    assert eur.costs == [("EUR", D("65.10")), ("DKK", D("111.90"))]  # its own currency first
    assert (usd.orders, usd.face_value, usd.bought_orders, usd.bought_face_value) == (2, D("100.10"), 1, D("100.00"))
    assert usd.cost == {"EUR": D("92.35")}
    assert totals.orders == 11
    for amount in (dkk.face_value, eur.face_value, usd.face_value):
        assert isinstance(amount, Decimal)


def test_the_breakdowns_by_provider_account_and_campaign(spending, copenhagen):
    totals = order_totals(Order.objects.all())
    gogift, gogift_se = spending["gogift"], spending["gogift_se"]

    provider = totals.by_provider
    assert [(row.label, row.totals.currency) for row in provider.rows] == [
        ("Gifty", "EUR"), ("GoGift", "DKK"), ("GoGift", "EUR"), ("UGiftMe", "USD")]
    assert provider.row("gogift", "DKK").face_value == D("2050.50")  # both GoGift accounts
    assert provider.row("gogift", "DKK").cost == {"DKK": D("1701.25")}
    assert provider.row("gogift", "EUR").cost == {"DKK": D("111.90")}
    assert provider.row("gifty", "EUR").bought_face_value == D("65.10")

    account = totals.by_account
    assert account.row(gogift.pk, "DKK").face_value == D("1850.50")
    assert account.row(gogift.pk, "DKK").orders == 4
    assert account.row(gogift_se.pk, "DKK").face_value == D("200.00")
    assert account.row(gogift.pk, "EUR").face_value == D("15.00")
    assert account.row(spending["ugiftme"].pk, "USD").cost == {"EUR": D("92.35")}

    campaign = totals.by_campaign
    assert [(row.label, row.totals.currency, row.totals.face_value) for row in campaign.rows] == [
        ("Christmas 2024", "DKK", D("850.50")), ("Christmas 2024", "EUR", D("75.10")),
        ("No campaign", "USD", D("100.10")),
        ("Onboarding", "DKK", D("1200.00")), ("Onboarding", "EUR", D("15.00"))]
    assert campaign.row("Christmas 2024", "EUR").bought_orders == 2


def test_the_month_is_the_month_created_in_the_servers_time_zone(spending, settings):
    def months():
        return [(row.label, row.totals.currency, row.totals.orders, row.totals.face_value)
                for row in order_totals(Order.objects.all()).by_month.rows]

    settings.TIME_ZONE = "Europe/Copenhagen"
    assert months() == [
        ("January 2025", "DKK", 3, D("800.00")),
        ("February 2025", "DKK", 1, D("250.50")),  # 31 January 23:30 UTC
        ("February 2025", "EUR", 2, D("35.00")),
        ("March 2025", "DKK", 1, D("1000.00")),
        ("March 2025", "EUR", 2, D("55.10")),  # 28 February 23:00 UTC
        ("March 2025", "USD", 2, D("100.10")),
    ]
    settings.TIME_ZONE = "UTC"
    assert months() == [
        ("January 2025", "DKK", 4, D("1050.50")),
        ("February 2025", "EUR", 3, D("75.10")),
        ("March 2025", "DKK", 1, D("1000.00")),
        ("March 2025", "EUR", 1, D("15.00")),
        ("March 2025", "USD", 2, D("100.10")),
    ]


def test_no_orders_no_totals(db):
    totals = order_totals(Order.objects.all())
    assert totals.per_currency == [] and totals.orders == 0
    assert all(breakdown.rows == [] for breakdown in totals.breakdowns)


def test_two_queries_whatever_the_number_of_orders(spending, django_assert_num_queries):
    with django_assert_num_queries(2):
        order_totals(Order.objects.all())
    with django_assert_num_queries(1):  # nothing matches: no batch to look up
        order_totals(Order.objects.filter(pk=0))


# --- The admin's totals URL ------------------------------------------------------------------


def cells(html: str, table_id: str) -> str:
    start = html.index(f'id="{table_id}"')
    return html[start:html.index("</table>", start)]


def test_the_list_shows_a_box_that_asks_for_the_totals_of_its_own_filters(admin_client, spending):
    page = admin_client.get(LIST_URL, {"status__exact": "delivered", "q": "Christmas"})
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-totals-url="{TOTALS_URL}?q=Christmas&amp;status__exact=delivered"' in html
    assert f'href="{TOTALS_URL}?q=Christmas&amp;status__exact=delivered">Show totals for these orders</a>' in html
    assert 'data-totals-auto="true"' in html  # narrowed: the script loads them at once
    assert "giftdesk/order_totals.js" in html
    assert "1,950.50" not in html  # the list itself never waits for the totals


def test_the_unfiltered_list_offers_the_totals_of_all_orders_on_a_click(admin_client, spending):
    html = admin_client.get(LIST_URL, {"o": "-1"}).content.decode()  # sorted, not narrowed
    assert f'data-totals-url="{TOTALS_URL}?o=-1"' in html
    assert "data-totals-auto" not in html
    assert f'href="{TOTALS_URL}?o=-1">Show totals for all orders</a>' in html


def test_the_totals_follow_the_lists_filter_and_search(admin_client, spending, copenhagen):
    response = admin_client.get(TOTALS_URL, {"status__exact": "delivered", "q": "Christmas"}, **FRAGMENT)
    html = response.content.decode()
    assert response.status_code == 200
    table = cells(html, "order-totals-per-currency")
    # Delivered orders of the two Christmas batches: 500.00 DKK; 25.00 + 40.10 EUR.
    assert 'data-currency="DKK"' in table and 'data-currency="EUR"' in table and "USD" not in table
    assert '<td class="num" data-field="face_value">500.00 DKK</td>' in table
    assert '<td class="num" data-field="face_value">65.10 EUR</td>' in table
    assert "Totals of these 3 orders" in html
    campaigns = cells(html, "order-totals-by-campaign")
    assert "Christmas 2024" in campaigns and "Onboarding" not in campaigns and "No campaign" not in campaigns
    months = cells(html, "order-totals-by-month")
    assert months.count("<tr data-currency=") == 3  # January DKK, February EUR, March EUR
    assert 'data-currency="EUR" data-group="March 2025"' in months  # 28 February 23:00 UTC

    # The same search with another filter: the totals change with it.
    failed = admin_client.get(TOTALS_URL, {"status__exact": "failed", "q": "Christmas"}, **FRAGMENT).content.decode()
    assert '<td class="num" data-field="face_value">100.00 DKK</td>' in failed and "EUR" not in failed


def test_the_fragment_shows_every_currency_alone_with_thousands_separators(admin_client, spending):
    response = admin_client.get(TOTALS_URL, **FRAGMENT)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    table = cells(html, "order-totals-per-currency")
    assert table.count("<tr data-currency=") == 3
    assert "2,050.50 DKK" in table and "1,950.50 DKK" in table and "1,701.25 DKK" in table
    assert "1 bought order without a cost" in table
    assert "65.10 EUR" in table and "111.90 DKK" in table and "92.35 EUR" in table
    # Never a sum across currencies: 2,050.50 + 90.10 + 100.10 appears nowhere.
    assert "2,240.70" not in html and "2240.70" not in html
    for breakdown in ("by-provider", "by-account", "by-campaign", "by-month"):
        assert f'<details class="giftdesk-totals-breakdown" id="order-totals-{breakdown}">' in html
    assert "<script" not in html and "style=" not in html


def test_the_totals_open_as_a_page_of_their_own_without_javascript(admin_client, spending):
    response = admin_client.get(TOTALS_URL, {"status__exact": "delivered", "q": "Christmas"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and "Totals of the filtered orders" in html
    assert "Status: Delivered; Search: “Christmas”." in html
    assert f'href="{LIST_URL}?q=Christmas&amp;status__exact=delivered" id="order-totals-back"' in html
    assert '<td class="num" data-field="face_value">500.00 DKK</td>' in html
    assert "giftdesk/admin.css" in html


def test_finance_sees_the_totals_and_a_user_without_view_permission_gets_403(client, spending):
    client.force_login(person("fiona", "Finance"))
    assert client.get(TOTALS_URL, **FRAGMENT).status_code == 200
    client.force_login(person("nobody"))  # staff, no permission on orders
    assert client.get(TOTALS_URL, **FRAGMENT).status_code == 403
    assert client.get(TOTALS_URL).status_code == 403
    client.logout()
    assert client.get(TOTALS_URL).status_code == 302  # to the login page


def test_a_filter_the_list_refuses_is_refused_by_the_totals_too(admin_client, spending):
    bad_value = admin_client.get(TOTALS_URL, {"batch__account__id__exact": "GoGift"}, **FRAGMENT)
    assert bad_value.status_code == 400
    assert "These filters are not valid" in bad_value.content.decode()
    not_a_filter = admin_client.get(TOTALS_URL, {"recipient__email__startswith": "person"}, **FRAGMENT)
    assert not_a_filter.status_code == 400  # Django's own refusal, as on the list


def test_a_page_number_of_the_list_changes_nothing(admin_client, spending):
    whole = admin_client.get(TOTALS_URL, **FRAGMENT).content.decode()
    assert admin_client.get(TOTALS_URL, {"p": "7"}, **FRAGMENT).content.decode() == whole


def test_the_totals_url_takes_as_many_queries_for_many_orders_as_for_few(admin_client, spending):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(TOTALS_URL, {"status__exact": "delivered"}, **FRAGMENT).status_code == 200
        return len(captured)

    few = queries()
    more = ProviderAccount.objects.get(name="Gifty NL")
    for number in range(6):
        orders_made(Batch.objects.create(name=f"More {number}", account=more, campaign=f"Campaign {number}"),
                    *[(f"{10 + i}.00", "EUR", DELIVERED, f"{10 + i}.00", "EUR", at(1 + number, 3)) for i in range(5)])
    assert Order.objects.count() == 11 + 30
    assert queries() == few


def test_the_created_filter_and_the_months_agree_at_the_boundaries(admin_client, spending, copenhagen):
    """February in Copenhagen: the DKK order of 31 January 23:30 UTC is in, the EUR order of
    28 February 23:00 UTC (1 March in Copenhagen) is out, by the filter and by the months alike."""
    february = {"created_at__range__gte": "2025-02-01", "created_at__range__lte": "2025-02-28"}
    html = admin_client.get(TOTALS_URL, february, **FRAGMENT).content.decode()
    table = cells(html, "order-totals-per-currency")
    assert '<td class="num" data-field="face_value">250.50 DKK</td>' in table
    assert '<td class="num" data-field="face_value">35.00 EUR</td>' in table  # 25.00 + the cancelled 10.00
    months = cells(html, "order-totals-by-month")
    assert months.count("<tr data-currency=") == 2 and months.count('data-group="February 2025"') == 2
    page = admin_client.get(TOTALS_URL, february).content.decode()
    assert "Date created: 2025-02-01, 2025-02-28." in page


def test_a_cost_reported_without_its_currency_counts_as_missing_never_summed(admin_client, spending):
    """A cost with no currency belongs in no currency's total (it could be any): the order is
    one "without a cost", like one whose provider reported none."""
    orders_made(Batch.objects.get(name="Christmas DK"), ("300.00", "DKK", DELIVERED, "299.00", "", at(1, 16)))
    dkk = order_totals(Order.objects.all()).currency("DKK")
    assert dkk.bought_face_value == D("2250.50")
    assert dkk.cost == {"DKK": D("1701.25")} and dkk.bought_without_cost == 2
    html = admin_client.get(TOTALS_URL, **FRAGMENT).content.decode()
    assert "2 bought orders without a cost" in html and "299.00" not in html


# Each zone over a year's end and a DST change; where a change skips or repeats midnight on a
# month's first day (Asunción skipped 1 October 2023 00:00; Havana had 1 November 2020 00:00
# twice), the month starts at the first instant of that day.
ZONES = [("Europe/Copenhagen", date(2024, 11, 1), 6), ("America/Asuncion", date(2023, 8, 1), 6),
         ("America/Havana", date(2020, 9, 1), 6), ("UTC", date(2024, 11, 1), 3)]


@pytest.mark.parametrize("zone, first, count", ZONES)
def test_the_dashboards_months_are_the_totals_months_and_the_created_filters_at_every_boundary(
    admin_client, settings, gogift_account, zone, first, count
):
    """orders.reports.order_groups places an order in its month created two ways: TruncMonth in the
    time zone (the totals) and comparing with each month's end (the dashboard's twelve months).
    Orders a second either side of every month's first instant, and one in the repeated or
    skipped hour: both ways agree with the local date, and the list's "date created" filter of
    each month holds exactly the orders placed in it."""
    settings.TIME_ZONE = zone
    local = ZoneInfo(zone)
    months = [month(first, shift) for shift in range(count)]
    Product.objects.create(account=gogift_account, provider_product_id="m1", title="Card", currency="DKK",
                           pricing=PricingKind.RANGE, min_amount=D("1"), max_amount=D("100"), step=D("1"))
    instants = [period.start() + timedelta(seconds=offset) for period in months[1:] for offset in (-1, 0, 1)]
    instants += [months[0].start(), months[-1].end() - timedelta(microseconds=1),
                 datetime(2020, 11, 1, 5, 30, tzinfo=UTC),  # Havana: 00:30 the second time
                 datetime(2023, 10, 1, 3, 59, 59, tzinfo=UTC)]  # Asunción: 23:59:59 on 30 September
    instants = [when for when in instants if months[0].start() <= when < months[-1].end()]
    expected = {}
    for index, when in enumerate(instants):
        batch = Batch.objects.create(name=f"B{index}", account=gogift_account)  # a group per order
        orders_made(batch, ("1.00", "DKK", DELIVERED, "1.00", "DKK", when))
        expected[batch.pk] = when.astimezone(local).date().replace(day=1)

    truncated = {group.batch_id: group.month for group in order_groups(Order.objects.all())}
    compared = {group.batch_id: group.month for group in order_groups(Order.objects.all(), months=months)}
    assert truncated == expected
    assert compared == expected
    for period in months:
        query = {"created_at__range__gte": period.first.isoformat(), "created_at__range__lte": period.last.isoformat()}
        html = admin_client.get(TOTALS_URL, query, **FRAGMENT).content.decode()
        shown = re.search(r"Totals of these ([\d,]+) orders?", html).group(1)
        assert int(shown) == sum(1 for first_day in expected.values() if first_day == period.first), period
