"""The start page's own parts (issue 10, finding 3), above Django's app list: a way in for
each role, and what needs attention. Presentation only: the counts are orders.attention's,
and who may see what is asked of each model's admin, so a link shown never answers 403.

Imports no admin module: the admin site (giftdesk.admin_site) calls this while the
modules that register on it may still be loading.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.admin import AdminSite
from django.urls import reverse
from django.utils.http import urlencode

from giftdesk.text import plural, verb
from orders import attention
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount


@dataclass(frozen=True)
class Entry:
    """A way in: a button, and one line saying what happens there."""

    id: str
    label: str
    url: str
    help: str


@dataclass(frozen=True)
class Item:
    """One thing that needs attention: a link, and an optional note after it."""

    kind: str
    text: str
    url: str
    note: str = ""


def _admin(site: AdminSite, model):
    return site.get_model_admin(model) if site.is_registered(model) else None


def _may_view(site: AdminSite, request, model) -> bool:
    model_admin = _admin(site, model)
    return model_admin is not None and model_admin.has_view_or_change_permission(request)


def _may_approve(request) -> bool:
    return request.user.is_active and request.user.has_perm("orders.approve_batch")


def _changelist(model, **filters) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def entries(site: AdminSite, request) -> list[Entry]:
    """Who may import starts there; an approver also gets the batches to decide; who may
    only read orders (Finance) gets the order list and its export."""
    found = []
    batch_admin = _admin(site, Batch)
    may_import = batch_admin is not None and batch_admin.has_import_permission(request)
    if may_import:
        found.append(Entry("send-gift-cards", "Send gift cards", reverse("admin:orders_batch_import"),
                           "Upload a spreadsheet of recipients (CSV or XLSX), check the preview, then send."))
    if _may_approve(request) and _may_view(site, request, Batch):
        # The list shows every batch awaiting approval, the user's own too: worded so.
        found.append(Entry("batches-to-approve", "Batches awaiting approval",
                           _changelist(Batch, state__exact=BatchState.AWAITING_APPROVAL),
                           "Read what each one sends, then approve or reject it. Those you uploaded or "
                           "asked to send are for another approver."))
    if not may_import and _may_view(site, request, Order):
        may_export = _admin(site, Order).has_export_permission(request)
        found.append(Entry("see-orders", "Orders and export" if may_export else "Orders", _changelist(Order),
                           "Every card: recipient, amount, status and cost."
                           + (" Filter the list: its totals follow; then “Export these orders” (CSV or XLSX)."
                              if may_export else "")))
    return found


def needs_attention(site: AdminSite, request) -> list[Item] | None:
    """What needs attention among the models the user may view; None when they may view
    none of them (nothing to say, not even "nothing")."""
    checks = [(Batch, _awaiting_approval), (ProviderAccount, _paused_accounts),
              (Order, _failed_orders), (Order, _waiting_for_a_limit)]
    allowed = [check for model, check in checks if _may_view(site, request, model)]
    if not allowed:
        return None
    return [item for check in allowed for item in check(request)]


def _awaiting_approval(request) -> list[Item]:
    yours = _may_approve(request)
    awaiting = attention.batches_awaiting_approval(decider=request.user if yours else None)
    count = awaiting.yours
    if not count:
        return []
    text = f"{plural(count, 'batch', 'batches')} {verb(count, 'awaits', 'await')} " + (
        "your approval" if yours else "approval")
    # The list shows every batch awaiting approval: say which of them are not counted.
    others = awaiting.batches - count
    note = (f"the list also shows {plural(others, 'batch', 'batches')} you uploaded or asked to send; "
            f"another approver decides {verb(others, 'it', 'them')}." if others else "")
    return [Item("approval", text, _changelist(Batch, state__exact=BatchState.AWAITING_APPROVAL), note)]


def _paused_accounts(request) -> list[Item]:
    return [
        Item("paused", f"Sending is paused on {account.name}",
             reverse("admin:providers_provideraccount_change", args=[account.pk]),
             f"{account.blocked_reason} {attention.PAUSED_REMEDY}")
        for account in attention.paused_accounts()
    ]


def _failed_orders(request) -> list[Item]:
    since = attention.recent_failures_start()
    count = attention.failed_orders_since(since)
    if not count:
        return []
    # The same filter as the count: the list shows exactly the orders counted.
    url = _changelist(Order, status__exact=OrderStatus.FAILED, completed_at__gte=str(since))
    return [Item("failed", f"{plural(count, 'order')} failed in the past {attention.RECENT_FAILURE_DAYS} days", url,
                 "retry or resend them from the order list.")]


def _waiting_for_a_limit(request) -> list[Item]:
    count = attention.orders_waiting_for_a_limit()
    if not count:
        return []
    url = _changelist(Order, status__exact=OrderStatus.QUEUED, waiting_reason__startswith=WAIT_REASON_START)
    return [Item("limit", f"{plural(count, 'order')} {verb(count, 'waits', 'wait')} for a monthly spending limit",
                 url, "they go when the limit allows; an administrator can raise it on the account.")]


def dashboard_url(site: AdminSite, request) -> str:
    """The spending dashboard (orders/admin_dashboard.py), for whoever may open it; "" otherwise."""
    order_admin = _admin(site, Order)
    allowed = getattr(order_admin, "has_dashboard_permission", None)
    return reverse("admin:orders_order_dashboard") if allowed is not None and allowed(request) else ""


def start_page_context(site: AdminSite, request) -> dict:
    return {"start_entries": entries(site, request), "needs_attention": needs_attention(site, request),
            "dashboard_url": dashboard_url(site, request)}
