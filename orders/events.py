"""Writing an order's history (append-only): its events, and the provider calls that carried it."""

from collections.abc import Iterable

from django.db import connection

from giftdesk.text import plural
from orders import batch_totals, call_retention
from orders.models import (BatchEvent, BatchEventKind, EventKind, Order, OrderEvent, OrderStatus, ProviderCall,
                           Submission)
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



# --- A batch's creation: one event for all its orders --------------------------------------------


def record_batch_created(batch, *, order_count: int, actor: str, message: str) -> BatchEvent:
    """Record once that `batch`'s `order_count` orders were created pending (an upload): the
    first line of each of their histories (`order_history`), instead of an event per order.
    Their totals move with `count_created`, called with the orders as they are inserted."""
    return BatchEvent.objects.create(batch=batch, kind=BatchEventKind.CREATED, to_status=OrderStatus.PENDING,
                                     order_count=order_count, actor=actor, message=message)


def count_created(orders: Iterable) -> None:
    """Add orders just created pending to their batches' stored totals (count and face value),
    as record_transition(from_status="") does, without an event per order: their creation is
    recorded once for the batch (`record_batch_created`). Same contract: call it in the
    transaction that inserted them. `orders`: Orders, or anything with their `batch_id`,
    `currency` and `amount`."""
    batch_totals.transitions_apply(((order, "") for order in orders), to_status=OrderStatus.PENDING)


def history_with_batch_events(order: Order, events: list[OrderEvent]) -> list[OrderEvent]:
    """`order`'s own `events` (in their order), after the line of its batch's creation when the
    order was created by it: an order with a creation event of its own (a resend, or an order
    from before batch events) was not. That line is an unsaved OrderEvent made from the
    BatchEvent, saying it is the batch's; never saved."""
    if any(event.kind == EventKind.STATUS and event.from_status == "" for event in events):
        return events
    created = BatchEvent.objects.filter(batch_id=order.batch_id, kind=BatchEventKind.CREATED).first()
    if created is None:
        return events
    line = OrderEvent(order=order, actor=created.actor, kind=EventKind.STATUS, from_status="",
                      to_status=created.to_status, message=batch_creation_text(created))
    line.created_at = created.created_at
    line.batch_event = created
    return [line, *events]


def batch_creation_text(created: BatchEvent) -> str:
    """The creation's message, saying it is one event of the batch's: "Imported from a.csv
    (one event for the batch's 2,000 orders)."."""
    return f"{created.message.rstrip('.')} (one event for the batch's {plural(created.order_count, 'order')})."


def order_history(order: Order) -> list[OrderEvent]:
    """Everything that happened to `order`, oldest first: its events, after its batch's
    creation when it was created with the batch."""
    return history_with_batch_events(order, list(order.events.all()))


def record_call(call: CallRecord, *, order_ids: Iterable[int], actor: str, submission_id: int) -> ProviderCall:
    """One row for the call, whatever the number of orders it carried, and one insert for its links."""
    stored = _call_row(call, actor=actor, submission_id=submission_id)
    stored.save()
    _call_links_insert([(stored.pk, order_id) for order_id in order_ids])
    return stored


def _call_row(call: CallRecord, *, actor: str, submission_id: int) -> ProviderCall:
    return ProviderCall(
        submission_id=submission_id,
        actor=actor,
        method=call.method,
        url=call.url[:500],
        http_status=call.status,
        duration_ms=call.duration_ms,
        request_body=call_retention.body_stored(call.request_body),  # compact, cut at the setting
        response_body=call_retention.body_stored(call.response_body),
        error=call.error,
    )


def _call_links_insert(links: list[tuple[int, int]]) -> None:
    """Calls' links to their orders, (call id, order id) each: one INSERT per 400, sent as is.
    bulk_create would open a transaction around it, one statement more per call on SQLite
    (BEGIN), for rows that need none: a call row without its links (a worker killed in between)
    still names its submission."""
    Link = ProviderCall.orders.through
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(Link._meta.db_table)} ({quote(Link._meta.get_field('providercall').column)}, "
           f"{quote(Link._meta.get_field('order').column)}) VALUES ")
    with connection.cursor() as cursor:
        for start in range(0, len(links), 400):  # 800 parameters: under SQLite's oldest limit (999)
            chunk = links[start:start + 400]
            cursor.execute(sql + ", ".join(["(%s, %s)"] * len(chunk)), [value for link in chunk for value in link])


