"""The order list stays cheap at any size (issue 11): the same number of queries for 5 orders
as for 120 (no query per row), at most 10 with every filter applied, for Finance and for an
administrator; and on SQLite the plans read the indexes (orders/migrations/0018): the email
search, the exact references, the default page and the "last change" sorting.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orders.admin import OrderAdmin
from orders.models import Order, OrderStatus, Recipient
from tests.fixtures.data import person
from tests.orders.test_order_list_filters import LIST_URL, account_with_product, batch_of, every_filter, local

MOST_QUERIES = 10
ROLES = {"finance": dict(group="Finance"), "admin": dict(superuser=True)}
# "updated_at" in the list's columns, after the action checkbox: the ?o= number of "last change".
UPDATED_AT_COLUMN = ["action_checkbox", *OrderAdmin.list_display].index("updated_at")


def client_of(role: str) -> Client:
    client = Client()
    client.force_login(User.objects.filter(username=f"{role}-user").first()
                       or person(f"{role}-user", **ROLES[role]))
    return client


def page_queries(client: Client, params: dict | None = None) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST_URL, params or {})
    assert response.status_code == 200
    return [query["sql"] for query in queries]


@pytest.fixture
def every_filter_data(db, settings):
    """Orders that every filter at once still selects: a delivered batch of the Gifty account,
    uploaded by anna, approved by bo, created on 10 and delivered on 11 March 2026."""
    settings.TIME_ZONE = "Europe/Copenhagen"
    gifty = account_with_product("Gifty NL", "gifty", "EUR")
    account_with_product("GoGift DK", "gogift", "DKK")
    anna, bo = person("anna"), person("bo")
    batch = batch_of(gifty, 3, campaign="Spring", uploaded_by=anna, approved_by=bo, status=OrderStatus.DELIVERED)
    Order.objects.update(created_at=local(10, 9), completed_at=local(11, 9))

    def grow(count: int) -> None:
        batch_of(gifty, count, campaign="Spring", uploaded_by=anna, approved_by=bo, status=OrderStatus.DELIVERED,
                 name=batch.name)
        Order.objects.update(created_at=local(10, 9), completed_at=local(11, 9))

    return batch, every_filter(batch, anna, bo), grow


@pytest.mark.parametrize("role", ROLES)
def test_the_default_page_costs_the_same_queries_for_5_and_120_orders(role, every_filter_data):
    batch, _, grow = every_filter_data
    batch_of(batch.account, 2)
    client = client_of(role)
    few = page_queries(client)

    grow(115)
    many = page_queries(client)

    assert Order.objects.count() == 120
    assert len(many) == len(few) <= MOST_QUERIES, "\n".join(many)


@pytest.mark.parametrize("role", ROLES)
def test_every_filter_with_a_search_and_a_sort_stays_within_10_queries(role, every_filter_data):
    batch, params, grow = every_filter_data
    params = {**params, "o": f"-{UPDATED_AT_COLUMN}"}
    params.pop("batch__id__exact")  # else the batch grown below would not be listed
    client = client_of(role)
    few = page_queries(client, params)
    searched = page_queries(client, {**params, "q": batch.orders.first().recipient.email})

    grow(120)
    many = page_queries(client, params)

    assert len(many) == len(few) <= MOST_QUERIES, "\n".join(many)
    assert len(searched) <= MOST_QUERIES, "\n".join(searched)


def test_the_row_checkbox_is_djangos_own_markup(every_filter_data):
    from django.contrib import admin

    order = every_filter_data[0].orders.first()
    Recipient.objects.filter(pk=order.recipient_id).update(email="o'neil&co<x>@example.com")  # escaped alike
    order = Order.objects.select_related("recipient").get(pk=order.pk)

    assert "&amp;co&lt;x&gt;" in OrderAdmin.action_checkbox(None, order)
    assert OrderAdmin.action_checkbox(None, order) == admin.ModelAdmin.action_checkbox(None, order)


def test_the_actions_apply_to_the_rows_checked_on_the_page(every_filter_data):
    """The hand-written checkboxes, as the page draws them, are what Django's actions read."""
    batch = every_filter_data[0]
    pending = batch_of(batch.account, 3)
    client = client_of("admin")

    page = client.get(LIST_URL, {"batch__id__exact": pending.pk}).content.decode()
    boxes = re.findall(r'<input type="checkbox" name="_selected_action" value="(\d+)" class="action-select" '
                       r'aria-label="Select this object for an action - [^"]+">', page)
    assert sorted(map(int, boxes)) == sorted(pending.orders.values_list("pk", flat=True))
    assert 'id="action-toggle"' in page  # Django's "select all" in the column's header
    checked = boxes[:2]

    confirmation = client.post(LIST_URL, {"action": "cancel_orders", "_selected_action": checked})
    client.post(LIST_URL, {"action": "cancel_orders", "_selected_action": checked, "post": "yes",
                           "plan": confirmation.context["plan"].digest})
    export = client.post(LIST_URL, {"action": "export_selected_orders", "_selected_action": checked})

    cancelled = set(pending.orders.filter(status=OrderStatus.CANCELLED).values_list("pk", flat=True))
    assert cancelled == set(map(int, checked))
    assert export.status_code == 302 and ",".join(checked) in unquote(export.url), export.url


