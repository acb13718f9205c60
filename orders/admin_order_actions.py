"""Per-card actions in the admin (issue 9): retry failed orders, resend one to a corrected
email, cancel orders not yet sent. Presentation only: every change is a service of
`orders.order_actions`.

Each action first shows a confirmation page, as Django's own "delete selected" does: what
will happen to which orders, the money per currency, and the orders left out with why.
Only the POST carrying that confirmation (`post=yes`, and the digest of what was shown)
acts. The pages extend the admin's own templates and carry no inline script or style (the
Content-Security-Policy forbids them).

Who: users who may send or cancel the batch (orders.batch_access): Senders for their own
batches, Approvers, administrators; never Finance, who lack `orders.change_batch`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from orders.batch_access import may_send_or_cancel_batch
from orders.call_excerpts import order_calls
from orders.models import Batch, Order, OrderStatus
from orders.order_actions import (
    ActionPlan,
    OrderActionRefused,
    cancel_plan,
    order_resend,
    orders_cancel,
    orders_retry,
    resend_refusal,
    retry_approval,
    retry_plan,
)

ROWS_SHOWN = 200  # per list on a confirmation page; the totals always cover every order
MESSAGES_SHOWN = 10  # left-out orders named one by one after the action; the page listed them all
CONFIRMED = "yes"


def action_selection(request) -> dict:
    """A list action's selection, posted back unchanged by its confirmation page (Django's
    convention: the action is posted again with `post=yes`)."""
    return {"selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_name": request.POST.get("action", "")}


class ResendForm(forms.Form):
    email = forms.EmailField(label="Corrected email", max_length=254)
    name = forms.CharField(label="Recipient name", max_length=200, required=False,
                           help_text="Leave as it is to keep the name.")


class _PerCardBase:
    """What the order and batch mixins share: the permission and the confirmation page."""

    def has_send_or_cancel_permission(self, request) -> bool:
        # Offered to whoever may send or cancel some batch; each order's batch is checked
        # again (may_send_or_cancel_batch) and the others are left out with why.
        return request.user.is_active and request.user.has_perm("orders.change_batch")

    def _confirmed(self, request) -> bool:
        return request.method == "POST" and request.POST.get("post") == CONFIRMED

    def _plan_still_shown(self, request, plan: ActionPlan) -> bool:
        """The orders acted on are those the confirmation showed; otherwise show it again."""
        if request.POST.get("plan") == plan.digest:
            return True
        self.message_user(request, "The orders changed since the confirmation page was shown (one was sent, "
                                   "failed or cancelled meanwhile): check the page again, then confirm.",
                          messages.WARNING)
        return False

    def _page(self, request, template: str, *, title: str, plan: ActionPlan | None = None, **context):
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "plan": plan,
            "orders_shown": plan.orders[:ROWS_SHOWN] if plan else [],
            "left_out_shown": plan.left_out[:ROWS_SHOWN] if plan else [],
            "rows_shown": ROWS_SHOWN,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **context,
        })


    def _report(self, request, result) -> None:
        level = messages.SUCCESS if getattr(result, "retried", None) or getattr(result, "cancelled", None) \
            else messages.WARNING
        self.message_user(request, result.message, level)
        for entry in result.left_out[:MESSAGES_SHOWN]:
            self.message_user(request, f"{entry.order.reference} left out: {entry.reason}.", messages.WARNING)
        if len(result.left_out) > MESSAGES_SHOWN:
            self.message_user(request, f"… and {len(result.left_out) - MESSAGES_SHOWN} more left out, as the "
                                       "confirmation page listed.", messages.WARNING)

    def _retry_page(self, request, plan: ActionPlan, *, template: str, **context):
        parts = [(part, retry_approval(part)) for part in plan.by_batch()]
        return self._page(request, template, title="Retry failed orders", plan=plan, parts=parts, **context)


class OrderActionsMixin(_PerCardBase):
    """OrderAdmin's per-card actions (add the names to `actions`)."""

    @admin.action(description="Retry the selected failed orders", permissions=["send_or_cancel"])
    def retry_orders(self, request, queryset):
        plan = retry_plan(queryset, request.user)
        if self._confirmed(request) and plan.orders and self._plan_still_shown(request, plan):
            self._report(request, orders_retry(plan.orders, request.user))
            return None
        return self._retry_page(request, plan, template="admin/orders/order/retry_confirmation.html",
                                **action_selection(request))

    @admin.action(description="Cancel the selected orders not yet sent", permissions=["send_or_cancel"])
    def cancel_orders(self, request, queryset):
        plan = cancel_plan(queryset, request.user)
        if self._confirmed(request) and plan.orders and self._plan_still_shown(request, plan):
            self._report(request, orders_cancel(plan.orders, request.user))
            return None
        return self._page(request, "admin/orders/order/cancel_confirmation.html",
                          title="Cancel orders not yet sent", plan=plan, **action_selection(request))

    @admin.action(description="Resend to a corrected email", permissions=["send_or_cancel"])
    def resend_order(self, request, queryset):
        orders = list(queryset.select_related("recipient", "batch__account")[:2])
        if len(orders) != 1:
            self.message_user(request, "Select exactly one order to resend: each gets its own corrected email.",
                              messages.ERROR)
            return None
        order = orders[0]
        refusal = resend_refusal(order, request.user)
        form = ResendForm(initial={"email": order.recipient.email, "name": order.recipient.name})
        if self._confirmed(request) and not refusal:
            form = ResendForm(request.POST)
            if form.is_valid():
                try:
                    resend = order_resend(order, email=form.cleaned_data["email"], name=form.cleaned_data["name"],
                                          user=request.user)
                except OrderActionRefused as exc:
                    form.add_error(None, str(exc))
                else:
                    self.message_user(request, f"{order.reference} resent to {resend.recipient.email} as "
                                               f"{resend.reference}. {resend.send_outcome}", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:orders_order_change", args=[resend.pk]))
        # Its last error in the provider's words, with the basket's other recipients replaced.
        last_error = order_calls(order).replaced(order.last_error)
        return self._page(request, "admin/orders/order/resend_form.html", title="Resend to a corrected email",
                          order=order, last_error=last_error, refusal=refusal, form=form, **action_selection(request))


class BatchActionsMixin(_PerCardBase):
    """BatchAdmin's per-card actions: the changelist action and the batch page's button."""

    def get_urls(self):
        return [
            path("<int:batch_id>/retry-failed/", self.admin_site.admin_view(self.retry_failed_view),
                 name="orders_batch_retry_failed"),
        ] + super().get_urls()

    def _failed_orders(self, batches):
        return Order.objects.filter(batch__in=batches, status=OrderStatus.FAILED)

    @admin.action(description="Retry the failed orders of the selected batches", permissions=["send_or_cancel"])
    def retry_failed_orders(self, request, queryset):
        batches = list(queryset.order_by().values_list("pk", flat=True))
        plan = retry_plan(self._failed_orders(batches), request.user)
        if self._confirmed(request) and plan.orders and self._plan_still_shown(request, plan):
            self._report(request, orders_retry(plan.orders, request.user))
            return None
        without = Batch.objects.filter(pk__in=batches).exclude(orders__status=OrderStatus.FAILED)
        return self._retry_page(request, plan, template="admin/orders/batch/retry_confirmation.html",
                                batches_without_failures=list(without), **action_selection(request))

    def retry_failed_view(self, request, batch_id):
        """The batch page's "Retry failed orders": GET shows the confirmation, its POST acts."""
        batch = get_object_or_404(Batch, pk=batch_id)
        if not may_send_or_cancel_batch(request.user, batch):
            raise PermissionDenied
        plan = retry_plan(self._failed_orders([batch.pk]), request.user)
        if self._confirmed(request) and plan.orders and self._plan_still_shown(request, plan):
            self._report(request, orders_retry(plan.orders, request.user))
            return HttpResponseRedirect(reverse("admin:orders_batch_change", args=[batch.pk]))
        return self._retry_page(request, plan, template="admin/orders/batch/retry_confirmation.html",
                                batch=batch, batches_without_failures=[] if plan.orders or plan.left_out else [batch])
