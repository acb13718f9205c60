"""The order list's filters and sorting for Finance (issue 11), each cheap at a million orders.

Every filter narrows through an index of the order table (or of a batch, a small table), and
finds its own choices with at most one small query: never a DISTINCT over the orders. The
list sorts only by columns an index serves (OrderAdmin.sortable_by); see orders/models.py.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext
from rangefilter.filters import DateRangeFilter

from orders.models import BOUGHT_STATUSES, Batch, OrderStatus
from providers.models import Product, ProviderKind

RECENT_BATCHES = 15  # the batch filter's choices; older ones are found by searching their name


# --- Date ranges (django-admin-rangefilter) -------------------------------------------------


class DayRangeFilter(DateRangeFilter):
    """From one day to another, both included, in the server's time zone (TIME_ZONE).

    Its own template: rangefilter's own sets styles and scripts inline, which the CSP
    refuses. This one is a plain GET form carrying the list's other parameters, with the
    admin's calendar from static files."""

    template = "admin/orders/order/date_range_filter.html"
    title_text = ""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = self.title_text

    def queryset(self, request, queryset):
        if not self.form.is_bound:
            return queryset
        if not self.form.is_valid():
            # Not a date: no order rather than all of them (totals and exports follow the list);
            # the form says what is wrong next to the field.
            return queryset.none()
        bounds = self._make_query_filter(request, self.form.cleaned_data)
        return self.narrowed(queryset, bounds) if bounds else queryset

    def narrowed(self, queryset, bounds: dict):
        return queryset.filter(**bounds)

    def choices(self, changelist):
        own = set(self.expected_parameters())
        # The list's other filters, search and sorting, kept as hidden fields of the form.
        kept = [(name, value) for name, values in changelist.filter_params.items() if name not in own
                for value in values]
        for choice in super().choices(changelist):
            yield {**choice, "kept": kept}


class CreatedRangeFilter(DayRangeFilter):
    """Orders created (`created_at`) from one day to another: the day the totals' months use."""

    title_text = "date created"


class DeliveredRangeFilter(DayRangeFilter):
    """Orders delivered from one day to another: status delivered and `completed_at` in the
    range (the (status, completed_at) index). Failed or cancelled orders also have a
    `completed_at`; they are never "delivered"."""

    title_text = "date delivered"

    def narrowed(self, queryset, bounds: dict):
        return queryset.filter(status=OrderStatus.DELIVERED, **bounds)


# --- Choices from small tables ----------------------------------------------------------------


class ChoiceFilter(admin.SimpleListFilter):
    """A filter whose chosen value names a column value of the order or its batch. A value that
    cannot be one raises IncorrectLookupParameters: the totals and the export refuse it, and the
    list clears its filters saying why (OrderListMixin)."""

    lookup = ""  # the order's field path the value is compared with

    def has_output(self):
        # A chosen value always narrows, even with no choice to offer (no batch approved yet):
        # Django would otherwise drop the filter and list every order.
        return super().has_output() or self.value() is not None

    def clean(self, value: str):
        return value

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(**{self.lookup: self.clean(value)})


