"""What Send and Cancel would do to a batch, read before the person confirms (issue 10,
finding 9): the confirmation pages show it, as Django's delete confirmation shows what
goes. Read-only; `orders.batches.batch_send` and `batch_cancel` act, and decide.

A send's summary carries the batch's fingerprint (orders.approvals.batch_fingerprint): a
batch changed between the page and the confirmation is shown again, never sent unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils import timezone

from giftdesk.text import plural
from orders.approvals import approval_reasons, batch_fingerprint
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.money import amount_text, totals_text
from orders.progress import ESTIMATE_FROM_SECONDS, TO_SEND, account_sending_seconds, duration_text
from orders.spending import limit_remaining


@dataclass(frozen=True)
class CurrencyLine:
    currency: str
    cards: int
    total: Decimal
    limit: Decimal | None = None  # the account's monthly limit; None: no limit
    remaining: Decimal | None = None  # what is left of it this month

    @property
    def total_text(self) -> str:
        return amount_text(self.total, self.currency)

    @property
    def over_limit(self) -> Decimal:
        if self.remaining is None:
            return Decimal(0)
        return max(self.total - self.remaining, Decimal(0))

    @property
    def limit_text(self) -> str:
        if self.limit is None:
            return "No monthly limit"
        text = (f"{amount_text(self.remaining, self.currency)} left of {amount_text(self.limit, self.currency)} "
                "this month")
        if self.over_limit:
            text += (f": {amount_text(self.over_limit, self.currency)} over, so some cards wait until the limit "
                     "is raised or next month begins")
        return text


def _lines(orders, *, account=None) -> list[CurrencyLine]:
    rows = orders.order_by().values("currency").annotate(cards=Count("id"), total=Sum("amount")).order_by("currency")
    lines = []
    for row in rows:
        limit = account.monthly_limit(row["currency"]) if account is not None else None
        remaining = limit_remaining(account, row["currency"]) if limit is not None else None
        lines.append(CurrencyLine(currency=row["currency"], cards=row["cards"], total=row["total"],
                                  limit=limit, remaining=remaining))
    return lines


@dataclass(frozen=True)
class SendSummary:
    batch: Batch
    fingerprint: str
    cards: int
    currencies: list[CurrencyLine]
    scheduled_for: datetime | None  # a "Send at" still ahead; None: now
    approval_reasons: list[str]  # empty: it goes without an approver
    refusal: str  # why Send would be refused now; "" when it would not
    paused: str  # the account's blocked reason
    duration_seconds: float
    ahead: int  # cards of other batches queued on the account before these
    funds: object | None = None  # orders.funds.FundsCheck, asked only for the one-batch page

    @property
    def account(self):
        return self.batch.account

    @property
    def totals(self) -> dict[str, Decimal]:
        return {line.currency: line.total for line in self.currencies}

    @property
    def totals_text(self) -> str:
        return totals_text(self.totals)

    @property
    def needs_approval(self) -> bool:
        return bool(self.approval_reasons)

    @property
    def over_limit(self) -> bool:
        return any(line.over_limit for line in self.currencies)

    @property
    def confirm_label(self) -> str:
        cards = plural(self.cards, "card")
        if self.needs_approval:
            return f"Yes, ask an approver to send {cards}"
        if self.scheduled_for:
            return f"Yes, send {cards} at the “Send at” time"
        return f"Yes, send {cards}"

    @property
    def duration_text(self) -> str:
        """"About 8 minutes at 120 requests a minute"; "" when it is quick."""
        if self.duration_seconds < ESTIMATE_FROM_SECONDS:
            return ""
        return (f"About {duration_text(self.duration_seconds)} at the account's limit of "
                f"{self.account.rate_limit_per_minute:,} requests a minute"
                + (f", after {self.ahead:,} queued cards of other batches" if self.ahead else "") + ".")


def send_refusal(batch: Batch, cards: int) -> str:
    """Why `batch_send` would refuse this batch now, in its words; "" when it would not. Only
    a forecast for the page: the service checks again under its lock."""
    if batch.state in (BatchState.CANCELLED, BatchState.REJECTED):
        return f"Batch “{batch}” is {batch.get_state_display().lower()}: nothing to send."
    if batch.state == BatchState.AWAITING_APPROVAL:
        return f"Batch “{batch}” is already waiting for an approver."
    if not batch.account.is_active:
        return f"The account “{batch.account}” is switched off. Switch it on, then send again."
    if not cards:
        return f"Batch “{batch}” has no pending orders to send."
    return ""


def send_summary(batch: Batch, *, wallet: bool = False) -> SendSummary:
    """What pressing Send on `batch` would do. `wallet`: also compare the total with the
    provider's wallet (may ask the provider, when its stored balance is old)."""
    fingerprint = batch_fingerprint(batch)  # first: what is shown below is no older than it
    account = batch.account
    pending = Order.objects.filter(batch=batch, status=OrderStatus.PENDING)
    lines = _lines(pending, account=account)
    cards = sum(line.cards for line in lines)
    totals = {line.currency: line.total for line in lines}
    reasons = approval_reasons(totals) if batch.state != BatchState.APPROVED else []
    ahead = Order.objects.filter(batch__account_id=account.pk, status__in=TO_SEND).count()
    funds = None
    if wallet and totals:
        from orders.funds import funds_check  # the wallet check's own module (it may ask the provider)

        funds = funds_check(account, totals)
    scheduled = batch.scheduled_for if batch.scheduled_for and batch.scheduled_for > timezone.now() else None
    return SendSummary(
        batch=batch, fingerprint=fingerprint, cards=cards, currencies=lines, scheduled_for=scheduled,
        approval_reasons=reasons, refusal=send_refusal(batch, cards), paused=account.blocked_reason,
        duration_seconds=account_sending_seconds(account, cards + ahead), ahead=ahead, funds=funds,
    )


