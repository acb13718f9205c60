"""What an approver signs (issue 9, four eyes): one read of a batch's orders still to send,
with everything that bears on the decision. Read-only; the approval screen shows it and
`orders.batches.batch_approve` acts on it.

The review covers the batch's pending orders: they are what an approval queues. Its
fingerprint is taken first, so a batch changed while the review is read is one the
approver did not see (the approval is then refused, never given unseen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Max, Min, Sum
from django.db.models.functions import Lower

from orders.approvals import approval_reasons, batch_fingerprint
from orders.models import Batch, Order, OrderStatus
from orders.money import amount_text
from orders.provider_queries import orders_quote
from orders.recent_recipients import recent_orders
from orders.spending import limit_remaining
from providers.clients.base import Quote

RECENT_SHOWN = 50  # recent recipients listed; the count is exact
REJECTED_ROWS_SHOWN = 200  # invalid upload rows listed; the count is exact
AMOUNTS_SHOWN = 6  # distinct amounts listed per product, then a range


@dataclass(frozen=True)
class ProductLine:
    title: str
    currency: str
    cards: int
    total: Decimal
    # (amount, cards) for the most common amounts, largest group first.
    amounts: tuple[tuple[Decimal, int], ...]
    other_amounts: int  # distinct amounts not listed
    lowest: Decimal
    highest: Decimal


@dataclass(frozen=True)
class CurrencyLine:
    """One currency of a batch's orders: the cards, their face value, the account's monthly
    limit against it and, on the approval screen, the provider's price where quoted. The
    Send and Cancel confirmations (orders.batch_confirmation) show the same lines."""

    currency: str
    cards: int
    total: Decimal
    limit: Decimal | None = None  # the account's monthly limit; None: no limit
    remaining: Decimal | None = None  # what the account may still spend this month; None: no limit
    quote: Quote | None = None

    @property
    def total_text(self) -> str:
        return amount_text(self.total, self.currency)

    @property
    def over_limit(self) -> Decimal:
        """By how much this batch exceeds what is left of the month's limit (0: it fits)."""
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


def currency_lines(orders, *, account=None, quotes=None) -> list[CurrencyLine]:
    """`orders` per currency in one query; with `account`, each against its monthly limit;
    with `quotes` ({currency: Quote}), the provider's price."""
    rows = orders.order_by().values("currency").annotate(cards=Count("id"), total=Sum("amount")).order_by("currency")
    lines = []
    for row in rows:
        currency = row["currency"]
        limit = account.monthly_limit(currency) if account is not None else None
        lines.append(CurrencyLine(
            currency=currency, cards=row["cards"], total=row["total"], limit=limit,
            remaining=limit_remaining(account, currency) if limit is not None else None,
            quote=(quotes or {}).get(currency),
        ))
    return lines


@dataclass(frozen=True)
class RecentCard:
    """Another order to one of this batch's recipients, lately and not cancelled or failed
    (`orders.recent_recipients`, as the import preview counts them)."""

    email: str
    name: str
    reference: str
    amount: Decimal
    currency: str
    status: str
    status_label: str
    when: datetime
    batch_id: int
    batch_name: str


@dataclass(frozen=True)
class BatchReview:
    batch: Batch
    fingerprint: str
    account: str
    provider: str
    cards: int
    totals: dict[str, Decimal]
    currencies: list[CurrencyLine]
    quote_problem: str
    products: list[ProductLine]
    approval_reasons: list[str]
    uploader: str
    send_requested_by: str
    send_requested_at: datetime | None
    rejected_rows: list[dict]
    rejected_row_count: int
    recent_days: int
    recent_cards: list[RecentCard]
    recent_recipient_count: int
    funds: object | None  # orders.funds.FundsCheck, or None where the provider keeps no balance

    @property
    def rejected_rows_cut(self) -> bool:
        return len({row.get("row") for row in self.rejected_rows}) < self.rejected_row_count

    @property
    def over_limit(self) -> bool:
        return any(line.over_limit for line in self.currencies)


