"""Four eyes in the admin (issue 9): the approval screen, the batch page's approval states,
the "Send at" field, and an edit voiding an approval. A mixin BatchAdmin inherits;
presentation only: decisions go through `orders.batches`, the review is
`orders.batch_review`, who may decide is `orders.batch_access`."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from orders.batch_access import approval_refusal, may_edit_batch
from orders.batch_review import batch_review
from orders.batches import BatchActionRefused, batch_approval_void, batch_approve, batch_reject
from orders.models import Batch, BatchState

# States in which "Send this batch" has nothing to do: an approver decides, or has decided.
SEND_HIDDEN_STATES = (BatchState.AWAITING_APPROVAL, BatchState.APPROVED, BatchState.REJECTED)
# Batch fields an approver signs (orders.approvals.batch_fingerprint) that the batch page
# edits, as the person editing reads them.
SIGNED_FIELDS = {"message": "the message", "sender_name": "the sender name", "scheduled_for": "“Send at”"}
# Written by the services, never by the batch form: the row's current values are kept when
# the form is saved, so a decision or a send made while the form was open is not undone.
SERVICE_FIELDS = ("state", "send_requested_by", "send_requested_at", "approved_by", "approved_at",
                  "approved_fingerprint", "rejected_by", "rejected_at", "rejection_reason")
SEND_AT_HELP = ("When the batch is queued, in GiftDesk's time zone; empty: as soon as it is sent (and "
                "approved, where it needs approval). Changing it on an approved batch voids the approval.")


class ApproveForm(forms.Form):
    # What the approver saw (orders.approvals.batch_fingerprint): a batch changed since is
    # refused, never approved unseen.
    fingerprint = forms.CharField(widget=forms.HiddenInput, max_length=64)


class RejectForm(forms.Form):
    fingerprint = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = forms.CharField(
        label="Reason", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000,
        help_text="The uploader reads it on the batch page. Its pending orders are cancelled.",
        error_messages={"required": "Give a reason for the rejection: the uploader reads it."},
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Give a reason for the rejection: the uploader reads it.")
        return reason


def _name(user) -> str:
    return user.get_username() if user else "someone no longer in GiftDesk"


class BatchApprovalMixin:
    """For BatchAdmin (orders/admin.py)."""

    def get_urls(self):
        return [
            path("<int:batch_id>/approval/", self.admin_site.admin_view(self.approval_view),
                 name="orders_batch_approval"),
        ] + super().get_urls()

    # --- The approval screen -----------------------------------------------------------------

    def approval_view(self, request, batch_id):
        batch = get_object_or_404(
            Batch.objects.select_related("account", "created_by", "send_requested_by", "approved_by",
                                         "rejected_by"), pk=batch_id)
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        reject_data = None
        if request.method == "POST":
            decision = request.POST.get("decision")
            form = (ApproveForm if decision == "approve" else RejectForm)(request.POST, prefix=decision)
            if decision not in ("approve", "reject"):
                self.message_user(request, "Choose Approve or Reject.", messages.ERROR)
            elif form.is_valid():
                return self._decide(request, batch, decision, form.cleaned_data)
            elif decision == "reject":
                reject_data = request.POST
            else:
                self.message_user(request, "The approval form was incomplete: review the batch again, "
                                           "then approve or reject.", messages.ERROR)
        return self._approval_page(request, batch, reject_data)

    def _approval_page(self, request, batch, reject_data=None):
        review = batch_review(batch)
        refusal = approval_refusal(request.user, batch)
        awaiting = batch.state == BatchState.AWAITING_APPROVAL
        reject_form = RejectForm(prefix="reject", initial={"fingerprint": review.fingerprint})
        if reject_data is not None:
            # Shown again with its error, against the review on this page.
            data = reject_data.copy()
            data["reject-fingerprint"] = review.fingerprint
            reject_form = RejectForm(data, prefix="reject")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Approval of “{batch}”",
            "batch": batch,
            "review": review,
            "awaiting": awaiting,
            "may_decide": awaiting and refusal is None,
            "refusal": refusal,
            "approve_form": ApproveForm(prefix="approve", initial={"fingerprint": review.fingerprint}),
            "reject_form": reject_form,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/orders/batch/approval.html", context,
                                status=400 if reject_data is not None else 200)

    def _decide(self, request, batch, decision, data):
        batch_url = reverse("admin:orders_batch_change", args=[batch.pk])
        try:
            if decision == "approve":
                outcome = batch_approve(batch=batch, user=request.user, fingerprint=data["fingerprint"])
                self.message_user(request, f"You approved “{batch}”. {outcome.message}", messages.SUCCESS)
            else:
                # The approver rejects what they saw: a batch changed since is shown again.
                cancelled = batch_reject(batch=batch, user=request.user, reason=data["reason"],
                                         fingerprint=data["fingerprint"])
                self.message_user(
                    request, f"You rejected “{batch}”: {cancelled} pending order{'s' if cancelled != 1 else ''} "
                             "cancelled. The uploader sees your reason on the batch page.", messages.SUCCESS)
        except BatchActionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:orders_batch_approval", args=[batch.pk]))
        return HttpResponseRedirect(batch_url)

    # --- The batch page ------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            batch = Batch.objects.select_related("created_by", "send_requested_by", "approved_by",
                                                 "rejected_by").get(pk=unquote(object_id))
        except (Batch.DoesNotExist, ValueError, ValidationError):
            batch = None
        if batch is not None:
            refusal = approval_refusal(request.user, batch)
            extra_context = {
                **(extra_context or {}),
                "approval_batch": batch,
                "may_approve": refusal is None,
                "approval_url": reverse("admin:orders_batch_approval", args=[batch.pk]),
                "send_hidden": batch.state in SEND_HIDDEN_STATES,
                "scheduled_future": bool(batch.scheduled_for and batch.scheduled_for > timezone.now()),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if "scheduled_for" in fields or "send_at" in fields:
            return fields
        # Editable where the batch is ("Send at" field); read-only as the same label elsewhere.
        name = "scheduled_for" if obj is None or self.has_change_permission(request, obj) else "send_at"
        at = fields.index("sender_name") + 1 if "sender_name" in fields else len(fields)
        fields.insert(at, name)
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly if "send_at" in readonly else [*readonly, "send_at"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "scheduled_for":
            kwargs.setdefault("label", "Send at")
            kwargs.setdefault("help_text", SEND_AT_HELP)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Send at")
    def send_at(self, batch):
        if not batch.scheduled_for:
            return "As soon as it is sent"
        when = timezone.localtime(batch.scheduled_for)
        return f"{when:%Y-%m-%d %H:%M} ({when.tzname()})"

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # The lock, the save and a voided approval are committed together or not at all (the
        # admin's own transaction around the save, or this one).
        with transaction.atomic():
            current = Batch.objects.select_for_update(of=("self",)).select_related("approved_by").get(pk=obj.pk)
            if not may_edit_batch(request.user, current):
                raise PermissionDenied  # sent (or out of this user's hands) while the form was open
            for name in SERVICE_FIELDS:
                setattr(obj, name, getattr(current, name))
            super().save_model(request, obj, form, change)
            changed = [label for name, label in SIGNED_FIELDS.items() if name in form.changed_data]
            if not (changed and current.state == BatchState.APPROVED):
                return
            what = changed[0] if len(changed) == 1 else ", ".join(changed[:-1]) + " and " + changed[-1]
            if not batch_approval_void(batch=obj, user=request.user, what=what):
                return
            obj.refresh_from_db(fields=list(SERVICE_FIELDS))
        self.message_user(
            request, f"{what[0].upper()}{what[1:]} changed after {_name(current.approved_by)} approved “{obj}”, "
                     "so that approval no longer holds: the batch waits for an approver again.", messages.WARNING)

    # --- The batch list ------------------------------------------------------------------------

    def get_list_display(self, request):
        return ["state_badge" if name == "state" else name for name in super().get_list_display(request)]

    @admin.display(description="State", ordering="state")
    def state_badge(self, batch):
        return format_html('<span class="status status-{}">{}</span>', batch.state, batch.get_state_display())
