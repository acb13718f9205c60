"""The delivery engine against the GoGift emulator: claims, outcomes, retries, blocks."""

from decimal import Decimal

import pytest

from orders import dispatch, events
from orders.models import (
    Batch,
    BatchState,
    EventKind,
    Order,
    OrderStatus,
    Submission,
    SubmissionState,
)
from orders.batches import BatchActionRefused, batch_cancel, batch_send
from providers import ratelimit
from providers.models import ProviderAccount
from tests.fixtures.data import make_batch


pytestmark = pytest.mark.usefixtures("fast_retries")  # tests/fixtures/engine.py


def statuses(batch) -> list[str]:
    return list(batch.orders.order_by("id").values_list("status", flat=True))


def ledger_count(emulator, order: Order) -> int:
    return sum(1 for entry in emulator.ledger if entry.reference == order.reference)


def test_a_sent_batch_is_delivered_with_one_card_per_order(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "250", "50", "5000", "60"])
    assert batch_send(batch=batch).queued == 5

    report = dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert report.claimed == 2  # max_cards_per_request is 3
    assert statuses(batch) == [OrderStatus.DELIVERED] * 5
    for order in batch.orders.all():
        assert ledger_count(gogift_emulator, order) == 1
        assert order.provider_order_id and order.cost == order.amount and order.completed_at
    batch.refresh_from_db()
    assert batch.state == BatchState.COMPLETED


