"""A batch's totals kept on its row (issue 11): its orders per status and their face value per
currency. The batch list reads them instead of counting every order on every page.

They move with every status change, in the transaction that makes it: each change goes
through `orders.events.record_transition` right after its conditional UPDATE, which calls
`transitions_apply` here. Counts move by deltas (`F(...) ± k`: the database adds, nobody
reads and writes back), one UPDATE per batch, batches in id order so two transactions never
deadlock on each other's batches. `batch_totals_refresh` recomputes them from the orders
(seeding, tests, and a repair after rows were changed by hand; the migration's backfill,
orders/migrations/0017, does the same with the historical models).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, F, Sum, Value
from django.db.models.functions import Greatest

from orders.models import Batch, Order, OrderStatus

logger = logging.getLogger(__name__)

# Order status -> the Batch field counting it.
COUNT_FIELDS = {status: f"{status}_count" for status in OrderStatus.values}
CENTS = Decimal("0.01")
# Batches recomputed per grouped query.
REFRESH_CHUNK = 500


def status_counts(batch: Batch) -> dict[str, int]:
    """The batch's orders per status, as stored: every status, 0 when it has none."""
    return {status: getattr(batch, field) or 0 for status, field in COUNT_FIELDS.items()}


def face_values(batch: Batch) -> dict[str, Decimal]:
    """The face value of all the batch's orders per currency, as stored (currencies sorted)."""
    return {currency: Decimal(text) for currency, text in sorted((batch.face_value_totals or {}).items())}


def money_text(value: Decimal) -> str:
    """A face value as stored in `face_value_totals`: "1500.00"."""
    return str(Decimal(value).quantize(CENTS))


# --- Recomputing ----------------------------------------------------------------------------------


def totals_from_rows(rows: Iterable[tuple[int, str, str, int, Decimal]]) -> dict[int, dict]:
    """(batch id, status, currency, orders, amount) rows of a grouped query -> each batch's
    field values (0 and {} for a batch without rows)."""
    fields: dict[int, dict] = defaultdict(lambda: {**dict.fromkeys(COUNT_FIELDS.values(), 0), "face_value_totals": {}})
    sums: dict[int, Counter] = defaultdict(Counter)
    for batch_id, status, currency, count, amount in rows:
        values = fields[batch_id]
        if status in COUNT_FIELDS:
            values[COUNT_FIELDS[status]] += count
        sums[batch_id][currency] += amount or Decimal(0)
    for batch_id, by_currency in sums.items():
        fields[batch_id]["face_value_totals"] = {currency: money_text(total)
                                                 for currency, total in sorted(by_currency.items())}
    return fields


def batch_totals_refresh(batch_ids: Iterable[int]) -> int:
    """Recompute the stored totals of `batch_ids` from their orders: per chunk of batches, one
    lock, one grouped query and one UPDATE sent for all of them (executemany). Returns how
    many batches were written.

    Each chunk locks its batches first (in id order), then counts: a status change waiting
    for that lock is not yet committed, so it is not counted, and its delta lands on the
    recomputed figures once the lock is released. Nothing is lost either way."""
    ids = sorted(set(batch_ids))
    written = 0
    for start in range(0, len(ids), REFRESH_CHUNK):
        chunk = ids[start:start + REFRESH_CHUNK]
        with transaction.atomic():
            locked = list(Batch.objects.select_for_update().filter(pk__in=chunk).order_by("pk")
                          .values_list("pk", flat=True))
            rows = (Order.objects.filter(batch_id__in=chunk).order_by()
                    .values_list("batch_id", "status", "currency").annotate(n=Count("id"), total=Sum("amount")))
            fields = totals_from_rows(rows)
            _rows_write({batch_id: fields[batch_id] for batch_id in locked})  # fields: 0 and {} for none
            written += len(locked)
    return written


def _rows_write(values: dict[int, dict]) -> None:
    """One UPDATE statement for every batch, sent once with all their values: Django's
    bulk_update builds a CASE per field and batch, seconds of Python for a thousand batches."""
    if not values:
        return
    names = [*COUNT_FIELDS.values(), "face_value_totals"]
    totals_field = Batch._meta.get_field("face_value_totals")
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(Batch._meta.db_table)} SET "
           + ", ".join(f"{quote(Batch._meta.get_field(name).column)} = %s" for name in names)
           + f" WHERE {quote(Batch._meta.pk.column)} = %s")
    params = [[*(fields[name] for name in names[:-1]),
               totals_field.get_db_prep_value(fields["face_value_totals"], connection), batch_id]
              for batch_id, fields in values.items()]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def batches_drifted(batch_ids: Iterable[int] | None = None) -> list[int]:
    """Batches whose stored totals differ from their orders (all batches when None)."""
    batches = Batch.objects.order_by("pk")
    if batch_ids is not None:
        batches = batches.filter(pk__in=list(batch_ids))
    drifted = []
    ids = list(batches.values_list("pk", flat=True))
    for start in range(0, len(ids), REFRESH_CHUNK):
        chunk = ids[start:start + REFRESH_CHUNK]
        rows = (Order.objects.filter(batch_id__in=chunk).order_by()
                .values_list("batch_id", "status", "currency").annotate(n=Count("id"), total=Sum("amount")))
        expected = totals_from_rows(rows)  # 0 and {} for a batch without orders
        for batch in Batch.objects.filter(pk__in=chunk).order_by("pk"):
            stored = {**{name: getattr(batch, name) for name in COUNT_FIELDS.values()},
                      "face_value_totals": batch.face_value_totals}
            if stored != expected[batch.pk]:
                drifted.append(batch.pk)
    return drifted


