"""The spending dashboard (issue 11): orders.dashboard's numbers and the admin page
`admin:orders_order_dashboard` that shows them.

Spend = the face value of bought orders (processing, delivered) and their cost as charged,
per currency (never added across currencies), per month created in TIME_ZONE, per provider.
Every figure on the page links to the order list filtered to exactly the orders it counts:
the tests follow the links and compare the list's orders with the ones counted.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import attention
from orders.dashboard import MONTHS_SHOWN, last_quarter, spending_dashboard
from orders.models import Batch, Order, OrderStatus, Recipient, Submission, SubmissionState
from orders.reports import month
from orders.spending import WAIT_REASON_START
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import person

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 11, 15, 12, 0, tzinfo=COPENHAGEN)
DASHBOARD = reverse("admin:orders_order_dashboard")
ROOT = Path(__file__).resolve().parents[2]
_serial = count(1)


# --- Making orders ------------------------------------------------------------------------------------------


def account(name: str, kind: str, **fields) -> ProviderAccount:
    return ProviderAccount.objects.create(name=name, kind=kind, **fields)


def product(of: ProviderAccount, currency: str) -> Product:
    return Product.objects.create(account=of, provider_product_id=f"p-{next(_serial)}", title=f"{currency} card",
                                  currency=currency, pricing=PricingKind.RANGE)


def order(card: Product, amount: str, *, status: str = OrderStatus.DELIVERED, created: datetime,
          cost: str | None = None, cost_currency: str = "", campaign: str = "", **fields) -> Order:
    batch, _ = Batch.objects.get_or_create(name=f"{card.account.name} {campaign}".strip(), account=card.account,
                                           campaign=campaign)
    serial = next(_serial)
    made = Order.objects.create(
        batch=batch, product=card, amount=Decimal(amount), currency=card.currency, status=status,
        recipient=Recipient.objects.create(name=f"Recipient {serial}", email=f"r{serial}@example.com"),
        reference=f"gd-test-{serial}", cost=Decimal(cost) if cost is not None else None, cost_currency=cost_currency,
        **fields)
    Order.objects.filter(pk=made.pk).update(created_at=created)  # auto_now_add: set afterwards
    return made


def at(year, month_, day, hour=12, minute=0, zone=COPENHAGEN) -> datetime:
    return datetime(year, month_, day, hour, minute, tzinfo=zone)


@pytest.fixture
def copenhagen(settings):
    settings.TIME_ZONE = "Europe/Copenhagen"


@pytest.fixture
def shop(db):
    """Three accounts (GoGift, Gifty, UGiftMe) and their cards in DKK, EUR and USD."""
    gogift = account("GoGift DK", "gogift")
    gifty = account("Gifty NL", "gifty")
    ugiftme = account("UGiftMe US", "ugiftme")
    return {"gogift DKK": product(gogift, "DKK"), "gogift EUR": product(gogift, "EUR"),
            "gifty EUR": product(gifty, "EUR"), "ugiftme USD": product(ugiftme, "USD")}


@pytest.fixture
def spent(shop, copenhagen):
    """Orders over several months, currencies and providers, bought or not."""
    dkk, eur, gifty, usd = shop["gogift DKK"], shop["gogift EUR"], shop["gifty EUR"], shop["ugiftme USD"]
    made = {
        # 00:30 on 1 November in Copenhagen is still 31 October in UTC: November here.
        "nov dkk": order(dkk, "500.00", created=at(2025, 11, 1, 0, 30), cost="500.00", cost_currency="DKK"),
        "oct dkk": order(dkk, "250.50", status=OrderStatus.PROCESSING, created=at(2025, 10, 31, 23, 30)),
        "nov eur gifty a": order(gifty, "0.10", created=at(2025, 11, 3), cost="0.10", cost_currency="EUR"),
        "nov eur gifty b": order(gifty, "0.20", created=at(2025, 11, 4), cost="0.20", cost_currency="EUR"),
        "nov eur gogift": order(eur, "100.00", created=at(2025, 11, 5)),  # no cost reported (yet)
        # An EUR card charged in DKK: its cost counts in DKK, its face value in EUR.
        "oct eur charged dkk": order(gifty, "50.00", created=at(2025, 10, 2), cost="372.80", cost_currency="DKK"),
        "sep usd": order(usd, "10.10", created=at(2025, 9, 30, 23, 59)),
        # The oldest month shown is December 2024.
        "dec 2024 dkk": order(dkk, "1000.00", created=at(2024, 12, 1, 0, 10)),
    }
    not_spend = [
        order(dkk, "5000.00", status=OrderStatus.FAILED, created=at(2025, 11, 2)),
        order(dkk, "4000.00", status=OrderStatus.CANCELLED, created=at(2025, 11, 2)),
        order(dkk, "3000.00", status=OrderStatus.PENDING, created=at(2025, 11, 2)),
        order(dkk, "2000.00", status=OrderStatus.QUEUED, created=at(2025, 11, 2)),
        order(dkk, "1500.00", status=OrderStatus.SENDING, created=at(2025, 11, 2)),
        order(dkk, "999.00", created=at(2024, 11, 30, 23, 50)),  # 12 months before December 2024
    ]
    return made, not_spend


def currency(data, code):
    return next(spend for spend in data.spend if spend.currency == code)


def month_of(spend, label):
    return next(spent for spent in spend.months if spent.month.label == label)


# --- The numbers --------------------------------------------------------------------------------------------


def test_spend_is_exact_per_currency_month_and_provider(spent):
    data = spending_dashboard(NOW)

    assert [spend.currency for spend in data.spend] == ["DKK", "EUR", "USD"]
    assert [period.label for period in data.months][0] == "Dec 2024"
    assert [period.label for period in data.months][-1] == "Nov 2025" and len(data.months) == MONTHS_SHOWN

    dkk, eur, usd = currency(data, "DKK"), currency(data, "EUR"), currency(data, "USD")
    assert dkk.providers == ["gogift"]
    assert month_of(dkk, "Nov 2025").face_by_provider == {"gogift": Decimal("500.00")}
    assert month_of(dkk, "Oct 2025").face_by_provider == {"gogift": Decimal("250.50")}
    assert month_of(dkk, "Dec 2024").face_by_provider == {"gogift": Decimal("1000.00")}
    assert dkk.face == Decimal("1750.50")

    assert eur.providers == ["gogift", "gifty"]  # ProviderKind's order
    november = month_of(eur, "Nov 2025")
    assert november.face_by_provider == {"gogift": Decimal("100.00"), "gifty": Decimal("0.30")}
    assert november.face == Decimal("100.30") and november.orders == 3
    assert november.cost == Decimal("0.30") and november.without_cost == 1
    assert month_of(eur, "Oct 2025").face == Decimal("50.00")

    assert month_of(usd, "Sep 2025").face_by_provider == {"ugiftme": Decimal("10.10")}
    assert all(isinstance(value, Decimal) for spend in data.spend for spent_month in spend.months
               for value in [spent_month.face, spent_month.cost, *spent_month.face_by_provider.values()])


def test_cost_as_charged_counts_in_its_own_currency_never_the_cards(spent):
    data = spending_dashboard(NOW)

    dkk, eur = currency(data, "DKK"), currency(data, "EUR")
    # October: a 50 EUR card charged 372.80 DKK; nothing charged in EUR.
    assert month_of(dkk, "Oct 2025").cost == Decimal("372.80")
    assert month_of(eur, "Oct 2025").cost == Decimal("0.00")
    assert month_of(dkk, "Nov 2025").cost == Decimal("500.00")
    # The DKK card of October has no cost yet: counted as such in DKK, not the EUR card charged in DKK.
    assert month_of(dkk, "Oct 2025").without_cost == 1
    assert month_of(eur, "Oct 2025").without_cost == 0


def test_failed_cancelled_and_unsent_orders_and_older_months_are_not_spend(spent):
    data = spending_dashboard(NOW)

    november = month_of(currency(data, "DKK"), "Nov 2025")
    assert november.face == Decimal("500.00") and november.orders == 1
    assert sum(spend.face for spend in data.spend if spend.currency == "DKK") == Decimal("1750.50")


def test_months_are_cut_at_midnight_in_the_time_zone(spent, settings):
    copenhagen = currency(spending_dashboard(NOW), "DKK")
    assert month_of(copenhagen, "Nov 2025").face == Decimal("500.00")
    assert month_of(copenhagen, "Oct 2025").face == Decimal("250.50")

    settings.TIME_ZONE = "UTC"  # the same orders: 1 November 00:30 in Copenhagen is 31 October in UTC
    utc = currency(spending_dashboard(NOW), "DKK")
    assert month_of(utc, "Nov 2025").face == Decimal("0")
    assert month_of(utc, "Oct 2025").face == Decimal("750.50")


def test_this_month_and_last_per_currency(spent):
    data = spending_dashboard(NOW)

    assert (data.this_month.label, data.last_month.label) == ("Nov 2025", "Oct 2025")
    eur = currency(data, "EUR")
    assert (eur.this_month.face, eur.this_month.orders, eur.this_month.cost) == (Decimal("100.30"), 3, Decimal("0.30"))
    assert (eur.last_month.face, eur.last_month.orders, eur.last_month.cost) == (Decimal("50.00"), 1, Decimal("0"))
    usd = currency(data, "USD")
    assert usd.this_month.face == usd.last_month.face == Decimal("0")


@pytest.mark.parametrize("today, first, last, label", [
    ("2025-11-15", "2025-07-01", "2025-09-30", "Q3 2025 (Jul–Sep)"),
    ("2025-01-01", "2024-10-01", "2024-12-31", "Q4 2024 (Oct–Dec)"),
    ("2025-04-30", "2025-01-01", "2025-03-31", "Q1 2025 (Jan–Mar)"),
])
def test_last_quarter_is_the_previous_calendar_quarter(today, first, last, label):
    quarter = last_quarter(datetime.fromisoformat(today).date())
    assert (quarter.first.isoformat(), quarter.last.isoformat(), quarter.label) == (first, last, label)


def test_a_month_period_starts_and_ends_at_midnight_in_the_time_zone(copenhagen):
    november = month(datetime(2025, 11, 1).date())
    assert november.start() == at(2025, 11, 1, 0, 0) and november.end() == at(2025, 12, 1, 0, 0)
    assert month(november.first, -11).label == "Dec 2024" and month(november.first, 2).label == "Jan 2026"


# --- What needs attention ---------------------------------------------------------------------------------


@pytest.fixture
def troubles(shop):
    """A failed order lately and one long ago, orders waiting for a limit, a paused account with
    queued orders, and orders whose submission has an unknown outcome."""
    now = timezone.now()
    dkk, gifty = shop["gogift DKK"], shop["gifty EUR"]
    recent = order(dkk, "100", status=OrderStatus.FAILED, created=now, completed_at=now - timedelta(days=2))
    order(dkk, "100", status=OrderStatus.FAILED, created=now - timedelta(days=60),
          completed_at=now - timedelta(days=59))
    limited = [order(dkk, "100", status=OrderStatus.QUEUED, created=now,
                     waiting_reason=f"{WAIT_REASON_START}DKK limit of GoGift DK.") for _ in range(2)]
    ProviderAccount.objects.filter(pk=gifty.account_id).update(
        blocked_reason="Gifty answered 402: insufficient funds.", blocked_at=now)
    paused = [order(gifty, "25", status=OrderStatus.QUEUED, created=now,
                    waiting_reason="Sending is paused for the account: Gifty answered 402: insufficient funds.")
              for _ in range(3)]
    in_doubt = Submission.objects.create(account=dkk.account, idempotency_key="gd-doubt", outcome_unknown=True,
                                         state=SubmissionState.RETRY)
    settled = Submission.objects.create(account=dkk.account, idempotency_key="gd-settled", outcome_unknown=True,
                                        state=SubmissionState.ACCEPTED)
    unknown = [order(dkk, "100", status=OrderStatus.SENDING, created=now, submission=in_doubt) for _ in range(2)]
    order(dkk, "100", status=OrderStatus.PROCESSING, created=now, submission=settled)  # settled: accepted
    return {"failed": [recent], "limit": limited, "paused": paused, "unknown": unknown, "paused_account": gifty.account}


def test_attention_counts_what_needs_someone(troubles):
    seen = spending_dashboard().attention

    assert seen.failed == 1  # the one of 59 days ago is past attention.RECENT_FAILURE_DAYS
    assert seen.waiting_for_a_limit == 2
    assert [(account.name, account.queued_while_paused) for account in seen.paused_accounts] == [("Gifty NL", 3)]
    assert (seen.unknown_outcome_orders, seen.unknown_outcome_submissions) == (2, 1)


def test_nothing_needs_attention_on_a_quiet_day(shop):
    seen = spending_dashboard().attention
    assert (seen.failed, seen.waiting_for_a_limit, seen.paused_accounts) == (0, 0, [])
    assert (seen.unknown_outcome_orders, seen.unknown_outcome_submissions) == (0, 0)


# --- The page --------------------------------------------------------------------------------------------------


def logged_in(role: str) -> tuple[Client, User]:
    groups = {"finance": "Finance", "sender": "Senders", "approver": "Approvers"}
    user = person(f"{role}-user", groups.get(role), superuser=role == "admin")
    client = Client()
    client.force_login(user)
    return client, user


def listed(client: Client, url: str) -> set[int]:
    """The orders the order list shows at `url` (all of them, not a page)."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    assert "cl" in response.context, f"{url} did not show the list (redirected with ?e=1?)"
    return set(response.context["cl"].queryset.values_list("pk", flat=True))


