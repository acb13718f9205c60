"""Send and Cancel in the admin, and a batch's progress (issue 10, findings 9 and 10). A
mixin BatchAdmin inherits; presentation only: `orders.batches` sends and cancels,
`orders.batch_confirmation` says beforehand what they would do, `orders.progress` how far
a batch has got.

Sending spends money, so nothing is sent on one click: the batch page's "Send this batch"
and the list action "Send the selected batches" first show a confirmation page (the
account, the cards, the total per currency, the schedule, whether an approver must sign),
as Django's own delete confirmation does. Only its POST, carrying `post=yes` and the
fingerprint of what it showed, sends; `batch_send` compares that fingerprint under the
batch's lock. Cancel likewise, without the fingerprint: a cancel
that finds fewer orders to stop spends nothing.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET

from giftdesk.text import plural
from orders.admin_order_actions import action_selection
from orders.approvals import batch_fingerprint
from orders.batch_access import may_send_or_cancel_batch
from orders.batch_confirmation import cancel_summary, selection_digest, send_summary, with_orders_to_cancel
from orders.batches import BatchActionRefused, BatchChanged, FundsShort, SendOutcome, batch_cancel, batch_send
from orders.models import Batch
from orders.progress import batch_progress, cards_ahead

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

    @method_decorator(require_GET)
    def progress_view(self, request, batch_id):
        """The bar's numbers as JSON, for static/giftdesk/follow_send.js while the batch sends."""
        batch = get_object_or_404(Batch.objects.select_related("account"), pk=batch_id)
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        return JsonResponse(batch_progress(batch).as_json())  # admin_view: never cached

    # --- Doing it --------------------------------------------------------------------------------

    def _run(self, request, batch, service, verb, **options) -> None:
        """Call `service` on `batch` and say what it did, or why not."""
        try:
            outcome = service(batch=batch, user=request.user, **options)
        except BatchActionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if isinstance(outcome, SendOutcome):
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.queued else messages.WARNING)
        else:
            self.message_user(request, f"{verb} {plural(outcome, 'order')} of “{batch}”.", messages.SUCCESS)

    def _not_touched(self, request, refused) -> None:
        for batch in refused:
            self.message_user(request, f"“{batch}” was not touched: {NOT_YOURS}; ask one of them.", messages.ERROR)

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

    def _split_by_access(self, request, queryset) -> tuple[list[Batch], list[Batch]]:
        """The selected batches the user may send or cancel, and the others."""
        allowed, refused = [], []
        for batch in queryset.select_related("account").order_by("pk"):
            (allowed if may_send_or_cancel_batch(request.user, batch) else refused).append(batch)
        return allowed, refused

    # --- Send ------------------------------------------------------------------------------------

    def send_view(self, request, batch_id):
        """The batch page's "Send this batch": GET (or a POST without the confirmation) shows
        what would be sent; the confirmation's POST sends."""
        batch = get_object_or_404(Batch.objects.select_related("account"), pk=batch_id)
        if not may_send_or_cancel_batch(request.user, batch):
            raise PermissionDenied
        if not self._confirmed_post(request):
            return self._send_page(request, batch)
        try:
            # "Send anyway (administrator)": offered by the page when the wallet is short; the
            # service refuses it to anyone else and records an administrator's choice.
            outcome = batch_send(batch=batch, user=request.user, fingerprint=request.POST.get("shown", ""),
                                 send_anyway=request.POST.get("send_anyway") == "1")
        except BatchChanged:
            self._changed_since_shown(request, f"“{batch}”")
            return self._send_page(request, batch)
        except FundsShort as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._send_page(request, batch)
        except BatchActionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.queued else messages.WARNING)
        return HttpResponseRedirect(reverse("admin:orders_batch_change", args=[batch.pk]))

    def _send_page(self, request, batch):
        summary = send_summary(batch, wallet=True)
        return self._confirmation(
            request, "admin/orders/batch/send_confirmation.html", title=f"Send “{batch}”?",
            batch=batch, summaries=[summary], summary=summary, shown=summary.fingerprint,
            offer_send_anyway=summary.funds_short and request.user.is_superuser,
        )

    @admin.action(description="Send the selected batches", permissions=["change"])
    def send_batches(self, request, queryset):
        allowed, refused = self._split_by_access(request, queryset)
        if self._confirmed_post(request):
            # The digest says the page showed these batches as they are; each send compares
            # its batch's fingerprint again under the batch's lock.
            fingerprints = {batch.pk: batch_fingerprint(batch) for batch in allowed}
            if request.POST.get("shown") == selection_digest(fingerprints):
                self._not_touched(request, refused)
                for batch in allowed:
                    self._run(request, batch, batch_send, "Queued", fingerprint=fingerprints[batch.pk])
                return None
            self._changed_since_shown(request, "The selected batches")
        ahead: dict[int, int] = {}  # per account: the batches of one account wait behind the same cards
        summaries = []
        for batch in allowed:
            if batch.account_id not in ahead:
                ahead[batch.account_id] = cards_ahead(batch.account)
            summaries.append(send_summary(batch, ahead=ahead[batch.account_id]))
        return self._confirmation(
            request, "admin/orders/batch/send_confirmation.html",
            title=f"Send {plural(len(allowed) + len(refused), 'batch', 'batches')}?",
            summaries=summaries, sendable=[summary for summary in summaries if not summary.refusal],
            refused=refused, not_yours=NOT_YOURS,
            shown=selection_digest({summary.batch.pk: summary.fingerprint for summary in summaries}),
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
        allowed, refused = self._split_by_access(request, queryset)
        if self._confirmed_post(request):
            # Those the page listed with nothing to cancel stay as they are, unmentioned: it said so.
            self._not_touched(request, refused)
            for batch in with_orders_to_cancel(allowed):
                self._run(request, batch, batch_cancel, "Cancelled")
            return None
        summaries = [cancel_summary(batch) for batch in allowed]
        return self._confirmation(
            request, "admin/orders/batch/cancel_confirmation.html",
            title=f"Cancel the unsent orders of {plural(len(allowed) + len(refused), 'batch', 'batches')}?",
            summaries=summaries, cancellable=[summary for summary in summaries if summary.cards],
            refused=refused, not_yours=NOT_YOURS, **action_selection(request),
        )
