"""Leases on requests in flight (issue 12): a live worker's lease never runs out, however slow
its provider; a dead worker's is taken over within the lease, once, with the same key."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from orders import dispatch, leases, tasks
from orders.batches import batch_send
from orders.models import OrderStatus, Submission, SubmissionState
from tests.fixtures.data import make_batch


pytestmark = pytest.mark.usefixtures("fast_retries")  # tests/fixtures/engine.py


def statuses(batch) -> list[str]:
    return list(batch.orders.order_by("id").values_list("status", flat=True))


def died_in_flight(account, amounts=("100",), *, committed=False) -> Submission:
    """A submission whose worker started its attempt and died: in flight, nobody renewing.
    `committed`: the provider had already placed the order when the worker died."""
    batch = make_batch(account, list(amounts))
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=account)
    if committed:
        assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED
        batch.orders.update(status=OrderStatus.SENDING, provider_order_id="")
        Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.RETRY)
    assert dispatch._start_attempt(submission.pk) is not None  # ...and no heartbeat: the worker is dead
    return Submission.objects.get(pk=submission.pk)


def run_out(submission: Submission, seconds_ago: float = 1) -> None:
    Submission.objects.filter(pk=submission.pk).update(lease_until=timezone.now() - timedelta(seconds=seconds_ago))


def test_an_attempt_holds_a_lease_of_the_configured_length(emulated_gogift_account, settings):
    settings.GIFTDESK_LEASE_SECONDS = 45
    before = timezone.now()
    submission = died_in_flight(emulated_gogift_account)
    assert submission.state == SubmissionState.IN_FLIGHT
    # The database's clock, so a few seconds either side of this process's.
    assert before + timedelta(seconds=40) < submission.lease_until < timezone.now() + timedelta(seconds=50)


def test_a_lease_still_running_is_not_taken_over(emulated_gogift_account):
    submission = died_in_flight(emulated_gogift_account)
    assert dispatch.stale_submissions_release() == 0
    assert Submission.objects.get(pk=submission.pk).state == SubmissionState.IN_FLIGHT


def test_an_expired_lease_is_taken_over_with_the_same_key_and_outcome_unknown(
    emulated_gogift_account, gogift_emulator
):
    account = emulated_gogift_account
    submission = died_in_flight(account, ["100", "200"], committed=True)  # the provider has the cards
    assert len(gogift_emulator.ledger) == 2
    run_out(submission)

    assert dispatch.stale_submissions_release() == 1
    taken = Submission.objects.get(pk=submission.pk)
    assert taken.state == SubmissionState.RETRY and taken.outcome_unknown
    assert taken.idempotency_key == submission.idempotency_key
    assert taken.next_attempt_at <= timezone.now()
    assert "stopped renewing its lease" in taken.last_error
    assert dispatch.stale_submissions_release() == 0  # once

    dispatch.account_pump(account.pk, budget_seconds=10)
    assert set(statuses(submission.orders.first().batch)) == {OrderStatus.DELIVERED}
    assert Submission.objects.count() == 1  # never a new key
    assert len(gogift_emulator.ledger) == 2  # the replay bought nothing more
    keys = {request.headers.get("Idempotency-Key") for request in gogift_emulator.requests
            if request.path == "/baskets/finalize"}
    assert keys == {f"{submission.idempotency_key}-finalize"}


def test_the_dead_attempt_cannot_record_over_its_successor(emulated_gogift_account, gogift_emulator):
    from providers.clients.base import PermanentError

    submission = died_in_flight(emulated_gogift_account)
    run_out(submission)
    assert dispatch.stale_submissions_release() == 1
    assert dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=10).attempted == 1
    dispatch._reject(submission, list(submission.orders.all()), PermanentError("late and wrong"), cause=None)
    assert Submission.objects.get(pk=submission.pk).state == SubmissionState.ACCEPTED
    assert statuses(submission.orders.first().batch) == [OrderStatus.DELIVERED]
    assert not leases.renew(submission.pk, submission.attempt_token)  # its heartbeat would stop


def test_the_pump_picks_up_an_expired_lease_of_its_account(emulated_gogift_account, gogift_emulator):
    submission = died_in_flight(emulated_gogift_account)
    run_out(submission)

    report = dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=10)  # no sweep ran

    assert report.attempted == 1
    taken = Submission.objects.get(pk=submission.pk)
    assert taken.state == SubmissionState.ACCEPTED and taken.outcome_unknown and taken.attempts == 2
    assert taken.idempotency_key == submission.idempotency_key
    assert statuses(submission.orders.first().batch) == [OrderStatus.DELIVERED]
    assert len(gogift_emulator.ledger) == 1


def test_the_pump_waits_for_a_lease_about_to_run_out_within_its_budget(emulated_gogift_account, gogift_emulator):
    submission = died_in_flight(emulated_gogift_account)
    Submission.objects.filter(pk=submission.pk).update(lease_until=timezone.now() + timedelta(seconds=1.5))
    started = time.monotonic()

    report = dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=8)

    assert report.attempted == 1
    assert 1.4 < time.monotonic() - started < 8
    assert Submission.objects.get(pk=submission.pk).state == SubmissionState.ACCEPTED
    assert len(gogift_emulator.ledger) == 1


def test_a_pump_holds_no_slot_watching_a_live_lease(emulated_gogift_account):
    """A lease renewed lately belongs to a live worker: a pump with nothing else to do returns
    (the sweeps look again) instead of waiting out its budget beside it."""
    submission = died_in_flight(emulated_gogift_account)  # lease just taken: as if just renewed
    started = time.monotonic()
    report = dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)
    assert time.monotonic() - started < 5
    assert report.attempted == 0
    assert Submission.objects.get(pk=submission.pk).state == SubmissionState.IN_FLIGHT
    assert leases.seconds_until_expiry(emulated_gogift_account.pk) is None
    Submission.objects.filter(pk=submission.pk).update(lease_until=timezone.now() + timedelta(seconds=5))
    assert 3 < leases.seconds_until_expiry(emulated_gogift_account.pk) < 5.01  # not renewed for 25 s: watched


def test_a_pump_leaves_the_leases_of_other_accounts_alone(emulated_gogift_account):
    from tests.fixtures.data import account_with_product

    submission = died_in_flight(emulated_gogift_account)
    run_out(submission)
    other = account_with_product("Other", "ugiftme", "EUR")
    dispatch.account_pump(other.pk, budget_seconds=0)
    assert Submission.objects.get(pk=submission.pk).state == SubmissionState.IN_FLIGHT


def test_accounts_with_a_lease_running_out_are_woken_to_take_it_over(emulated_gogift_account, settings):
    settings.GIFTDESK_LEASE_SECONDS = 30
    submission = died_in_flight(emulated_gogift_account)
    # Just renewed: its worker is alive, no pump needed (and none would wait for it).
    assert dispatch.accounts_with_work() == leases.accounts_running_out() == []
    Submission.objects.filter(pk=submission.pk).update(lease_until=timezone.now() + timedelta(seconds=10))
    assert dispatch.accounts_with_work() == leases.accounts_running_out() == [emulated_gogift_account.pk]
    run_out(submission)
    assert dispatch.accounts_with_work() == leases.accounts_running_out() == [emulated_gogift_account.pk]


def test_the_lease_sweep_takes_over_and_wakes_the_account(emulated_gogift_account, monkeypatch):
    woken = []
    monkeypatch.setattr(dispatch, "wake_worker", woken.append)
    submission = died_in_flight(emulated_gogift_account)
    run_out(submission)

    assert tasks.sweep_leases() == "1 expired lease taken over, 1 account woken"
    assert woken == [emulated_gogift_account.pk]
    assert Submission.objects.get(pk=submission.pk).state == SubmissionState.RETRY


def test_the_lease_sweep_runs_half_a_minute_after_the_sweep(db):
    sweep = Schedule.objects.get(name="giftdesk-sweep")
    lease_sweep = Schedule.objects.get(name="giftdesk-lease-sweep")
    assert (lease_sweep.func, lease_sweep.schedule_type, lease_sweep.minutes) == ("orders.tasks.sweep_leases", "I", 1)
    offset = (lease_sweep.next_run - sweep.next_run).total_seconds() % 60
    assert 25 <= offset <= 35


def test_a_request_in_flight_from_before_the_lease_is_taken_over_as_it_was(emulated_gogift_account):
    """In flight without a lease (sent by the version before it, during an upgrade): dead after
    twice the task timeout, as then."""
    submission = died_in_flight(emulated_gogift_account)
    Submission.objects.filter(pk=submission.pk).update(lease_until=None, claimed_at=timezone.now() - timedelta(minutes=3))
    assert dispatch.stale_submissions_release() == 0
    Submission.objects.filter(pk=submission.pk).update(claimed_at=timezone.now() - timedelta(minutes=5))
    assert dispatch.stale_submissions_release() == 1


# --- With other connections: real threads, committed rows -------------------------------------------


def test_a_lease_is_renewed_during_a_slow_call_and_never_taken_over(
    transactional_db, emulated_gogift_account, gogift_emulator, settings
):
    settings.GIFTDESK_LEASE_SECONDS = 1.2  # renewed every 0.4 s
    settings.GIFTDESK_HTTP_READ_TIMEOUT = 10
    # The provider takes 3.5 s to answer the finalize: almost three leases.
    gogift_emulator.faults.add("timeout_after_commit", method="POST", path="/baskets/finalize", delay=3.5)
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    outcome, leases_seen, taken_over = [], set(), []

    def worker():
        try:
            outcome.append(dispatch.submission_attempt(submission.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    while thread.is_alive():  # a sweeper and a pump of the account, as eager as can be
        taken_over.append(dispatch.stale_submissions_release())
        taken_over.append(dispatch.stale_submissions_release(account_id=emulated_gogift_account.pk))
        leases_seen.add(Submission.objects.filter(pk=submission.pk, state=SubmissionState.IN_FLIGHT)
                        .values_list("lease_until", flat=True).first())
        time.sleep(0.05)
    thread.join()

    assert outcome == [SubmissionState.ACCEPTED]
    assert sum(taken_over) == 0
    assert len(leases_seen - {None}) >= 5  # renewed again and again while the call lasted
    done = Submission.objects.get(pk=submission.pk)
    assert done.attempts == 1 and not done.outcome_unknown
    assert statuses(batch) == [OrderStatus.DELIVERED] * 2
    assert len(gogift_emulator.ledger) == 2


def test_two_sweepers_racing_take_each_request_over_once(transactional_db, emulated_gogift_account, gogift_emulator):
    dead = [died_in_flight(emulated_gogift_account, [str(100 + 10 * i)]) for i in range(3)]
    for submission in dead:
        run_out(submission)
    released, errors = [], []
    start = threading.Barrier(4)

    def sweeper(account_id):
        try:
            start.wait()
            released.append(dispatch.stale_submissions_release(account_id=account_id))
        except Exception as exc:  # noqa: BLE001 — asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper, args=(account_id,))
               for account_id in (None, None, emulated_gogift_account.pk, emulated_gogift_account.pk)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sum(released) == 3
    for submission in dead:
        taken = Submission.objects.get(pk=submission.pk)
        assert taken.state == SubmissionState.RETRY and taken.outcome_unknown
        assert taken.idempotency_key == submission.idempotency_key
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=10)
    assert Submission.objects.filter(state=SubmissionState.ACCEPTED).count() == 3
    assert len(gogift_emulator.ledger) == 3


def test_a_renewal_racing_a_takeover_is_won_by_one_of_them(transactional_db, emulated_gogift_account):
    """The worker renews just as a sweeper finds its lease run out: either the renewal wins (the
    sweeper takes nothing over) or the takeover does (the renewal fails, the heartbeat stops)."""
    for _ in range(5):
        submission = died_in_flight(emulated_gogift_account)
        run_out(submission, seconds_ago=0.001)
        results = {}
        start = threading.Barrier(2)

        def renew():
            start.wait()
            results["renewed"] = leases.renew(submission.pk, submission.attempt_token)
            connection.close()

        def take_over():
            start.wait()
            results["taken"] = dispatch.stale_submissions_release()
            connection.close()

        threads = [threading.Thread(target=renew), threading.Thread(target=take_over)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert results["renewed"] != bool(results["taken"]), results
        Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.REJECTED)


def test_two_workers_starting_the_same_attempt_at_once_start_it_once(transactional_db, emulated_gogift_account):
    """The conditional update that starts an attempt is the fence of everything above: on
    PostgreSQL it must be one statement on the submission's own row (no `id IN (subquery)`,
    whose recheck after a concurrent update would let both workers through)."""
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    for _ in range(20):
        Submission.objects.filter(pk=submission.pk).update(state=SubmissionState.RETRY, next_attempt_at=None)
        started, start = [], threading.Barrier(3)

        def attempt():
            try:
                start.wait()
                started.append(dispatch._start_attempt(submission.pk))
            finally:
                connection.close()

        threads = [threading.Thread(target=attempt) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len([attempt for attempt in started if attempt is not None]) == 1