def pks(orders) -> set[int]:
    return {made.pk for made in orders}


@pytest.fixture
def this_and_last_month(shop):
    """Orders of this month and last, relative to the real now (the page shows today's dashboard)."""
    now = timezone.now()
    first = timezone.localtime(now).date().replace(day=1)
    last_month = timezone.make_aware(datetime.combine(first - timedelta(days=1), datetime.min.time())) \
        + timedelta(hours=12)
    dkk, eur, gifty = shop["gogift DKK"], shop["gogift EUR"], shop["gifty EUR"]
    return {
        "this dkk": order(dkk, "1234.50", created=now - timedelta(seconds=5), cost="1234.50", cost_currency="DKK"),
        "this eur gogift": order(eur, "40.00", created=now - timedelta(seconds=5)),
        "this eur gifty": order(gifty, "25.00", status=OrderStatus.PROCESSING, created=now - timedelta(seconds=5),
                                cost="186.40", cost_currency="DKK"),
        "last eur gifty": order(gifty, "50.00", created=last_month),
        "this failed": order(dkk, "700.00", status=OrderStatus.FAILED, created=now - timedelta(seconds=5)),
    }


def test_finance_reads_the_dashboard_with_figures_right_aligned_and_grouped(this_and_last_month):
    client, _ = logged_in("finance")
    response = client.get(DASHBOARD)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<title>Spending dashboard" in page and "<h1>Spending dashboard</h1>" in page
    # Thousands separated, right-aligned; this month's DKK: 1,234.50 face, cost 1,234.50 + 186.40.
    assert re.search(r'<td class="giftdesk-number"><a href="[^"]*">1,234.50</a></td>', page)
    assert re.search(r'<td class="giftdesk-number"><a href="[^"]*">1,420.90</a>', page)
    summary = {row["currency"]: row["months"] for row in response.context["summary"]}
    assert summary["EUR"][0].face.text == "65.00" and summary["EUR"][1].face.text == "50.00"
    assert summary["EUR"][0].without_cost == 1  # the GoGift EUR card: no cost reported
    assert "(1 without a cost)" in page