def test_every_provider_call_and_state_change_is_in_the_order_history(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    order = batch.orders.get()
    # Its creation is its batch's one event (orders.events.order_history), then its own.
    transitions = [event.to_status for event in events.order_history(order) if event.kind == EventKind.STATUS]
    assert transitions == ["pending", "queued", "sending", "delivered"]
    calls = order.provider_calls.all()
    assert [(c.method, c.url.rsplit("/", 1)[-1], c.http_status) for c in calls][-3:] == [
        ("POST", "baskets", 200), ("PUT", "baskets", 200), ("POST", "finalize", 200)]


def test_the_key_and_basket_id_are_stored_before_the_order_is_placed(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("drop_before", method="PUT", path="/baskets")
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0)

    submission = Submission.objects.get()
    assert submission.state == SubmissionState.RETRY
    assert submission.idempotency_key.startswith("gd-") and submission.provider_reference
    assert batch.orders.get().status == OrderStatus.SENDING


def test_a_lost_finalize_answer_is_retried_with_the_same_key_and_buys_once(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("drop_after_commit", path="/baskets/finalize")

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    submission = Submission.objects.get()
    assert submission.state == SubmissionState.ACCEPTED and submission.attempts == 2
    assert statuses(batch) == [OrderStatus.DELIVERED] * 2
    assert [ledger_count(gogift_emulator, order) for order in batch.orders.all()] == [1, 1]
    finalize_keys = {r.headers["Idempotency-Key"] for r in gogift_emulator.requests if r.path == "/baskets/finalize"}
    assert finalize_keys == {f"{submission.idempotency_key}-finalize"}


def test_a_transient_failure_is_retried_then_delivered(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("http_503", path="/baskets/finalize", times=2)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert statuses(batch) == [OrderStatus.DELIVERED]
    assert Submission.objects.get().attempts == 3
    assert len(gogift_emulator.ledger) == 1


def test_retries_are_bounded_and_the_order_fails_with_the_last_reason(emulated_gogift_account, gogift_emulator, settings):
    settings.GIFTDESK_MAX_SUBMIT_ATTEMPTS = 3
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("http_500", path="/baskets", times=10)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    order = batch.orders.get()
    assert order.status == OrderStatus.FAILED
    assert "Gave up after 3 attempts" in order.last_error and "unavailable" in order.last_error
    assert gogift_emulator.ledger == []


def test_a_refused_value_fails_the_orders_with_the_providers_reason(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100"])
    Order.objects.filter(batch=batch).update(amount=Decimal("55"))  # slipped past the import
    batch_send(batch=batch)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    order = batch.orders.get()
    assert order.status == OrderStatus.FAILED
    assert "GoGift refused the order" in order.last_error and "55" in order.last_error
    assert gogift_emulator.ledger == []
    batch.refresh_from_db()
    assert batch.state == BatchState.COMPLETED


def test_an_account_refusal_pauses_the_account_and_resume_delivers(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "200", "300", "400"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("insufficient_funds", path="/baskets/finalize")

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    account = ProviderAccount.objects.get(pk=emulated_gogift_account.pk)
    assert "credit" in account.blocked_reason.lower()
    # Nothing failed one by one, and nothing was bought: the refused request's orders went
    # back to waiting with the rest (issue 9: before, they stayed `sending`), saying why.
    assert statuses(batch) == [OrderStatus.QUEUED] * 4
    assert set(batch.orders.values_list("waiting_reason", flat=True)) == {
        f"Sending is paused for the account: {account.blocked_reason}"}
    # The request refused; the round's other claim (3 cards a basket here) never went out.
    refused = Submission.objects.get(attempts=1)
    assert refused.state == SubmissionState.REJECTED and "went back to waiting" in refused.last_error
    unsent = Submission.objects.exclude(pk=refused.pk)
    assert {(s.state, s.attempts) for s in unsent} <= {(SubmissionState.REJECTED, 0)}
    assert all(s.last_error.startswith("Not sent: sending on the account was paused") for s in unsent)
    assert gogift_emulator.ledger == []

    dispatch.account_sending_resume(account=account)
    dispatch.account_pump(account.pk, budget_seconds=20)

    assert statuses(batch) == [OrderStatus.DELIVERED] * 4
    assert len(gogift_emulator.ledger) == 4
    for order in batch.orders.all():
        assert ledger_count(gogift_emulator, order) == 1 and order.waiting_reason == ""
        # Sent again under a new key: the refused one bought nothing.
        assert order.submission.idempotency_key != refused.idempotency_key


def test_bad_credentials_pause_the_account_with_what_to_fix(emulated_gogift_account):
    from providers.services import account_configure

    account_configure(name=emulated_gogift_account.name, kind="gogift", environment="sandbox",
                      values={"client_secret": "wrong"})
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    account = ProviderAccount.objects.get(pk=emulated_gogift_account.pk)
    assert "invalid_client" in account.blocked_reason
    # The token was refused before any order was sent: the order waits, cancellable (issue 9:
    # before, it stayed `sending`), and its submission bought nothing.
    assert statuses(batch) == [OrderStatus.QUEUED]
    assert batch.orders.get().waiting_reason == f"Sending is paused for the account: {account.blocked_reason}"
    submission = Submission.objects.get()
    assert submission.state == SubmissionState.REJECTED and submission.attempts == 1
    assert not submission.outcome_unknown and submission.orders.count() == 0


def test_claiming_never_hands_an_order_to_two_submissions(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"] * 7)
    batch_send(batch=batch)
    claimed = []
    while (submission := dispatch.orders_claim(account=emulated_gogift_account, limit=3)) is not None:
        claimed.append(list(submission.orders.values_list("id", flat=True)))
    ids = [order_id for group in claimed for order_id in group]
    assert [len(group) for group in claimed] == [3, 3, 1]
    assert sorted(ids) == sorted(batch.orders.values_list("id", flat=True))


def test_a_second_attempt_of_an_in_flight_submission_is_refused(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account, limit=3)
    Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.IN_FLIGHT)
    assert dispatch.submission_attempt(submission.pk) is None


def test_a_submission_left_in_flight_by_a_dead_worker_is_retried_with_its_key(emulated_gogift_account, gogift_emulator):
    from datetime import timedelta

    from django.utils import timezone

    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account, limit=3)
    assert dispatch._start_attempt(submission.pk) is not None  # its worker dies: nobody renews the lease
    assert dispatch.stale_submissions_release() == 0  # while the lease runs, the worker may be alive
    Submission.objects.filter(pk=submission.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert dispatch.stale_submissions_release() == 1
    assert Submission.objects.get().outcome_unknown
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert statuses(batch) == [OrderStatus.DELIVERED]
    assert Submission.objects.get().idempotency_key == submission.idempotency_key
    assert len(gogift_emulator.ledger) == 1


def test_sending_twice_is_refused_with_a_reason(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    with pytest.raises(BatchActionRefused, match="no pending orders"):
        batch_send(batch=batch)


def test_cancel_stops_only_what_was_not_yet_handed_to_a_worker(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=batch)
    dispatch.orders_claim(account=emulated_gogift_account, limit=1)

    assert batch_cancel(batch=batch) == 2
    assert sorted(statuses(batch)) == sorted([OrderStatus.SENDING, OrderStatus.CANCELLED, OrderStatus.CANCELLED])
    assert Batch.objects.get(pk=batch.pk).state == BatchState.SENDING


def test_one_bad_line_is_split_out_and_fails_alone(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "200", "300"])
    bad = batch.orders.order_by("id")[1]
    Order.objects.filter(pk=bad.pk).update(amount=Decimal("55"))  # slipped past the import
    batch_send(batch=batch)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    by_id = dict(batch.orders.values_list("id", "status"))
    assert by_id.pop(bad.pk) == OrderStatus.FAILED
    assert set(by_id.values()) == {OrderStatus.DELIVERED}
    assert sorted(entry.amount for entry in gogift_emulator.ledger) == [Decimal("100"), Decimal("300")]
    original = Submission.objects.get(split_from__isnull=True)
    assert original.state == SubmissionState.REJECTED and original.splits.count() == 3
    assert "55" in Order.objects.get(pk=bad.pk).last_error


def test_a_card_that_fails_alone_after_a_split_is_not_split_again(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    Order.objects.filter(batch=batch).update(amount=Decimal("55"))
    batch_send(batch=batch)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert statuses(batch) == [OrderStatus.FAILED] * 2
    assert Submission.objects.count() == 3  # the pair, then each card once


def test_an_order_whose_outcome_is_unknown_is_never_failed_for_lack_of_an_answer(
    emulated_gogift_account, gogift_emulator, settings
):
    settings.GIFTDESK_MAX_SUBMIT_ATTEMPTS = 3
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("drop_after_commit", method="PUT", path="/baskets")  # the update went in...
    gogift_emulator.faults.add("http_503", method="POST", path="/baskets/finalize", times=4)  # ...then GoGift is down

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0.5)
    submission = Submission.objects.get()
    assert submission.outcome_unknown and submission.state == SubmissionState.RETRY
    assert batch.orders.get().status == OrderStatus.SENDING  # past 3 attempts, still not failed
    assert "Still waiting for GoGift to confirm" in batch.orders.get().last_error

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert statuses(batch) == [OrderStatus.DELIVERED]
    assert len(gogift_emulator.ledger) == 1


def test_waiting_for_our_own_rate_limit_spends_no_attempt(emulated_gogift_account, gogift_emulator):
    ProviderAccount.objects.filter(pk=emulated_gogift_account.pk).update(rate_limit_per_minute=1)
    ratelimit.acquire(emulated_gogift_account.pk, 1)  # a request just went: the next slot is a minute away
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    sent_before = len(gogift_emulator.requests)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0.1)

    submission = Submission.objects.get()
    assert submission.state == SubmissionState.RETRY and submission.attempts == 0
    assert "1 request per minute" in submission.last_error
    assert (submission.next_attempt_at - submission.updated_at).total_seconds() > 50
    assert len(gogift_emulator.requests) == sent_before  # nothing went out


def test_retry_after_is_honoured_beyond_the_backoff_cap(settings):
    settings.GIFTDESK_RETRY_MAX_SECONDS = 1
    assert dispatch.retry_delay(1, retry_after=30) == 30
    assert dispatch.retry_delay(10, retry_after=None) <= 1
    assert dispatch.retry_delay(1, retry_after=10**6) == dispatch.MAX_RETRY_AFTER_SECONDS


def test_status_lookups_back_off_up_to_a_cap(settings):
    settings.GIFTDESK_POLL_SECONDS, settings.GIFTDESK_POLL_MAX_SECONDS = 10, 60
    assert [dispatch.poll_delay(polls) for polls in range(1, 6)] == [10, 20, 40, 60, 60]


def test_an_attempt_taken_over_as_dead_cannot_overwrite_its_successor(emulated_gogift_account, gogift_emulator):
    from providers.clients.base import PermanentError

    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    first = dispatch._start_attempt(submission.pk)  # a worker starts, then goes silent
    Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.RETRY)  # the sweep gave it up
    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED  # a second worker delivers

    # The first worker wakes up with a stale, contrary answer.
    dispatch._reject(first, list(batch.orders.all()), PermanentError("late and wrong"), cause=None)

    assert statuses(batch) == [OrderStatus.DELIVERED]
    assert Submission.objects.get().state == SubmissionState.ACCEPTED
    assert len(gogift_emulator.ledger) == 1


def test_an_attempt_finding_its_cards_already_in_fulfilment_follows_them_up(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    Order.objects.filter(batch=batch).update(status=OrderStatus.PROCESSING)  # another attempt's answer

    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED
    submission.refresh_from_db()
    assert submission.next_poll_at is not None  # the processing card will be looked up
