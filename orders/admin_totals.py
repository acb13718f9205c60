"""Finance's totals above the order list (issue 11): face value and cost as charged of the
orders the list's filters and search select, per currency, with breakdowns by provider,
account, campaign and month. A mixin OrderAdmin inherits; presentation only: the numbers
come from `orders.reports.order_totals`.

The totals are a page of their own, `admin:orders_order_totals`
(/admin/orders/order/totals/?<the list's querystring>), so the list itself never waits for
them: templates/admin/orders/order/totals_box.html leaves a placeholder above the list,
static/giftdesk/order_totals.js fetches the totals into it (asking for the bare fragment
with the FRAGMENT_HEADER header), and without JavaScript the box's link opens them as a
full admin page.
"""

from __future__ import annotations

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET

from giftdesk.text import plural
from orders.admin_filters_text import chosen_in_words
from orders.money import amount_text
from orders.reports import CurrencyTotals, OrderTotals, order_totals

FRAGMENT_HEADER = "X-GiftDesk-Fragment"  # set by order_totals.js: answer the box's content only
FRAGMENT_TEMPLATE = "admin/orders/order/totals_fragment.html"
PAGE_TEMPLATE = "admin/orders/order/totals.html"


def _no_page(changelist, request) -> None:
    """The totals take the whole filtered set: neither the page's rows nor its count."""


class OrderTotalsMixin:
    """For OrderAdmin (orders/admin.py): the totals of the list's filtered orders."""

    def get_urls(self):
        return [
            path("totals/", self.admin_site.admin_view(self.totals_view), name="orders_order_totals"),
        ] + super().get_urls()

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if getattr(request, "giftdesk_totals_only", False):
            # The list's own class (its filters and search), without the paging the totals never
            # show: no count query, and a stale ?p= cannot make them fail.
            return type(f"Totals{changelist.__name__}", (changelist,), {"get_results": _no_page})
        return changelist

    @method_decorator(require_GET)
    def totals_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        request.giftdesk_totals_only = True
        try:
            # Built from the request exactly as the list builds it: the same filters and search.
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("These filters are not valid for the order list: "
                                          "open the list again and choose them there.", content_type="text/plain")
        totals = order_totals(changelist.queryset)
        list_url = reverse("admin:orders_order_changelist") + changelist.get_query_string()
        context = {**totals_context(totals), "list_url": list_url}
        if request.headers.get(FRAGMENT_HEADER):
            return TemplateResponse(request, FRAGMENT_TEMPLATE, context)
        return TemplateResponse(request, PAGE_TEMPLATE, {
            **self.admin_site.each_context(request),
            **context,
            "title": "Totals of the filtered orders",
            "opts": self.model._meta,
            "chosen": chosen_in_words(changelist),
        })


def totals_context(totals: OrderTotals) -> dict:
    """What the templates show: every number already written out, with thousands separators."""
    return {
        "orders_text": plural(totals.orders, "order"),
        "time_zone": timezone.get_current_timezone_name(),  # the months' (orders.reports)
        "per_currency": [cells(currency_totals) for currency_totals in totals.per_currency],
        "breakdowns": [
            {"id": f"order-totals-{name}", "title": breakdown.title, "column": breakdown.column,
             "rows": [{"label": row.label, **cells(row.totals)} for row in breakdown.rows]}
            for name, breakdown in zip(("by-provider", "by-account", "by-campaign", "by-month"), totals.breakdowns)
        ],
    }


def cells(totals: CurrencyTotals) -> dict:
    """One table row's cells for the totals of one currency."""
    return {
        "currency": totals.currency,
        "orders": f"{totals.orders:,}",
        "face_value": amount_text(totals.face_value, totals.currency),
        "bought_orders": f"{totals.bought_orders:,}",
        "bought_face_value": amount_text(totals.bought_face_value, totals.currency),
        "costs": [amount_text(cost, currency) for currency, cost in totals.costs],
        "without_cost": (f"{plural(totals.bought_without_cost, 'bought order')} without a cost"
                         if totals.bought_without_cost else ""),
    }