def test_each_chart_gets_its_numbers_as_json_and_the_page_runs_no_inline_script(this_and_last_month):
    client, _ = logged_in("finance")
    response = client.get(DASHBOARD)
    page = response.content.decode()

    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts, "no script at all"
    for attributes in scripts:
        assert 'src="' in attributes or 'type="application/json"' in attributes, attributes
    assert 'src="/static/giftdesk/vendor/chart.js/chart.umd.min.js"' in page  # served by us, from static/
    assert "cdn" not in " ".join(scripts).lower()
    # One chart per currency bought in: DKK and EUR (a cost in DKK alone would make no chart).
    found = dict(re.findall(r'<script id="(spend-chart-data-\d+)" type="application/json">(.*?)</script>', page, re.S))
    charts = [json.loads(text) for text in found.values()]
    assert [chart["currency"] for chart in charts] == ["DKK", "EUR"]
    eur = charts[1]
    assert [dataset["label"] for dataset in eur["datasets"]] == ["GoGift", "Gifty"]
    assert eur["datasets"][0]["values"][-1] == "40.00" and eur["datasets"][1]["values"][-2:] == ["50.00", "25.00"]
    assert len(eur["labels"]) == MONTHS_SHOWN
    for script_id in found:
        assert f'data-chart-data="{script_id}"' in page  # the canvas that draws it
    # The policy the page is served with allows no inline script: the JSON is data, not run.
    policy = response.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_a_bar_and_a_month_lead_to_exactly_the_orders_they_count(this_and_last_month):
    made = this_and_last_month
    client, _ = logged_in("finance")
    context = client.get(DASHBOARD).context

    eur = next(table for table in context["tables"] if table.currency == "EUR")
    gifty_bars = next(dataset for dataset in eur.chart["datasets"] if dataset["kind"] == "gifty")
    assert listed(client, gifty_bars["urls"][-1]) == pks([made["this eur gifty"]])
    assert listed(client, gifty_bars["urls"][-2]) == pks([made["last eur gifty"]])
    november = eur.rows[-1]
    assert listed(client, november.period.url) == listed(client, november.face.url) == pks(
        [made["this eur gogift"], made["this eur gifty"]])
    assert november.face.text == "65.00" and november.orders.text == "2"
    assert eur.total.face.text == "115.00" and listed(client, eur.total.face.url) == pks(
        [made["this eur gogift"], made["this eur gifty"], made["last eur gifty"]])

    dkk = next(table for table in context["tables"] if table.currency == "DKK")
    dkk_cost = dkk.rows[-1].cost
    # Cost charged in DKK: the DKK card's and the Gifty EUR card's, never the failed one.
    assert dkk_cost.text == "1,420.90"
    assert listed(client, dkk_cost.url) == pks([made["this dkk"], made["this eur gifty"]])

    links = context["period_links"]
    this_month = pks([made["this dkk"], made["this eur gogift"], made["this eur gifty"]])
    assert listed(client, links["this_month"]) == this_month
    assert listed(client, links["last_month"]) == pks([made["last eur gifty"]])
    assert listed(client, links["shown"]) == this_month | pks([made["last eur gifty"]])


