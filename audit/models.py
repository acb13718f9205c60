"""The audit trail: one append-only entry per human action on money or accounts.

Field-level history of accounts and batches is django-auditlog's (providers/audit.py);
these entries are the actions themselves: who, when, from where, what, and the amounts.
Targets are named by kind and id, not by foreign keys, so `providers/` can record here
without depending on `orders/`, and an entry outlives what it names."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditAction(models.TextChoices):
    UPLOAD = "upload", "Upload"
    SEND = "send", "Send"
    SEND_ANYWAY = "send_anyway", "Send despite short funds"
    APPROVAL_REQUESTED = "approval_requested", "Approval requested"
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    APPROVAL_VOIDED = "approval_voided", "Approval voided"
    CANCEL = "cancel", "Cancel"
    RETRY = "retry", "Retry"
    RESEND = "resend", "Resend"
    RESUME = "resume", "Resume sending"
    EXPORT = "export", "Export"
    RECONCILE = "reconcile", "Reconcile with a provider"
    ACCOUNT_CHANGE = "account_change", "Account change"


class AppendOnly(Exception):
    """An audit entry is never changed or deleted."""


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit entries are never changed.")

    def delete(self):
        raise AppendOnly("Audit entries are never deleted.")


class AuditEntry(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    # Kept as written: the entry still says who when the user is renamed or removed.
    username = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=100, blank=True, help_text="Client address, or “command line”.")
    action = models.CharField(max_length=30, choices=AuditAction.choices, db_index=True)
    target_kind = models.CharField(max_length=30, blank=True, help_text="batch, order, account…")
    target_id = models.CharField(max_length=40, blank=True)
    target = models.CharField(max_length=300, blank=True, help_text="What it was, as named then.")
    summary = models.TextField()
    # {currency: "total"}: money is never summed across currencies.
    amounts = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_kind", "target_id"])]

    def __str__(self) -> str:
        # In the server's time zone, as the admin shows the entry's time beside it.
        when = f"{timezone.localtime(self.created_at):%Y-%m-%d %H:%M} " if self.created_at else ""
        return f"{when}{self.username or 'system'}: {self.get_action_display()}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnly("Audit entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit entries are never deleted.")
