"""The audit trail in the admin: read by administrators and Finance (DESIGN.md "Roles"),
changed by nobody. Both trails are read-only for everyone, administrators included: our
own entries (who did what, from where, with how much) and django-auditlog's field history
(which URL, setting or batch field changed, from what to what)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import auditlog.admin  # registers auditlog's LogEntry admin, so it exists to be replaced below
from auditlog import get_logentry_model
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from audit.models import AuditEntry
from giftdesk.admin_restrictions import ReadOnlyAdminMixin

NO_USER = "no user (the system, or a command run without --user)"


def amounts_text(amounts: dict) -> str:
    """{"DKK": "1000.00", "EUR": "5.00"} -> "1,000.00 DKK, 5.00 EUR": one figure per currency,
    never a sum across them."""
    parts = []
    for currency, total in sorted((amounts or {}).items()):
        try:
            parts.append(f"{Decimal(total):,.2f} {currency}")
        except (InvalidOperation, TypeError):
            parts.append(f"{total} {currency}")  # shown as written rather than hidden
    return ", ".join(parts)


class UserFilter(admin.RelatedOnlyFieldListFilter):
    """The users who have entries, and the entries of no user."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.empty_value_display = NO_USER


class WhenFilter(admin.DateFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "when"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["when", "who", "address", "action", "what", "summary", "amounts_display"]
    list_display_links = ["when"]
    # Filters on indexed columns only (created_at, action, user): the trail only grows.
    list_filter = [("user", UserFilter), "action", ("created_at", WhenFilter)]
    date_hierarchy = "created_at"
    search_fields = ["username", "target", "summary"]
    search_help_text = "Search the user name, what the action was on (a batch's or account's name), and the summary."
    show_full_result_count = False
    fields = ["when", "who", "address", "action", "what", "summary", "amounts_display"]
    readonly_fields = fields

    @admin.display(description="When", ordering="created_at")
    def when(self, entry):
        return entry.created_at

    @admin.display(description="Who", ordering="username")
    def who(self, entry):
        # The name as written then: the entry still says who after a rename or removal.
        return entry.username or NO_USER

    @admin.display(description="What")
    def what(self, entry):
        if not entry.target_kind:
            return "—"
        label = f"{entry.target_kind} #{entry.target_id}: {entry.target}" if entry.target_id else entry.target_kind
        url = self._target_url(entry)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.display(description="Amounts")
    def amounts_display(self, entry):
        return amounts_text(entry.amounts) or "—"

    def _target_url(self, entry) -> str | None:
        # Found by the admin's own registry, not by importing what it names: audit depends
        # on no app that writes to it. The target's page still asks its own permission.
        for model in self.admin_site._registry:
            if model._meta.model_name == entry.target_kind:
                try:
                    return reverse(f"{self.admin_site.name}:{model._meta.app_label}_{model._meta.model_name}_change",
                                   args=[entry.target_id])
                except NoReverseMatch:
                    return None
        return None


# django-auditlog's field history: its own admin, without the delete it allows when another
# page deletes in cascade (nothing here cascades into it: an account's history outlives it).
LogEntry = get_logentry_model()
admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class FieldHistoryAdmin(ReadOnlyAdminMixin, auditlog.admin.LogEntryAdmin):
    pass
