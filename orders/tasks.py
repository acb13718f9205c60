"""Task-queue entry points: they take ids and call the delivery engine, nothing more.

Each is safe to run twice; the database state decides what happens.
"""

from giftdesk.text import plural
from orders import batches, dispatch, leases, reconciliation, uploads


def pump_account(account_id: int) -> str:
    report = dispatch.account_pump(account_id)
    return f"{plural(report.claimed, 'submission')} claimed, {plural(report.attempted, 'attempt')}"


def sweep() -> str:
    """Every minute: queue the scheduled batches whose time has come, take over the requests
    of dead workers (their lease ran out), wake accounts with work due or requests in flight,
    and delete uploads nobody confirmed in time (one directory listing, on this machine)."""
    scheduled = batches.scheduled_batches_queue()
    released = dispatch.stale_submissions_release()
    accounts = dispatch.accounts_with_work()
    for account_id in accounts:
        dispatch.wake_worker(account_id)
    expired = uploads.uploads_sweep()
    return (f"{plural(len(scheduled), 'scheduled batch', 'scheduled batches')} queued, "
            f"{plural(released, 'expired lease')} taken over, {plural(len(accounts), 'account')} woken, "
            f"{plural(expired, 'expired upload')} deleted")


def sweep_leases() -> str:
    """Every minute, half a minute after `sweep` (django-q2 runs a schedule at most once a
    minute and looks every 30 s): take over the requests whose lease ran out, and wake the pump
    of their accounts and of accounts with a lease about to run out (the pump waits for it). So a
    dead worker's requests are attempted again within a minute."""
    accounts = leases.accounts_running_out()  # before the takeover: a request taken over leaves in_flight
    released = dispatch.stale_submissions_release()
    # Last account first: when both sweeps run at once (the first check after the workers were
    # all down), `sweep` wakes much the same accounts first to last, so however the two
    # interleave, the first pumps to get a worker are for different accounts, not two per account.
    for account_id in reversed(accounts):
        dispatch.wake_worker(account_id)
    return f"{plural(released, 'expired lease')} taken over, {plural(len(accounts), 'account')} woken"


def reconcile(reconciliation_id: int) -> str:
    """One slice of a reconciliation (orders.reconciliation); queued again while more remains:
    a run can outlast a task's timeout."""
    done = reconciliation.reconciliation_run(reconciliation_id)
    if done is False:
        reconciliation.reconciliation_queue(reconciliation_id)
    return {True: "finished", False: "more to ask: queued again", None: "not this worker's to run"}[done]


def call_bodies_purge() -> str:
    """Daily: blank the bodies of provider calls older than GIFTDESK_CALL_BODY_RETENTION_DAYS
    (0: kept for ever), in short statements; queued again while a backlog outlasts the task."""
    from django.conf import settings
    from django_q.tasks import async_task

    from orders import call_retention  # here: the other tasks need none of it

    days = call_retention.retention_days()
    if not days:
        return "bodies are kept for ever (GIFTDESK_CALL_BODY_RETENTION_DAYS=0)"
    blanked, more = call_retention.bodies_blank(older_than_days=days,
                                                budget_seconds=settings.Q_TIMEOUT_SECONDS * 0.6)
    if more:
        async_task("orders.tasks.call_bodies_purge", task_name="call-bodies-purge", group="giftdesk-retention")
    return (f"bodies of {plural(blanked, 'call')} older than {plural(days, 'day')} removed"
            + ("; more to remove: queued again" if more else ""))
