"""Admin screens for batches, orders, submissions and the event log. Presentation only:
every change goes through `orders.batches`, `orders.dispatch` or `orders.provider_queries`."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from import_export.admin import ImportMixin

from giftdesk.admin_restrictions import (
    AdministratorsOnlyMixin,
    ReadOnlyAdminMixin,
    restrict_task_queue,
)
from giftdesk.text import plural, verb
from orders import events, spreadsheet, uploads
from orders.admin_approval import BatchApprovalMixin
from orders.admin_dashboard import OrderDashboardMixin
from orders.admin_export import OrderExportMixin
from orders.admin_import import (
    BatchImportResource,
    SpreadsheetConfirmForm,
    SpreadsheetFormat,
    SpreadsheetImportForm,
)
from orders.admin_import_form import ImportFormMixin
from orders.admin_kept_upload import KeptUploadMixin
from orders.admin_order_actions import BatchActionsMixin, OrderActionsMixin
from orders.admin_order_filters import ORDER_LIST_FILTERS, OrderListMixin
from orders.admin_reconciliation import AccountReconcileMixin
from orders.admin_send import BatchSendMixin
from orders.admin_totals import OrderTotalsMixin
from orders.attention import PAUSED_REMEDY
from orders.batch_access import may_edit_batch, may_send_or_cancel_batch
from orders.batch_totals import face_values, status_counts
from orders.call_excerpts import (
    OrderCalls,
    call_summary,
    order_calls,
    other_emails_replaced,
)
from orders.dispatch import ResumeRefused, account_sending_resume
from orders.import_preview import left_out_note
from orders.models import Batch, Order, OrderEvent, Submission
from orders.money import amount_text
from orders.order_search import OrderSearchMixin
from orders.provider_queries import order_card_details_refresh
from orders.selectors import waiting_products_no_longer_offered
from orders.spending import limit_waits, month_summary
from providers.admin import ProviderAccountAdmin
from providers.models import ProviderAccount

ORDERS_SHOWN = 200  # on a batch's page
# An order's fields that may hold a provider's words, and what its page shows instead.
PROVIDER_TEXT = {"waiting_reason": "waiting_reason_shown", "last_error": "last_error_shown",
                 "provider_details": "provider_details_shown"}


def page_calls(order: Order) -> OrderCalls:
    """The calls that carried `order`, read once per page: the page's fields, its history and
    its calls table all use them (kept on the instance the page loaded)."""
    if not hasattr(order, "_page_calls"):
        order._page_calls = order_calls(order)
    return order._page_calls


def status_badge(status: str, label: str):
    return format_html('<span class="status status-{}">{}</span>', status, label)


@admin.register(Batch)
class BatchAdmin(BatchSendMixin, BatchApprovalMixin, BatchActionsMixin, ImportFormMixin, KeptUploadMixin, ImportMixin,
                 admin.ModelAdmin):
    list_display = ["name", "account", "state", "progress", "total", "created_by", "created_at"]
    list_filter = ["state", "account"]
    search_fields = ["name", "source_filename", "campaign"]
    list_select_related = ["account", "created_by"]
    date_hierarchy = "created_at"
    actions = ["send_batches", "cancel_batches", "retry_failed_orders"]
    readonly_fields = ["account", "state", "progress_bar", "total", "default_product", "default_amount",
                       "created_by", "created_at", "source_filename", "source_checksum", "blocked_notice",
                       "limit_notice"]
    fields = ["name", "blocked_notice", "limit_notice", "account", "state", "progress_bar", "total", "message",
              "sender_name", "campaign", "default_product", "default_amount", "created_by",
              "created_at", "source_filename", "source_checksum"]
    change_form_template = "admin/orders/batch/change_form.html"

    # django-import-export: the upload -> preview -> confirm flow.
    resource_classes = [BatchImportResource]
    import_form_class = SpreadsheetImportForm
    confirm_form_class = SpreadsheetConfirmForm
    import_template_name = "admin/orders/batch/import.html"

    class Media:
        css = {"all": ["giftdesk/admin.css"]}

    def get_import_formats(self):
        return [SpreadsheetFormat]

    def has_add_permission(self, request):
        return False  # Batches come from uploads ("Import" above the list).

    def has_delete_permission(self, request, obj=None):
        return False  # Orders are history; a batch is cancelled, never deleted.

    def has_import_permission(self, request):
        return request.user.has_perm("orders.add_batch")

    def has_change_permission(self, request, obj=None):
        # A batch: only its uploader, an approver or an administrator, and never once sent
        # (read-only page; a forged POST gets 403 from the admin's own check).
        allowed = super().has_change_permission(request, obj)
        return allowed if obj is None or not allowed else may_edit_batch(request.user, obj)

    # --- Columns -------------------------------------------------------------------------

    # "progress" (the list's bar) and "progress_bar" (the batch page's): orders/admin_send.py.

    @admin.display(description="Total")
    def total(self, batch):
        # Face value of all its orders, one line per currency: a sum across currencies means nothing.
        totals = face_values(batch)
        if not totals:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((amount_text(amount, currency),)
                                                           for currency, amount in totals.items()))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        if batch is not None:
            extra_context = {**(extra_context or {}), "orders_table": self.orders_table(batch),
                             "may_send_or_cancel": may_send_or_cancel_batch(request.user, batch)}
        return super().change_view(request, object_id, form_url, extra_context)

    def orders_table(self, batch):
        """Every order's status and error on the batch page, below its fields; capped, so a
        50,000-row batch still opens at once (the order list shows them all)."""
        orders = list(batch.orders.select_related("recipient").order_by("source_row", "id")[:ORDERS_SHOWN])
        total = sum(status_counts(batch).values())
        return render_to_string("admin/orders/batch/orders_table.html", {
            "orders": orders, "shown": len(orders), "total": total,
            "all_url": f"{reverse('admin:orders_order_changelist')}?batch__id__exact={batch.pk}",
        })

    @admin.display(description="Account status")
    def blocked_notice(self, batch):
        if batch.account.blocked_reason:
            return format_html(
                '<div class="giftdesk-blocked">Sending is paused for {}: {} {}</div>',
                batch.account, batch.account.blocked_reason, PAUSED_REMEDY,
            )
        return "Ready"

    @admin.display(description="Monthly limit")
    def limit_notice(self, batch):
        waiting, reason = limit_waits(batch.orders.all())
        if not waiting:
            return "No order of this batch waits for a spending limit."
        return format_html('<div class="giftdesk-blocked">{} {} for a monthly spending limit. {}</div>',
                           plural(waiting, "queued order"), verb(waiting, "waits", "wait"), reason)

    # --- Import (django-import-export hooks) ------------------------------------------------

    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        # Only a valid form's options: an invalid one (no account chosen) still lists the fields.
        valid = form is not None and hasattr(form, "cleaned_data") and not form.errors
        return {"options": form.batch_options() if valid else {},
                "leave_out_recent": bool(valid and form.cleaned_data.get("leave_out_recent"))}

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            data = import_form.cleaned_data
            initial.update({
                "account": data["account"].pk,
                "default_product": data["default_product"].pk if data.get("default_product") else None,
                "default_amount": data.get("default_amount"),
                "message": data.get("message", ""),
                "batch_name": data.get("batch_name", ""),
                "sender_name": data.get("sender_name", ""),
                "campaign": data.get("campaign", ""),
                # With its offset, so the hidden field reads back the same moment.
                "scheduled_for": data["scheduled_for"].isoformat() if data.get("scheduled_for") else None,
                # A ticket bound to this user instead of import-export's bare file name.
                "import_file_name": uploads.upload_ticket(initial["import_file_name"], user_id=request.user.pk),
            })
        return initial

    def get_confirm_form_kwargs(self, request, import_form=None):
        return {**super().get_confirm_form_kwargs(request, import_form), "user": request.user}

    def import_action(self, request, **kwargs):
        # KeptUploadMixin keeps the file after a form error, or deletes one that can never be
        # confirmed (recipients' personal data) at once, not at the sweep.
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None) or {}
        if context.get("confirm_form") is not None:
            context["confirm_form"].offer_leave_out(context.get("result"))
        return response

    def process_import(self, request, **kwargs):
        # A confirm whose ticket is refused (not this user's upload, expired, already
        # imported) goes back to the upload form saying why; import-export's own page would
        # show an empty preview. Nothing is read, created or deleted.
        if request.method == "POST" and self.has_import_permission(request):
            form = self.create_confirm_form(request)
            if not form.is_valid():
                problems = [str(error) for errors in form.errors.values() for error in errors]
                self.message_user(request, " ".join(problems), messages.ERROR)
                return HttpResponseRedirect(reverse("admin:orders_batch_import"))
        return super().process_import(request, **kwargs)

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, spreadsheet.FileRefused):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def process_result(self, result, request):
        batch = getattr(result, "giftdesk_batch", None)
        if batch is None:
            errors = "; ".join(str(error.error) for error in result.base_errors) or "nothing was created"
            self.message_user(request, f"The import did not create a batch: {errors}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:orders_batch_changelist"))
        preview = result.giftdesk_preview
        invalid = len(preview.invalid_rows)
        note = f" {plural(invalid, 'invalid row')} left out." if invalid else ""
        if result.giftdesk_left_out:
            note += f" {left_out_note(result.giftdesk_left_out)}"
        self.message_user(
            request,
            f"Batch “{batch}” created with {plural(batch.orders.count(), 'order')}.{note} "
            "Check it, then press “Send this batch”.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:orders_batch_change", args=[batch.pk]))

    # --- Sending ---------------------------------------------------------------------------

    # Send, Cancel and the progress: orders/admin_send.py (BatchSendMixin).

    def get_urls(self):
        return [
            *self.import_form_urls(),  # the product list and the template of the import form
        ] + super().get_urls()


class HistoryFormSet(BaseInlineFormSet):
    """An order's events as its page shows them. A basket's refusal is noted on each of its
    cards in the provider's words, which may quote another card's recipient: the messages
    are cleaned on the instances themselves, as the message column and the line Django's
    tabular inline prints above each row (`str(event)`) both read them. Never saved (read-only).
    An order created by its batch's upload shows that creation first: one event of the batch's
    (orders.events.history_with_batch_events), not one of its own."""

    calls: OrderCalls | None = None  # set per page by OrderEventInline.get_formset

    def get_queryset(self):
        if not hasattr(self, "_shown"):
            own = list(super().get_queryset())
            for event in own:  # the forms use these instances
                event.message = self.calls.replaced(event.message) if self.calls else event.message
            self._shown = events.history_with_batch_events(self.instance, own) if self.instance.pk else own
        return self._shown


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The order's state changes and notes, each with the provider call that caused it."""

    model = OrderEvent
    formset = HistoryFormSet
    verbose_name_plural = "history"
    fields = ["created_at", "actor", "kind", "from_status", "to_status", "message", "caused_by"]
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("provider_call")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a class made for this page
        # Every call that carried the order, whichever call (or none) an event names.
        formset.calls = page_calls(obj) if obj is not None else None
        return formset

    @admin.display(description="Caused by")
    def caused_by(self, event):
        call = event.provider_call
        return format_html('<a href="#call-{}">{}</a>', call.pk, call_summary(call)) if call else "—"


