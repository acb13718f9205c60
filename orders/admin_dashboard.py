"""The spending dashboard (issue 11), `admin:orders_order_dashboard` at
/admin/orders/order/dashboard/: a mixin OrderAdmin inherits. Presentation only: the numbers
are `orders.dashboard.spending_dashboard`'s; this module turns them into tables, chart data
(drawn by static/giftdesk/dashboard.js with Chart.js from static/giftdesk/vendor/) and links
to the order list filtered to what each number counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from giftdesk.text import plural, verb
from orders import attention
from orders.admin_order_filters import StatusFilter
from orders.dashboard import CurrencySpend, Dashboard, MonthSpend, spending_dashboard
from orders.models import OrderStatus, Submission
from orders.reports import ZERO, Period, provider_label
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount

TEMPLATE = "admin/orders/order/dashboard.html"
# The "outcome unknown" link filters orders by their submission, which the list has no filter
# for: these two lookups (and only these) are allowed on the order list.
UNKNOWN_OUTCOME_LOOKUPS = {"submission__outcome_unknown__exact", "submission__state__in"}


def number(amount: Decimal) -> str:
    return f"{amount:,.2f}"


@dataclass(frozen=True)
class Cell:
    """One figure of a table: its text (thousands separated) and the orders it counts."""

    text: str
    url: str = ""


@dataclass(frozen=True)
class SpendRow:
    """One currency's figures for a month (or the months together), each leading to its orders."""

    period: Cell  # the period's label, leading to its bought cards of this currency
    by_provider: list[Cell]  # face value, in the table's provider order
    face: Cell
    orders: Cell
    cost: Cell  # charged in this currency, whatever the cards' currency
    without_cost: int  # bought cards of this currency without a reported cost


@dataclass
class SpendTable:
    """One currency's chart and the table of the same numbers."""

    currency: str
    providers: list[str]  # column headings
    rows: list[SpendRow]  # a month each, oldest first
    total: SpendRow
    chart: dict | None  # the data dashboard.js draws; None when no card was bought in this currency
    script_id: str = ""


@dataclass(frozen=True)
class AttentionLine:
    kind: str
    text: str
    url: str
    count: int
    note: str = ""


@dataclass
class Links:
    """Where each number of the page leads: the order list filtered to what it counts."""

    changelist: str

    def orders(self, *, period: Period | None = None, bought: bool = False, **filters) -> str:
        query = {}
        if bought:
            query["status__exact"] = StatusFilter.BOUGHT
        if period is not None:
            # The list's "date created" filter (orders.admin_order_filters.CreatedRangeFilter): the
            # same days in the same time zone as the months, and its dates show in the sidebar.
            query.update({"created_at__range__gte": period.first.isoformat(),
                          "created_at__range__lte": period.last.isoformat()})
        query.update(filters)
        return f"{self.changelist}?{urlencode(query)}"


def spend_row(spend: CurrencySpend, months: list[MonthSpend], period: Period, links: Links) -> SpendRow:
    """The figures of `months` (one, or all of them for the total) in `spend`'s currency."""
    currency = spend.currency
    cards = links.orders(period=period, bought=True, currency__exact=currency)
    return SpendRow(
        period=Cell(period.label, cards),
        by_provider=[Cell(number(sum((spent.face_by_provider.get(kind, ZERO) for spent in months), ZERO)),
                          links.orders(period=period, bought=True, currency__exact=currency, batch__account__kind=kind))
                     for kind in spend.providers],
        face=Cell(number(sum((spent.face for spent in months), ZERO)), cards),
        orders=Cell(f"{sum(spent.orders for spent in months):,}", cards),
        # The cards of any currency whose cost counts in this one (orders.reports.OrderGroup.charged).
        cost=Cell(number(sum((spent.cost for spent in months), ZERO)),
                  links.orders(period=period, bought=True, cost_currency__exact=currency, cost__isnull="False")),
        without_cost=sum(spent.without_cost for spent in months),
    )


def spend_table(spend: CurrencySpend, links: Links, index: int, shown: Period) -> SpendTable:
    """`shown`: all the months, for the total."""
    rows = [spend_row(spend, [spent], spent.month, links) for spent in spend.months]
    chart = None
    if spend.has_face_value:
        chart = {
            "currency": spend.currency,
            "labels": [spent.month.label for spent in spend.months],
            "axis": f"Face value ({spend.currency}), by month created",
            "datasets": [{
                "kind": kind,
                "label": provider_label(kind),
                # Exact amounts as text: the bar's height alone is drawn from them as a number.
                "values": [str(spent.face_by_provider.get(kind, ZERO)) for spent in spend.months],
                "texts": [f"{row.by_provider[place].text} {spend.currency}" for row in rows],
                "urls": [row.by_provider[place].url for row in rows],
            } for place, kind in enumerate(spend.providers)],
        }
    return SpendTable(currency=spend.currency, providers=[provider_label(kind) for kind in spend.providers],
                      rows=rows, total=spend_row(spend, spend.months, shown, links), chart=chart,
                      script_id=f"spend-chart-data-{index}")


