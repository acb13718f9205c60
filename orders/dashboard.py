"""The spending dashboard's numbers (issue 11): spend per month, provider and currency, this
month and last, what needs attention, and each account's balance, catalog sync and
connection check. Reads only; never calls a provider (balances and checks are the values
stored on the account). Links and charts are orders/admin_dashboard.py's.

The spend is the order list's totals (orders.reports) of the bought orders, per month created
and provider: the same grouped query, the same words.
- **Spend**: the face value (`amount`, in `currency`) of bought orders (status `processing`
  or `delivered`: the provider accepted them), and their cost as charged (`cost`, in
  `cost_currency`) where the provider reported it. Never added across currencies.
- **Month**: the calendar month, in the current time zone (TIME_ZONE), in which the order
  was *created*: the date the order list's "date created" filter uses.

Seven queries whatever the number of orders (six when none was bought): the grouped spend
and its batches, the accounts, and four for what needs attention (orders.attention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Max
from django.utils import dateformat, timezone

from orders import attention
from orders.models import Order
from orders.reports import (
    BOUGHT_STATUSES, ZERO, CurrencyTotals, Period, batch_facts, month, order_groups, provider_label,
)
from providers.models import Environment, ProviderKind, ProviderAccount

MONTHS_SHOWN = 12  # this month and the eleven before it


def last_quarter(today: date) -> Period:
    """The calendar quarter before the one `today` is in; labelled "Q3 2025 (Jul–Sep)"."""
    this_quarter = month(today.replace(day=1), -((today.month - 1) % 3))
    first, last = month(this_quarter.first, -3), month(this_quarter.first, -1)
    number = (first.first.month - 1) // 3 + 1
    months = f"{dateformat.format(first.first, 'M')}–{dateformat.format(last.first, 'M')}"
    return Period(first.first, last.last, f"Q{number} {first.first.year} ({months})")


# --- Spend ---------------------------------------------------------------------------------------


@dataclass
class MonthSpend:
    """One month of one currency: the totals of its bought cards per provider, and the cost
    charged in this currency, whatever the cards' own currency."""

    month: Period
    by_provider: dict[str, CurrencyTotals] = field(default_factory=dict)  # provider kind -> its cards' totals
    cost: Decimal = ZERO

    @property
    def face_by_provider(self) -> dict[str, Decimal]:
        return {kind: totals.bought_face_value for kind, totals in self.by_provider.items()}

    @property
    def face(self) -> Decimal:
        return sum((totals.bought_face_value for totals in self.by_provider.values()), ZERO)

    @property
    def orders(self) -> int:
        return sum(totals.bought_orders for totals in self.by_provider.values())

    @property
    def without_cost(self) -> int:
        """Bought cards of this currency whose cost the provider did not report (with its currency)."""
        return sum(totals.bought_without_cost for totals in self.by_provider.values())


@dataclass
class CurrencySpend:
    """The last MONTHS_SHOWN months of spend in one currency, oldest first."""

    currency: str
    months: list[MonthSpend]
    providers: list[str] = field(default_factory=list)  # kinds with face value here, in ProviderKind's order

    @property
    def this_month(self) -> MonthSpend:
        return self.months[-1]

    @property
    def last_month(self) -> MonthSpend:
        return self.months[-2]

    @property
    def face(self) -> Decimal:
        return sum((spent.face for spent in self.months), ZERO)

    @property
    def cost(self) -> Decimal:
        return sum((spent.cost for spent in self.months), ZERO)

    @property
    def has_face_value(self) -> bool:
        return bool(self.providers)


def spend_by_month(months: list[Period]) -> list[CurrencySpend]:
    """The bought orders created in `months` (consecutive, oldest first), per currency, month and
    provider, in two queries (orders.reports.order_groups and its batches). A currency appears
    when some bought order has its face value or its cost in it."""
    groups = order_groups(Order.objects.filter(status__in=BOUGHT_STATUSES), months=months)
    batches = batch_facts({group.batch_id for group in groups})
    place = {period.first: index for index, period in enumerate(months)}
    spends: dict[str, CurrencySpend] = {}

    def spent(currency: str, first_day: date) -> MonthSpend:
        if currency not in spends:
            spends[currency] = CurrencySpend(currency, [MonthSpend(period) for period in months])
        return spends[currency].months[place[first_day]]

    for group in groups:
        kind = batches[group.batch_id].provider
        spent(group.currency, group.month).by_provider.setdefault(kind, CurrencyTotals(group.currency)).add(group)
        if group.charged:  # in the currency charged, which may not be the card's
            spent(group.cost_currency, group.month).cost += group.cost
    order = {kind: index for index, kind in enumerate(ProviderKind.values)}
    for spend in spends.values():
        kinds = {kind for month_spend in spend.months for kind in month_spend.by_provider}
        spend.providers = sorted(kinds, key=lambda kind: (order.get(kind, len(order)), kind))
    return sorted(spends.values(), key=lambda spend: spend.currency)


