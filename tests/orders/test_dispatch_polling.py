"""Status lookups that keep up, webhooks first where an account has them, and outcomes in
doubt asked again at a bounded cadence (issue 12), against the emulators over real HTTP."""

from decimal import Decimal

import pytest
from django.utils import timezone

from emulators.ugiftme import BOL_CARD
from orders import dispatch
from orders.batches import batch_create, batch_send
from orders.models import EventKind, Order, OrderEvent, OrderStatus, Submission, SubmissionState
from orders.spreadsheet import ValidRow
from providers.clients.base import OutcomeUnknown, RateLimited, TransientError
from providers.clients.giftronaut import GiftronautClient
from providers.models import Product, ProviderAccount
from providers.services import account_configure
from tests.fixtures.data import make_batch

GIFTRONAUT_SKU = "GC-AMAZON-USD"


def batch_of(account, amounts: list[str], *, product: Product):
    rows = [ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                     reference=f"P{index:04d}", message="Thank you!", amount=Decimal(amount),
                     currency=product.currency, product=product, send_on=None)
            for index, amount in enumerate(amounts)]
    batch = batch_create(account=account, rows=rows, source_filename="polling.csv")
    batch_send(batch=batch)
    return batch


def giftronaut_batch(account, amounts=("50",)):
    return batch_of(account, list(amounts), product=Product.objects.get(account=account, sku=GIFTRONAUT_SKU))


def ugiftme_batch(account, amounts=("50",)):
    return batch_of(account, list(amounts), product=Product.objects.get(account=account, provider_product_id=BOL_CARD))


def accepted(account) -> Submission:
    """The account's one submission, sent once and accepted (its cards still processing).
    The account's rate limit is set out of the way: lookups then go as soon as they are due."""
    ProviderAccount.objects.filter(pk=account.pk).update(rate_limit_per_minute=100_000)
    submission = dispatch.orders_claim(account=account)
    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED
    submission.refresh_from_db()
    assert submission.orders.filter(status=OrderStatus.PROCESSING).exists()
    return submission


def seconds_until_next_poll(submission: Submission) -> float:
    submission.refresh_from_db()
    return (submission.next_poll_at - submission.updated_at).total_seconds()


def poll_now(submission: Submission):
    Submission.objects.filter(pk=submission.pk).update(next_poll_at=timezone.now())
    return dispatch.submission_poll(submission.pk)


# --- Polling ---------------------------------------------------------------------------------------


