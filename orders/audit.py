"""What orders keep in the audit trail beyond the batch actions (orders/batches.py).

The batch's field history (django-auditlog): who renamed it, changed its message, campaign,
schedule or default product, and who moved its state, from what to what.

Exports (audit.AuditEntry): who took which orders out of GiftDesk, how many, in which format,
and the face value per currency: an export carries recipients' personal data."""

from __future__ import annotations

from auditlog.registry import auditlog
from django.db.models import QuerySet

from audit.models import AuditAction
from audit.services import record
from orders.models import Batch
from orders.money import totals_of, totals_text


def register() -> None:
    auditlog.register(
        Batch,
        # updated_at changes on every save; the rejected rows are a copy of the upload's
        # errors (large, written once); the fingerprint is a hash that says nothing to a reader.
        exclude_fields=["updated_at", "rejected_rows", "approved_fingerprint"],
    )


def export_record(*, user, orders: QuerySet, count: int, file_format: str, chosen: str, where: str) -> None:
    """One EXPORT entry: `orders` are those exported (their totals per currency are the
    entry's amounts), `chosen` says which (filters, selection), `where` from where."""
    totals = totals_of(orders)
    record(AuditAction.EXPORT, user=user, target_kind="order", amounts=totals,
           summary=f"Exported {count} order{'s' if count != 1 else ''} ({totals_text(totals)}) as "
                   f"{file_format.upper()} {where}; {chosen}.")