def attention_lines(data: Dashboard, links: Links, *, may_view_submissions: bool) -> list[AttentionLine]:
    seen = data.attention
    days = attention.RECENT_FAILURE_DAYS
    lines = [
        AttentionLine("failed", f"{plural(seen.failed, 'order')} failed in the past {days} days",
                      links.orders(status__exact=OrderStatus.FAILED, completed_at__gte=str(seen.failed_since)),
                      seen.failed, "retry or resend them from the order list." if seen.failed else ""),
        AttentionLine("limit", f"{plural(seen.waiting_for_a_limit, 'order')} "
                               f"{verb(seen.waiting_for_a_limit, 'waits', 'wait')} for a monthly spending limit",
                      links.orders(status__exact=OrderStatus.QUEUED, waiting_reason__startswith=WAIT_REASON_START),
                      seen.waiting_for_a_limit,
                      "they go when the limit allows; an administrator can raise it on the account."
                      if seen.waiting_for_a_limit else ""),
    ]
    for account in seen.paused_accounts:
        waiting = account.queued_while_paused
        lines.append(AttentionLine(
            "paused", f"{plural(waiting, 'order')} {verb(waiting, 'waits', 'wait')} on {account.name}, "
                      f"whose sending is paused",
            links.orders(status__exact=OrderStatus.QUEUED, batch__account__id__exact=account.id), waiting,
            f"{account.blocked_reason} {attention.PAUSED_REMEDY}"))
    if not seen.paused_accounts:
        lines.append(AttentionLine("paused", "No account is paused", "", 0))
    unknown = seen.unknown_outcome_orders
    lines.append(AttentionLine(
        "unknown", f"{plural(unknown, 'order')} {verb(unknown, 'has', 'have')} an unknown outcome",
        links.orders(submission__outcome_unknown__exact="1",
                     submission__state__in=",".join(attention.UNSETTLED_SUBMISSION_STATES)),
        unknown, "the provider may have placed them; GiftDesk asks again with the same key, never buying twice."
        if unknown else ""))
    if may_view_submissions:
        count = seen.unknown_outcome_submissions
        url = reverse("admin:orders_submission_changelist") + "?" + urlencode({
            "outcome_unknown__exact": "1", "state__in": ",".join(attention.UNSETTLED_SUBMISSION_STATES)})
        lines.append(AttentionLine("unknown-submissions",
                                   f"{plural(count, 'submission')} with an unknown outcome", url, count))
    return lines


def dashboard_context(data: Dashboard, links: Links, *, may_view_submissions: bool,
                      may_view_accounts: bool) -> dict:
    tables = [spend_table(spend, links, index, data.shown) for index, spend in enumerate(data.spend)]
    periods = {
        "this_month": data.this_month, "last_month": data.last_month,
        "last_quarter": data.last_quarter, "shown": data.shown,
    }
    return {
        "tables": tables,
        # Per currency: this month, then last month.
        "summary": [{"currency": spend.currency,
                     "months": [spend_row(spend, [spent], spent.month, links)
                                for spent in (spend.this_month, spend.last_month)]}
                    for spend in data.spend],
        "periods": periods,
        "period_links": {name: links.orders(period=period, bought=True) for name, period in periods.items()},
        "attention_lines": attention_lines(data, links, may_view_submissions=may_view_submissions),
        "accounts": [{
            "state": account,
            "url": reverse("admin:providers_provideraccount_change", args=[account.id]) if may_view_accounts else "",
            "balance": number(account.balance) if account.balance_reported else "",
        } for account in data.accounts],
    }


class OrderDashboardMixin:
    """For OrderAdmin (orders/admin.py): the spending dashboard."""

    def get_urls(self):
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="orders_order_dashboard"),
        ] + super().get_urls()

    def has_dashboard_permission(self, request) -> bool:
        # Whoever may read the order list (Finance, administrators; Senders and Approvers read
        # orders too, DESIGN.md "Roles"): the dashboard shows only sums of what the list shows
        # them, and every number leads there.
        return self.has_view_permission(request)

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in UNKNOWN_OUTCOME_LOOKUPS or super().lookup_allowed(lookup, value, request)

    def _may_view(self, request, model) -> bool:
        site = self.admin_site
        return site.is_registered(model) and site.get_model_admin(model).has_view_permission(request)

    @method_decorator(require_GET)
    def dashboard_view(self, request):
        if not self.has_dashboard_permission(request):
            raise PermissionDenied
        links = Links(changelist=reverse("admin:orders_order_changelist"))
        context = dashboard_context(spending_dashboard(), links,
                                    may_view_submissions=self._may_view(request, Submission),
                                    may_view_accounts=self._may_view(request, ProviderAccount))
        return TemplateResponse(request, TEMPLATE, {
            **self.admin_site.each_context(request),
            **context,
            "title": "Spending dashboard",
            "opts": self.model._meta,
            "list_url": reverse("admin:orders_order_changelist"),
        })
