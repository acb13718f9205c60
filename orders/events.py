"""Writing an order's history (append-only): its events, and the provider calls that carried it."""

from collections.abc import Iterable

from orders import batch_totals
from orders.models import EventKind, Order, OrderEvent, ProviderCall, Submission
from providers.clients.base import CallRecord


def record_transition(
    orders: Iterable[Order], *, to_status: str, actor: str, message: str = "",
    from_status: str | None = None, submission: Submission | None = None,
    provider_call: ProviderCall | None = None,
) -> None:
    """Record that `orders` went from `from_status` (None: each order's `status` as still held
    in memory; "": just created) to `to_status`, and move their batches' stored totals.

    Call it in the transaction of the conditional UPDATE that made the change, with only the
    orders that UPDATE changed: the totals then move with it, or not at all."""
    moves = [(order, from_status if from_status is not None else order.status) for order in orders]
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order=order,
            submission=submission,
            provider_call=provider_call,
            actor=actor,
            kind=EventKind.STATUS,
            from_status=previous,
            to_status=to_status,
            message=message,
        )
        for order, previous in moves
    )
    batch_totals.transitions_apply(moves, to_status=to_status)


def record_note(
    orders: Iterable[Order], *, actor: str, message: str, submission: Submission | None = None,
    provider_call: ProviderCall | None = None,
) -> None:
    OrderEvent.objects.bulk_create(
        OrderEvent(order=order, submission=submission, provider_call=provider_call, actor=actor,
                   kind=EventKind.NOTE, message=message)
        for order in orders
    )


def record_call(call: CallRecord, *, order_ids: Iterable[int], actor: str, submission_id: int) -> ProviderCall:
    """One row for the call, whatever the number of orders it carried, and one insert for its links."""
    stored = ProviderCall.objects.create(
        submission_id=submission_id,
        actor=actor,
        method=call.method,
        url=call.url[:500],
        http_status=call.status,
        duration_ms=call.duration_ms,
        request_body=call.request_body,
        response_body=call.response_body,
        error=call.error,
    )
    Link = ProviderCall.orders.through
    Link.objects.bulk_create(Link(providercall_id=stored.pk, order_id=order_id) for order_id in order_ids)
    return stored


class CallRecorder:
    """A client's recorder for one attempt: stores each call once, linked to the orders the
    attempt carries, and keeps the last one: the cause of what the attempt records next."""

    def __init__(self, *, submission_id: int, order_ids: list[int], actor: str) -> None:
        self.submission_id = submission_id
        self.order_ids = order_ids
        self.actor = actor
        self.last: ProviderCall | None = None

    def __call__(self, call: CallRecord) -> None:
        self.last = record_call(call, order_ids=self.order_ids, actor=self.actor, submission_id=self.submission_id)