def as_id(text: str) -> int | None:
    """`text` as a row id; None when it cannot be one (a word, "²", more digits than a bigint)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


class IdChoiceFilter(ChoiceFilter):
    def clean(self, value: str) -> int:
        if as_id(value) is None:
            raise IncorrectLookupParameters(f"{capfirst(self.title)}: “{value}” is not an id.")
        return as_id(value)

    def chosen_id(self) -> int | None:
        return None if self.value() is None else self.clean(self.value())


def once(request, name: str, read):
    """`read()` once per request: two filters sharing one query."""
    key = f"_giftdesk_order_list_{name}"
    if not hasattr(request, key):
        setattr(request, key, read())
    return getattr(request, key)


def catalog_rows(request) -> list[tuple[int, str, str]]:
    """(account id, account name, currency) of every product: the account and currency
    filters' choices in one query over the product table. An account with orders has
    products (an order's product is its account's, protected from deletion)."""
    return once(request, "catalog", lambda: list(
        Product.objects.order_by().values_list("account_id", "account__name", "currency").distinct()))


def sidebar_batches(request) -> list[Batch]:
    """Newest first: the most recent batches, the chosen one, and the first batch of each
    campaign, so the batch and campaign filters share one query over the batches (a small
    table). The most recent are the first RECENT_BATCHES: no other row can be newer."""
    def read():
        shown = (Q(pk__in=Batch.objects.order_by("-pk").values("pk")[:RECENT_BATCHES])
                 | Q(pk__in=Batch.objects.exclude(campaign="").order_by().values("campaign")
                     .annotate(first=Min("pk")).values("first")))
        chosen = as_id(request.GET.get(BatchFilter.parameter_name, ""))
        if chosen is not None:
            shown |= Q(pk=chosen)
        return list(Batch.objects.filter(shown).order_by("-pk").only("pk", "name", "campaign", "created_at"))
    return once(request, "batches", read)


def batch_people(request) -> list:
    """The users who uploaded or approved a batch, each marked which: one query for both filters."""
    return once(request, "people", lambda: list(
        get_user_model().objects
        .annotate(uploaded=Exists(Batch.objects.filter(created_by=OuterRef("pk"))),
                  approved=Exists(Batch.objects.filter(approved_by=OuterRef("pk"))))
        .filter(Q(uploaded=True) | Q(approved=True))
        .order_by("username")))


def shown_name(user) -> str:
    return user.get_full_name() or user.get_username()


class StatusFilter(ChoiceFilter):
    """The order's status, or "bought" (processing or delivered: what the dashboard's spend
    counts), so a link from the dashboard shows its choice in the sidebar and another status
    replaces it rather than narrowing to nothing."""

    title = "status"
    parameter_name = "status__exact"  # as Django's own field filter named it: links kept working
    lookup = "status"
    BOUGHT = "bought"

    def lookups(self, request, model_admin):
        return [(self.BOUGHT, "Bought (processing or delivered)"), *OrderStatus.choices]  # no query

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.BOUGHT:
            return queryset.filter(status__in=BOUGHT_STATUSES)
        return super().queryset(request, queryset)

    def clean(self, value: str) -> str:
        if value not in OrderStatus.values:
            raise IncorrectLookupParameters(f"No order status is called “{value}”.")
        return value


class ProviderFilter(ChoiceFilter):
    title = "provider"
    parameter_name = "batch__account__kind"  # as the dashboard's links name it
    lookup = "batch__account__kind"

    def lookups(self, request, model_admin):
        return ProviderKind.choices  # no query

    def clean(self, value: str) -> str:
        if value not in ProviderKind.values:
            raise IncorrectLookupParameters(f"No provider is called “{value}”.")
        return value


class AccountFilter(IdChoiceFilter):
    title = "account"
    parameter_name = "batch__account__id__exact"  # as the list's earlier field filter and the dashboard's links
    lookup = "batch__account_id"

    def lookups(self, request, model_admin):
        accounts = {account_id: name for account_id, name, _ in catalog_rows(request)}
        return [(str(account_id), name) for account_id, name in sorted(accounts.items(), key=lambda item: item[1])]


class CampaignFilter(ChoiceFilter):
    title = "cost center / campaign"
    parameter_name = "batch__campaign"
    lookup = "batch__campaign"

    def lookups(self, request, model_admin):
        campaigns = sorted({batch.campaign for batch in sidebar_batches(request) if batch.campaign})
        return [(campaign, campaign) for campaign in campaigns]


class BatchFilter(IdChoiceFilter):
    """The chosen batch and the most recent ones; the batch page's "All orders of this batch"
    link chooses any batch. Same parameter as that link (batch__id__exact)."""

    title = "batch"
    parameter_name = "batch__id__exact"
    lookup = "batch_id"
    template = "admin/orders/order/batch_filter.html"

    def lookups(self, request, model_admin):
        batches = sidebar_batches(request)
        chosen = self.chosen_id()
        shown = [batch for index, batch in enumerate(batches) if index < RECENT_BATCHES or batch.pk == chosen]
        return [(str(batch.pk), f"{batch.name} ({timezone.localdate(batch.created_at):%Y-%m-%d})")
                for batch in shown]


class CurrencyFilter(ChoiceFilter):
    """The currencies of the catalogs (an order's currency is its product's): the product
    table, never a DISTINCT over the orders."""

    title = "currency"
    parameter_name = "currency__exact"  # as the list's earlier field filter and the dashboard's links
    lookup = "currency"

    def lookups(self, request, model_admin):
        currencies = {currency for _, _, currency in catalog_rows(request)}
        if self.value():
            currencies.add(self.value())
        return [(currency, currency) for currency in sorted(currencies)]


class UploadedByFilter(IdChoiceFilter):
    title = "uploaded by"
    parameter_name = "batch__created_by__id__exact"
    lookup = "batch__created_by_id"

    def lookups(self, request, model_admin):
        return [(str(user.pk), shown_name(user)) for user in batch_people(request) if user.uploaded]


class ApprovedByFilter(IdChoiceFilter):
    title = "approved by"
    parameter_name = "batch__approved_by__id__exact"
    lookup = "batch__approved_by_id"

    def lookups(self, request, model_admin):
        return [(str(user.pk), shown_name(user)) for user in batch_people(request) if user.approved]


# In the sidebar's order.
ORDER_LIST_FILTERS = [
    ("created_at", CreatedRangeFilter),
    ("completed_at", DeliveredRangeFilter),
    StatusFilter,
    ProviderFilter,
    AccountFilter,
    CampaignFilter,
    BatchFilter,
    CurrencyFilter,
    UploadedByFilter,
    ApprovedByFilter,
]
# Filters across the batch that Django's lookup_allowed would not match to their parameter.
FILTER_PARAMETERS = {item.parameter_name for item in ORDER_LIST_FILTERS if isinstance(item, type)}


# --- Sorting and the list itself ------------------------------------------------------------------


class IndexedChangeList(ChangeList):
    """The order list: sorted only by the columns OrderAdmin.sortable_by names (each served by
    an index). A hand-made ?o= naming another column is ignored, as its header offers none."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)

    def get_ordering(self, request, queryset):
        # Without the admin queryset's own default ordering, which Django would append to a chosen
        # column's: "last change" sorts as (updated_at, id), the order its index holds.
        return super().get_ordering(request, queryset.order_by())

    def get_results(self, request):
        # A batch's rejected rows (up to 1,000, JSON) are not shown here: not read for every row.
        queryset = self.queryset
        self.queryset = queryset.defer("batch__rejected_rows")
        try:
            super().get_results(request)
        finally:
            self.queryset = queryset


