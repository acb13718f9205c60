"""What needs someone's attention, for the start page (issue 10, finding 3). Reads only.

Each read is one query on an indexed filter (Batch.state, Order (status, completed_at),
Order (status, batch)), or the few paused accounts, so the start page stays quick with a
million orders: no full scan, however many orders there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from orders.models import Batch, BatchState, Order, OrderStatus, Submission, SubmissionState
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount

# Failed orders stay failed (a resend is a new order): counting all of them would never go
# down, so the start page counts those that failed lately.
RECENT_FAILURE_DAYS = 30
# What to do about a paused account: the batch page and the start page say it alike.
PAUSED_REMEDY = "Fix it, then use “Resume sending” on the account."


@dataclass(frozen=True)
class AwaitingApproval:
    batches: int  # every batch waiting for an approver (what the batch list shows in that state)
    yours: int  # of those, the ones the decider may decide; all of them when there is no decider


def batches_awaiting_approval(*, decider=None) -> AwaitingApproval:
    """Batches waiting for an approver, in one query. With `decider`: also how many that user
    may decide, i.e. neither uploaded nor asked to send by them
    (orders.batch_access.approval_refusal)."""
    batches = Batch.objects.filter(state=BatchState.AWAITING_APPROVAL)
    if decider is None:
        count = batches.count()
        return AwaitingApproval(batches=count, yours=count)
    theirs = Q(created_by=decider) | Q(send_requested_by=decider)
    counts = batches.aggregate(batches=Count("pk"), yours=Count("pk", filter=~theirs))
    return AwaitingApproval(batches=counts["batches"], yours=counts["yours"])


def paused_accounts() -> list[ProviderAccount]:
    """Accounts whose sending is paused because the provider refused the whole account."""
    return list(ProviderAccount.objects.exclude(blocked_reason="").only("name", "blocked_reason").order_by("name"))


def recent_failures_start(now: datetime | None = None) -> datetime:
    """Midnight, in GiftDesk's time zone, RECENT_FAILURE_DAYS days ago."""
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=RECENT_FAILURE_DAYS)


def failed_orders_since(since: datetime) -> int:
    return Order.objects.filter(status=OrderStatus.FAILED, completed_at__gte=since).count()


def orders_waiting_for_a_limit() -> int:
    """Queued orders a monthly spending limit holds back (orders.spending)."""
    return Order.objects.filter(status=OrderStatus.QUEUED, waiting_reason__startswith=WAIT_REASON_START).count()


def queued_orders_of_paused_accounts() -> dict[int, int]:
    """{account id: its queued orders} for the accounts whose sending is paused (blocked_reason
    set), in one grouped query; they go once staff resume sending on the account."""
    rows = (Order.objects.filter(status=OrderStatus.QUEUED).exclude(batch__account__blocked_reason="")
            .order_by().values_list("batch__account_id").annotate(count=Count("pk")))
    return dict(rows)


# A submission still settling: not yet accepted or rejected by the provider.
UNSETTLED_SUBMISSION_STATES = (SubmissionState.PREPARED, SubmissionState.IN_FLIGHT, SubmissionState.RETRY)


def submissions_with_unknown_outcome():
    """Submissions an attempt of which may have been placed (a timeout after sending, a dropped
    answer, a worker that died) and that the provider has not settled yet: the engine asks
    again with the same key or looks the order up (DESIGN.md engine rule 4)."""
    return Submission.objects.filter(outcome_unknown=True, state__in=UNSETTLED_SUBMISSION_STATES)


@dataclass(frozen=True)
class UnknownOutcomes:
    submissions: int
    orders: int  # the orders those submissions carry


def unknown_outcomes() -> UnknownOutcomes:
    """How many submissions have an unknown outcome, and how many orders they carry: one query."""
    counts = submissions_with_unknown_outcome().aggregate(submissions=Count("pk", distinct=True),
                                                          orders=Count("orders"))
    return UnknownOutcomes(submissions=counts["submissions"], orders=counts["orders"])