# --- The indexes the plans read (SQLite; PostgreSQL plans by its statistics) --------------------------------


def plan_of(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return " | ".join(row[-1] for row in cursor.fetchall())


def the_page_query(queries: list[str]) -> str:
    """The query that reads the page's rows (the orders with their recipients, batches, accounts)."""
    [query] = [sql for sql in queries if sql.startswith("SELECT") and 'FROM "orders_order"' in sql
               and '"orders_recipient"."email"' in sql.split(" FROM ")[0] and " LIMIT " in sql]
    return query


sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL chooses plans by its statistics")


@sqlite_only
def test_the_default_page_reads_the_orders_newest_batch_first_from_an_index(every_filter_data):
    batch, _, grow = every_filter_data
    grow(150)

    plan = plan_of(the_page_query(page_queries(client_of("finance"))))

    # (batch_id, id), or the batch foreign key's own index: on SQLite each entry ends with the row id.
    assert re.search(r"SCAN orders_order USING (COVERING )?INDEX (order_batch_id_idx|orders_order_batch_id_\w+) ",
                     plan), plan
    assert "TEMP B-TREE" not in plan, plan


@sqlite_only
def test_a_delivered_range_reads_the_status_and_completion_index_in_order(every_filter_data):
    batch, params, grow = every_filter_data
    grow(150)

    plan = plan_of(the_page_query(page_queries(client_of("finance"), {
        "completed_at__range__gte": params["completed_at__range__gte"],
        "completed_at__range__lte": params["completed_at__range__lte"]})))

    assert re.search(r"SEARCH orders_order USING INDEX orders_orde_status_\w+ \(status=\? AND completed_at>\? AND "
                     r"completed_at<\?\)", plan), plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan  # only, at most, for ties of the same instant


@sqlite_only
def test_sorted_by_last_change_reads_its_index(every_filter_data):
    batch, _, grow = every_filter_data
    grow(150)

    plan = plan_of(the_page_query(page_queries(client_of("finance"), {"o": f"-{UPDATED_AT_COLUMN}"})))

    assert "USING INDEX order_updated_at_id_idx" in plan and "TEMP B-TREE" not in plan, plan


def full_scans(queries: list[str]) -> list[str]:
    """The plans of the page's queries that read the whole order or recipient table (by name, or
    in a subquery, where Django calls it U0...)."""
    plans = [plan_of(sql) for sql in queries if '"orders_order"' in sql or '"orders_recipient"' in sql]
    return [plan for plan in plans if re.search(r"\bSCAN (orders_order|orders_recipient|U\d+)\b", plan)]


@sqlite_only
def test_an_email_search_reads_the_lower_email_index(every_filter_data):
    batch, _, grow = every_filter_data
    grow(150)
    email = batch.orders.first().recipient.email.upper()

    queries = page_queries(client_of("finance"), {"q": email})

    [lookup] = [sql for sql in queries if sql.startswith("SELECT 'recipient' AS")]  # orders.order_search
    assert "USING INDEX recipient_email_lower_idx" in plan_of(lookup), plan_of(lookup)
    assert full_scans(queries) == []


@sqlite_only
@pytest.mark.parametrize("kind", ["spreadsheet reference", "GiftDesk reference", "provider order id"])
def test_an_exact_reference_search_reads_indexes_only(kind, every_filter_data):
    batch, _, grow = every_filter_data
    grow(150)
    order = batch.orders.order_by("pk").first()
    Order.objects.filter(pk=order.pk).update(provider_order_id="PO-123")
    term = {"spreadsheet reference": order.recipient.reference, "GiftDesk reference": order.reference,
            "provider order id": "PO-123"}[kind]

    queries = page_queries(client_of("finance"), {"q": term})

    assert full_scans(queries) == []
    assert len(queries) <= MOST_QUERIES


@sqlite_only
def test_a_search_without_an_exact_match_reads_every_recipient(every_filter_data):
    """The fallback ("contains") is the slow search, and said to be: this is what it costs."""
    batch, _, grow = every_filter_data
    grow(150)

    queries = page_queries(client_of("finance"), {"q": "erson 1"})

    assert full_scans(queries), "a contains search cannot use a b-tree index"