def test_last_quarter_link_lists_the_bought_orders_of_the_previous_calendar_quarter(shop):
    today = timezone.localtime().date()
    quarter = last_quarter(today)
    dkk = shop["gogift DKK"]
    inside = [order(dkk, "100", created=quarter.start() + timedelta(minutes=1), campaign="Christmas"),
              order(dkk, "200", status=OrderStatus.PROCESSING, created=quarter.end() - timedelta(minutes=1))]
    order(dkk, "300", created=quarter.start() - timedelta(minutes=1))  # the quarter before
    order(dkk, "400", created=quarter.end() + timedelta(minutes=1))  # this quarter
    order(dkk, "500", status=OrderStatus.FAILED, created=quarter.start() + timedelta(days=3))
    client, _ = logged_in("finance")

    context = client.get(DASHBOARD).context
    assert context["periods"]["last_quarter"] == quarter
    assert listed(client, context["period_links"]["last_quarter"]) == pks(inside)


def test_attention_links_lead_to_the_orders_counted(troubles):
    client, _ = logged_in("finance")
    lines = {line.kind: line for line in client.get(DASHBOARD).context["attention_lines"]}

    assert set(lines) == {"failed", "limit", "paused", "unknown"}  # no submissions for Finance
    assert lines["failed"].text == f"1 order failed in the past {attention.RECENT_FAILURE_DAYS} days"
    assert listed(client, lines["failed"].url) == pks(troubles["failed"])
    assert lines["limit"].text == "2 orders wait for a monthly spending limit"
    assert listed(client, lines["limit"].url) == pks(troubles["limit"])
    assert lines["paused"].text == "3 orders wait on Gifty NL, whose sending is paused"
    assert "insufficient funds" in lines["paused"].note
    assert listed(client, lines["paused"].url) == pks(troubles["paused"])
    assert lines["unknown"].text == "2 orders have an unknown outcome"
    assert listed(client, lines["unknown"].url) == pks(troubles["unknown"])


