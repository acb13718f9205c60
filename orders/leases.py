"""Leases on requests in flight: the worker sending one renews it for as long as it works.

An attempt (a `Submission` in flight) carries `lease_until`. While its worker lives, a small
heartbeat thread moves it forward every third of GIFTDESK_LEASE_SECONDS, with an update
conditional on the attempt's token. A worker that dies (SIGKILL, out of memory, the machine
lost) stops renewing; once its lease has run out the submission is taken over
(orders.dispatch.stale_submissions_release): retried with the same idempotency key, never a
new one (DESIGN.md, engine rule 4). Who takes it over: a pump of its account that is running
(it looks every second, and waits for a lease about to run out), else the sweeps, one every
half minute (orders.tasks), which wake its account's pump: within a minute of the death.

Why a thread and not a renewal at each provider call: one call can outlast a lease (the
HTTP timeouts are per socket operation, so a provider answering slowly bounds nothing; a
GoGift attempt is several calls; the account's rate limiter may wait), and only something
running beside the call keeps the lease alive whatever the call does.

Times are the database's (`Now()`), never a worker's own clock: workers on several machines
with clocks a few seconds apart must never see a live lease as run out.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from orders.models import Submission, SubmissionState
from providers.models import ProviderAccount

logger = logging.getLogger(__name__)

# How long stopping a heartbeat may wait for a renewal under way (a database busy for longer
# must not hold up the worker: the renewal is conditional and harmless once the attempt ended).
STOP_WAIT_SECONDS = 2.0
# After a failed renewal (database busy or gone for a moment), try again this soon: the lease
# still has two thirds of its length left.
RETRY_SECONDS = 1.0


def lease_seconds() -> float:
    return float(settings.GIFTDESK_LEASE_SECONDS)


def lease_from_now() -> ExpressionWrapper:
    """The end of a lease taken or renewed now, in the database's time."""
    return ExpressionWrapper(Now() + timedelta(seconds=lease_seconds()), output_field=DateTimeField())


def expired() -> Q:
    """Submissions in flight whose worker stopped renewing the lease: presumed dead. One sent
    by a worker of the version before the lease (it has none) counts as dead as it did then:
    in flight for twice the task timeout (a task is stopped at its timeout)."""
    legacy = ExpressionWrapper(Now() - timedelta(seconds=2 * settings.Q_TIMEOUT_SECONDS), output_field=DateTimeField())
    return Q(state=SubmissionState.IN_FLIGHT) & (
        Q(lease_until__lt=Now()) | Q(lease_until__isnull=True, claimed_at__lt=legacy))


def renew(submission_ids: int | list[int], token: str) -> bool:
    """Extend the lease of the attempts holding `token` (one UPDATE, however many); False when
    they no longer hold any of the submissions (settled, or taken over after the lease ran out)."""
    ids = [submission_ids] if isinstance(submission_ids, int) else submission_ids
    return bool(Submission.objects.filter(
        pk__in=ids, state=SubmissionState.IN_FLIGHT, attempt_token=token,
    ).update(lease_until=lease_from_now()))


def running_out() -> Q:
    """Submissions in flight whose lease ran out, or is about to: less than half of it left means
    no renewal for half a lease, though one comes every third (the worker may be dead: worth a
    pump waiting for it, then taking it over). Leases renewed lately are their live workers'."""
    soon = ExpressionWrapper(Now() + timedelta(seconds=lease_seconds() / 2), output_field=DateTimeField())
    return expired() | Q(state=SubmissionState.IN_FLIGHT, lease_until__lt=soon)


def seconds_until_expiry(account_id: int) -> float | None:
    """Seconds until the first lease of the account's requests in flight that is running out
    (`running_out`) runs out; None when every lease was renewed lately."""
    remaining = (
        Submission.objects.filter(running_out(), account_id=account_id, lease_until__isnull=False)
        .annotate(remaining=ExpressionWrapper(F("lease_until") - Now(), output_field=DurationField()))
        .order_by("lease_until").values_list("remaining", flat=True).first()
    )
    return None if remaining is None else max(remaining.total_seconds(), 0.0)


def accounts_running_out() -> list[int]:
    """Active accounts, not paused, with a request in flight whose lease runs out."""
    accounts = Submission.objects.filter(running_out()).values_list("account_id", flat=True)
    return sorted(ProviderAccount.objects.filter(pk__in=accounts, is_active=True, blocked_reason="")
                  .values_list("pk", flat=True))


class Heartbeat:
    """Renews the leases of attempts started together (one token) every third of their length,
    in a daemon thread on its own database connection, until stopped or until the attempts no
    longer hold any of the submissions."""

    def __init__(self, submission_ids: int | list[int], token: str) -> None:
        self.submission_ids = [submission_ids] if isinstance(submission_ids, int) else list(submission_ids)
        self.token = token
        self.interval = lease_seconds() / 3
        self.renewals = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.submission_ids[0]}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_WAIT_SECONDS)

    def _run(self) -> None:
        wait = self.interval
        try:
            while not self._stop.wait(wait):
                try:
                    held = renew(self.submission_ids, self.token)
                except DatabaseError as exc:
                    self.failures += 1
                    logger.warning("Lease of submissions %s not renewed (%s); trying again.", self.submission_ids, exc)
                    connection.close()  # a broken connection is opened afresh by the next try
                    wait = min(self.interval, RETRY_SECONDS)
                    continue
                if not held:
                    return  # settled or taken over: nothing of ours left to renew
                self.renewals += 1
                wait = self.interval
        finally:
            connection.close()  # this thread's own connection


@contextmanager
def renewing(*submissions: Submission):
    """Keep the leases of the attempts `submissions` (just started together: one token) alive
    while the block runs."""
    heartbeat = Heartbeat([submission.pk for submission in submissions], submissions[0].attempt_token).start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
