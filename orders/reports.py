"""Totals of orders for Finance: the order list's totals (orders/admin_totals.py) and the
spending dashboard's spend per month (orders/dashboard.py) both come from `order_groups`, so
the two pages count the same orders the same way.

What each number means (every amount is exact, a `Decimal`, and belongs to one currency;
nothing is ever added across currencies, so every total is keyed by its currency):

- **Orders**: how many orders of the set are in that face-value currency, whatever their status.
- **Face value**: the sum of their `amount` (the card's value, in `currency`), whatever their
  status: failed, cancelled and still pending orders count here.
- **Bought orders** / **bought face value**: the same for the orders a provider accepted,
  status `processing` or `delivered` (`BOUGHT_STATUSES`): the spend.
- **Cost as charged**: the sum of `cost` of the bought orders, per `cost_currency`, which may
  differ from the face-value currency (a provider charging EUR for DKK cards). A bought order
  whose cost the provider did not report, or reported without its currency (which belongs in
  no currency's total), adds nothing and is counted in **bought without a cost**, so a total
  that is missing some costs says so.
- **Month**: the calendar month, in the current time zone (the server's TIME_ZONE unless one
  is activated), in which the order was *created* (`Order.created_at`): the same date the
  order list's "date created" filter uses.
- **Provider**: the account's kind (GoGift, Giftronaut, ...); **account**: the provider
  account of the order's batch; **campaign**: the batch's "cost center / campaign" tag
  (blank tags together, as "No campaign").

Two queries whatever the number of orders: one grouped query over the orders (by batch,
currency, cost currency, status and month created) and one for the batches it names; the
rest is added up here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Case, Count, DateField, DecimalField, QuerySet, Sum, Value, When
from django.db.models.functions import TruncMonth
from django.utils import dateformat, timezone

from orders.models import BOUGHT_STATUSES, Batch
from providers.models import ProviderKind

# "Bought" (docs: contracts.md): the provider accepted the order. The one definition for the
# totals, the dashboard and its links to the order list.
NO_CAMPAIGN = "No campaign"
ZERO = Decimal("0.00")
# At most this many batch ids in one query (under SQLite's oldest limit of 999 parameters).
BATCHES_BY_ID = 900
# A sum of many 12-digit amounts needs more digits (SQLite's converter rounds to max_digits).
# SQLite sums decimals as floats: about 1e-4 off at 2.5 billion over a million orders, so
# still exact to the cent; PostgreSQL sums them exactly.
TOTAL = DecimalField(max_digits=20, decimal_places=2)


def provider_label(kind: str) -> str:
    return ProviderKind(kind).label if kind in ProviderKind.values else kind


# --- Months created ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Orders created from `first` to `last` (days in the current time zone, both included)."""

    first: date
    last: date
    label: str

    def start(self) -> datetime:
        return _midnight(self.first)

    def end(self) -> datetime:
        """The first instant after the period."""
        return _midnight(self.last + timedelta(days=1))


def _midnight(day: date) -> datetime:
    # Where a DST change skips midnight, the instant the day starts (zoneinfo's fold=0).
    return timezone.make_aware(datetime.combine(day, time.min))


