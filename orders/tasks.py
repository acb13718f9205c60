"""Task-queue entry points: they take ids and call the delivery engine, nothing more.

Each is safe to run twice; the database state decides what happens.
"""

from giftdesk.text import plural
from orders import batches, dispatch, reconciliation, uploads


def pump_account(account_id: int) -> str:
    report = dispatch.account_pump(account_id)
    return f"{plural(report.claimed, 'submission')} claimed, {plural(report.attempted, 'attempt')}"


def sweep() -> str:
    """Every minute: queue the scheduled batches whose time has come, release submissions of
    dead workers, wake accounts with work due, and delete uploads nobody confirmed in time
    (one directory listing, on this machine)."""
    scheduled = batches.scheduled_batches_queue()
    released = dispatch.stale_submissions_release()
    accounts = dispatch.accounts_with_work()
    for account_id in accounts:
        dispatch.wake_worker(account_id)
    expired = uploads.uploads_sweep()
    return (f"{plural(len(scheduled), 'scheduled batch', 'scheduled batches')} queued, "
            f"{plural(released, 'stale submission')} released, {plural(len(accounts), 'account')} woken, "
            f"{plural(expired, 'expired upload')} deleted")


def reconcile(reconciliation_id: int) -> str:
    """One slice of a reconciliation (orders.reconciliation); queued again while more remains:
    a run can outlast a task's timeout."""
    done = reconciliation.reconciliation_run(reconciliation_id)
    if done is False:
        reconciliation.reconciliation_queue(reconciliation_id)
    return {True: "finished", False: "more to ask: queued again", None: "not this worker's to run"}[done]