def test_administrators_also_get_the_submissions_with_an_unknown_outcome(troubles):
    client, _ = logged_in("admin")
    lines = {line.kind: line for line in client.get(DASHBOARD).context["attention_lines"]}

    line = lines["unknown-submissions"]
    assert line.text == "1 submission with an unknown outcome"
    response = client.get(line.url)
    assert response.status_code == 200
    assert [submission.idempotency_key for submission in response.context["cl"].queryset] == ["gd-doubt"]


def test_balances_show_only_where_reported_with_each_accounts_sync_and_check(shop):
    now = timezone.now()
    gogift = shop["gogift DKK"].account
    ProviderAccount.objects.filter(pk=gogift.pk).update(
        balance=Decimal("12345.60"), balance_currency="DKK", balance_checked_at=now - timedelta(hours=1),
        last_checked_at=now - timedelta(minutes=30), last_check_ok=True, last_check_message="Credentials accepted.")
    gifty = shop["gifty EUR"].account
    ProviderAccount.objects.filter(pk=gifty.pk).update(
        last_checked_at=now, last_check_ok=False, last_check_message="Gifty answered 401: the API token is wrong.")
    Product.objects.filter(account=gogift).update(last_synced_at=now - timedelta(days=3))
    latest = product(gogift, "SEK")
    Product.objects.filter(pk=latest.pk).update(last_synced_at=now - timedelta(days=1))
    client, _ = logged_in("finance")

    response = client.get(DASHBOARD)
    rows = {row["state"].name: row for row in response.context["accounts"]}
    assert rows["GoGift DK"]["balance"] == "12,345.60" and rows["GoGift DK"]["state"].balance_reported
    assert rows["GoGift DK"]["state"].last_synced_at == now - timedelta(days=1)  # its catalog's latest product
    assert rows["Gifty NL"]["balance"] == "" and not rows["Gifty NL"]["state"].balance_reported
    assert rows["UGiftMe US"]["state"].last_checked_at is None
    page = response.content.decode()
    accounts = page[page.index('id="dashboard-accounts"'):]
    assert "12,345.60 DKK" in accounts
    assert accounts.count("Not reported") == 2  # Gifty and UGiftMe report none
    assert "Credentials accepted." in accounts and "Gifty answered 401: the API token is wrong." in accounts
    assert "Never checked" in accounts


