"""Send and Cancel in the admin, and a batch's progress (issue 10, findings 9 and 10). A
mixin BatchAdmin inherits; presentation only: `orders.batches` sends and cancels,
`orders.batch_confirmation` says beforehand what they would do, `orders.progress` how far
a batch has got.

Sending spends money, so nothing is sent on one click: the batch page's "Send this batch"
and the list action "Send the selected batches" first show a confirmation page (the
account, the cards, the total per currency, the schedule, whether an approver must sign),
as Django's own delete confirmation does. Only its POST, carrying `post=yes` and the
fingerprint of what it showed, sends. Cancel likewise, without the fingerprint: a cancel
that finds fewer orders to stop spends nothing.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse

from giftdesk.text import plural
from orders.admin_order_actions import action_selection
from orders.approvals import batch_fingerprint
from orders.batch_access import may_send_or_cancel_batch
from orders.batch_confirmation import cancel_summary, selection_digest, send_summary
from orders.batches import BatchActionRefused, FundsShort, SendOutcome, batch_cancel, batch_send
from orders.models import Batch
from orders.progress import batch_progress

CONFIRMED = "yes"  # the confirmation page's `post` field, as in Django's delete confirmation
NOT_YOURS = "only its uploader, an approver or an administrator may send or cancel it"


class BatchSendMixin:
    """For BatchAdmin (orders/admin.py): the Send and Cancel pages and actions, the progress
    bar on the batch page and in the list, and the progress as JSON for the page's script."""

    def get_urls(self):
        return [
            path("<int:batch_id>/send/", self.admin_site.admin_view(self.send_view), name="orders_batch_send"),
            path("<int:batch_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name="orders_batch_cancel"),
            path("<int:batch_id>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="orders_batch_progress"),
        ] + super().get_urls()

    # --- Progress ------------------------------------------------------------------------------

    @admin.display(description="Orders")
    def progress(self, batch):
        """The batch list's column: a small bar and the finished count (from the list's
        per-status counts: no query per row)."""
        return render_to_string("admin/orders/batch/progress.html",
                                {"progress": batch_progress(batch, estimate=False), "compact": True})

    @admin.display(description="Progress")
    def progress_bar(self, batch):
        return render_to_string("admin/orders/batch/progress.html", {
            "progress": batch_progress(batch), "batch": batch,
            "progress_url": reverse("admin:orders_batch_progress", args=[batch.pk]),
        })

    def progress_view(self, request, batch_id):
        """The bar's numbers as JSON, for static/giftdesk/follow_send.js while the batch sends."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        batch = get_object_or_404(Batch.objects.select_related("account"), pk=batch_id)
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        return JsonResponse(batch_progress(batch).as_json())  # admin_view: never cached

    # --- Doing it --------------------------------------------------------------------------------

    def _run(self, request, batch, service, verb):
        if not may_send_or_cancel_batch(request.user, batch):
            self.message_user(request, f"“{batch}” was not touched: {NOT_YOURS}; ask one of them.", messages.ERROR)
            return 0
        try:
            outcome = service(batch=batch, user=request.user)
        except BatchActionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return 0
        if isinstance(outcome, SendOutcome):
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.queued else messages.WARNING)
            return outcome.queued
        self.message_user(request, f"{verb} {plural(outcome, 'order')} of “{batch}”.", messages.SUCCESS)
        return outcome

    def _confirmed_post(self, request) -> bool:
        return request.method == "POST" and request.POST.get("post") == CONFIRMED

    def _changed_since_shown(self, request, what: str) -> None:
        self.message_user(request, f"{what} changed since the confirmation page was shown (an order was "
                                   "cancelled, or the batch edited, meanwhile): nothing was sent. Check the page "
                                   "again, then confirm.", messages.WARNING)

    def _confirmation(self, request, template, *, title, **context):
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **context,
        })

    def _split_by_access(self, request, queryset):
        batches = list(queryset.select_related("account").order_by("pk"))
        allowed = [batch for batch in batches if may_send_or_cancel_batch(request.user, batch)]
        return batches, allowed, [batch for batch in batches if batch not in allowed]

    # --- Send ------------------------------------------------------------------------------------

    def send_view(self, request, batch_id):
        """The batch page's "Send this batch": GET (or a POST without the confirmation) shows
        what would be sent; the confirmation's POST sends."""
        batch = get_object_or_404(Batch.objects.select_related("account"), pk=batch_id)
        if not may_send_or_cancel_batch(request.user, batch):
            raise PermissionDenied
        batch_url = reverse("admin:orders_batch_change", args=[batch.pk])
        # "Send anyway (administrator)": offered on this page after Send was refused for
        # short funds; a superuser's choice, recorded by batch_send.
        send_anyway = request.method == "POST" and request.POST.get("send_anyway") == "1"
        if send_anyway and not request.user.is_superuser:
            self.message_user(request, "Nothing was sent: only an administrator may send a batch the wallet "
                                       "cannot pay for. Top up the wallet, then send.", messages.ERROR)
            return HttpResponseRedirect(batch_url)
        if self._confirmed_post(request):
            if request.POST.get("shown") != batch_fingerprint(batch):
                self._changed_since_shown(request, f"“{batch}”")
                return self._send_page(request, batch)
            funds_short = []

            def send(*, batch, user):
                try:
                    return batch_send(batch=batch, user=user, send_anyway=send_anyway)
                except FundsShort:
                    funds_short.append(True)
                    raise

            self._run(request, batch, send, "Queued")
            if not funds_short:
                return HttpResponseRedirect(batch_url)
            if request.user.is_superuser:
                self.message_user(request, "As an administrator you may send it anyway with “Send anyway "
                                           "(administrator)”; that choice is recorded in the audit trail.",
                                  messages.WARNING, extra_tags="funds-short")
            return self._send_page(request, batch, funds_short=True)
        return self._send_page(request, batch)

    def _send_page(self, request, batch, *, funds_short=False):
        summary = send_summary(batch, wallet=True)
        return self._confirmation(
            request, "admin/orders/batch/send_confirmation.html", title=f"Send “{batch}”?",
            batch=batch, summaries=[summary], summary=summary, shown=summary.fingerprint,
            funds_short=funds_short, offer_send_anyway=funds_short and request.user.is_superuser,
        )

    @admin.action(description="Send the selected batches", permissions=["change"])
    def send_batches(self, request, queryset):
        batches, allowed, refused = self._split_by_access(request, queryset)
        summaries = [send_summary(batch) for batch in allowed]
        digest = selection_digest(summaries)
        if self._confirmed_post(request):
            if request.POST.get("shown") == digest:
                for batch in batches:
                    self._run(request, batch, batch_send, "Queued")
                return None
            self._changed_since_shown(request, "The selected batches")
        sendable = [summary for summary in summaries if not summary.refusal]
        return self._confirmation(
            request, "admin/orders/batch/send_confirmation.html",
            title=f"Send {plural(len(batches), 'batch', 'batches')}?",
            summaries=summaries, sendable=sendable, refused=refused, not_yours=NOT_YOURS, shown=digest,
            **action_selection(request),
        )

    # --- Cancel ----------------------------------------------------------------------------------

    def cancel_view(self, request, batch_id):
        """The batch page's "Cancel unsent orders": GET shows what would be cancelled and what
        cannot be; the confirmation's POST cancels."""
        batch = get_object_or_404(Batch.objects.select_related("account"), pk=batch_id)
        if not may_send_or_cancel_batch(request.user, batch):
            raise PermissionDenied
        if self._confirmed_post(request):
            self._run(request, batch, batch_cancel, "Cancelled")
            return HttpResponseRedirect(reverse("admin:orders_batch_change", args=[batch.pk]))
        summary = cancel_summary(batch)
        return self._confirmation(request, "admin/orders/batch/cancel_confirmation.html",
                                  title=f"Cancel the unsent orders of “{batch}”?", batch=batch,
                                  summaries=[summary], summary=summary)

    @admin.action(description="Cancel what is not yet sent in the selected batches", permissions=["change"])
    def cancel_batches(self, request, queryset):
        batches, allowed, refused = self._split_by_access(request, queryset)
        if self._confirmed_post(request):
            for batch in batches:
                self._run(request, batch, batch_cancel, "Cancelled")
            return None
        summaries = [cancel_summary(batch) for batch in allowed]
        return self._confirmation(
            request, "admin/orders/batch/cancel_confirmation.html",
            title=f"Cancel the unsent orders of {plural(len(batches), 'batch', 'batches')}?",
            summaries=summaries, cancellable=[summary for summary in summaries if summary.cards],
            refused=refused, not_yours=NOT_YOURS, **action_selection(request),
        )
