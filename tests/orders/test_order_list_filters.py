"""The order list's filters and search for Finance (issue 11): orders/admin_order_filters.py and
orders/order_search.py, read through the admin list as a Finance user sees it.

Each filter narrows to exactly the orders it names; the date ranges count whole days in the
server's time zone; the search finds an exact email, reference or provider order id, and
falls back to "contains" only when nothing matches exactly.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.admin_order_filters import RECENT_BATCHES
from orders.models import Batch, Order, OrderStatus, Recipient
from providers.models import ProviderAccount
from tests.fixtures.data import account_with_product, person

LIST_URL = reverse("admin:orders_order_changelist")
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
D = Decimal


# --- Data: accounts, batches and orders made directly (the list only reads them) -------------



def batch_of(account: ProviderAccount, count: int, *, name: str = "", campaign: str = "", uploaded_by=None,
             approved_by=None, status: str = OrderStatus.PENDING, emails=None, references=None) -> Batch:
    """A batch of `count` orders, each with its own recipient, in the account's currency."""
    product = account.products.first()
    batch = Batch.objects.create(name=name or f"Batch {Batch.objects.count() + 1}", account=account,
                                 campaign=campaign, created_by=uploaded_by, approved_by=approved_by)
    first = Order.objects.count()
    recipients = Recipient.objects.bulk_create(
        Recipient(name=f"Person {first + index}", email=(emails or {}).get(index, f"p{first + index}@example.com"),
                  reference=(references or {}).get(index, f"EMP-{first + index:05d}"))
        for index in range(count))
    Order.objects.bulk_create(
        Order(batch=batch, recipient=recipient, product=product, amount=D("100"), currency=product.currency,
              reference=f"GD-T{first + index:06d}", status=status, source_row=index + 2)
        for index, recipient in enumerate(recipients))
    return batch


def finance_client() -> Client:
    client = Client()
    client.force_login(User.objects.filter(username="finance-user").first() or person("finance-user", "Finance"))
    return client


def listed(client: Client, params: dict | None = None) -> tuple[set[int], str]:
    """The ids of every order the list selects with `params` (all pages), and the page."""
    response = client.get(LIST_URL, params or {})
    assert response.status_code == 200, response
    return set(response.context["cl"].queryset.values_list("pk", flat=True)), response.content.decode()


def filter_html(page: str, title: str) -> str:
    """One filter of the sidebar, by its title."""
    part = page[page.index(f'data-filter-title="{title}"'):]
    return part[:part.index("</details>")]


def offered(page: str, title: str) -> list[str]:
    """The choices a filter of the sidebar offers, as shown."""
    return re.findall(r'<a href="[^"]*">([^<]+)</a>', filter_html(page, title))


def ids(queryset) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def local(day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, micro, tzinfo=COPENHAGEN)


@pytest.fixture
def gogift(db) -> ProviderAccount:
    return account_with_product("GoGift DK", "gogift", "DKK")


@pytest.fixture
def gifty(db) -> ProviderAccount:
    return account_with_product("Gifty NL", "gifty", "EUR")


# --- Date ranges -----------------------------------------------------------------------------


def test_created_range_takes_both_whole_days_in_the_server_time_zone(settings, gogift):
    settings.TIME_ZONE = "Europe/Copenhagen"
    batch = batch_of(gogift, 6)
    orders = list(batch.orders.order_by("pk"))
    created = [local(9, 23, 59, 59, 999999), local(10, 0), local(11, 12), local(12, 23, 59, 59, 999999),
               local(13, 0), local(10, 0, 30)]  # 00:30 in Copenhagen is the 9th in UTC
    for order, moment in zip(orders, created):
        Order.objects.filter(pk=order.pk).update(created_at=moment)

    found, _ = listed(finance_client(), {"created_at__range__gte": "2026-03-10",
                                         "created_at__range__lte": "2026-03-12"})

    assert found == {orders[1].pk, orders[2].pk, orders[3].pk, orders[5].pk}