def month(first: date, shift: int = 0) -> Period:
    """The calendar month of `first`, moved by `shift` months; labelled "Nov 2025"."""
    index = first.year * 12 + first.month - 1 + shift
    start = date(index // 12, index % 12 + 1, 1)
    following = date((index + 1) // 12, (index + 1) % 12 + 1, 1)
    return Period(start, following - timedelta(days=1), dateformat.format(start, "M Y"))


# --- The grouped query ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderGroup:
    """One row of the grouped query: some orders of one batch, currency, cost currency, status
    and month created."""

    batch_id: int
    currency: str
    cost_currency: str
    bought: bool
    month: date  # the first day of the month created
    orders: int
    face_value: Decimal
    cost: Decimal  # the costs reported, in cost_currency
    costed: int  # orders of the group with a cost

    @property
    def charged(self) -> int:
        """Orders whose cost counts: a cost reported without its currency belongs in no total."""
        return self.costed if self.cost_currency else 0


def order_groups(orders: QuerySet, *, months: Sequence[Period] = ()) -> list[OrderGroup]:
    """`orders` grouped by batch, currency, cost currency, status and month created: one query.

    With `months` (consecutive, oldest first), only the orders created in them, each placed by
    comparing `created_at` with each month's end: the same months as TruncMonth in the current
    time zone (tests/orders/test_order_totals.py compares the two), without converting every
    order's time to it: on SQLite that is a Python call per row (4-5 times slower); on
    PostgreSQL the dashboard's year of 860,000 bought orders takes 0.75 s instead of 1.2 s."""
    if months:
        orders = orders.filter(created_at__gte=months[0].start(), created_at__lt=months[-1].end())
        month_created = Case(*[When(created_at__lt=period.end(), then=Value(period.first)) for period in months],
                             output_field=DateField())
    else:
        # Truncated in the current time zone (Django's default), as the "date created" filter.
        month_created = TruncMonth("created_at", output_field=DateField())
    rows = (
        orders.order_by()  # the list's ordering would join and group by its columns
        .annotate(month_created=month_created)
        # By status, not by "bought or not": grouping by the column is cheaper than by an
        # expression (about a quarter of the query's time at 85,000 orders on PostgreSQL).
        .values_list("batch_id", "currency", "cost_currency", "status", "month_created")
        .annotate(n=Count("*"), face=Sum("amount", output_field=TOTAL), charged=Sum("cost", output_field=TOTAL),
                  costed=Count("cost"))
    )
    return [
        OrderGroup(batch_id=batch_id, currency=currency, cost_currency=cost_currency,
                   bought=status in BOUGHT_STATUSES, month=month_created, orders=n, face_value=face,
                   cost=charged or ZERO, costed=costed)
        for batch_id, currency, cost_currency, status, month_created, n, face, charged, costed in rows
    ]


@dataclass(frozen=True)
class BatchFacts:
    account_id: int
    account_name: str
    provider: str  # the account's kind
    campaign: str


def batch_facts(batch_ids: set[int]) -> dict[int, BatchFacts]:
    """Account, provider and campaign of each batch, in one query (none for no batch): by id for
    a few batches, or every batch (a small table) when there are more ids than a query may carry."""
    if not batch_ids:
        return {}
    batches = Batch.objects.all() if len(batch_ids) > BATCHES_BY_ID else Batch.objects.filter(pk__in=batch_ids)
    rows = batches.order_by().values_list("pk", "account_id", "account__name", "account__kind", "campaign")
    return {pk: BatchFacts(account_id, account_name, kind, campaign.strip())
            for pk, account_id, account_name, kind, campaign in rows}


# --- The order list's totals ---------------------------------------------------------------------


@dataclass
class CurrencyTotals:
    """The totals of some orders of one face-value currency."""

    currency: str
    orders: int = 0
    face_value: Decimal = ZERO
    bought_orders: int = 0
    bought_face_value: Decimal = ZERO
    cost: dict[str, Decimal] = field(default_factory=dict)  # cost currency -> cost as charged
    bought_without_cost: int = 0

    def add(self, group: OrderGroup) -> None:
        self.orders += group.orders
        self.face_value += group.face_value
        if group.bought:
            self.bought_orders += group.orders
            self.bought_face_value += group.face_value
            self.bought_without_cost += group.orders - group.charged
            if group.charged:
                self.cost[group.cost_currency] = self.cost.get(group.cost_currency, ZERO) + group.cost

    @property
    def costs(self) -> list[tuple[str, Decimal]]:
        """(cost currency, cost as charged), the face-value currency first."""
        return sorted(self.cost.items(), key=lambda item: (item[0] != self.currency, item[0]))


@dataclass
class BreakdownRow:
    """One group (a provider, an account, a campaign, a month) in one face-value currency."""

    key: object  # ProviderKind value, account id, campaign text, or the month's first day
    label: str
    totals: CurrencyTotals


@dataclass
class Breakdown:
    title: str  # "By provider"
    column: str  # the group's column heading: "Provider"
    rows: list[BreakdownRow]

    def row(self, key, currency: str) -> CurrencyTotals | None:
        return next((row.totals for row in self.rows if row.key == key and row.totals.currency == currency), None)


@dataclass
class OrderTotals:
    per_currency: list[CurrencyTotals]  # by currency code
    by_provider: Breakdown
    by_account: Breakdown
    by_campaign: Breakdown
    by_month: Breakdown

    @property
    def orders(self) -> int:
        return sum(totals.orders for totals in self.per_currency)

    @property
    def breakdowns(self) -> list[Breakdown]:
        return [self.by_provider, self.by_account, self.by_campaign, self.by_month]

    def currency(self, code: str) -> CurrencyTotals | None:
        return next((totals for totals in self.per_currency if totals.currency == code), None)


def order_totals(orders: QuerySet) -> OrderTotals:
    """The totals of `orders` (any queryset of orders, e.g. the order list's filtered set)."""
    groups = order_groups(orders)
    batches = batch_facts({group.batch_id for group in groups})
    per_currency: dict[str, CurrencyTotals] = {}
    by: dict[str, dict[tuple, BreakdownRow]] = {"provider": {}, "account": {}, "campaign": {}, "month": {}}
    for group in groups:
        per_currency.setdefault(group.currency, CurrencyTotals(group.currency)).add(group)
        facts = batches[group.batch_id]
        keys = {
            "provider": (facts.provider, provider_label(facts.provider)),
            "account": (facts.account_id, facts.account_name),
            "campaign": (facts.campaign, facts.campaign or NO_CAMPAIGN),
            "month": (group.month, group.month.strftime("%B %Y")),
        }
        for name, (key, label) in keys.items():
            row = by[name].get((key, group.currency))
            if row is None:
                row = by[name][key, group.currency] = BreakdownRow(key, label, CurrencyTotals(group.currency))
            row.totals.add(group)
    return OrderTotals(
        per_currency=sorted(per_currency.values(), key=lambda totals: totals.currency),
        by_provider=Breakdown("By provider", "Provider", _by_label(by["provider"].values())),
        by_account=Breakdown("By account", "Account", _by_label(by["account"].values())),
        by_campaign=Breakdown("By campaign / cost center", "Campaign / cost center",
                              _by_label(by["campaign"].values())),
        by_month=Breakdown("By month created", "Month created", sorted(
            by["month"].values(), key=lambda row: (row.key, row.totals.currency))),
    )


def _by_label(rows: Iterable[BreakdownRow]) -> list[BreakdownRow]:
    return sorted(rows, key=lambda row: (row.label.casefold(), str(row.key), row.totals.currency))
