"""What staff do to batches: create one from a checked spreadsheet, send it, cancel it.

Called by the admin and the management commands alike; nothing here is sent from
`save()` or a signal, and nothing here talks to a provider: sending wakes a worker
(`orders.dispatch`), and the preview's price is asked in `orders.provider_queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from orders import events
from orders.dispatch import wake_worker
from orders.models import Batch, BatchState, Order, OrderStatus, Recipient
from providers.models import Product, ProviderAccount


class BatchActionRefused(Exception):
    """A batch action that cannot be done in the batch's state; the message says why."""


def new_order_reference() -> str:
    return f"GD-{uuid.uuid4().hex[:16].upper()}"


@transaction.atomic
def batch_create(
    *,
    account: ProviderAccount,
    rows: Sequence,
    user=None,
    name: str = "",
    default_product: Product | None = None,
    default_amount: Decimal | None = None,
    message: str = "",
    sender_name: str = "",
    campaign: str = "",
    source_filename: str = "",
    source_checksum: str = "",
) -> Batch:
    """Create a batch and one pending order per valid row, all or nothing.

    `rows` are `spreadsheet.ValidRow`s: already checked against the account's catalog.
    """
    if not rows:
        raise BatchActionRefused(
            "The file has no valid rows, so nothing was created. Fix the rows listed with their "
            "reasons and upload the file again."
        )
    actor = user.get_username() if user else "system"
    # A file name is whatever the browser sent: cut to the columns (PostgreSQL refuses a
    # longer value), NUL removed (PostgreSQL cannot store it in text).
    source_filename = _fits(source_filename, "source_filename")
    batch = Batch.objects.create(
        name=_fits(name or source_filename or f"Batch of {timezone.localdate():%Y-%m-%d}", "name"),
        created_by=user,
        account=account,
        default_product=default_product,
        default_amount=default_amount,
        message=message,
        sender_name=sender_name,
        campaign=campaign,
        source_filename=source_filename,
        source_checksum=source_checksum,
    )
    recipients = Recipient.objects.bulk_create(
        Recipient(name=row.name, email=row.email, phone=row.phone, reference=row.reference)
        for row in rows
    )
    orders = Order.objects.bulk_create(
        Order(
            batch=batch,
            recipient=recipient,
            product=row.product,
            amount=row.amount,
            currency=row.currency,
            message=row.message,
            send_on=row.send_on,
            reference=new_order_reference(),
            source_row=row.row,
        )
        for row, recipient in zip(rows, recipients, strict=True)
    )
    events.record_transition(
        orders, from_status="", to_status=OrderStatus.PENDING, actor=actor,
        message=f"Imported from {source_filename or 'a spreadsheet'}.",
    )
    return batch


def _fits(text: str, field: str) -> str:
    limit = Batch._meta.get_field(field).max_length
    return text.replace("\x00", "")[:limit]


@transaction.atomic
def batch_send(*, batch: Batch, user=None) -> int:
    """Clear a batch's pending orders to send and wake a worker. Returns how many."""
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    if batch.state in (BatchState.CANCELLED, BatchState.COMPLETED):
        raise BatchActionRefused(f"Batch “{batch}” is {batch.get_state_display().lower()}: nothing to send.")
    if not batch.account.is_active:
        raise BatchActionRefused(
            f"The account “{batch.account}” is switched off. Switch it on, then send again."
        )
    pending = list(batch.orders.filter(status=OrderStatus.PENDING))
    if not pending:
        raise BatchActionRefused(f"Batch “{batch}” has no pending orders to send.")
    now = timezone.now()
    Order.objects.filter(pk__in=[order.pk for order in pending], status=OrderStatus.PENDING).update(
        status=OrderStatus.QUEUED, queued_at=now, updated_at=now
    )
    events.record_transition(
        pending, to_status=OrderStatus.QUEUED, actor=user.get_username() if user else "system",
        message="Cleared to send.",
    )
    batch.state = BatchState.SENDING
    batch.save(update_fields=["state", "updated_at"])
    account_id = batch.account_id
    # Only once the orders are committed can a worker see them.
    transaction.on_commit(lambda: wake_worker(account_id))
    return len(pending)


@transaction.atomic
def batch_cancel(*, batch: Batch, user=None) -> int:
    """Cancel every order of a batch not yet handed to a worker. Returns how many."""
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    stoppable = list(batch.orders.filter(status__in=[OrderStatus.PENDING, OrderStatus.QUEUED]))
    if not stoppable:
        raise BatchActionRefused(
            f"Batch “{batch}” has no pending or queued orders left: the rest are already with the provider."
        )
    now = timezone.now()
    cancelled = [
        order for order in stoppable
        if Order.objects.filter(pk=order.pk, status=order.status).update(
            status=OrderStatus.CANCELLED, completed_at=now, updated_at=now
        )
    ]
    events.record_transition(cancelled, to_status=OrderStatus.CANCELLED,
                             actor=user.get_username() if user else "system", message="Cancelled by staff.")
    if not batch.orders.exclude(status__in=[OrderStatus.CANCELLED]).exists():
        batch.state = BatchState.CANCELLED
    elif not batch.orders.exclude(status__in=[OrderStatus.CANCELLED, OrderStatus.DELIVERED, OrderStatus.FAILED]).exists():
        batch.state = BatchState.COMPLETED
    batch.save(update_fields=["state", "updated_at"])
    return len(cancelled)