def test_created_range_open_at_one_end(settings, gogift):
    settings.TIME_ZONE = "Europe/Copenhagen"
    orders = list(batch_of(gogift, 2).orders.order_by("pk"))
    Order.objects.filter(pk=orders[0].pk).update(created_at=local(1, 12))
    Order.objects.filter(pk=orders[1].pk).update(created_at=local(20, 12))

    assert listed(finance_client(), {"created_at__range__gte": "2026-03-10"})[0] == {orders[1].pk}


def test_delivered_range_takes_only_delivered_orders_completed_in_it(settings, gogift):
    settings.TIME_ZONE = "Europe/Copenhagen"
    orders = list(batch_of(gogift, 5).orders.order_by("pk"))
    completed = [(OrderStatus.DELIVERED, local(10, 0)), (OrderStatus.FAILED, local(10, 9)),
                 (OrderStatus.CANCELLED, local(11, 9)), (OrderStatus.DELIVERED, local(13, 0)),
                 (OrderStatus.DELIVERED, local(12, 23, 59))]
    for order, (status, moment) in zip(orders, completed):
        Order.objects.filter(pk=order.pk).update(status=status, completed_at=moment)

    found, _ = listed(finance_client(), {"completed_at__range__gte": "2026-03-10",
                                         "completed_at__range__lte": "2026-03-12"})

    assert found == {orders[0].pk, orders[4].pk}


def test_the_list_is_newest_batch_first_and_a_range_orders_it_by_its_own_date(gogift):
    older, newer = batch_of(gogift, 2), batch_of(gogift, 2)
    orders = list(older.orders.order_by("pk")) + list(newer.orders.order_by("pk"))
    completed = [local(12, 9), local(10, 9), local(11, 9), local(13, 9)]
    for order, moment in zip(orders, completed):
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.DELIVERED, completed_at=moment,
                                                 created_at=moment)
    client = finance_client()

    def shown(params):
        return [order.pk for order in client.get(LIST_URL, params).context["cl"].result_list]

    assert shown({}) == [orders[3].pk, orders[2].pk, orders[1].pk, orders[0].pk]
    by_date = [orders[3].pk, orders[0].pk, orders[2].pk, orders[1].pk]  # latest first
    assert shown({"completed_at__range__gte": "2026-03-01"}) == by_date
    assert shown({"created_at__range__gte": "2026-03-01"}) == by_date


def test_only_the_columns_an_index_serves_can_be_sorted_by(gogift):
    from orders.admin import OrderAdmin

    batch = batch_of(gogift, 3)
    for number, order in enumerate(batch.orders.order_by("pk")):
        Order.objects.filter(pk=order.pk).update(provider_order_id=f"PO-{number}")  # the opposite of the list's
    client = finance_client()
    page = client.get(LIST_URL).content.decode()

    sortable = set(re.findall(r'<th scope="col" class="sortable[^"]*column-(\w+)', page))
    assert sortable == {"giftdesk_reference", "updated_at"}
    # A hand-made ?o= on another column (a field Django would sort by) leaves the list in its own order.
    column = ["action_checkbox", *OrderAdmin.list_display].index("provider_order_id")
    default = [order.pk for order in client.get(LIST_URL).context["cl"].result_list]
    assert default == sorted(default, reverse=True)
    assert [order.pk for order in client.get(LIST_URL, {"o": str(column)}).context["cl"].result_list] == default


def test_a_date_that_is_not_a_date_selects_no_order_and_says_why(gogift):
    batch_of(gogift, 3)

    found, page = listed(finance_client(), {"created_at__range__gte": "10 March"})

    assert found == set()
    assert "Enter a valid date." in page


def test_the_range_form_keeps_the_other_filters_and_uses_no_inline_script_or_style(gogift):
    batch = batch_of(gogift, 2)

    _, page = listed(finance_client(), {"batch__id__exact": batch.pk, "q": "Person",
                                        "created_at__range__gte": "2026-01-01"})

    form = re.search(r'<form method="get" class="giftdesk-range-filter" id="date-created-form">(.*?)</form>',
                     page, re.S)
    assert form, "no range form for the created date"
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(1)))
    assert hidden == {"batch__id__exact": str(batch.pk), "q": "Person"}  # not its own dates
    assert 'name="created_at__range__gte"' in form.group(1) and 'class="vDateField' in form.group(1)
    # The CSP refuses inline scripts and styles: every script is a file, loaded once for both ranges.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert "<style" not in page and ' style="' not in page
    assert page.count("admin/js/admin/DateTimeShortcuts.js") == 1