def test_the_defaults_look_up_a_second_after_acceptance_then_double_up_to_five_minutes(settings):
    assert (settings.GIFTDESK_POLL_SECONDS, settings.GIFTDESK_POLL_WEBHOOK_SECONDS,
            settings.GIFTDESK_POLL_MAX_SECONDS) == (1.0, 30.0, 300.0)
    assert [dispatch.poll_delay(polls) for polls in range(12)] == [1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert dispatch.poll_delay(100_000) == 300  # no overflow, however long a card takes


def test_a_card_is_first_looked_up_a_second_after_the_provider_accepts_it(emulated_ugiftme_account):
    ugiftme_batch(emulated_ugiftme_account)

    submission = accepted(emulated_ugiftme_account)

    assert seconds_until_next_poll(submission) == 1.0


def test_lookups_back_off_doubling_until_the_card_is_done(
    emulated_giftronaut_account, giftronaut_emulator, settings
):
    settings.GIFTDESK_POLL_MAX_SECONDS = 4
    giftronaut_emulator.steps_per_poll = 0  # the order stays in fulfilment until advanced
    batch = giftronaut_batch(emulated_giftronaut_account)
    submission = accepted(emulated_giftronaut_account)

    waits = []
    for _ in range(4):
        assert poll_now(submission) == 1
        waits.append(seconds_until_next_poll(submission))

    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling, capped
    giftronaut_emulator.steps_per_poll = 2
    assert poll_now(submission) == 0
    assert batch.orders.get().status == OrderStatus.DELIVERED
    submission.refresh_from_db()
    assert submission.next_poll_at is None and submission.polls == 5


def test_an_account_with_webhooks_is_looked_up_only_as_the_fallback(emulated_ugiftme_account, ugiftme_emulator):
    account_configure(name=emulated_ugiftme_account.name, kind="ugiftme", environment="sandbox",
                      values={"webhook_secret": "whsec_" + "ab" * 24})
    emulated_ugiftme_account.refresh_from_db()
    assert dispatch.webhooks_report(emulated_ugiftme_account)
    ugiftme_batch(emulated_ugiftme_account)

    submission = accepted(emulated_ugiftme_account)
    assert seconds_until_next_poll(submission) == 30.0  # the webhook is expected first

    assert poll_now(submission) == 1  # no webhook came: the fallback lookup asks
    assert seconds_until_next_poll(submission) == 30.0
    assert poll_now(submission) == 0
    assert [dispatch.poll_delay(polls, webhooks=True) for polls in range(5)] == [30, 30, 60, 120, 240]


def test_a_webhook_secret_on_a_provider_without_webhooks_changes_nothing(emulated_giftronaut_account):
    account_configure(name=emulated_giftronaut_account.name, kind="giftronaut", environment="sandbox",
                      values={"webhook_secret": "unused"})
    emulated_giftronaut_account.refresh_from_db()
    assert not dispatch.webhooks_report(emulated_giftronaut_account)  # Giftronaut documents none
    giftronaut_batch(emulated_giftronaut_account)

    assert seconds_until_next_poll(accepted(emulated_giftronaut_account)) == 1.0


def test_a_lookup_held_back_for_orders_is_asked_again_when_they_have_gone(
    emulated_giftronaut_account, giftronaut_emulator, monkeypatch
):
    giftronaut_batch(emulated_giftronaut_account, ["50"] * 5)  # 4 cards a request: two requests
    submission, other = accepted(emulated_giftronaut_account), accepted(emulated_giftronaut_account)
    Submission.objects.filter(pk=other.pk).update(next_poll_at=timezone.now())
    events_before = OrderEvent.objects.count()
    sent_before = len(giftronaut_emulator.requests)

    def held_back(self, request):
        raise RateLimited("Status lookups wait while orders use the account's limit.", retry_after=7)

    monkeypatch.setattr(GiftronautClient, "fetch_status", held_back)
    assert poll_now(submission) == 4

    submission.refresh_from_db()
    other.refresh_from_db()
    assert (submission.next_poll_at - timezone.now()).total_seconds() == pytest.approx(7, abs=0.5)
    assert other.next_poll_at == submission.next_poll_at  # held back with it, not tried in turn
    assert submission.polls == other.polls == 0  # nothing was asked: no lookup spent, nothing noted
    assert OrderEvent.objects.count() == events_before
    assert len(giftronaut_emulator.requests) == sent_before


def test_a_failed_lookup_backs_off_as_lookups_do_and_honours_retry_after(
    emulated_giftronaut_account, monkeypatch
):
    batch = giftronaut_batch(emulated_giftronaut_account)
    submission = accepted(emulated_giftronaut_account)
    failure = {"retry_after": None}

    def failing(self, request):
        raise TransientError("Giftronaut answered 503.", retry_after=failure["retry_after"])

    monkeypatch.setattr(GiftronautClient, "fetch_status", failing)
    poll_now(submission)
    first = seconds_until_next_poll(submission)
    poll_now(submission)
    second = seconds_until_next_poll(submission)
    failure["retry_after"] = 120
    poll_now(submission)
    third = seconds_until_next_poll(submission)

    assert (first, second, third) == (1.0, 2.0, 120.0)  # each failure counts: doubling; Retry-After wins
    assert batch.orders.get().status == OrderStatus.PROCESSING  # never failed for a failed lookup
    assert batch.orders.get().events.filter(kind=EventKind.NOTE, message__startswith="Status lookup failed").count() == 3


# --- Outcomes in doubt -----------------------------------------------------------------------------


def test_the_default_retry_cadence_is_at_most_a_minute_with_jitter(settings):
    assert (settings.GIFTDESK_RETRY_BASE_SECONDS, settings.GIFTDESK_RETRY_MAX_SECONDS) == (5.0, 60.0)
    late = [dispatch.retry_delay(attempts, None) for attempts in (5, 6, 9, 50, 10_000) for _ in range(40)]
    assert all(30 <= delay <= 60 for delay in late)
    assert len({round(delay, 3) for delay in late}) > 150  # jittered, never in lockstep
    assert all(2.5 <= dispatch.retry_delay(1, None) <= 5 for _ in range(20))


def test_retry_after_wins_when_larger_up_to_the_cap(settings):
    assert dispatch.retry_delay(9, retry_after=120) == 120
    assert 30 <= dispatch.retry_delay(9, retry_after=10) <= 60  # the backoff is larger: it wins
    assert dispatch.retry_delay(9, retry_after=10**6) == dispatch.MAX_RETRY_AFTER_SECONDS


def test_an_outcome_still_unknown_after_the_last_attempt_is_asked_again_within_a_minute(emulated_gogift_account):
    batch_send(batch=make_batch(emulated_gogift_account, ["100"]))
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    waits = []
    for retry_after in (None, None, None, 90):
        Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.RETRY, next_attempt_at=None,
                                                           attempts=4)
        attempt = dispatch._start_attempt(submission.pk)  # the 5th, the last before giving up
        orders = list(attempt.orders.all())
        assert dispatch._retry_later(attempt, orders, OutcomeUnknown("GoGift did not answer in time.",
                                                                     retry_after=retry_after), cause=None) == "retry"
        attempt.refresh_from_db()
        waits.append((attempt.next_attempt_at - attempt.updated_at).total_seconds())
        assert attempt.outcome_unknown and attempt.attempts == 5
        assert Order.objects.get(submission=attempt).status == OrderStatus.SENDING  # never failed for it

    assert all(30 <= wait <= 60 for wait in waits[:3]) and waits[3] == 90  # Retry-After honoured
    assert "Still waiting for GoGift to confirm" in Order.objects.get().last_error


