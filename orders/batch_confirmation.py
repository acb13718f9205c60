"""What Send and Cancel would do to a batch, read before the person confirms (issue 10,
finding 9): the confirmation pages show it, as Django's delete confirmation shows what
goes. Read-only; `orders.batches.batch_send` and `batch_cancel` act, and decide.

A send's summary carries the batch's fingerprint (orders.approvals.batch_fingerprint): a
batch changed between the page and the confirmation is shown again, never sent unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from giftdesk.text import plural
from orders.approvals import approval_reasons, batch_fingerprint
from orders.batch_review import CurrencyLine, currency_lines
from orders.batches import send_refusal
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.money import totals_text
from orders.progress import ESTIMATE_FROM_SECONDS, account_sending_seconds, batch_counts, cards_ahead, duration_text

# What Cancel stops: orders no worker has taken yet (orders.batches.batch_cancel).
CANCELLABLE = (OrderStatus.PENDING, OrderStatus.QUEUED)


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
    ahead: int  # cards queued on the account before these (orders.progress.cards_ahead)
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
    def funds_short(self) -> bool:
        """The wallet cannot pay, and Send would queue now (a send for approval is not refused
        for it): only an administrator's "Send anyway" goes."""
        return bool(self.funds and self.funds.short and not self.refusal and not self.needs_approval)

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
                + (f", after {plural(self.ahead, 'card')} already queued on the account" if self.ahead else "")
                + ".")


def send_summary(batch: Batch, *, wallet: bool = False, ahead: int | None = None) -> SendSummary:
    """What pressing Send on `batch` would do. `wallet`: also compare the total with the
    provider's wallet (may ask the provider, when its stored balance is old). `ahead`: the
    account's cards_ahead, when the caller already counted them."""
    fingerprint = batch_fingerprint(batch)  # first: what is shown below is no older than it
    account = batch.account
    lines = currency_lines(Order.objects.filter(batch=batch, status=OrderStatus.PENDING), account=account)
    cards = sum(line.cards for line in lines)
    totals = {line.currency: line.total for line in lines}
    reasons = approval_reasons(totals) if batch.state != BatchState.APPROVED else []
    if ahead is None:
        ahead = cards_ahead(account)
    funds = None
    if wallet and totals:
        from orders.funds import funds_check  # the wallet check's own module (it may ask the provider)

        funds = funds_check(account, totals)
    scheduled = batch.scheduled_for if batch.scheduled_for and batch.scheduled_for > timezone.now() else None
    return SendSummary(
        batch=batch, fingerprint=fingerprint, cards=cards, currencies=lines, scheduled_for=scheduled,
        approval_reasons=reasons, refusal=send_refusal(batch, has_pending=bool(cards)),
        paused=account.blocked_reason, duration_seconds=account_sending_seconds(account, cards + ahead),
        ahead=ahead, funds=funds,
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
    counts = batch_counts(batch)
    return CancelSummary(
        batch=batch, currencies=currency_lines(Order.objects.filter(batch=batch, status__in=CANCELLABLE)),
        with_provider=counts.get(OrderStatus.SENDING, 0) + counts.get(OrderStatus.PROCESSING, 0),
        delivered=counts.get(OrderStatus.DELIVERED, 0), failed=counts.get(OrderStatus.FAILED, 0),
        already_cancelled=counts.get(OrderStatus.CANCELLED, 0),
    )


def with_orders_to_cancel(batches: Iterable[Batch]) -> list[Batch]:
    """Those of `batches` that have an order Cancel would stop, in one query."""
    batches = list(batches)
    ids = set(Order.objects.filter(batch__in=batches, status__in=CANCELLABLE)
              .order_by().values_list("batch_id", flat=True).distinct())
    return [batch for batch in batches if batch.pk in ids]


def selection_digest(fingerprints: Mapping[int, str]) -> str:
    """One digest for the batches a list action's page showed ({batch id: fingerprint})."""
    digest = hashlib.sha256()
    for batch_id, fingerprint in sorted(fingerprints.items()):
        digest.update(f"{batch_id}:{fingerprint};".encode())
    return digest.hexdigest()
