"""The order list's export (issue 11): the orders the list shows, every filter and search of
it followed, as CSV or XLSX. A mixin OrderAdmin inherits; presentation only: the columns,
the escaping and the writers are `orders.exports`' (the same as `manage.py export_orders`),
the audit entry `orders.audit`'s.

"Export these orders" above the list and the action "Export the selected orders" both lead to
one page, /admin/orders/order/export/?<the list's querystring>: it says how many orders match
and why (the filters and search in words), and offers CSV and XLSX. A selection travels as
`?id__in=1,2,3` (a lookup the list itself accepts), "select all N" as the list's own filters:
nothing lists every id in a form, so no export meets DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000).

Memory stays flat: the CSV is streamed from `.iterator()` a few hundred lines at a time (on
PostgreSQL a server-side cursor, closed with the response); the XLSX is written row by row
(xlsxwriter's constant_memory) to an unnamed temporary file that the operating system
deletes when the response closes it. One query reads every column.

Time is another matter: the CSV's first bytes leave at once, but the XLSX is sent only once
it is complete (35 to 90 s at 100,000 orders on 2 busy CPUs), longer than a web server's
usual timeout. Above LARGE_EXPORT orders the page says so and points to `manage.py export_orders`
and the scheduled export, which never go through the web server.
"""

from __future__ import annotations

import tempfile
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, IGNORED_PARAMS, PAGE_VAR, SEARCH_VAR
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header

from giftdesk.text import plural
from orders.admin_filters_text import filters_in_words, search_in_words
from orders.audit import export_record
from orders.exports import (
    CHUNK_SIZE,
    CSV,
    FORMATS,
    HEADER,
    XLSX,
    XLSX_MAX_ORDERS,
    ExportRefused,
    csv_chunks,
    for_export,
    xlsx_write,
)