# --- Provider, account, campaign, batch, status, currency, people --------------------------------


def test_provider_and_account_filters(gogift, gifty):
    gogift_se = account_with_product("GoGift SE", "gogift", "SEK")
    dk, nl, se = batch_of(gogift, 2), batch_of(gifty, 3), batch_of(gogift_se, 1)
    client = finance_client()

    assert listed(client, {"batch__account__kind": "gogift"})[0] == ids(Order.objects.filter(batch__in=[dk, se]))
    assert listed(client, {"batch__account__kind": "gifty"})[0] == ids(nl.orders.all())
    assert listed(client, {"batch__account__id__exact": gogift_se.pk})[0] == ids(se.orders.all())


@pytest.mark.parametrize("params, refusal", [
    ({"batch__account__kind": "amazon"}, "No provider is called “amazon”."),
    ({"batch__created_by__id__exact": "anna"}, "Uploaded by: “anna” is not an id."),
    ({"batch__id__exact": "²"}, "Batch: “²” is not an id."),
    ({"batch__account__id__exact": "9" * 30}, f"Account: “{'9' * 30}” is not an id."),
])
def test_a_value_no_order_can_have_clears_the_filters_and_says_why(gogift, params, refusal):
    """Django's answer to a filter it cannot apply (?e=1) lists every order: never unexplained here."""
    batch_of(gogift, 2)

    response = finance_client().get(LIST_URL, params, follow=True)

    assert response.redirect_chain == [(f"{LIST_URL}?e=1", 302)]
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"{refusal} The filters were cleared: all orders are listed."]


def test_lookups_no_filter_offers_across_relations_are_refused(gogift):
    batch_of(gogift, 1)
    client = finance_client()

    for lookup in ("batch__created_by__password__startswith", "recipient__email__startswith",
                   "batch__rejected_by__id__exact"):
        assert client.get(LIST_URL, {lookup: "a"}).status_code == 400, lookup


def test_a_chosen_person_narrows_even_when_nobody_is_offered(gogift):
    batch_of(gogift, 2)  # no batch was approved: the filter offers nobody
    approver = person("bo")

    assert listed(finance_client(), {"batch__approved_by__id__exact": approver.pk})[0] == set()


def test_campaign_filter_lists_the_batches_campaigns(gogift):
    christmas = batch_of(gogift, 2, campaign="Christmas 2026")
    batch_of(gogift, 1, campaign="Summer")
    batch_of(gogift, 1)

    found, page = listed(finance_client(), {"batch__campaign": "Christmas 2026"})

    assert found == ids(christmas.orders.all())
    assert offered(page, "cost center / campaign") == ["All", "Christmas 2026", "Summer"]


def test_batch_filter_offers_the_recent_batches_and_the_chosen_one(gogift):
    oldest = batch_of(gogift, 2, name="The oldest batch")
    for _ in range(RECENT_BATCHES):
        batch_of(gogift, 1)

    found, page = listed(finance_client(), {"batch__id__exact": oldest.pk})

    assert found == ids(oldest.orders.all())
    choices = offered(page, "batch")
    assert len(choices) == 1 + RECENT_BATCHES + 1  # All, the recent ones, the chosen older one
    assert any(choice.startswith("The oldest batch (") for choice in choices)
    assert "Find an older one by searching for its name." in filter_html(page, "batch")
    # Not chosen, the oldest is no longer offered: searching its name finds its orders.
    assert not any(choice.startswith("The oldest batch") for choice in offered(listed(finance_client())[1], "batch"))
    assert listed(finance_client(), {"q": "The oldest batch"})[0] == ids(oldest.orders.all())


def test_status_filter(gogift):
    batch_of(gogift, 2)
    failed = batch_of(gogift, 1, status=OrderStatus.FAILED)

    assert listed(finance_client(), {"status__exact": "failed"})[0] == ids(failed.orders.all())


