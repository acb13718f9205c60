"""Each account's rate limit, held across every worker process and machine together.

A sliding 60-second window of the requests sent, kept in the database: before a request,
a worker counts the account's requests of the last minute under a lock on the account
row (SQLite's write lock serializes the same way), and either records its own or waits
for the oldest to leave the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from providers.clients.base import RateLimited
from providers.models import ProviderAccount, RateLimitSlot

# A second more than the provider's minute: requests in flight arrive a little after we count them.
WINDOW = timedelta(seconds=61)
# Wait in-line for a slot at most this long; beyond it the request is rescheduled.
MAX_INLINE_WAIT_SECONDS = 20.0


def acquire(account_id: int, limit: int, *, max_wait: float = MAX_INLINE_WAIT_SECONDS) -> None:
    """Block until the account may send one more request, then count it."""
    while True:
        wait = _try_acquire(account_id, max(limit, 1))
        if wait is None:
            return
        if wait > max_wait:
            raise RateLimited(
                f"The account's limit of {limit} requests per minute is reached; "
                f"sending goes on in {wait:.0f} s.", retry_after=wait,
            )
        time.sleep(wait)


def _try_acquire(account_id: int, limit: int) -> float | None:
    """Record a request and return None, or return how long to wait for a free slot."""
    with transaction.atomic():
        # The lock that makes count-then-insert safe between processes.
        ProviderAccount.objects.select_for_update().filter(pk=account_id).values_list("pk").first()
        now = timezone.now()
        RateLimitSlot.objects.filter(account_id=account_id, at__lte=now - WINDOW).delete()
        in_window = list(
            RateLimitSlot.objects.filter(account_id=account_id).order_by("at").values_list("at", flat=True)
        )
        if len(in_window) < limit:
            RateLimitSlot.objects.create(account_id=account_id, at=now)
            return None
        # The slot frees when the request `limit` places back leaves the window.
        frees_at = in_window[len(in_window) - limit] + WINDOW
        return max((frees_at - now).total_seconds(), 0.01)


def throttle_for(account: ProviderAccount) -> Callable[[], None]:
    account_id, limit = account.pk, account.rate_limit_per_minute
    return lambda: acquire(account_id, limit)
