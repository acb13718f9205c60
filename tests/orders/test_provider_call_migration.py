"""Migrations 0007-0009: the old call events (one per order, each with the whole call)
become one ProviderCall per call, linked to its orders; and back."""

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from orders.models import OrderEvent, Submission
from tests.fixtures.data import make_batch

BEFORE = ("orders", "0007_provider_call")  # the call table exists, the events still hold calls
AFTER = ("orders", "0009_orderevent_without_call_fields")
WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def migrate_to(target):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def basket(transactional_db, gogift_account, global_gift_card):
    """Three orders (with their creation events) and the submission that carried them."""
    batch = make_batch(gogift_account, ["100", "200", "300"])
    submission = Submission.objects.create(account=gogift_account, idempotency_key="gd-old")
    batch.orders.update(submission=submission)
    order_ids = list(batch.orders.order_by("id").values_list("id", flat=True))
    # Each order's creation as the code of that time recorded it (since 0021 a batch records its
    # creation once, in BatchEvent): the state changes the migration must leave alone.
    OrderEvent.objects.bulk_create(OrderEvent(order_id=order_id, actor="test", kind="status", from_status="",
                                              to_status="pending") for order_id in order_ids)
    return submission, order_ids


@pytest.fixture
def old_schema(basket):
    """The database as it was before calls got their own table; the latest again after the test."""
    apps = migrate_to(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # every later migration too


def old_call_events(apps, submission, order_ids, *, url, status, response="{}", error=""):
    """What the old recorder wrote for one call: one event per order, in one bulk insert."""
    OrderEvent = apps.get_model("orders", "OrderEvent")
    events = OrderEvent.objects.bulk_create(
        OrderEvent(order_id=order_id, submission_id=submission.pk, actor="worker w:1", kind="provider_call",
                   message=error, http_method="POST", url=url, http_status=status,
                   request_body='{"client_secret": "[redacted]"}', response_body=response, duration_ms=12)
        for order_id in order_ids
    )
    OrderEvent.objects.filter(pk__in=[event.pk for event in events]).update(created_at=WHEN)


def test_each_old_call_becomes_one_row_linked_to_the_orders_it_carried(old_schema, basket):
    submission, orders = basket
    old_call_events(old_schema, submission, orders, url="https://api/baskets", status=200, response='{"id": 1}')
    # The same lookup asked twice, answered alike: an order comes back, so it is a second call.
    old_call_events(old_schema, submission, orders[:2], url="https://api/status", status=200)
    old_call_events(old_schema, submission, orders[:2], url="https://api/status", status=200)
    old_call_events(old_schema, submission, orders[2:], url="https://api/status", status=None, error="timed out")

    # The model as of AFTER: later migrations add columns (0022: bodies_kept_days) not there yet.
    ProviderCall = migrate_to(AFTER).get_model("orders", "ProviderCall")

    calls = list(ProviderCall.objects.order_by("id"))
    assert [(c.url, c.http_status, c.error, set(c.orders.values_list("id", flat=True))) for c in calls] == [
        ("https://api/baskets", 200, "", set(orders)),
        ("https://api/status", 200, "", set(orders[:2])),
        ("https://api/status", 200, "", set(orders[:2])),
        ("https://api/status", None, "timed out", {orders[2]}),
    ]
    basket_call = calls[0]
    assert (basket_call.submission_id, basket_call.actor, basket_call.method, basket_call.duration_ms) == (
        submission.pk, "worker w:1", "POST", 12)
    assert (basket_call.request_body, basket_call.response_body) == ('{"client_secret": "[redacted]"}', '{"id": 1}')
    assert all(call.created_at == WHEN for call in calls)
    # The state changes stay; the call events are gone.
    assert list(OrderEvent.objects.order_by("id").values_list("order_id", "kind", "to_status")) == [
        (order_id, "status", "pending") for order_id in orders]


def test_going_back_gives_each_order_its_call_events_again(old_schema, basket):
    submission, orders = basket
    old_call_events(old_schema, submission, orders, url="https://api/baskets", status=200, response='{"id": 1}')
    migrate_to(AFTER)

    apps = migrate_to(BEFORE)

    OrderEvent = apps.get_model("orders", "OrderEvent")
    events = OrderEvent.objects.filter(kind="provider_call").order_by("order_id")
    assert [(e.order_id, e.url, e.http_status, e.response_body, e.duration_ms, e.created_at) for e in events] == [
        (order_id, "https://api/baskets", 200, '{"id": 1}', 12, WHEN) for order_id in orders]
    assert not apps.get_model("orders", "ProviderCall").objects.exists()