def test_currency_filter_narrows_without_a_distinct_over_the_orders(gogift, gifty):
    batch_of(gogift, 2)
    euros = batch_of(gifty, 3)
    client = finance_client()

    with CaptureQueriesContext(connection) as queries:
        found, page = listed(client, {"currency__exact": "EUR"})

    assert found == ids(euros.orders.all())
    assert offered(page, "currency") == ["All", "DKK", "EUR"]
    distinct = [query["sql"] for query in queries if "DISTINCT" in query["sql"].upper()]
    assert distinct, "the campaigns and currencies are read with DISTINCT, over their small tables"
    for sql in distinct:
        assert not re.search(r'FROM "orders_order"', sql), sql


def test_uploaded_by_and_approved_by_filters(gogift):
    anna, bo, carl = person("anna"), person("bo"), person("carl")
    by_anna = batch_of(gogift, 2, uploaded_by=anna, approved_by=bo)
    by_bo = batch_of(gogift, 1, uploaded_by=bo, approved_by=carl)
    batch_of(gogift, 1)
    client = finance_client()

    assert listed(client, {"batch__created_by__id__exact": anna.pk})[0] == ids(by_anna.orders.all())
    assert listed(client, {"batch__created_by__id__exact": bo.pk})[0] == ids(by_bo.orders.all())
    assert listed(client, {"batch__approved_by__id__exact": bo.pk})[0] == ids(by_anna.orders.all())
    found, page = listed(client, {"batch__approved_by__id__exact": carl.pk})
    assert found == ids(by_bo.orders.all())
    assert offered(page, "uploaded by") == ["All", "anna", "bo"]
    assert offered(page, "approved by") == ["All", "bo", "carl"]


def test_every_filter_together(settings, gogift, gifty):
    settings.TIME_ZONE = "Europe/Copenhagen"
    anna, bo = person("anna"), person("bo")
    wanted = batch_of(gifty, 3, campaign="Spring", uploaded_by=anna, approved_by=bo, status=OrderStatus.DELIVERED)
    batch_of(gifty, 2, campaign="Spring", uploaded_by=anna, approved_by=bo, status=OrderStatus.FAILED)
    batch_of(gogift, 2, campaign="Spring", uploaded_by=anna, approved_by=bo, status=OrderStatus.DELIVERED)
    Order.objects.update(created_at=local(10, 9), completed_at=local(11, 9))

    found, _ = listed(finance_client(), every_filter(wanted, anna, bo))

    assert found == ids(wanted.orders.all())


def every_filter(batch: Batch, uploader, approver) -> dict:
    """Every filter of the list, each naming `batch`'s orders (delivered on 11 March 2026)."""
    return {"created_at__range__gte": "2026-03-10", "created_at__range__lte": "2026-03-10",
            "completed_at__range__gte": "2026-03-11", "completed_at__range__lte": "2026-03-11",
            "status__exact": "delivered", "batch__account__kind": batch.account.kind,
            "batch__account__id__exact": batch.account_id, "batch__campaign": batch.campaign,
            "batch__id__exact": batch.pk, "currency__exact": batch.account.products.first().currency,
            "batch__created_by__id__exact": uploader.pk, "batch__approved_by__id__exact": approver.pk}


# --- Search ------------------------------------------------------------------------------------


@pytest.fixture
def people(gogift, gifty) -> dict[str, Order]:
    """Orders whose emails and references contain one another, so "contains" would find more."""
    first = batch_of(gogift, 3, name="Spring thanks", emails={0: "Anna.Berg@Example.com", 1: "joanna.berg@example.com"},
                     references={0: "E100", 1: "E1000", 2: "XE100"})
    second = batch_of(gifty, 2, name="Summer", emails={0: "anna.berg@example.com"}, references={0: "E2"})
    orders = list(first.orders.order_by("pk")) + list(second.orders.order_by("pk"))
    Order.objects.filter(pk=orders[2].pk).update(provider_order_id="PO-77")
    Order.objects.filter(pk=orders[3].pk).update(provider_order_id="PO-777")
    return {"anna": orders[0], "joanna": orders[1], "xe": orders[2], "anna_nl": orders[3], "other": orders[4]}


