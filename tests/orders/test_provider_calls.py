"""A provider call is recorded once, linked to the orders it carried; the events it caused
point at it; an order's page lists the calls that carried it."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.urls import reverse

from orders import dispatch, events
from orders.batches import batch_send
from orders.models import EventKind, Order, OrderStatus, ProviderCall, Submission
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_SECRET


pytestmark = pytest.mark.usefixtures("fast_retries")  # tests/fixtures/engine.py


def send(account, amounts: list[str], emulator=None, **fault):
    batch = make_batch(account, amounts)
    batch_send(batch=batch)
    if fault:
        emulator.faults.add(**fault)
    dispatch.account_pump(account.pk, budget_seconds=20)
    return batch


def order_ids(call: ProviderCall) -> set[int]:
    return set(call.orders.values_list("id", flat=True))


def test_a_three_card_basket_stores_each_call_once_linked_to_all_three_orders(
    emulated_gogift_account, gogift_emulator,
):
    cache.clear()  # no cached token: the token exchange is one of the calls
    requests_before = len(gogift_emulator.requests)

    batch = send(emulated_gogift_account, ["100", "200", "300"])

    submission = Submission.objects.get()
    calls = list(ProviderCall.objects.order_by("id"))
    assert len(calls) == len(gogift_emulator.requests) - requests_before  # one row per HTTP request
    assert [(c.method, c.url.rsplit("/", 1)[-1], c.http_status) for c in calls] == [
        ("POST", "token", 200), ("POST", "baskets", 200), ("PUT", "baskets", 200), ("POST", "finalize", 200)]
    all_three = set(batch.orders.values_list("id", flat=True))
    assert all(order_ids(call) == all_three and call.submission == submission for call in calls)
    assert all(call.actor.startswith("worker ") and call.duration_ms >= 0 and not call.error for call in calls)
    token = calls[0]
    assert GOGIFT_TEST_CLIENT_SECRET not in token.request_body + token.response_body
    assert "[redacted]" in token.request_body and "[redacted]" in token.response_body
    assert all(GOGIFT_TEST_CLIENT_SECRET not in c.request_body + c.response_body for c in calls)
    for order in batch.orders.all():
        assert list(order.provider_calls.order_by("id")) == calls
        # The basket's lines, as sent: each card's reference, never its recipient's address.
        assert order.reference in calls[2].request_body and order.recipient.email not in calls[2].request_body


def test_the_state_changes_point_at_the_call_that_caused_them(emulated_gogift_account):
    batch = send(emulated_gogift_account, ["100"])

    order = batch.orders.get()
    finalize = order.provider_calls.get(url__endswith="/baskets/finalize")
    # Its creation is its batch's one event (orders.events.order_history), caused by no call.
    caused = {event.to_status: event.provider_call for event in events.order_history(order)
              if event.kind == EventKind.STATUS}
    assert caused == {"pending": None, "queued": None, "sending": None, "delivered": finalize}


def test_a_retry_note_points_at_the_failed_call(emulated_gogift_account, gogift_emulator):
    batch = send(emulated_gogift_account, ["100"], gogift_emulator, kind="http_503", path="/baskets/finalize", times=1)

    order = batch.orders.get()
    assert order.status == OrderStatus.DELIVERED
    note = order.events.get(kind=EventKind.NOTE)
    assert (note.provider_call.url.endswith("/baskets/finalize"), note.provider_call.http_status) == (True, 503)


def test_a_call_without_an_answer_is_stored_with_its_error_and_no_status(emulated_gogift_account, gogift_emulator):
    batch = send(emulated_gogift_account, ["100"], gogift_emulator, kind="drop_before", method="PUT",
                 path="/baskets", times=1)

    order = batch.orders.get()
    dropped = order.events.get(kind=EventKind.NOTE).provider_call
    assert (dropped.method, dropped.http_status, dropped.response_body) == ("PUT", None, "")
    assert dropped.error
    assert order.status == OrderStatus.DELIVERED


def test_a_refusal_and_the_split_it_causes_point_at_the_refusing_call(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    Order.objects.filter(batch=batch, amount=Decimal("200")).update(amount=Decimal("55"))  # slipped past the import
    batch_send(batch=batch)
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    good, bad = batch.orders.order_by("id")
    refusal = Submission.objects.get(split_from__isnull=True).calls.get(http_status__gte=400)
    assert order_ids(refusal) == {good.pk, bad.pk}
    for order in (good, bad):
        assert order.events.get(kind=EventKind.NOTE, message__contains="sent again on its own").provider_call == refusal
    failed = bad.events.get(to_status=OrderStatus.FAILED)
    assert failed.provider_call.submission == bad.submission and failed.provider_call.http_status >= 400
    assert order_ids(failed.provider_call) == {bad.pk}  # the card's own request, alone
    assert good.events.get(to_status=OrderStatus.DELIVERED).provider_call.submission == good.submission


def test_an_account_refusal_event_points_at_the_refused_call(emulated_gogift_account, gogift_emulator):
    batch = send(emulated_gogift_account, ["100"], gogift_emulator, kind="insufficient_funds", path="/baskets/finalize")

    # Issue 9: the refused order goes back to waiting (before, a note left it `sending`).
    event = batch.orders.get().events.get(kind=EventKind.STATUS, to_status="queued", message__startswith="Back to waiting")
    assert event.provider_call.url.endswith("/baskets/finalize") and event.provider_call.http_status == 402


def test_the_order_page_lists_each_call_that_carried_it_once(admin_client, emulated_gogift_account):
    batch = send(emulated_gogift_account, ["100", "200", "300"])
    order = batch.orders.order_by("id").first()
    calls = list(order.provider_calls.all())

    html = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    assert "Provider calls that carried this order" in html
    # Issue 10: each call is a collapsed <details> (no longer a table row).
    assert html.count('<details class="provider-call" id="call-') == len(calls) == ProviderCall.objects.count()
    for call in calls:
        assert f'<details class="provider-call" id="call-{call.pk}">' in html and call.url in html
    finalize = order.provider_calls.get(url__endswith="/baskets/finalize")
    assert f'<a href="#call-{finalize.pk}">' in html  # the delivery, linked to the call that caused it


def test_the_roles_that_read_order_history_read_its_calls(db):
    view_calls = Permission.objects.get(codename="view_providercall", content_type__app_label="orders")
    readers = Group.objects.filter(permissions__codename="view_orderevent")
    assert set(readers.values_list("name", flat=True)) == {"Senders", "Approvers", "Finance"}
    assert all(view_calls in group.permissions.all() for group in readers)


def test_the_calls_are_shown_to_who_may_read_them(client, django_user_model, emulated_gogift_account):
    order = send(emulated_gogift_account, ["100"]).orders.get()
    page = reverse("admin:orders_order_change", args=[order.pk])
    finance = django_user_model.objects.create_user("finance", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="Finance"))
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order", content_type__app_label="orders"))

    client.force_login(finance)
    assert "Provider calls that carried this order" in client.get(page).content.decode()
    client.force_login(viewer)
    html = client.get(page).content.decode()
    assert order.reference in html and "Provider calls that carried this order" not in html
