"""Rounds: a pump claims several submissions at once, sends them in turn and records their
answers together. The statements do not grow with the submissions, and every promise holds
for each of them: a request not sent goes back unsent, an answer not yet recorded is replayed
with its own key, never bought twice."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import batch_totals, dispatch
from orders.batches import batch_send
from orders.models import EventKind, OrderEvent, OrderStatus, ProviderCall, Submission, SubmissionState
from providers.clients.base import RateLimited
from providers.clients.giftronaut import GiftronautClient
from providers.models import ProviderAccount
from tests.fixtures.data import make_batch
from tests.orders.test_dispatch import ledger_count
from tests.orders.test_dispatch_polling import accepted, giftronaut_batch


pytestmark = pytest.mark.usefixtures("fast_retries")  # tests/fixtures/engine.py


def claimed(account, cards: int, *, baskets: int) -> list[Submission]:
    batch = make_batch(account, [str(100 + 10 * index) for index in range(cards)])
    batch_send(batch=batch)
    return dispatch.orders_claim_round(account=account, limit=3, baskets=baskets)


def sent_round(account, baskets: int) -> tuple[int, int]:
    """Claim and send `baskets` baskets of 3 as one round: (statements of the claim, of the sending)."""
    batch = make_batch(account, [str(100 + 10 * index) for index in range(3 * baskets)])
    batch_send(batch=batch)
    with CaptureQueriesContext(connection) as claim:
        submissions = dispatch.orders_claim_round(account=account, limit=3, baskets=baskets)
    assert len(submissions) == baskets
    with CaptureQueriesContext(connection) as sending:
        outcomes = dispatch.submissions_attempt([submission.pk for submission in submissions])
    assert set(outcomes.values()) == {SubmissionState.ACCEPTED} and len(outcomes) == baskets
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert batch_totals.batches_drifted([batch.pk]) == []
    return len(claim), len(sending)


def test_a_round_of_ten_baskets_costs_about_the_statements_of_a_round_of_two(emulated_gogift_account):
    sent_round(emulated_gogift_account, 1)  # the first request also fetches the OAuth token

    small_claim, small_sending = sent_round(emulated_gogift_account, 2)
    large_claim, large_sending = sent_round(emulated_gogift_account, 10)

    # The claim: the same statements for 10 submissions as for 2.
    assert large_claim == small_claim <= 10
    # Sending: what each request needs on its own (the rate limiter's slot, the basket's
    # reference, stored at once so a retry continues it) and nothing more per basket: the
    # calls, the orders' changes, their events and the submissions go in shared statements.
    per_basket = (large_sending - small_sending) / 8
    assert per_basket <= 4, (small_sending, large_sending)


def test_each_answer_names_the_call_that_carried_its_orders(emulated_gogift_account):
    submissions = claimed(emulated_gogift_account, 9, baskets=3)

    dispatch.submissions_attempt([submission.pk for submission in submissions])

    for submission in submissions:
        submission.refresh_from_db()
        assert submission.state == SubmissionState.ACCEPTED
        for order in submission.orders.all():
            delivered = order.events.get(kind=EventKind.STATUS, to_status=OrderStatus.DELIVERED)
            assert delivered.submission_id == submission.pk
            # The call that brought the answer, stored once, carried exactly this submission's orders.
            assert delivered.provider_call.submission_id == submission.pk
            assert set(delivered.provider_call.orders.values_list("id", flat=True)) == set(
                submission.orders.values_list("id", flat=True))
    assert not ProviderCall.objects.filter(orders=None).exists()


def test_a_round_past_its_deadline_sends_one_request_and_the_rest_go_back_unsent(
    emulated_gogift_account, gogift_emulator,
):
    submissions = claimed(emulated_gogift_account, 9, baskets=3)

    outcomes = dispatch.submissions_attempt([submission.pk for submission in submissions], deadline=0)

    assert list(outcomes) == [submissions[0].pk]
    for submission in submissions[1:]:
        submission.refresh_from_db()
        # As claimed: its key never went out, nothing about it is in doubt.
        assert (submission.state, submission.attempts, submission.lease_until) == (SubmissionState.PREPARED, 0, None)
        assert not submission.outcome_unknown
        assert set(submission.orders.values_list("status", flat=True)) == {OrderStatus.SENDING}
    assert len(gogift_emulator.ledger) == 3

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)  # the next pump sends them

    for submission in submissions:
        for order in submission.orders.all():
            assert order.status == OrderStatus.DELIVERED and ledger_count(gogift_emulator, order) == 1


def test_a_refusal_for_the_account_stops_the_round_before_its_next_request(
    emulated_gogift_account, gogift_emulator,
):
    submissions = claimed(emulated_gogift_account, 9, baskets=3)
    gogift_emulator.faults.add("insufficient_funds", path="/baskets/finalize")
    requests_before = len(gogift_emulator.requests)

    dispatch.submissions_attempt([submission.pk for submission in submissions])

    assert ProviderAccount.objects.get(pk=emulated_gogift_account.pk).blocked_reason
    first, *rest = submissions
    first.refresh_from_db()
    assert first.state == SubmissionState.REJECTED
    for submission in rest:
        submission.refresh_from_db()
        assert (submission.state, submission.attempts) == (SubmissionState.PREPARED, 0)
    # Only the refused request's calls went out, each recorded: nothing of the other two baskets.
    assert len(gogift_emulator.requests) - requests_before == ProviderCall.objects.filter(submission=first).count() > 0
    assert not ProviderCall.objects.filter(submission__in=rest).exists()
    assert gogift_emulator.ledger == []


def test_answers_lost_with_their_worker_are_replayed_with_their_keys_never_bought_twice(
    emulated_gogift_account, gogift_emulator, monkeypatch,
):
    submissions = claimed(emulated_gogift_account, 9, baskets=3)

    def worker_dies(answers, calls):
        raise SystemExit("killed before recording")  # what SIGKILL leaves: the answers unrecorded

    with monkeypatch.context() as patch:
        patch.setattr(dispatch, "_answers_record", worker_dies)
        patch.setattr(dispatch, "RECORD_EVERY_SECONDS", 1000.0)
        with pytest.raises(SystemExit):
            dispatch.submissions_attempt([submission.pk for submission in submissions])
    assert len(gogift_emulator.ledger) == 9  # bought, but not recorded
    assert set(Submission.objects.filter(pk__in=[s.pk for s in submissions]).values_list("state", flat=True)) == {
        SubmissionState.IN_FLIGHT}

    # Their lease runs out (no heartbeat now): taken over and replayed with the same keys.
    Submission.objects.filter(pk__in=[s.pk for s in submissions]).update(lease_until=timezone.now())
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert len(gogift_emulator.ledger) == 9
    for submission in submissions:
        submission.refresh_from_db()
        assert submission.state == SubmissionState.ACCEPTED and submission.outcome_unknown
        for order in submission.orders.all():
            assert order.status == OrderStatus.DELIVERED and ledger_count(gogift_emulator, order) == 1


def test_a_lookup_held_back_leaves_the_rounds_other_lookups_due_with_it(
    emulated_giftronaut_account, giftronaut_emulator, monkeypatch,
):
    giftronaut_batch(emulated_giftronaut_account, ["50"] * 5)  # 4 cards a request: two requests
    first, second = accepted(emulated_giftronaut_account), accepted(emulated_giftronaut_account)
    Submission.objects.filter(pk__in=[first.pk, second.pk]).update(next_poll_at=timezone.now())

    def held_back(self, request):
        raise RateLimited("Status lookups wait while orders use the account's limit.", retry_after=7)

    monkeypatch.setattr(GiftronautClient, "fetch_status", held_back)
    assert dispatch.submissions_poll([first.pk, second.pk]) == {first.pk: 4}

    first.refresh_from_db()
    second.refresh_from_db()
    # Not left to the end of the round's lease (a minute and more): asked with the first, 7 s on.
    assert (first.next_poll_at - timezone.now()).total_seconds() == pytest.approx(7, abs=0.5)
    assert second.next_poll_at == first.next_poll_at
    assert first.polls == second.polls == 0
    assert not OrderEvent.objects.filter(kind=EventKind.NOTE, submission__in=[first, second]).exists()


def test_a_round_of_lookups_records_every_answer(emulated_giftronaut_account, giftronaut_emulator, settings):
    settings.GIFTDESK_POLL_SECONDS = 0.01
    giftronaut_batch(emulated_giftronaut_account, ["50"] * 8)  # two requests of 4
    first, second = accepted(emulated_giftronaut_account), accepted(emulated_giftronaut_account)
    giftronaut_emulator.steps_per_poll = 10  # fulfilled by the first lookup
    Submission.objects.filter(pk__in=[first.pk, second.pk]).update(next_poll_at=timezone.now())

    still = dispatch.submissions_poll([first.pk, second.pk])

    assert still == {first.pk: 0, second.pk: 0}
    for submission in (first, second):
        submission.refresh_from_db()
        assert (submission.polls, submission.next_poll_at) == (1, None)
        assert set(submission.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