def test_an_exact_email_finds_that_recipients_orders_whatever_the_case(people):
    found, _ = listed(finance_client(), {"q": "  ANNA.berg@example.COM "})

    assert found == {people["anna"].pk, people["anna_nl"].pk}  # not joanna.berg@…


def test_an_exact_spreadsheet_reference_finds_only_it(people):
    assert listed(finance_client(), {"q": "E100"})[0] == {people["anna"].pk}  # not E1000 nor XE100


def test_an_exact_giftdesk_reference_finds_its_order_in_either_case(people):
    reference = people["joanna"].reference
    client = finance_client()

    assert listed(client, {"q": reference})[0] == {people["joanna"].pk}
    assert listed(client, {"q": reference.lower()})[0] == {people["joanna"].pk}


def test_an_exact_provider_order_id_finds_only_it(people):
    assert listed(finance_client(), {"q": "PO-77"})[0] == {people["xe"].pk}  # not PO-777


def test_an_exact_batch_name_finds_its_orders(people):
    assert listed(finance_client(), {"q": "summer"})[0] == ids(people["other"].batch.orders.all())


def test_a_reference_many_recipients_share_finds_all_their_orders(monkeypatch, gogift):
    monkeypatch.setattr("orders.order_search.IDS_LISTED", 2)  # asked through the join past this many
    shared = batch_of(gogift, 3, references={0: "1", 1: "1", 2: "1"})
    batch_of(gogift, 2)

    assert listed(finance_client(), {"q": "1"})[0] == ids(shared.orders.all())


def test_without_an_exact_match_the_search_falls_back_to_contains(people):
    client = finance_client()

    assert listed(client, {"q": "oanna"})[0] == {people["joanna"].pk}  # part of a name and an email
    assert listed(client, {"q": "E10"})[0] == {people["anna"].pk, people["joanna"].pk, people["xe"].pk}
    assert listed(client, {"q": "berg@example"})[0] == {people["anna"].pk, people["joanna"].pk, people["anna_nl"].pk}
    assert listed(client, {"q": "Spring"})[0] == ids(people["anna"].batch.orders.all())  # part of a batch name
    assert listed(client, {"q": "nobody@nowhere.example"})[0] == set()


def test_the_search_and_the_filters_narrow_together(people):
    found, _ = listed(finance_client(), {"q": "anna.berg@example.com", "currency__exact": "EUR"})

    assert found == {people["anna_nl"].pk}


def test_bought_is_a_status_choice_a_dashboard_link_shows_and_another_status_replaces(db):
    account = account_with_product("GoGift Nordics", "gogift", "DKK")
    processing = batch_of(account, 1, status=OrderStatus.PROCESSING)
    delivered = batch_of(account, 2, status=OrderStatus.DELIVERED)
    failed = batch_of(account, 1, status=OrderStatus.FAILED)
    client = finance_client()

    ids, page = listed(client, {"status__exact": "bought"})

    assert ids == set(Order.objects.filter(batch__in=[processing, delivered]).values_list("pk", flat=True))
    status = filter_html(page, "status")
    assert re.search(r'class="selected"[^>]*>\s*<a[^>]*>Bought \(processing or delivered\)</a>', status), status
    # Choosing "Failed" from there lists the failed orders: it replaces "bought", never narrows to nothing.
    failed_link = re.search(r'<a href="([^"]*)"[^>]*>Failed</a>', status).group(1).replace("&amp;", "&")
    assert "bought" not in failed_link
    ids, _ = listed(client, dict(part.split("=", 1) for part in failed_link.lstrip("?").split("&")))
    assert ids == set(failed.orders.values_list("pk", flat=True))


def test_a_status_that_does_not_exist_is_refused_by_name(db):
    account_with_product("GoGift Nordics", "gogift", "DKK")
    response = finance_client().get(LIST_URL, {"status__exact": "lost"}, follow=True)

    assert "No order status is called “lost”." in response.content.decode()
