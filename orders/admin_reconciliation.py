"""Reconciliations in the admin: their list and report (read-only for everyone), and the
account list's "Reconcile with the provider" action.

Running one asks providers what became of bought cards: it only reads and buys nothing, so
Finance may (`orders.reconcile_orders`, orders/migrations/0019), as administrators may.
Whoever may run one may read its report."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from giftdesk.admin_restrictions import ReadOnlyAdminMixin
from giftdesk.text import plural
from orders.models import Reconciliation, ReconciliationState
from orders.reconciliation import DEFAULT_DAYS, Kind, reconciliation_request, scope_text

RECONCILE_PERMISSION = "orders.reconcile_orders"


def may_reconcile(request) -> bool:
    return request.user.has_perm(RECONCILE_PERMISSION)


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["when", "account_shown", "who", "state_shown", "orders_checked", "differences_count"]
    list_filter = ["state", "account"]
    list_select_related = ["account", "requested_by"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ["when", "account_shown", "since", "who", "state_shown", "started_at", "finished_at",
              "orders_checked", "orders_not_checkable", "differences_count", "summary", "error"]
    readonly_fields = fields
    change_form_template = "admin/orders/reconciliation/change_form.html"

    class Media:
        css = {"all": ["giftdesk/admin.css"]}

    # Those who may run a reconciliation may read what it found.
    def has_view_permission(self, request, obj=None):
        return may_reconcile(request) or super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return may_reconcile(request) or super().has_module_permission(request)

    @admin.display(description="When", ordering="created_at")
    def when(self, reconciliation):
        return reconciliation.created_at

    @admin.display(description="Account", ordering="account__name")
    def account_shown(self, reconciliation):
        return scope_text(reconciliation.account)

    @admin.display(description="Who", ordering="requested_by__username")
    def who(self, reconciliation):
        user = reconciliation.requested_by
        return user.get_username() if user else "manage.py reconcile"

    @admin.display(description="State", ordering="state")
    def state_shown(self, reconciliation):
        return format_html('<span class="giftdesk-reconciliation-{}">{}</span>', reconciliation.state,
                           reconciliation.get_state_display())

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["report_lines"] = [
                {**line, "kind_label": Kind(line["kind"]).label,
                 "order_url": reverse("admin:orders_order_change", args=[line["order_id"]])}
                for line in obj.lines
            ]
            left_out = obj.differences_count - len(obj.lines)
            context["lines_left_out"] = plural(left_out, "more difference") if left_out > 0 else ""
            context["running"] = obj.state == ReconciliationState.RUNNING
            context["agreed"] = obj.state == ReconciliationState.AGREED
        return super().render_change_form(request, context, add, change, form_url, obj)


class AccountReconcileMixin:
    """For the account admin: the "Reconcile with the provider" action."""

    def has_reconcile_permission(self, request):
        return may_reconcile(request)

    @admin.action(description="Reconcile with the provider", permissions=["reconcile"])
    def reconcile_with_provider(self, request, queryset):
        for account in queryset:
            reconciliation, started = reconciliation_request(user=request.user, account=account)
            link = format_html('<a href="{}">{}</a>', reverse("admin:orders_reconciliation_change",
                                                              args=[reconciliation.pk]), reconciliation)
            if started:
                self.message_user(request, format_html(
                    "{}: {} started for the orders created since {} (the last {} days); a worker asks the provider "
                    "now. It only reports: no order is changed.",
                    account, link, reconciliation.since.isoformat(), DEFAULT_DAYS), messages.SUCCESS)
            else:
                self.message_user(request, format_html("{}: {} is already running; it is not started twice.",
                                                       account, link), messages.INFO)