def _username(user) -> str:
    return user.get_username() if user else ""


def batch_review(batch: Batch) -> BatchReview:
    """Everything an approver signs for `batch`: see the module's docstring."""
    fingerprint = batch_fingerprint(batch)
    account = batch.account
    pending = Order.objects.filter(batch=batch, status=OrderStatus.PENDING)
    quotes, quote_problem = orders_quote(account=account, orders=pending)
    currencies = currency_lines(pending, account=account, quotes=quotes)
    totals = {line.currency: line.total for line in currencies}
    recent_days = settings.GIFTDESK_RECENT_RECIPIENT_DAYS
    recent_cards, recent_count = _recent_cards(pending, days=recent_days)
    rejected = list(batch.rejected_rows or [])[:REJECTED_ROWS_SHOWN]
    # Imported here: orders.funds is the wallet check's own module.
    from orders.funds import funds_check

    funds = funds_check(account, totals) if totals else None
    return BatchReview(
        batch=batch,
        fingerprint=fingerprint,
        account=str(account),
        provider=account.get_kind_display(),
        cards=sum(line.cards for line in currencies),
        totals=totals,
        currencies=currencies,
        quote_problem=quote_problem,
        products=_products(pending),
        approval_reasons=approval_reasons(totals),
        uploader=_username(batch.created_by) or "unknown",
        send_requested_by=_username(batch.send_requested_by),
        send_requested_at=batch.send_requested_at,
        rejected_rows=rejected,
        rejected_row_count=batch.rejected_row_count,
        recent_days=recent_days,
        recent_cards=recent_cards,
        recent_recipient_count=recent_count,
        funds=funds,
    )


def _products(pending) -> list[ProductLine]:
    """Per product and currency: cards, total and the amounts, in a fixed number of queries
    whatever the batch's size."""
    groups = (pending.order_by().values("product_id", "product__title", "currency")
              .annotate(cards=Count("id"), total=Sum("amount"), lowest=Min("amount"), highest=Max("amount")))
    amounts: dict[tuple[int, str], list[tuple[Decimal, int]]] = {}
    for product_id, currency, amount, cards in (
        pending.order_by().values_list("product_id", "currency", "amount").annotate(cards=Count("id"))
    ):
        amounts.setdefault((product_id, currency), []).append((amount, cards))
    lines = []
    for group in groups:
        listed = sorted(amounts.get((group["product_id"], group["currency"]), []), key=lambda pair: (-pair[1], pair[0]))
        lines.append(ProductLine(
            title=group["product__title"], currency=group["currency"], cards=group["cards"], total=group["total"],
            amounts=tuple(listed[:AMOUNTS_SHOWN]), other_amounts=max(len(listed) - AMOUNTS_SHOWN, 0),
            lowest=group["lowest"], highest=group["highest"],
        ))
    return sorted(lines, key=lambda line: (-line.cards, line.title))


def _recent_cards(pending, *, days: int) -> tuple[list[RecentCard], int]:
    """Other batches' orders to this batch's recipients (the same email, in any case) that got
    or are due to get a card in the last `days` days: the approver may not want to pay
    twice. Returns (the most recent ones, the number of distinct recipients)."""
    emails = pending.order_by().annotate(email_key=Lower("recipient__email")).values("email_key")
    recent = (recent_orders(days=days).filter(email_key__in=emails)
              .exclude(batch_id__in=pending.order_by().values("batch_id")))
    count = recent.values("email_key").distinct().count()
    if not count:
        return [], 0
    labels = dict(OrderStatus.choices)
    rows = recent.select_related("recipient", "batch").order_by("-recent_at", "-id")[:RECENT_SHOWN]
    return [
        RecentCard(email=order.recipient.email, name=order.recipient.name, reference=order.reference,
                   amount=order.amount, currency=order.currency, status=order.status,
                   status_label=labels.get(order.status, order.status), when=order.recent_at,
                   batch_id=order.batch_id, batch_name=order.batch.name)
        for order in rows
    ], count
