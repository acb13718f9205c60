"""Writing the audit trail. Every human action on money or accounts calls `record` inside
the transaction that does it, so the action and its entry commit (or roll back) together."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from audit.context import current_address
from audit.models import AuditEntry


def record(action: str, *, user=None, summary: str, target=None, target_kind: str = "",
           amounts: Mapping[str, Decimal] | None = None) -> AuditEntry:
    """One entry: `user` None means the system (a schedule, a worker). `target` is any
    model instance (its kind is its model name) or None."""
    if target is not None and not target_kind:
        target_kind = target._meta.model_name
    return AuditEntry.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=user.get_username() if getattr(user, "pk", None) else "",
        address=current_address(),
        action=action,
        target_kind=target_kind,
        target_id=str(target.pk) if target is not None else "",
        target=str(target)[:300] if target is not None else "",
        summary=summary,
        amounts={currency: f"{total:.2f}" for currency, total in (amounts or {}).items()},
    )