# --- Keeping them current ----------------------------------------------------------------------------


class _Pending(threading.local):
    """Deltas held back while `deferred()` is open in this thread."""

    def __init__(self) -> None:
        self.depth = 0
        self.counts: dict[int, Counter] = defaultdict(Counter)
        self.created: dict[int, Counter] = defaultdict(Counter)


_pending = _Pending()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold the deltas of the transitions recorded inside, and apply them all on leaving:
    one UPDATE per batch, in id order, after the orders' own updates. For a caller that
    records orders one at a time across several batches (the engine's results), so its batch
    rows are still locked in id order, and once each. Use inside the caller's transaction;
    on an exception the deltas are dropped with the transaction that made them."""
    _pending.depth += 1
    try:
        yield
    except BaseException:
        if _pending.depth == 1:
            _pending.counts.clear()
            _pending.created.clear()
        raise
    finally:
        _pending.depth -= 1
    if _pending.depth == 0:
        counts, created = dict(_pending.counts), dict(_pending.created)
        _pending.counts.clear()
        _pending.created.clear()
        _apply(counts, created)


def transitions_apply(moves: Iterable[tuple[Order, str]], *, to_status: str) -> None:
    """Count each (order, the status it had) as now `to_status`. A previous status of ""
    is an order just created: it adds its face value to the batch's totals too."""
    if to_status not in COUNT_FIELDS:
        raise ValueError(f"Unknown order status {to_status!r}: the batch totals cannot count it.")
    counts: dict[int, Counter] = defaultdict(Counter)
    created: dict[int, Counter] = defaultdict(Counter)
    for order, from_status in moves:
        if from_status == to_status:
            continue
        if from_status:
            if from_status not in COUNT_FIELDS:
                raise ValueError(f"Unknown order status {from_status!r}: the batch totals cannot count it.")
            counts[order.batch_id][COUNT_FIELDS[from_status]] -= 1
        else:
            created[order.batch_id][order.currency] += Decimal(order.amount)
        counts[order.batch_id][COUNT_FIELDS[to_status]] += 1
    if _pending.depth:
        for batch_id, deltas in counts.items():
            _pending.counts[batch_id].update(deltas)
        for batch_id, amounts in created.items():
            _pending.created[batch_id].update(amounts)
        return
    _apply(counts, created)


def _apply(counts: dict[int, Counter], created: dict[int, Counter]) -> None:
    for batch_id in sorted(set(counts) | set(created)):
        deltas = {name: delta for name, delta in counts.get(batch_id, {}).items() if delta}
        fields = {name: F(name) + delta for name, delta in deltas.items()}
        rows = Batch.objects.filter(pk=batch_id)
        if created.get(batch_id):
            # Orders are created rarely (an upload, a resend): the JSON is read under the
            # row's lock and written back, so two creations never lose one another's amounts.
            if connection.features.has_select_for_update:
                rows = rows.select_for_update()
            stored = rows.values_list("face_value_totals", flat=True).first() or {}
            totals = Counter({currency: Decimal(text) for currency, text in stored.items()})
            totals.update(created[batch_id])
            fields["face_value_totals"] = {currency: money_text(total) for currency, total in sorted(totals.items())}
            rows = Batch.objects.filter(pk=batch_id)
        if not fields:
            continue
        # A count falls only as far as it is: one that would go below zero drifted (rows
        # changed by hand), and is then set right from the orders once this commits.
        enough = {f"{name}__gte": -delta for name, delta in deltas.items() if delta < 0}
        if not rows.filter(**enough).update(**fields):
            _drift_repair(batch_id, fields, deltas)


def _drift_repair(batch_id: int, fields: dict, deltas: dict[str, int]) -> None:
    """The last resort for a batch whose stored counts drifted: a delivery must never fail
    for a count (the column refuses a negative), so the change is applied held at zero, said
    in the log, and the batch's totals are recomputed from its orders after the commit (when
    every order this transaction moved, and its delta, is in)."""
    logger.error("Batch %s: its stored order counts drifted (moving them by %s takes one below zero); they are "
                 "recounted from its orders once this commits.", batch_id,
                 ", ".join(f"{name} {delta:+d}" for name, delta in sorted(deltas.items())))
    Batch.objects.filter(pk=batch_id).update(**{
        **fields, **{name: Greatest(F(name) + delta, Value(0)) for name, delta in deltas.items()}})
    transaction.on_commit(lambda: batch_totals_refresh([batch_id]), robust=True)