@dataclass(frozen=True)
class CancelSummary:
    batch: Batch
    currencies: list[CurrencyLine]  # the orders that would be cancelled
    with_provider: int  # sending or processing: too late to cancel
    delivered: int
    failed: int
    already_cancelled: int

    @property
    def cards(self) -> int:
        return sum(line.cards for line in self.currencies)

    @property
    def totals_text(self) -> str:
        return totals_text({line.currency: line.total for line in self.currencies})

    @property
    def kept_text(self) -> str:
        """What Cancel leaves as it is, and why: "3 orders already with the provider (sending or
        processing), too late to stop; 5 delivered; 1 failed"."""
        parts = []
        if self.with_provider:
            parts.append(f"{plural(self.with_provider, 'order')} already with the provider (sending or processing), "
                         "too late to stop")
        parts += [f"{count:,} {what}" for count, what in ((self.delivered, "delivered"), (self.failed, "failed"),
                                                          (self.already_cancelled, "already cancelled")) if count]
        return "; ".join(parts) or "None"


def cancel_summary(batch: Batch) -> CancelSummary:
    """What Cancel on `batch` would stop (its pending and queued orders) and what it cannot."""
    stoppable = Order.objects.filter(batch=batch, status__in=[OrderStatus.PENDING, OrderStatus.QUEUED])
    counts = dict(batch.orders.order_by().values_list("status").annotate(n=Count("id")))
    return CancelSummary(
        batch=batch, currencies=_lines(stoppable),
        with_provider=counts.get(OrderStatus.SENDING, 0) + counts.get(OrderStatus.PROCESSING, 0),
        delivered=counts.get(OrderStatus.DELIVERED, 0), failed=counts.get(OrderStatus.FAILED, 0),
        already_cancelled=counts.get(OrderStatus.CANCELLED, 0),
    )


def selection_digest(summaries: Iterable[SendSummary]) -> str:
    """One digest for the batches a list action's page showed, each with its fingerprint."""
    digest = hashlib.sha256()
    for summary in sorted(summaries, key=lambda s: s.batch.pk):
        digest.update(f"{summary.batch.pk}:{summary.fingerprint};".encode())
    return digest.hexdigest()
