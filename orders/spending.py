"""Monthly spending limits per account and currency (DESIGN.md "Approvals and limits",
engine rule 8).

An order counts against the month it was claimed to send in (`Order.claimed_at`, in
GiftDesk's time zone) while it is `sending`, `processing` or `delivered`: from the moment a
worker may place it until the provider refuses it. Failed and cancelled orders spent nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.money import amount_text
from providers.models import ProviderAccount

SPENDING_STATUSES = (OrderStatus.SENDING, OrderStatus.PROCESSING, OrderStatus.DELIVERED)
# Every reason this module writes starts so: only these are rewritten or cleared here (a
# paused account writes its own).
WAIT_REASON_START = "Waits for the monthly "


def month_start(moment: datetime | None = None) -> datetime:
    """The first instant of `moment`'s calendar month, in GiftDesk's time zone."""
    local = timezone.localtime(moment or timezone.now())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_spent(account: ProviderAccount, currency: str, *, now: datetime | None = None) -> Decimal:
    """What `account` has spent (or holds in flight) in `currency` this calendar month."""
    total = Order.objects.filter(
        batch__account=account, currency=currency, status__in=SPENDING_STATUSES,
        claimed_at__gte=month_start(now),
    ).aggregate(total=Sum("amount"))["total"]
    return total or Decimal(0)


def limit_remaining(account: ProviderAccount, currency: str, *, now: datetime | None = None) -> Decimal | None:
    """What `account` may still spend in `currency` this month; None when it has no limit."""
    limit = account.monthly_limit(currency)
    if limit is None:
        return None
    return max(limit - month_spent(account, currency, now=now), Decimal(0))


def month_spent_by_currency(account: ProviderAccount, currencies: Iterable[str], *,
                            now: datetime | None = None) -> dict[str, Decimal]:
    """month_spent for several currencies in one query; 0 for a currency with nothing spent."""
    currencies = list(currencies)
    rows = (Order.objects.filter(batch__account=account, currency__in=currencies, status__in=SPENDING_STATUSES,
                                 claimed_at__gte=month_start(now))
            .order_by().values_list("currency").annotate(total=Sum("amount")))
    spent = {currency: Decimal(0) for currency in currencies}
    spent.update({currency: total for currency, total in rows})
    return spent


def account_limits_locked(account: ProviderAccount) -> dict[str, Decimal]:
    """Lock the account's row for the rest of the transaction and return its monthly limits
    as they are now (staff may have changed them since `account` was read).

    Whoever holds this lock is the only one reading the month's spend and claiming on the
    account (engine rule 8), and `providers.services.account_save` takes the same lock, so a
    limit is never changed halfway through a claim. On SQLite, where select_for_update is a
    no-op, the write takes the database's write lock instead."""
    rows = ProviderAccount.objects.filter(pk=account.pk)
    if connection.features.has_select_for_update:
        # NO KEY (PostgreSQL): rows inserted meanwhile that point at the account (calls,
        # submissions) are not held up by this lock; claims and account_save still are.
        no_key = connection.features.has_select_for_no_key_update
        stored = rows.select_for_update(no_key=no_key).values_list("monthly_limits", flat=True).first()
    else:
        rows.update(max_cards_per_request=F("max_cards_per_request"))
        stored = rows.values_list("monthly_limits", flat=True).first()
    limits = {currency: Decimal(str(value)) for currency, value in (stored or {}).items() if value not in (None, "")}
    account.monthly_limits = stored or {}
    return limits


def limits_fit(rows: Iterable[tuple[int, str, Decimal]], remaining: dict[str, Decimal]) -> list[int]:
    """The ids of the (id, currency, amount) rows to claim, in order: greedily while each
    limited currency's running total fits its remaining limit. Once a card does not fit, no
    later card of its currency is taken, so cards go in the order they were queued."""
    taken: list[int] = []
    totals: dict[str, Decimal] = {}
    full: set[str] = set()
    for order_id, currency, amount in rows:
        if currency in remaining:
            if currency in full or totals.get(currency, Decimal(0)) + amount > remaining[currency]:
                full.add(currency)
                continue
            totals[currency] = totals.get(currency, Decimal(0)) + amount
        taken.append(order_id)
    return taken


