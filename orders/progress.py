"""How far a batch has got (issue 10): its orders as proportions of delivered, processing,
waiting, failed and cancelled, and how long the rest will take where the account's rate
limit makes it long (Gifty: 120 requests a minute, one card each: 1,000 cards take about
8 minutes 20 seconds).

Read-only. The batch page draws it as a bar, the batch list as a small one, and the
page's script asks for it again as JSON while the batch is sending."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from giftdesk.text import plural, verb
from orders.batch_totals import status_counts
from orders.dispatch import claim_limit
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount
from providers.ratelimit import interval_seconds

# (key, label, the order statuses it counts), in the order the bar draws them.
SEGMENTS = (
    ("delivered", "Delivered", (OrderStatus.DELIVERED,)),
    ("processing", "Processing", (OrderStatus.PROCESSING,)),
    ("waiting", "Waiting", (OrderStatus.PENDING, OrderStatus.QUEUED, OrderStatus.SENDING)),
    ("failed", "Failed", (OrderStatus.FAILED,)),
    ("cancelled", "Cancelled", (OrderStatus.CANCELLED,)),
)
FINISHED = ("delivered", "failed", "cancelled")
# Orders still to go through a provider request: what the rate limit paces.
TO_SEND = (OrderStatus.QUEUED, OrderStatus.SENDING)
# Under this, "about N minutes left" says nothing a glance at the bar does not.
ESTIMATE_FROM_SECONDS = 90


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    count: int
    percent: float  # of all the batch's orders, 0-100
    offset: float  # where the segment starts on the bar, 0-100

    @property
    def width(self) -> str:
        return f"{self.percent:.2f}%"

    @property
    def x(self) -> str:
        return f"{self.offset:.2f}%"


@dataclass(frozen=True)
class Progress:
    state: str
    state_label: str
    total: int
    segments: tuple[Segment, ...]
    finished: int
    finished_percent: int  # delivered + failed + cancelled over all orders, rounded down
    remaining_seconds: float | None  # the rate limit's estimate; None when none is given
    finish_at: datetime | None
    note: str  # what holds cards back (a paused account, a spending limit), or ""

    @property
    def summary(self) -> str:
        """"7 of 10 orders finished (70%)"."""
        return f"{self.finished:,} of {plural(self.total, 'order')} finished ({self.finished_percent}%)"

    @property
    def counts_text(self) -> str:
        """"5 delivered, 2 processing, 1 waiting, 1 failed, 1 cancelled" (the non-zero ones)."""
        parts = [f"{segment.count:,} {segment.label.lower()}" for segment in self.segments if segment.count]
        return ", ".join(parts) or "no orders"

    @property
    def eta_text(self) -> str:
        if self.remaining_seconds is None or self.remaining_seconds < ESTIMATE_FROM_SECONDS:
            return ""
        when = timezone.localtime(self.finish_at) if self.finish_at else None
        at = f", finishing around {when:%H:%M}" if when and when.date() == timezone.localdate() else (
            f", finishing around {when:%Y-%m-%d %H:%M}" if when else "")
        return f"About {duration_text(self.remaining_seconds)} left at the account's rate limit{at}."

    def as_json(self) -> dict:
        return {
            "state": self.state,
            "state_label": self.state_label,
            "total": self.total,
            "finished": self.finished,
            "finished_percent": self.finished_percent,
            "segments": [{"key": s.key, "label": s.label, "count": s.count, "percent": round(s.percent, 2),
                          "offset": round(s.offset, 2)} for s in self.segments],
            "summary": self.summary,
            "counts_text": self.counts_text,
            "eta_text": self.eta_text,
            "note": self.note,
            "remaining_seconds": None if self.remaining_seconds is None else round(self.remaining_seconds),
        }


def duration_text(seconds: float) -> str:
    """500 -> "8 minutes"; 25,000 -> "6 hours 57 minutes" (rounded to the minute)."""
    minutes = max(round(seconds / 60), 1)
    if minutes < 90:
        return plural(minutes, "minute")
    hours, rest = divmod(minutes, 60)
    return plural(hours, "hour") + (f" {plural(rest, 'minute')}" if rest else "")


def sending_seconds(*, cards: int, cards_per_request: int, requests_per_minute: int) -> float:
    """How long the rate limit makes `cards` take: one request carries up to
    `cards_per_request` cards, and the account may send `requests_per_minute`."""
    if cards <= 0:
        return 0.0
    requests = math.ceil(cards / max(cards_per_request, 1))
    return requests * interval_seconds(requests_per_minute)  # the limiter's own spacing


def account_sending_seconds(account: ProviderAccount, cards: int) -> float:
    """sending_seconds with the account's own limits (and its provider's cap per request)."""
    return sending_seconds(cards=cards, cards_per_request=claim_limit(account),
                           requests_per_minute=account.rate_limit_per_minute)


def progress_of(counts: Mapping[str, int], *, state: str, state_label: str = "",
                remaining_seconds: float | None = None, now: datetime | None = None, note: str = "") -> Progress:
    """The bar for order counts per status (`counts`: status -> number)."""
    total = sum(counts.get(status, 0) for status in OrderStatus.values)
    segments, offset = [], 0.0
    for key, label, statuses in SEGMENTS:
        count = sum(counts.get(status, 0) for status in statuses)
        percent = count * 100 / total if total else 0.0
        segments.append(Segment(key=key, label=label, count=count, percent=percent, offset=offset))
        offset += percent
    finished = sum(segment.count for segment in segments if segment.key in FINISHED)
    finish_at = (now or timezone.now()) + timedelta(seconds=remaining_seconds) if remaining_seconds else None
    return Progress(
        state=state, state_label=state_label or dict(BatchState.choices).get(state, state), total=total,
        segments=tuple(segments), finished=finished,
        finished_percent=finished * 100 // total if total else 0,
        remaining_seconds=remaining_seconds, finish_at=finish_at, note=note,
    )


def batch_counts(batch: Batch) -> dict[str, int]:
    """Orders per status, as stored on the batch and kept current as orders change
    (orders.batch_totals): no query, on the list as on the batch's page."""
    return status_counts(batch)