@admin.register(Order)
class OrderAdmin(OrderDashboardMixin, OrderTotalsMixin, OrderExportMixin, OrderActionsMixin, OrderSearchMixin,
                 OrderListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["giftdesk_reference", "spreadsheet_reference", "recipient", "amount_display", "status_display",
                    "batch", "account", "provider_order_id", "short_error", "updated_at"]
    # Finance's filters, each cheap at a million orders: orders/admin_order_filters.py.
    list_filter = ORDER_LIST_FILTERS
    # An exact email, reference or provider order id first (orders/order_search.py); these
    # fields only when nothing matches exactly ("contains": reads every recipient).
    search_fields = ["recipient__name", "recipient__email", "recipient__reference", "batch__name"]
    list_select_related = ["recipient", "batch__account"]
    # Newest batch first, then newest order (a date range: its date, orders/admin_order_filters.py);
    # sortable only where an index serves the order (orders/models.py).
    ordering = ["-batch_id", "-id"]
    sortable_by = ["giftdesk_reference", "updated_at"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per choice would read every order
    inlines = [OrderEventInline]
    readonly_fields = ["card_code", "giftdesk_reference", "spreadsheet_reference", *PROVIDER_TEXT.values()]
    actions = ["refresh_card_details", "retry_orders", "resend_order", "cancel_orders", "export_selected_orders"]

    change_form_template = "admin/orders/order/change_form.html"
    change_list_template = "admin/orders/order/change_list.html"

    # The export (its page, button, action, permission): orders/admin_export.py (OrderExportMixin).

    class Media:
        css = {"all": ["giftdesk/admin.css"]}

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # `obj` is the order the page already loaded (and its fields show).
        if obj is not None and request.user.has_perm("orders.view_providercall"):
            context["provider_calls_table"] = self.provider_calls_table(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_fields(self, request, obj=None):
        placed = {"card_code", "giftdesk_reference", "spreadsheet_reference", *PROVIDER_TEXT.values()}
        fields = [name for name in super().get_fields(request, obj) if name not in placed]
        # The spreadsheet's reference next to the recipient; GiftDesk's own, labelled as such,
        # where the model's `reference` was; the provider's words cleaned where they were.
        fields = [{"reference": "giftdesk_reference", **PROVIDER_TEXT}.get(name, name) for name in fields]
        at = fields.index("recipient") + 1 if "recipient" in fields else len(fields)
        fields = [*fields[:at], "spreadsheet_reference", *fields[at:]]
        # The card's code is cash: only its masked form shows, next to the provider's order id.
        at = fields.index("provider_order_id") + 1 if "provider_order_id" in fields else len(fields)
        return [*fields[:at], "card_code", *fields[at:]]

    @admin.display(description="Card code")
    def card_code(self, order):
        return order.card_code_masked or "—"

    @admin.display(description="GiftDesk reference", ordering="reference")
    def giftdesk_reference(self, order):
        # Ours, sent to the provider with the order; not the spreadsheet's.
        return order.reference

    @admin.display(description="Reference (spreadsheet)")
    def spreadsheet_reference(self, order):
        return order.recipient.reference or "—"

    # The provider's words, as the engine copied them onto every card of a basket: other
    # recipients replaced (orders.call_excerpts), here as in the history and the calls.

    @admin.display(description="Waiting for")
    def waiting_reason_shown(self, order):
        return page_calls(order).replaced(order.waiting_reason)

    @admin.display(description="Last error")
    def last_error_shown(self, order):
        return page_calls(order).replaced(order.last_error)

    @admin.display(description="Provider details")
    def provider_details_shown(self, order):
        details = order.provider_details
        return page_calls(order).replaced(json.dumps(details, ensure_ascii=False)) if details else None

    def provider_calls_table(self, order):
        """Every call that carried the order, once each, narrowed to this order's card: a
        basket's other cards and their recipients are not shown (orders.call_excerpts)."""
        return render_to_string("admin/orders/order/provider_calls.html", {"excerpts": page_calls(order).excerpts})

    @admin.display(description="Amount")
    def amount_display(self, order):
        return f"{order.amount:,.2f} {order.currency}"

    @admin.display(description="Status")
    def status_display(self, order):
        return status_badge(order.status, order.get_status_display())

    @admin.display(description="Account")
    def account(self, order):
        return order.batch.account

    def has_refresh_card_details_permission(self, request):
        # It calls the provider: Senders and administrators, never Finance (read-only).
        return request.user.has_perm("orders.refresh_card_details")

    @admin.action(description="Refresh the bought cards' details (balance, expiry)",
                  permissions=["refresh_card_details"])
    def refresh_card_details(self, request, queryset):
        for order in queryset.select_related("batch__account")[:100]:
            self.message_user(request, order_card_details_refresh(order=order))

    @admin.display(description="Last error / waiting for")
    def short_error(self, order):
        # A queued order held back (a spending limit, a paused account) says why it waits.
        # A basket's refusal is copied onto each of its rows: another's email stays on its own row.
        text = other_emails_replaced(order.waiting_reason or order.last_error, own_email=order.recipient.email)
        return (text[:80] + "…") if len(text) > 80 else text


@admin.register(Submission)
class SubmissionAdmin(AdministratorsOnlyMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["idempotency_key", "account", "state", "attempts", "provider_reference",
                    "next_attempt_at", "last_error", "updated_at"]
    list_filter = ["state", "account"]
    search_fields = ["idempotency_key", "provider_reference"]
    list_select_related = ["account"]
    show_full_result_count = False


# The task queue's pages (django-q2's own admin classes): administrators only.
restrict_task_queue(admin.site)


# providers/ never imports orders/, so the account admin is extended here, the way Django's
# docs extend UserAdmin (unregister, subclass, register): what only orders know stays on the
# account list and page, the "Resume sending" action and the products of waiting orders.
admin.site.unregister(ProviderAccount)


@admin.register(ProviderAccount)
class AccountAdmin(AccountReconcileMixin, ProviderAccountAdmin):
    actions = [*ProviderAccountAdmin.actions, "resume_sending", "reconcile_with_provider"]
    list_display = [*ProviderAccountAdmin.list_display[:-1], "this_month", ProviderAccountAdmin.list_display[-1]]
    readonly_fields = [*ProviderAccountAdmin.readonly_fields, "this_month"]

    def get_fieldsets(self, request, obj=None):
        # The month's spend against the limits, under the limits themselves.
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [(name, {**options, "fields": [*options["fields"], "this_month"]})
                if "monthly_limits" in options["fields"] else (name, options) for name, options in fieldsets]

    @admin.display(description="This month")
    def this_month(self, account):
        lines = month_summary(account)
        if not lines:
            return "No monthly limit"
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    def products_no_longer_offered(self, account) -> list[str]:
        return waiting_products_no_longer_offered(account)

    @admin.action(description="Resume sending (after fixing what paused it)", permissions=["change"])
    def resume_sending(self, request, queryset):
        for account in queryset:
            if not account.blocked_reason:
                self.message_user(request, f"{account}: sending was not paused.", messages.INFO)
                continue
            try:
                waiting = account_sending_resume(account=account, user=request.user)
            except ResumeRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"{account}: sending resumed; {plural(waiting, 'waiting submission')} "
                                       "will be retried.", messages.SUCCESS)