class CallBuffer:
    """Calls held in memory and stored together (`flush`): one INSERT for the calls of several
    requests and one for their links, instead of two per call. Each call is an unsaved
    ProviderCall at once, so what it caused can name it; it gets its id when flushed.

    Only for calls whose record may wait a moment: the engine flushes before it records
    anything that names one of them, and a worker that dies first loses only the records,
    never an order (its attempts are taken over and replayed with their keys)."""

    def __init__(self) -> None:
        self.pending: list[tuple[ProviderCall, list[int]]] = []

    def add(self, call: CallRecord, *, order_ids: list[int], actor: str, submission_id: int) -> ProviderCall:
        row = _call_row(call, actor=actor, submission_id=submission_id)
        self.pending.append((row, order_ids))
        return row

    def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        rows = [row for row, _order_ids in pending]
        if connection.features.can_return_rows_from_bulk_insert:
            ProviderCall.objects.bulk_create(rows)
        else:  # ids are needed for the links: one by one where the database does not return them
            for row in rows:
                row.save()
        _call_links_insert([(row.pk, order_id) for row, order_ids in pending for order_id in order_ids])


class CallRecorder:
    """A client's recorder for one attempt: stores each call once, linked to the orders the
    attempt carries, and keeps the last one: the cause of what the attempt records next.
    With a `buffer`, the calls wait there to be stored with others (CallBuffer)."""

    def __init__(self, *, submission_id: int, order_ids: list[int], actor: str,
                 buffer: CallBuffer | None = None) -> None:
        self.submission_id = submission_id
        self.order_ids = order_ids
        self.actor = actor
        self.buffer = buffer
        self.last: ProviderCall | None = None

    def __call__(self, call: CallRecord) -> None:
        if self.buffer is not None:
            self.last = self.buffer.add(call, order_ids=self.order_ids, actor=self.actor,
                                        submission_id=self.submission_id)
        else:
            self.last = record_call(call, order_ids=self.order_ids, actor=self.actor,
                                    submission_id=self.submission_id)


def record_transitions(
    changes: Iterable[tuple[Order, str, str, str]], *, actor: str, submission: Submission | None = None,
    provider_call: ProviderCall | None = None,
) -> None:
    """record_transition for orders that went to different statuses, or with different
    messages: (order, from_status, to_status, message) each, all events in one INSERT.

    The same contract: call it in the transaction of the conditional UPDATE that made the
    changes, with only the orders it changed, each with the status it really had; the
    batches' stored totals move with them, one UPDATE per batch."""
    record_transitions_each(
        ((order, from_status, to_status, message, submission, provider_call)
         for order, from_status, to_status, message in changes), actor=actor)


def record_transitions_each(
    changes: Iterable[tuple[Order, str, str, str, Submission | None, ProviderCall | None]], *, actor: str,
) -> None:
    """record_transitions for changes of several submissions, each naming its own submission
    and the call that caused it: (order, from_status, to_status, message, submission, call)."""
    changes = list(changes)
    OrderEvent.objects.bulk_create(
        OrderEvent(order=order, submission=submission, provider_call=call, actor=actor,
                   kind=EventKind.STATUS, from_status=from_status, to_status=to_status, message=message)
        for order, from_status, to_status, message, submission, call in changes
    )
    by_status: dict[str, list[tuple[Order, str]]] = {}
    for order, from_status, to_status, *_rest in changes:
        by_status.setdefault(to_status, []).append((order, from_status))
    with batch_totals.deferred():  # the groups' deltas together: each batch's row once
        for to_status, moves in by_status.items():
            batch_totals.transitions_apply(moves, to_status=to_status)


def record_notes_each(
    notes: Iterable[tuple[Order, Submission]], *, actor: str, message: str,
    provider_call: ProviderCall | None = None,
) -> None:
    """record_note for orders that each belong to a submission of their own: one INSERT."""
    OrderEvent.objects.bulk_create(
        OrderEvent(order=order, submission=submission, provider_call=provider_call, actor=actor,
                   kind=EventKind.NOTE, message=message)
        for order, submission in notes
    )