def test_an_order_in_doubt_is_looked_up_before_its_request_is_sent_again(
    emulated_giftronaut_account, giftronaut_emulator
):
    batch = giftronaut_batch(emulated_giftronaut_account, ["50", "25"])
    submission = accepted(emulated_giftronaut_account)
    # The worker died after Giftronaut answered and the order id was stored, before the
    # answer was recorded: the sweep hands the submission on, its outcome in doubt.
    batch.orders.update(status=OrderStatus.SENDING)
    Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.RETRY, outcome_unknown=True,
                                                       next_attempt_at=None, next_poll_at=None)
    sent_before = len(giftronaut_emulator.requests)

    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED

    asked = [(request.method, request.path) for request in giftronaut_emulator.requests[sent_before:]]
    assert asked == [("GET", f"/api/v1/orders/{submission.provider_reference}")]  # a lookup, not a replay
    assert len(giftronaut_emulator.ledger) == 2
    assert set(batch.orders.values_list("status", flat=True)) <= {OrderStatus.PROCESSING, OrderStatus.DELIVERED}
    assert set(batch.orders.values_list("provider_order_id", flat=True)) == {submission.provider_reference}


def test_a_lookup_that_fails_leaves_the_order_in_doubt_to_a_replay_with_the_same_key(
    emulated_giftronaut_account, giftronaut_emulator
):
    batch = giftronaut_batch(emulated_giftronaut_account)
    submission = accepted(emulated_giftronaut_account)
    batch.orders.update(status=OrderStatus.SENDING)
    Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.RETRY, outcome_unknown=True,
                                                       next_attempt_at=None, next_poll_at=None)
    giftronaut_emulator.faults.add("http_503", method="GET", path=f"/api/v1/orders/{submission.provider_reference}")
    sent_before = len(giftronaut_emulator.requests)

    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED

    asked = [(request.method, request.path) for request in giftronaut_emulator.requests[sent_before:]]
    assert asked[-1] == ("POST", "/api/v1/orders/branded-card")  # replayed with the same key...
    assert giftronaut_emulator.requests[-1].headers["X-Idempotency-Key"] == submission.idempotency_key
    assert len(giftronaut_emulator.ledger) == 1  # ...which bought nothing new