SELECTION = "id__in"  # the action's selection: a lookup Django's change list applies itself
# The list's page and its display, not which orders: the export takes every page.
LIST_DISPLAY_PARAMS = (PAGE_VAR, ERROR_FLAG, "all", "_facets")
LARGE_EXPORT = 50_000  # orders above which the page warns that the XLSX takes minutes
CONTENT_TYPES = {CSV: "text/csv; charset=utf-8",
                 XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def export_query(params) -> dict[str, list[str]]:
    """Which orders a list's querystring chooses: all of it but the page and its display."""
    return {key: values for key, values in params.lists() if key not in LIST_DISPLAY_PARAMS}


def export_url(query: dict[str, list[str]]) -> str:
    url = reverse("admin:orders_order_export")
    return f"{url}?{urlencode(query, doseq=True)}" if query else url


def file_name(file_format: str) -> str:
    """orders-2026-12-06-1432.csv: when, in the server's time zone, to the minute."""
    return f"orders-{timezone.localtime():%Y-%m-%d-%H%M}.{file_format}"


def xlsx_too_many() -> str:
    return (f"More than {XLSX_MAX_ORDERS:,} orders do not fit in one XLSX sheet: "
            "filter the list to fewer orders, or export CSV.")


def selected_ids(query) -> list[str]:
    return [part for value in query.get(SELECTION, []) for part in value.split(",") if part]


class OrderExportMixin:
    """For OrderAdmin (orders/admin.py): the export page, its button above the list and the
    list action. Everything needs `orders.export_order` (Finance, administrators)."""

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="orders_order_export"),
        ] + super().get_urls()

    def has_export_permission(self, request) -> bool:
        # Its own permission, besides reading orders: the button, the page, the file and the action ask it.
        return request.user.has_perm("orders.export_order") and self.has_view_or_change_permission(request)

    def changelist_view(self, request, extra_context=None):
        if self.has_export_permission(request):  # export_button.html shows the button only then
            extra_context = {**(extra_context or {}), "export_url": export_url(export_query(request.GET))}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Export the selected orders", permissions=["export"])
    def export_selected_orders(self, request, queryset):
        """To the export page: "select all N" keeps the list's filters and search (however
        many orders); a selection on the page becomes `id__in`."""
        query = export_query(request.GET)
        if request.POST.get("select_across") != "1":
            # The checkboxes of one page (at most list_max_show_all): a URL of a few kilobytes at most.
            ids = [value for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME) if value.isdigit()]
            query = {SELECTION: [",".join(ids)], **({"o": query["o"]} if "o" in query else {})}
        return HttpResponseRedirect(export_url(query))

    # --- The page and the file ---------------------------------------------------------------

    def export_view(self, request):
        if not self.has_export_permission(request):
            raise PermissionDenied
        query = export_query(request.GET)
        request.GET = request.GET.copy()  # the list's own reading of its querystring, every page
        for key in LIST_DISPLAY_PARAMS:
            request.GET.pop(key, None)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(request, "These filters do not apply to orders: the list shows them all again.",
                              messages.ERROR)
            return HttpResponseRedirect(reverse("admin:orders_order_changelist") + f"?{ERROR_FLAG}=1")
        orders, count = changelist.queryset, changelist.result_count  # the count the list shows
        if request.method == "POST":
            return self.export_file(request, orders, count, query, request.POST.get("format", "").lower())
        selected = SELECTION in query
        return TemplateResponse(request, "admin/orders/order/export.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Export orders",
            "count": count,
            "count_text": plural(count, "selected order" if selected else "order"),
            "selected": selected,
            "criteria": export_criteria(changelist, query),
            "columns": HEADER,
            "xlsx_too_many": xlsx_too_many() if count > XLSX_MAX_ORDERS else "",
            "large": count > LARGE_EXPORT,
            "list_url": reverse("admin:orders_order_changelist") + (f"?{urlencode(query, doseq=True)}"
                                                                     if query and not selected else ""),
        })

    def export_file(self, request, orders, count: int, query, file_format: str):
        if file_format not in FORMATS:
            self.message_user(request, f"Choose CSV or XLSX (not “{file_format}”).", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        if file_format == XLSX and count > XLSX_MAX_ORDERS:  # known before a million rows are written
            self.message_user(request, xlsx_too_many(), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        chosen = chosen_for_audit(query)
        rows = for_export(orders).iterator(chunk_size=CHUNK_SIZE)  # one query, every column
        if file_format == CSV:
            # Recorded as the file starts: the orders leave line by line from here.
            export_record(user=request.user, orders=orders, count=count, file_format=CSV,
                          where="from the admin", chosen=chosen)
            response = StreamingHttpResponse(csv_chunks(rows), content_type=CONTENT_TYPES[CSV], headers={
                "Content-Disposition": content_disposition_header(True, file_name(CSV))})
        else:
            # Unnamed: nobody else can open it, and closing it (the response does) deletes it.
            workbook = tempfile.TemporaryFile(suffix=".xlsx")
            try:
                count = xlsx_write(rows, workbook)
            except ExportRefused:  # orders added since the count filled the sheet
                workbook.close()
                self.message_user(request, xlsx_too_many(), messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            except BaseException:
                workbook.close()
                raise
            workbook.seek(0)
            export_record(user=request.user, orders=orders, count=count, file_format=XLSX,
                          where="from the admin", chosen=chosen)
            response = FileResponse(workbook, as_attachment=True, filename=file_name(XLSX),
                                    content_type=CONTENT_TYPES[XLSX])
        return response


# --- Which orders, in words ----------------------------------------------------------------------

def chosen_for_audit(query) -> str:
    """Which orders an admin export took, for the audit entry: the selection, the list's
    filters and search, as the querystring has them (exact, and a URL can be made again
    from them; the page's words are for the reader)."""
    parts = []
    if SELECTION in query:
        parts.append(f"{len(selected_ids(query))} selected in the list")
    filters = [f"{key}={value}" for key, values in query.items() for value in values
               if key not in (SEARCH_VAR, "o", SELECTION, "_changelist_filters")]
    if filters:
        parts.append(f"filtered by {', '.join(filters)}")
    if query.get(SEARCH_VAR, [""])[0]:
        parts.append(f"search “{query[SEARCH_VAR][0]}”")
    return "; ".join(parts) or "all orders"


def export_criteria(changelist, query) -> list[str]:
    """The export page's list of what chooses the orders (besides a selection): each filter and
    the search in the words of the totals page, and between them any lookup no sidebar filter
    offers (a link from a batch's page, one typed by hand) as it is written."""
    read = {name for spec in changelist.filter_specs for name in spec.expected_parameters()}
    leftover = [f"{key} = {', '.join(values)}" for key, values in query.items()
                if key not in read and key not in IGNORED_PARAMS and key != SELECTION]
    return filters_in_words(changelist) + leftover + search_in_words(changelist)