# --- Accounts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountState:
    """What GiftDesk last heard of an account: stored values only, no provider is asked."""

    id: int
    name: str
    provider: str  # the kind's label
    environment: str
    is_active: bool
    blocked_reason: str
    balance: Decimal | None  # None: the provider reports no balance, or it was never read
    balance_currency: str
    balance_checked_at: datetime | None
    last_synced_at: datetime | None  # the latest Product.last_synced_at of its catalog
    last_checked_at: datetime | None
    last_check_ok: bool | None
    last_check_message: str
    queued_while_paused: int = 0  # its queued orders, while sending on it is paused

    @property
    def balance_reported(self) -> bool:
        return self.balance is not None


def account_states(queued_while_paused: dict[int, int] | None = None) -> list[AccountState]:
    """Every account by name, with its catalog's last sync, in one query."""
    rows = (ProviderAccount.objects.order_by("name").annotate(last_synced_at=Max("products__last_synced_at"))
            .values("id", "name", "kind", "environment", "is_active", "blocked_reason", "balance", "balance_currency",
                    "balance_checked_at", "last_synced_at", "last_checked_at", "last_check_ok", "last_check_message"))
    environments = dict(Environment.choices)
    queued_while_paused = queued_while_paused or {}
    return [
        AccountState(
            id=row["id"], name=row["name"], provider=provider_label(row["kind"]),
            environment=environments.get(row["environment"], row["environment"]), is_active=row["is_active"],
            blocked_reason=row["blocked_reason"], balance=row["balance"], balance_currency=row["balance_currency"],
            balance_checked_at=row["balance_checked_at"], last_synced_at=row["last_synced_at"],
            last_checked_at=row["last_checked_at"], last_check_ok=row["last_check_ok"],
            last_check_message=row["last_check_message"],
            queued_while_paused=queued_while_paused.get(row["id"], 0) if row["blocked_reason"] else 0,
        )
        for row in rows
    ]


# --- Needs attention ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    failed_since: datetime  # failed orders are counted from here (attention.RECENT_FAILURE_DAYS)
    failed: int
    waiting_for_a_limit: int
    paused_accounts: list[AccountState]  # each with its queued orders
    unknown_outcome_orders: int
    unknown_outcome_submissions: int


# --- The page's data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    months: list[Period]  # oldest first; the last is this month
    spend: list[CurrencySpend]  # by currency code
    accounts: list[AccountState]
    attention: Attention

    @property
    def this_month(self) -> Period:
        return self.months[-1]

    @property
    def last_month(self) -> Period:
        return self.months[-2]

    @property
    def last_quarter(self) -> Period:
        return last_quarter(timezone.localtime(self.now).date())

    @property
    def shown(self) -> Period:
        """All the months shown."""
        return Period(self.months[0].first, self.months[-1].last,
                      f"{self.months[0].label} – {self.months[-1].label}")


def spending_dashboard(now: datetime | None = None) -> Dashboard:
    """Everything the dashboard shows, as of `now` (default: now), in 7 queries."""
    now = now or timezone.now()
    this_month = month(timezone.localtime(now).date().replace(day=1))
    months = [month(this_month.first, shift) for shift in range(1 - MONTHS_SHOWN, 1)]
    accounts = account_states(attention.queued_orders_of_paused_accounts())
    since = attention.recent_failures_start(now)
    unknown = attention.unknown_outcomes()
    return Dashboard(
        now=now, months=months, accounts=accounts, spend=spend_by_month(months),
        attention=Attention(
            failed_since=since, failed=attention.failed_orders_since(since),
            waiting_for_a_limit=attention.orders_waiting_for_a_limit(),
            paused_accounts=[account for account in accounts if account.blocked_reason],
            unknown_outcome_orders=unknown.orders, unknown_outcome_submissions=unknown.submissions,
        ),
    )

