"""What needs someone's attention, for the start page (issue 10, finding 3). Reads only.

Each read is one query on an indexed filter (Batch.state, Order (status, batch)), or the
few paused accounts, so the start page stays quick with a million orders: no full scan,
however many orders there are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount

# Failed orders stay failed (a resend is a new order): counting all of them would never go
# down, so the start page counts those that failed lately.
RECENT_FAILURE_DAYS = 30


def batches_awaiting_approval(*, decider=None) -> int:
    """Batches waiting for an approver. With `decider`: only those that user may decide,
    i.e. neither uploaded nor asked to send by them (orders.batch_access.approval_refusal)."""
    batches = Batch.objects.filter(state=BatchState.AWAITING_APPROVAL)
    if decider is not None:
        batches = batches.exclude(created_by=decider).exclude(send_requested_by=decider)
    return batches.count()


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