def test_the_page_takes_a_fixed_number_of_queries_whatever_the_data(shop, troubles):
    client, _ = logged_in("finance")
    client.get(DASHBOARD)  # warm: the session, the user's permissions

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(DASHBOARD).status_code == 200
        return len(captured.captured_queries)

    few = queries()
    now = timezone.now()
    for index in range(12):  # more accounts, currencies, months, providers and attention
        more = account(f"Account {index}", ["gogift", "giftronaut", "gifty", "ugiftme"][index % 4],
                       balance=Decimal("10.00"), balance_currency="EUR", blocked_reason="Paused." if index % 3 else "")
        card = product(more, ["DKK", "EUR", "SEK", "NOK"][index % 4])
        for months_ago in range(MONTHS_SHOWN):
            order(card, "10", created=now - timedelta(days=30 * months_ago), cost="9", cost_currency="EUR")
        order(card, "10", status=OrderStatus.QUEUED, created=now)
        order(card, "10", status=OrderStatus.FAILED, created=now, completed_at=now)
    many = queries()
    assert many == few, (few, many)
    assert many <= 11, many  # 4 of them the session, the user and their permissions; 7 the dashboard's

    with CaptureQueriesContext(connection) as captured:
        spending_dashboard()
    assert len(captured.captured_queries) == 7


@pytest.mark.parametrize("role", ["finance", "admin", "sender", "approver"])
def test_whoever_reads_the_orders_may_open_it_and_finds_it_on_the_start_page(db, role):
    client, _ = logged_in(role)
    assert client.get(DASHBOARD).status_code == 200
    start = client.get(reverse("admin:index")).content.decode()
    assert f'<a href="{DASHBOARD}" id="spending-dashboard">Spending dashboard</a>' in start


