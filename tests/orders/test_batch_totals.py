"""A batch's stored totals (issue 11, orders.batch_totals): after every step of an order's life
they equal a recount of its orders, through the real services and the emulators; the batch
list reads them with the same number of queries whatever the number of batches.

`assert_batch_totals_match(batch)` is for other tests: call it after anything that changes
orders (it recounts here, independently of orders.batch_totals)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import dispatch
from orders.batch_totals import batch_totals_refresh, batches_drifted, status_counts
from orders.batches import BatchActionRefused, batch_cancel, batch_create, batch_reject, batch_send
from orders.models import Batch, BatchState, Order, OrderStatus, Submission, SubmissionState
from orders.order_actions import order_resend, orders_cancel, orders_retry
from orders.spreadsheet import ValidRow
from providers.clients.base import CardStatus, CardUpdate, PermanentError
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch, person


def assert_batch_totals_match(batch: Batch | int) -> None:
    """The counts and face values stored on the batch are what its orders say now."""
    batch_id = batch if isinstance(batch, int) else batch.pk
    stored = Batch.objects.get(pk=batch_id)
    orders = list(Order.objects.filter(batch_id=batch_id).values_list("status", "currency", "amount"))
    statuses = Counter(status for status, _, _ in orders)
    expected_counts = {status: statuses.get(status, 0) for status in OrderStatus.values}
    sums: dict[str, Decimal] = {}
    for _, currency, amount in orders:
        sums[currency] = sums.get(currency, Decimal(0)) + amount
    expected_values = {currency: f"{total:.2f}" for currency, total in sums.items()}
    assert (status_counts(stored), stored.face_value_totals) == (expected_counts, expected_values), (
        f"batch {batch_id}: stored totals differ from its orders")


@pytest.fixture(autouse=True)
def fast_engine(settings):
    settings.GIFTDESK_RETRY_BASE_SECONDS = 0.05
    settings.GIFTDESK_RETRY_MAX_SECONDS = 0.2
    settings.GIFTDESK_APPROVAL_THRESHOLDS = None


@pytest.fixture
def admin(db):
    return person("boss", superuser=True)


def pump(account, budget_seconds: float = 20) -> None:
    dispatch.account_pump(account.pk, budget_seconds=budget_seconds)


def rows_for(account, specs: list[tuple[str, str, str]]) -> list[ValidRow]:
    """(email, amount, SKU) -> checked rows, as an upload makes them."""
    rows = []
    for index, (email, amount, sku) in enumerate(specs):
        product = Product.objects.get(account=account, sku=sku)
        rows.append(ValidRow(row=index + 2, name=f"Recipient {index}", email=email, phone="+4512345678",
                             reference=f"E{index}", message="Thank you!", amount=Decimal(amount),
                             currency=product.currency, product=product, send_on=None))
    return rows


def stored(batch: Batch) -> Batch:
    return Batch.objects.get(pk=batch.pk)


# --- Import ----------------------------------------------------------------------------------------------


def test_an_upload_stores_its_counts_and_its_face_value_per_currency(emulated_gogift_account):
    Product.objects.create(account=emulated_gogift_account, provider_product_id="eur-card", sku="EUR-CARD",
                           title="Euro card", currency="EUR", pricing=PricingKind.RANGE,
                           min_amount=Decimal("5"), max_amount=Decimal("500"))
    rows = rows_for(emulated_gogift_account, [("a@example.com", "1000", GLOBAL_GIFT_CARD_SKU),
                                              ("b@example.com", "500", GLOBAL_GIFT_CARD_SKU),
                                              ("c@example.com", "25.50", "EUR-CARD")])

    batch = batch_create(account=emulated_gogift_account, rows=rows, source_filename="mixed.csv")

    assert (batch.pending_count, batch.face_value_totals) == (3, {"DKK": "1500.00", "EUR": "25.50"})
    assert stored(batch).face_value_totals == {"DKK": "1500.00", "EUR": "25.50"}
    assert_batch_totals_match(batch)


# --- Send, claim, deliver, fail -------------------------------------------------------------------------------


def test_send_claim_and_delivery_through_the_emulator_keep_the_counts(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "250", "50", "5000", "60"])
    assert_batch_totals_match(batch)

    batch_send(batch=batch)
    assert stored(batch).queued_count == 5
    assert_batch_totals_match(batch)

    submission = dispatch.orders_claim(account=emulated_gogift_account)  # 3 cards a request
    assert (stored(batch).queued_count, stored(batch).sending_count) == (2, 3)
    assert_batch_totals_match(batch)

    dispatch.submission_attempt(submission.pk)
    assert (stored(batch).delivered_count, stored(batch).queued_count) == (3, 2)
    assert_batch_totals_match(batch)

    pump(emulated_gogift_account)
    assert status_counts(stored(batch))[OrderStatus.DELIVERED] == 5 == len(gogift_emulator.ledger)
    assert stored(batch).face_value_totals == {"DKK": "5460.00"}
    assert_batch_totals_match(batch)


def test_an_asynchronous_provider_counts_processing_then_delivered_and_a_bounce_as_failed(
    emulated_giftronaut_account, giftronaut_emulator, settings
):
    settings.GIFTDESK_POLL_SECONDS = 0.05
    rows = rows_for(emulated_giftronaut_account, [("ann@example.com", "50", "GC-AMAZON-USD"),
                                                  ("bounce@example.com", "25", "GC-AMAZON-USD")])
    batch = batch_create(account=emulated_giftronaut_account, rows=rows, source_filename="async.csv")
    batch_send(batch=batch)

    dispatch.account_pump(emulated_giftronaut_account.pk, budget_seconds=0)  # accepted: being fulfilled
    assert stored(batch).processing_count == 2
    assert_batch_totals_match(batch)

    pump(emulated_giftronaut_account)  # status lookups until the order completes

    assert (stored(batch).delivered_count, stored(batch).failed_count) == (1, 1)
    assert_batch_totals_match(batch)


def test_a_refusal_a_retry_and_a_resend_keep_the_counts_and_the_face_value(
    emulated_gogift_account, gogift_emulator, admin
):
    rows = rows_for(emulated_gogift_account, [("anna@localhost", "100", GLOBAL_GIFT_CARD_SKU),  # refused
                                              ("bob@example.com", "200", GLOBAL_GIFT_CARD_SKU)])
    batch = batch_create(account=emulated_gogift_account, rows=rows, source_filename="test.csv")
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    refused = batch.orders.get(recipient__email="anna@localhost")
    assert refused.status == OrderStatus.FAILED and refused.definitely_refused
    assert (stored(batch).failed_count, stored(batch).delivered_count) == (1, 1)
    assert_batch_totals_match(batch)

    assert len(orders_retry([refused], admin).retried) == 1  # failed -> pending -> queued
    assert stored(batch).queued_count == 1
    assert_batch_totals_match(batch)
    pump(emulated_gogift_account)  # refused again
    assert stored(batch).failed_count == 1
    assert_batch_totals_match(batch)

    resend = order_resend(Order.objects.get(pk=refused.pk), email="anna@example.com", user=admin)
    assert resend.status == OrderStatus.QUEUED
    assert stored(batch).face_value_totals == {"DKK": "400.00"}  # the resend is an order of its own
    assert_batch_totals_match(batch)
    pump(emulated_gogift_account)
    assert (stored(batch).delivered_count, stored(batch).failed_count) == (2, 1)
    assert_batch_totals_match(batch)


def test_an_account_refusal_puts_the_orders_back_to_queued_in_the_counts(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("insufficient_funds", path="/baskets/finalize")

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0)

    assert stored(batch).queued_count == 2 and stored(batch).sending_count == 0
    assert_batch_totals_match(batch)


def test_a_webhook_moves_the_counts_of_the_cards_it_reports(
    emulated_giftronaut_account, giftronaut_emulator, settings
):
    settings.GIFTDESK_POLL_SECONDS = 60  # no lookup answers first: the webhook does
    rows = rows_for(emulated_giftronaut_account, [("ann@example.com", "50", "GC-AMAZON-USD"),
                                                  ("bob@example.com", "25", "GC-AMAZON-USD")])
    batch = batch_create(account=emulated_giftronaut_account, rows=rows, source_filename="async.csv")
    batch_send(batch=batch)
    dispatch.account_pump(emulated_giftronaut_account.pk, budget_seconds=0)
    ann, bob = batch.orders.order_by("id")
    assert stored(batch).processing_count == 2

    outcome = dispatch.card_updates_apply(account=emulated_giftronaut_account, actor="webhook", updates=[
        CardUpdate(status=CardStatus.DELIVERED, order_reference=ann.reference),
        CardUpdate(status=CardStatus.FAILED, order_reference=bob.reference, error="The email bounced."),
        CardUpdate(status=CardStatus.DELIVERED, order_reference=ann.reference),  # replayed: counted once
    ])

    assert outcome == "2 orders updated"
    assert (stored(batch).delivered_count, stored(batch).failed_count, stored(batch).processing_count) == (1, 1, 0)
    assert stored(batch).state == BatchState.COMPLETED
    assert_batch_totals_match(batch)


def test_a_claim_released_as_the_account_was_paused_is_counted_queued_again(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    batch_send(batch=batch)
    dispatch.orders_claim(account=emulated_gogift_account)
    assert stored(batch).sending_count == 2
    ProviderAccount.objects.filter(pk=emulated_gogift_account.pk).update(blocked_reason="GoGift refused the account.")

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0)

    assert (stored(batch).queued_count, stored(batch).sending_count) == (2, 0)
    assert_batch_totals_match(batch)


def test_a_refusal_fails_an_order_from_the_status_it_really_had(emulated_gogift_account, gogift_emulator):
    """An attempt taken over may find its cards already accepted by the earlier one: the
    failure is counted from `processing`, not from the `sending` the attempt read."""
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("drop_after_commit", path="/baskets/finalize")
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0)
    order = batch.orders.get()
    assert order.status == OrderStatus.SENDING
    Submission.objects.filter(pk=order.submission_id).update(next_attempt_at=timezone.now())
    attempt = dispatch._start_attempt(order.submission_id)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PROCESSING)  # the earlier attempt's answer
    batch_totals_refresh([batch.pk])

    dispatch._reject(attempt, [order], PermanentError("GoGift refused the order: the basket expired"), cause=None)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.FAILED
    assert order.events.filter(from_status=OrderStatus.PROCESSING, to_status=OrderStatus.FAILED).exists()
    assert_batch_totals_match(batch)


# --- Cancel and reject ---------------------------------------------------------------------------------------


def test_cancelling_a_batch_or_some_orders_moves_them_to_cancelled(emulated_gogift_account, admin):
    whole = make_batch(emulated_gogift_account, ["100", "200", "300"])
    assert batch_cancel(batch=whole, user=admin) == 3
    assert stored(whole).cancelled_count == 3 and stored(whole).state == BatchState.CANCELLED
    assert_batch_totals_match(whole)

    some = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=some)
    first = some.orders.order_by("id").first()
    result = orders_cancel([first], admin)
    assert len(result.cancelled) == 1
    assert (stored(some).queued_count, stored(some).cancelled_count) == (2, 1)
    assert_batch_totals_match(some)


def test_a_rejected_batch_counts_its_orders_cancelled(emulated_gogift_account, settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=100"
    uploader, approver = person("sam", "Senders"), person("alex", "Approvers")
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    Batch.objects.filter(pk=batch.pk).update(created_by=uploader)
    assert batch_send(batch=stored(batch), user=uploader).awaiting_approval

    batch_reject(batch=stored(batch), user=approver, reason="Wrong campaign")

    assert stored(batch).cancelled_count == 2
    assert_batch_totals_match(batch)


# --- Stored, not overwritten ---------------------------------------------------------------------------------


def test_saving_a_batch_loaded_earlier_keeps_the_counts_that_moved_since(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    loaded = Batch.objects.get(pk=batch.pk)
    batch_send(batch=batch)  # pending -> queued, after `loaded` was read

    loaded.campaign = "Christmas"
    loaded.save()  # a whole save, as the admin's change form does

    assert stored(batch).campaign == "Christmas" and stored(batch).queued_count == 2
    assert_batch_totals_match(batch)


def test_a_refresh_repairs_totals_changed_by_hand_in_a_few_queries(emulated_gogift_account):
    batches = [make_batch(emulated_gogift_account, ["100", "200"]) for _ in range(3)]
    Order.objects.filter(batch__in=batches).update(status=OrderStatus.DELIVERED, amount=Decimal("70"))
    assert batches_drifted([batch.pk for batch in batches]) == [batch.pk for batch in batches]

    with CaptureQueriesContext(connection) as few:
        assert batch_totals_refresh([batch.pk for batch in batches]) == 3
    more = [make_batch(emulated_gogift_account, ["10"]) for _ in range(9)]
    with CaptureQueriesContext(connection) as many:
        batch_totals_refresh([batch.pk for batch in batches + more])

    assert len(many) == len(few)
    for batch in batches + more:
        assert_batch_totals_match(batch)
    assert stored(batches[0]).face_value_totals == {"DKK": "140.00"}


def test_a_count_that_drifted_never_stops_a_delivery_is_logged_and_is_recounted(
    emulated_gogift_account, gogift_emulator, caplog, django_capture_on_commit_callbacks
):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(queued_count=0)  # drifted by hand: the claim would take it to -1

    with caplog.at_level("ERROR", logger="orders.batch_totals"), \
            django_capture_on_commit_callbacks(execute=True):
        pump(emulated_gogift_account)

    assert batch.orders.get().status == OrderStatus.DELIVERED
    assert [record.getMessage() for record in caplog.records] == [
        f"Batch {batch.pk}: its stored order counts drifted (moving them by queued_count -1, sending_count +1 "
        "takes one below zero); they are recounted from its orders once this commits."]
    assert_batch_totals_match(batch)  # recounted after the commit


# --- The batch list and the batch page ------------------------------------------------------------------------


def batch_list(client) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:orders_batch_changelist"))
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def test_the_batch_list_takes_as_many_queries_for_sixty_batches_as_for_five(client, admin, emulated_gogift_account):
    client.force_login(admin)
    for _ in range(5):
        make_batch(emulated_gogift_account, ["100", "200"])
    _, five = batch_list(client)
    for _ in range(55):
        make_batch(emulated_gogift_account, ["100"])

    html, sixty = batch_list(client)

    assert sixty == five, f"{five} queries for 5 batches, {sixty} for 60"
    assert html.count('class="giftdesk-bar giftdesk-bar-compact"') == 60


def test_the_batch_list_reads_no_order_row(client, admin, emulated_gogift_account):
    client.force_login(admin)
    make_batch(emulated_gogift_account, ["100"])

    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("admin:orders_batch_changelist")).status_code == 200

    assert [query["sql"] for query in queries if '"orders_order"' in query["sql"]] == []


def test_the_total_column_shows_each_currency_on_its_own_line_never_added(client, admin, emulated_gogift_account):
    client.force_login(admin)
    Product.objects.create(account=emulated_gogift_account, provider_product_id="eur-card", sku="EUR-CARD",
                           title="Euro card", currency="EUR", pricing=PricingKind.RANGE,
                           min_amount=Decimal("5"), max_amount=Decimal("500"))
    make_batch(emulated_gogift_account, ["1000", "500"])
    batch_create(account=emulated_gogift_account, source_filename="mixed.csv", rows=rows_for(
        emulated_gogift_account, [("a@example.com", "100", GLOBAL_GIFT_CARD_SKU), ("b@example.com", "25.50", "EUR-CARD")]))

    html, _ = batch_list(client)

    assert '<td class="field-total">1,500.00 DKK</td>' in html
    assert '<td class="field-total">100.00 DKK<br>25.50 EUR</td>' in html


def test_the_batch_page_and_its_progress_json_follow_the_engine(client, admin, emulated_gogift_account, gogift_emulator):
    client.force_login(admin)
    batch = make_batch(emulated_gogift_account, ["100", "200", "300", "400"])
    batch_send(batch=batch)
    dispatch.submission_attempt(dispatch.orders_claim(account=emulated_gogift_account).pk)  # 3 delivered

    data = client.get(reverse("admin:orders_batch_progress", args=[batch.pk])).json()
    page = client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()

    assert (data["total"], data["finished"], data["summary"]) == (4, 3, "3 of 4 orders finished (75%)")
    assert "3 of 4 orders finished (75%)" in page and "1,000.00 DKK" in page
    assert 'id="cancel-batch"' in page  # one order still queued
    assert_batch_totals_match(batch)


# --- The migration's backfill ---------------------------------------------------------------------------------


BEFORE = [("orders", "0016_order_status_completed_index")]
AFTER = [("orders", "0017_batch_totals")]


def migrate_to(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_the_migration_computes_the_totals_of_the_orders_already_there(transactional_db, emulated_gogift_account):
    Product.objects.create(account=emulated_gogift_account, provider_product_id="eur-card", sku="EUR-CARD",
                           title="Euro card", currency="EUR", pricing=PricingKind.RANGE,
                           min_amount=Decimal("5"), max_amount=Decimal("500"))
    first = make_batch(emulated_gogift_account, ["100", "200", "300"])
    second = batch_create(account=emulated_gogift_account, source_filename="mixed.csv", rows=rows_for(
        emulated_gogift_account, [("a@example.com", "100", GLOBAL_GIFT_CARD_SKU), ("b@example.com", "25.50", "EUR-CARD")]))
    empty = Batch.objects.create(name="no orders", account=emulated_gogift_account)
    try:
        old = migrate_to(BEFORE)
        Order = old.get_model("orders", "Order")
        ids = list(Order.objects.filter(batch_id=first.pk).order_by("id").values_list("pk", flat=True))
        Order.objects.filter(pk=ids[0]).update(status="delivered")
        Order.objects.filter(pk=ids[1]).update(status="failed")
        Order.objects.filter(batch_id=second.pk).update(status="processing")

        migrate_to(AFTER)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert status_counts(stored(first)) == {**dict.fromkeys(OrderStatus.values, 0), "delivered": 1, "failed": 1,
                                            "pending": 1}
    assert stored(second).processing_count == 2
    assert stored(second).face_value_totals == {"DKK": "100.00", "EUR": "25.50"}
    assert status_counts(stored(empty)) == dict.fromkeys(OrderStatus.values, 0)
    assert stored(empty).face_value_totals == {}
    for batch in (first, second, empty):
        assert_batch_totals_match(batch)
    assert batches_drifted() == []


def test_nothing_is_counted_twice_when_a_submission_carries_orders_of_two_batches(emulated_gogift_account):
    first = make_batch(emulated_gogift_account, ["100"])
    second = make_batch(emulated_gogift_account, ["200", "300"])
    batch_send(batch=first)
    batch_send(batch=second)

    pump(emulated_gogift_account)

    # Up to 3 cards a request, of one product and message: the first request carried both batches.
    assert Submission.objects.filter(state=SubmissionState.ACCEPTED, orders__batch=first).filter(
        orders__batch=second).exists()
    for batch in (first, second):
        assert_batch_totals_match(batch)
    assert (stored(first).delivered_count, stored(second).delivered_count) == (1, 2)


# --- Locks (PostgreSQL) ---------------------------------------------------------------------------------------


def waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


@contextmanager
def a_claim_waiting_for(batch: Batch, account) -> Iterator[list]:
    """Inside: this connection holds the batch's row, as a cancel does, and a worker's claim
    holds the orders it took and waits for that row to count them. On leaving, the claim
    ends; the list then holds its submission."""
    import threading
    import time

    errors, claimed = [], []

    def claim():
        try:
            claimed.append(dispatch.orders_claim(account=account))
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=claim)
    with transaction.atomic():
        Batch.objects.select_for_update().get(pk=batch.pk)
        worker.start()
        deadline = time.monotonic() + 10
        while not waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_for_a_lock(), "the claim never reached the batch's row"
        yield claimed
    worker.join(timeout=20)
    assert errors == [] and claimed[0] is not None


postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")


@postgresql_only
def test_a_batch_cancel_during_a_claim_cancels_nothing_and_says_why(transactional_db, emulated_gogift_account):
    """Waiting for the claimed orders would deadlock; cancelling only the others would leave
    those unsaid: nothing is cancelled, and the message says why."""
    batch = make_batch(emulated_gogift_account, ["100", "200", "300", "400", "500"])
    batch_send(batch=batch)

    with a_claim_waiting_for(batch, emulated_gogift_account):
        with pytest.raises(BatchActionRefused, match="A worker holds 3 queued orders of .* nothing was cancelled"):
            batch_cancel(batch=batch)
    assert (stored(batch).sending_count, stored(batch).queued_count) == (3, 2)

    assert batch_cancel(batch=batch) == 2  # a moment later: the worker let go of them
    assert (stored(batch).sending_count, stored(batch).cancelled_count) == (3, 2)
    assert_batch_totals_match(batch)


@postgresql_only
def test_cancelling_orders_during_a_claim_names_each_order_left_out(transactional_db, emulated_gogift_account):
    admin = person("boss", superuser=True)
    batch = make_batch(emulated_gogift_account, ["100", "200", "300", "400", "500"])
    batch_send(batch=batch)
    orders = list(batch.orders.order_by("id"))

    with a_claim_waiting_for(batch, emulated_gogift_account):
        result = orders_cancel(orders, admin)

    assert [order.pk for order in result.cancelled] == [order.pk for order in orders[3:]]
    assert [(entry.order.pk, entry.reason) for entry in result.left_out] == [
        (order.pk, "a worker held it at that instant (it may be sending it), so it was not cancelled: "
                   "look at it again") for order in orders[:3]]
    assert (stored(batch).sending_count, stored(batch).cancelled_count) == (3, 2)
    assert_batch_totals_match(batch)