def wait_reason(*, account: ProviderAccount, currency: str, limit: Decimal, spent: Decimal,
                amount: Decimal) -> str:
    """Why a queued card of `amount` waits, in words staff read on the order and the batch."""
    over = spent + amount - limit
    return (
        f"{WAIT_REASON_START}{currency} limit of “{account.name}”: {amount_text(limit, currency)} a month, "
        f"{amount_text(spent, currency)} spent or in flight this month; this card needs "
        f"{amount_text(amount, currency)}, {amount_text(over, currency)} over. "
        "It goes when the limit is raised or next month begins."
    )


def _lockable(orders: QuerySet) -> QuerySet:
    # Rows another transaction holds (a cancel, a send) are left for the next claim, never waited for.
    if connection.features.has_select_for_update_skip_locked:
        return Order.objects.filter(
            pk__in=orders.order_by().select_for_update(skip_locked=True, of=("self",)).values("pk"))
    return orders


def wait_reasons_record(*, account: ProviderAccount, limits: dict[str, Decimal], now: datetime,
                        spent: dict[str, Decimal] | None = None) -> None:
    """Say on each queued order a limit holds back which limit and by how much; clear the
    reason of those it no longer holds. Called inside the claim's transaction, with the
    account locked (account_limits_locked).

    A reason quotes the month's spend, which moves with every claim: while cards of a
    currency are still being claimed, only orders without a reason get one; the figures are
    brought up to date once nothing more of that currency can go, so a claim does not
    rewrite every waiting order.

    Without limits there is nothing to say: an order left with a reason from a limit since
    removed is claimed at once, which clears it. `spent`: the month's spend per limited
    currency when the caller knows it (the claim just counted it); None asks the database."""
    if not limits:
        return
    queued = Order.objects.filter(batch__account=account, status=OrderStatus.QUEUED)
    ours = Q(waiting_reason__startswith=WAIT_REASON_START)
    stale = queued.filter(ours).exclude(currency__in=list(limits))
    if spent is None:
        spent = month_spent_by_currency(account, limits, now=now)
    for currency, limit in limits.items():
        remaining = max(limit - spent[currency], Decimal(0))
        stale = stale | queued.filter(ours, currency=currency, amount__lte=remaining)
        held = queued.filter(currency=currency, amount__gt=remaining)
        settled = not queued.filter(currency=currency, amount__lte=remaining).exists()
        # One read says which amounts need a new text: when nothing changed, nothing is written.
        outdated: dict[Decimal, str] = {}
        for amount, written in held.order_by().values_list("amount", "waiting_reason").distinct():
            reason = wait_reason(account=account, currency=currency, limit=limit, spent=spent[currency],
                                 amount=amount)
            if written != reason and (settled or not written):
                outdated[amount] = reason
        for amount, reason in outdated.items():
            changed = held.filter(amount=amount).exclude(waiting_reason=reason)
            if not settled:
                changed = changed.filter(waiting_reason="")
            _lockable(changed).update(waiting_reason=reason, updated_at=now)
    _lockable(stale).update(waiting_reason="", updated_at=now)


def month_summary(account: ProviderAccount, *, now: datetime | None = None) -> list[str]:
    """Each limited currency's month: "12,000.00 of 50,000.00 DKK spent; 38,000.00 DKK left"."""
    limits = {currency: account.monthly_limit(currency) for currency in sorted(account.monthly_limits or {})}
    limits = {currency: limit for currency, limit in limits.items() if limit is not None}
    spent = month_spent_by_currency(account, limits, now=now)
    lines = []
    for currency, limit in limits.items():
        left = limit - spent[currency]
        tail = f"{amount_text(left, currency)} left" if left >= 0 else f"{amount_text(-left, currency)} over"
        lines.append(f"{spent[currency]:,.2f} of {amount_text(limit, currency)} spent; {tail}")
    return lines


def limit_waits(orders: QuerySet) -> tuple[int, str]:
    """How many of `orders` are queued waiting for a monthly limit, and the first one's reason."""
    waiting = orders.filter(status=OrderStatus.QUEUED, waiting_reason__startswith=WAIT_REASON_START)
    first = waiting.order_by("id").values_list("waiting_reason", flat=True).first()
    return (waiting.count(), first) if first else (0, "")