def test_staff_who_may_not_read_orders_are_refused_and_not_offered_it(db):
    client, _ = logged_in("staff")
    assert client.get(DASHBOARD).status_code == 403
    assert 'id="spending-dashboard"' not in client.get(reverse("admin:index")).content.decode()


def test_signed_out_visitors_are_sent_to_the_login_page(db):
    response = Client().get(DASHBOARD)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_the_page_only_reads(this_and_last_month):
    client, _ = logged_in("finance")
    assert client.post(DASHBOARD).status_code == 405


def test_chart_js_is_served_from_static_with_its_licence_and_version():
    vendor = ROOT / "static" / "giftdesk" / "vendor" / "chart.js"
    script = (vendor / "chart.umd.min.js").read_text(encoding="utf-8")
    assert script.startswith("/*!\n * Chart.js v4.")
    version = re.search(r"Chart\.js v(4\.\d+\.\d+)", script).group(1)
    assert f"Chart.js {version}" in (vendor / "README.md").read_text(encoding="utf-8")
    assert "MIT License" in (vendor / "LICENSE.md").read_text(encoding="utf-8")
    # It would break the policy (style-src 'self') by injecting a <style> element: it must not.
    assert 'createElement("style")' not in script and "createElement('style')" not in script


def test_the_links_use_the_lists_date_created_filter(db):
    client, _ = logged_in("finance")
    url = client.get(DASHBOARD).context["period_links"]["this_month"]
    first = timezone.localdate().replace(day=1)
    assert f"created_at__range__gte={first.isoformat()}" in url, url


def test_each_figure_is_the_order_lists_totals_of_the_orders_it_links_to(this_and_last_month):
    """The dashboard and the list's totals share orders.reports: a figure's link, opened as the
    totals of the same filters, shows the same amount."""
    client, _ = logged_in("finance")
    tables = {table.currency: table for table in client.get(DASHBOARD).context["tables"]}
    list_path, totals_path = reverse("admin:orders_order_changelist"), reverse("admin:orders_order_totals")

    def totals_of(url: str) -> str:
        response = client.get(url.replace(list_path, totals_path, 1), HTTP_X_GIFTDESK_FRAGMENT="totals")
        assert response.status_code == 200
        return response.content.decode()

    november = tables["EUR"].rows[-1]
    assert november.face.text == "65.00"
    assert '<td class="num" data-field="bought_face_value">65.00 EUR</td>' in totals_of(november.face.url)
    gifty = november.by_provider[tables["EUR"].providers.index("Gifty")]
    assert gifty.text == "25.00" and "25.00 EUR</td>" in totals_of(gifty.url)
    # DKK charged this month: the DKK card's 1,234.50 and the EUR card's 186.40.
    cost = totals_of(tables["DKK"].rows[-1].cost.url)
    assert "1,234.50 DKK" in cost and "186.40 DKK" in cost


def test_a_cost_reported_without_its_currency_is_a_cost_not_reported(shop, copenhagen):
    order(shop["gogift DKK"], "100.00", created=at(2025, 11, 2), cost="99.00", cost_currency="")
    order(shop["gogift DKK"], "200.00", created=at(2025, 11, 3), cost="200.00", cost_currency="DKK")
    november = month_of(currency(spending_dashboard(NOW), "DKK"), "Nov 2025")
    assert (november.face, november.cost, november.without_cost) == (Decimal("300.00"), Decimal("200.00"), 1)


def test_the_order_list_allows_the_unknown_outcome_lookups_and_no_other_on_submissions(troubles):
    client, _ = logged_in("finance")
    changelist = reverse("admin:orders_order_changelist")
    allowed = client.get(changelist, {"submission__outcome_unknown__exact": "1",
                                      "submission__state__in": ",".join(attention.UNSETTLED_SUBMISSION_STATES)})
    assert allowed.status_code == 200
    assert set(allowed.context["cl"].queryset.values_list("pk", flat=True)) == pks(troubles["unknown"])
    for lookup in ("submission__idempotency_key__exact", "submission__outcome_unknown__isnull",
                   "submission__account__credentials__contains"):
        assert client.get(changelist, {lookup: "x"}).status_code == 400, lookup
