"""Who counts as a recent recipient: one definition for the import preview (the row's
warning and the "Leave out" choice) and the approval screen.

An order to the same email (in any case) whose latest step lies within
GIFTDESK_RECENT_RECIPIENT_DAYS counts unless it was cancelled or failed. A pending order
counts too: the same file uploaded twice, its first batch not sent yet, is the main case to
catch. Hence the words on every screen: "got or is due to get a card", never "received".
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from orders.models import Order, OrderStatus

RECENT_STATUSES = tuple(status for status in OrderStatus
                        if status not in (OrderStatus.CANCELLED, OrderStatus.FAILED))


def recent_orders(*, days: int) -> QuerySet[Order]:
    """The orders that make their recipient recent, each annotated with `email_key` (the
    recipient's email, lower-cased) and `recent_at` (its latest step: submitted, claimed,
    queued or created)."""
    since = timezone.now() - timedelta(days=days)
    return (Order.objects.filter(status__in=RECENT_STATUSES)
            .annotate(email_key=Lower("recipient__email"),
                      recent_at=Coalesce("submitted_at", "claimed_at", "queued_at", "created_at"))
            .filter(recent_at__gte=since))
