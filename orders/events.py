"""Writing the order event log (append-only)."""

from collections.abc import Iterable

from orders.models import EventKind, Order, OrderEvent, Submission
from providers.clients.base import CallRecord


def record_transition(
    orders: Iterable[Order], *, to_status: str, actor: str, message: str = "",
    from_status: str | None = None, submission: Submission | None = None,
) -> None:
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order=order,
            submission=submission,
            actor=actor,
            kind=EventKind.STATUS,
            from_status=from_status if from_status is not None else order.status,
            to_status=to_status,
            message=message,
        )
        for order in orders
    )


def record_note(orders: Iterable[Order], *, actor: str, message: str, submission=None) -> None:
    OrderEvent.objects.bulk_create(
        OrderEvent(order=order, submission=submission, actor=actor, kind=EventKind.NOTE, message=message)
        for order in orders
    )


def record_call(order_ids: Iterable[int], call: CallRecord, *, actor: str, submission_id: int) -> None:
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order_id=order_id,
            submission_id=submission_id,
            actor=actor,
            kind=EventKind.PROVIDER_CALL,
            message=call.error,
            http_method=call.method,
            url=call.url[:500],
            http_status=call.status,
            request_body=call.request_body,
            response_body=call.response_body,
            duration_ms=call.duration_ms,
        )
        for order_id in order_ids
    )
