"""The engine writes in bulk: the statements of a submission do not grow with its cards, and
every bulk change is still conditional, so two applications of an answer never both win."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orders import batch_totals, dispatch
from orders.batches import batch_send
from orders.models import EventKind, Order, OrderEvent, OrderStatus, Submission, SubmissionState
from providers.clients.base import CardResult, CardStatus, CardUpdate, SubmitResult
from tests.fixtures.data import make_batch


def statements(action) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        outcome = action()
    return len(queries), outcome


def sent_basket(account, cards: int) -> tuple[int, int, Submission]:
    """Claim and send a new batch of `cards` orders as one basket: (statements of the claim,
    statements of the attempt, the submission)."""
    batch = make_batch(account, [str(100 + 10 * index) for index in range(cards)])
    batch_send(batch=batch)
    claim, submission = statements(lambda: dispatch.orders_claim(account=account, limit=cards))
    attempt, state = statements(lambda: dispatch.submission_attempt(submission.pk))
    assert state == SubmissionState.ACCEPTED
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert batch_totals.batches_drifted([batch.pk]) == []
    return claim, attempt, submission


def test_a_basket_of_40_cards_costs_the_statements_of_a_basket_of_4(emulated_gogift_account):
    sent_basket(emulated_gogift_account, 1)  # the first request also fetches the OAuth token

    small_claim, small_attempt, _ = sent_basket(emulated_gogift_account, 4)
    large_claim, large_attempt, submission = sent_basket(emulated_gogift_account, 40)

    # Each card's cost differs (its own amount): one CASE, not one UPDATE per card.
    assert (large_claim, large_attempt) == (small_claim, small_attempt)
    # Claim: lock the account, read, create the submission, move the orders, their events,
    # the batch's totals. Attempt: 3 GoGift calls (each a row and its links), the answer
    # applied in one transaction. Rate limiting included; no statement per card anywhere.
    assert large_claim <= 10
    assert large_attempt <= 30
    order = submission.orders.order_by("id").last()
    assert order.cost == order.amount and order.cost_currency
    events = OrderEvent.objects.filter(submission=submission, kind=EventKind.STATUS)
    assert sorted(events.values_list("to_status", flat=True)) == sorted(
        [OrderStatus.SENDING] * 40 + [OrderStatus.DELIVERED] * 40)


def delivered_answer(orders: list[Order], status=CardStatus.DELIVERED) -> SubmitResult:
    return SubmitResult(provider_reference="basket-again", cards=[
        CardResult(order_reference=order.reference, status=status, provider_order_id="order-again",
                   cost=Decimal("1.00"), cost_currency="EUR", error="late and wrong" if status == CardStatus.FAILED
                   else "") for order in orders])


def test_the_same_answer_applied_twice_moves_each_order_once(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    stale = list(submission.orders.select_related("recipient", "product", "batch").order_by("id"))  # all sending
    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED
    events_before = OrderEvent.objects.count()
    costs = list(batch.orders.order_by("id").values_list("cost", flat=True))

    # A second application from the same state (a worker still holding the old read): the
    # orders are no longer sending, so the conditional change finds nothing to win.
    for status in (CardStatus.DELIVERED, CardStatus.FAILED):
        still = dispatch._apply_results(submission, stale, delivered_answer(stale, status),
                                        from_status=OrderStatus.SENDING, cause=None)
        assert still == 0

    assert OrderEvent.objects.count() == events_before
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert list(batch.orders.order_by("id").values_list("cost", flat=True)) == costs
    assert batch_totals.batches_drifted([batch.pk]) == []


def test_an_answer_moves_only_the_orders_still_in_the_status_it_answers(emulated_gogift_account):
    """One of three was moved meanwhile (an attempt taken over): the bulk change skips it, and
    each event says where its order really came from."""
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    orders = list(submission.orders.select_related("recipient", "product", "batch").order_by("id"))
    moved_meanwhile = orders[1]
    Order.objects.filter(pk=moved_meanwhile.pk).update(status=OrderStatus.PROCESSING)
    batch_totals.batch_totals_refresh([batch.pk])

    with CaptureQueriesContext(connection) as queries:
        still = dispatch._apply_results(submission, orders, delivered_answer(orders), from_status=OrderStatus.SENDING,
                                        cause=None)

    assert still == 0
    assert list(batch.orders.order_by("id").values_list("status", flat=True)) == [
        OrderStatus.DELIVERED, OrderStatus.PROCESSING, OrderStatus.DELIVERED]
    delivered = OrderEvent.objects.filter(to_status=OrderStatus.DELIVERED)
    assert sorted(delivered.values_list("order_id", "from_status")) == [
        (orders[0].pk, OrderStatus.SENDING), (orders[2].pk, OrderStatus.SENDING)]
    assert batch_totals.batches_drifted([batch.pk]) == []
    # Lock and read the winners, one UPDATE, one INSERT of events, one UPDATE of the batch's totals
    # (and on SQLite the transaction's BEGIN).
    assert len(queries) <= 5


def test_failing_orders_in_bulk_records_the_status_each_really_had(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    orders = list(submission.orders.order_by("id"))
    Order.objects.filter(pk=orders[0].pk).update(status=OrderStatus.PROCESSING)
    Order.objects.filter(pk=orders[2].pk).update(status=OrderStatus.DELIVERED)
    batch_totals.batch_totals_refresh([batch.pk])

    with transaction.atomic():
        failed = dispatch._fail_orders(submission, orders, "Refused.", cause=None, definitely_refused=True)

    assert [order.pk for order in failed] == [orders[0].pk, orders[1].pk]
    assert sorted(OrderEvent.objects.filter(to_status=OrderStatus.FAILED).values_list("order_id", "from_status")) == [
        (orders[0].pk, OrderStatus.PROCESSING), (orders[1].pk, OrderStatus.SENDING)]
    assert Order.objects.get(pk=orders[2].pk).status == OrderStatus.DELIVERED
    assert batch_totals.batches_drifted([batch.pk]) == []


def processing_orders(account, cards: int) -> list[Order]:
    batch = make_batch(account, [str(100 + index) for index in range(cards)])
    Order.objects.filter(batch=batch).update(status=OrderStatus.PROCESSING)
    batch_totals.batch_totals_refresh([batch.pk])
    return list(batch.orders.order_by("id"))


def test_a_webhook_applies_its_updates_in_bulk_and_the_first_word_on_an_order_wins(emulated_gogift_account):
    def apply(orders, status=CardStatus.DELIVERED):
        updates = [CardUpdate(status, order_reference=order.reference, error="bounced" if status == CardStatus.FAILED
                              else "") for order in orders]
        return dispatch.card_updates_apply(account=emulated_gogift_account, updates=updates, actor="webhook")

    three = processing_orders(emulated_gogift_account, 3)
    small, outcome = statements(lambda: apply(three))
    assert outcome == "3 orders updated"
    thirty = processing_orders(emulated_gogift_account, 30)  # the same references: the first three are done
    large, outcome = statements(lambda: apply(thirty))
    assert outcome == "30 orders updated"
    # Read and lock the orders named, one UPDATE, one INSERT of events, the batch's totals,
    # completing it (and on SQLite the transaction's BEGIN).
    assert large == small <= 6

    # A replay, and a contrary word after the first: nothing moves again.
    assert apply(thirty, CardStatus.FAILED) == "0 orders updated"
    assert set(Order.objects.filter(pk__in=[order.pk for order in three + thirty]).values_list(
        "status", flat=True)) == {OrderStatus.DELIVERED}
    for order in three + thirty:
        assert OrderEvent.objects.filter(order_id=order.pk, kind=EventKind.STATUS).exclude(
            to_status__in=[OrderStatus.PENDING, OrderStatus.QUEUED]).count() == 1
    assert batch_totals.batches_drifted() == []


def test_within_one_webhook_the_first_update_of_an_order_wins(emulated_gogift_account):
    [order] = processing_orders(emulated_gogift_account, 1)
    updates = [CardUpdate(CardStatus.FAILED, order_reference=order.reference, error="bounced"),
               CardUpdate(CardStatus.DELIVERED, order_reference=order.reference)]

    assert dispatch.card_updates_apply(account=emulated_gogift_account, updates=updates,
                                       actor="webhook") == "1 order updated"

    order.refresh_from_db()
    assert (order.status, order.last_error, order.definitely_refused) == (OrderStatus.FAILED, "bounced", True)
    assert OrderEvent.objects.filter(order=order, kind=EventKind.STATUS).count() == 1


postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")


def waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0


@postgresql_only
def test_two_workers_applying_answers_at_once_never_both_win(transactional_db, emulated_gogift_account):
    """A worker applies an answer and holds its orders; a second one, with a contrary answer
    for the same orders, waits for them and then finds them moved: it changes nothing."""
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    orders = list(submission.orders.select_related("recipient", "product", "batch").order_by("id"))
    errors, second = [], []

    def second_worker():
        try:
            with transaction.atomic():
                second.append(dispatch._apply_results(
                    submission, orders, delivered_answer(orders, CardStatus.FAILED),
                    from_status=OrderStatus.SENDING, cause=None))
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=second_worker)
    with transaction.atomic():
        assert dispatch._apply_results(submission, orders, delivered_answer(orders),
                                       from_status=OrderStatus.SENDING, cause=None) == 0
        worker.start()
        deadline = time.monotonic() + 10
        while not waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_for_a_lock(), "the second worker never waited for the orders"
    worker.join(timeout=20)

    assert errors == [] and second == [0]
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert not batch.orders.filter(definitely_refused=True).exists()
    for order in orders:
        assert list(OrderEvent.objects.filter(order=order, kind=EventKind.STATUS, from_status=OrderStatus.SENDING)
                    .values_list("from_status", "to_status")) == [(OrderStatus.SENDING, OrderStatus.DELIVERED)]
    assert batch_totals.batches_drifted([batch.pk]) == []


@postgresql_only
def test_a_change_committed_while_the_answer_waits_is_not_overwritten(transactional_db, emulated_gogift_account):
    """Another transaction holds one order and moves it; the answer's lock waits for it, re-reads
    the row and leaves it out: the others move, with events from their true status."""
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    orders = list(submission.orders.select_related("recipient", "product", "batch").order_by("id"))
    errors, outcome = [], []

    def answer():
        try:
            with transaction.atomic():
                outcome.append(dispatch._apply_results(submission, orders, delivered_answer(orders),
                                                       from_status=OrderStatus.SENDING, cause=None))
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=answer)
    with transaction.atomic():
        Order.objects.select_for_update().get(pk=orders[0].pk)
        worker.start()
        deadline = time.monotonic() + 10
        while not waiting_for_a_lock() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_for_a_lock(), "the answer never waited for the order"
        with batch_totals.deferred():
            Order.objects.filter(pk=orders[0].pk).update(status=OrderStatus.FAILED)
            from orders import events
            events.record_transition([orders[0]], from_status=OrderStatus.SENDING, to_status=OrderStatus.FAILED,
                                     actor="test", message="Failed meanwhile.")
    worker.join(timeout=20)

    assert errors == [] and outcome == [0]
    assert list(batch.orders.order_by("id").values_list("status", flat=True)) == [
        OrderStatus.FAILED, OrderStatus.DELIVERED, OrderStatus.DELIVERED]
    assert not OrderEvent.objects.filter(order=orders[0], to_status=OrderStatus.DELIVERED).exists()
    assert batch_totals.batches_drifted([batch.pk]) == []