# A date range orders the list by its own date, latest first: the index that finds the range
# reads it in that order (by the batch, an old range would be found only after every newer order).
RANGE_ORDERING = [(("completed_at__range__gte", "completed_at__range__lte"), ["-completed_at", "-id"]),
                  (("created_at__range__gte", "created_at__range__lte"), ["-created_at", "-id"])]


class OrderListMixin:
    """For OrderAdmin: its list is an IndexedChangeList, ordered by a date range's date when one
    is chosen; its filters' parameters are allowed, and a value they refuse is said to be."""

    def get_ordering(self, request):
        for parameters, ordering in RANGE_ORDERING:
            if any(request.GET.get(name) for name in parameters):
                return ordering
        return super().get_ordering(request)

    def action_checkbox(self, obj):
        # Django's own markup, written directly: rendered through the form templates it took a
        # third of the list's time at 100 rows.
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           helpers.ACTION_CHECKBOX_NAME, obj.pk, label)

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in FILTER_PARAMETERS or super().lookup_allowed(lookup, value, request)

    def get_changelist(self, request, **kwargs):
        return IndexedChangeList

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except IncorrectLookupParameters as refusal:
            request.giftdesk_filter_refusal = refusal  # for the list's message (changelist_view)
            raise

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        refusal = getattr(request, "giftdesk_filter_refusal", None)
        if refusal is not None:
            # Django answers a filter it cannot apply by listing every order (?e=1), unexplained.
            self.message_user(request, f"{refusal} The filters were cleared: all orders are listed.",
                              messages.ERROR)
        return response