def cards_ahead(account: ProviderAccount, *, batch: Batch | None = None) -> int:
    """Cards on `account` that go before `batch`'s at the rate limit's pace: queued or
    sending, not held back by a monthly spending limit (those wait for the limit, not the
    pace), and, as claims take the oldest queued orders first, older than `batch`'s last
    card still to send. Without `batch`: all of them, what a batch sent now waits behind."""
    ahead = (Order.objects.filter(batch__account_id=account.pk, status__in=TO_SEND)
             .exclude(waiting_reason__startswith=WAIT_REASON_START))
    if batch is not None:
        last = batch.orders.filter(status__in=TO_SEND).aggregate(last=Max("id"))["last"] or 0
        ahead = ahead.filter(id__lt=last).exclude(batch_id=batch.pk)
    return ahead.count()


def batch_progress(batch: Batch, *, now: datetime | None = None, estimate: bool = True) -> Progress:
    """The batch's progress; with `estimate`, while it is sending, how long the cards still
    to send will take at the account's rate limit, counting the cards of other batches on
    the same account that go before them (claims take the oldest queued orders first)."""
    counts = batch_counts(batch)
    remaining, note = None, ""
    to_send = sum(counts.get(status, 0) for status in TO_SEND)
    if estimate and batch.state == BatchState.SENDING and to_send:
        account = batch.account
        if account.blocked_reason:
            note = f"Sending on {account} is paused: {account.blocked_reason}"
        elif not account.is_active:
            note = f"The account “{account}” is switched off: nothing is sent until it is switched on."
        else:
            # Cards held by a monthly spending limit do not go at the rate limit's pace: said, not timed.
            held = batch.orders.filter(status=OrderStatus.QUEUED, waiting_reason__startswith=WAIT_REASON_START).count()
            if held:
                note = (f"{plural(held, 'order')} {verb(held, 'waits', 'wait')} for a monthly spending limit of "
                        f"{account}: {verb(held, 'it goes', 'they go')} when the limit is raised or next month begins.")
            remaining = account_sending_seconds(account, to_send - held + cards_ahead(account, batch=batch))
    return progress_of(counts, state=batch.state, state_label=batch.get_state_display(),
                       remaining_seconds=remaining, now=now, note=note)
