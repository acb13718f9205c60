"""What staff do to batches: create one from a checked spreadsheet, send it (through
approval where its total asks for one), approve or reject it, cancel it.

Called by the admin and the management commands alike; nothing here is sent from
`save()` or a signal, and nothing here talks to a provider: sending wakes a worker
(`orders.dispatch`), and the preview's price is asked in `orders.provider_queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AuditAction
from audit.services import record as audit_record
from giftdesk.text import plural
from orders import batch_totals, events
from orders.approvals import approval_reasons, batch_fingerprint
from orders.batch_access import approval_refusal
from orders.dispatch import PAUSED_PREFIX, wake_worker
from orders.models import BATCH_TOTALS_FIELDS, Batch, BatchState, Order, OrderStatus, Recipient
from orders.funds import FundsCheck, funds_check
from orders.import_preview import left_out_note
from orders.money import amount_text, totals_of, totals_text
from providers.models import Product, ProviderAccount
from providers.services import BalanceUnknown, account_balance_fresh

# The upload's invalid rows kept on the batch for its approver; the count is always exact.
REJECTED_ROWS_KEPT = 1000
# Rows inserted per round (their Recipients, then their Orders): the model instances of one
# chunk are alive at a time, not 100,000 of them; Django splits each round further into
# statements the database accepts (SQLite: 999 parameters).
CREATE_CHUNK_ROWS = 2000


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
    scheduled_for=None,
    rejected_rows: Sequence = (),
    left_out_rows: Sequence = (),
) -> Batch:
    """Create a batch and one pending order per valid row, all or nothing.

    `rows` are `spreadsheet.ValidRow`s: already checked against the account's catalog.
    `rejected_rows` are the upload's `spreadsheet.RowError`s, kept for the approver.
    `left_out_rows` are valid rows the uploader chose to leave out (recent recipients): not
    errors, so not in `rejected_rows`; named in the audit entry.
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
        scheduled_for=scheduled_for,
        rejected_rows=[{"row": error.row, "column": error.column, "message": error.message}
                       for error in rejected_rows[:REJECTED_ROWS_KEPT]],
        rejected_row_count=len({error.row for error in rejected_rows}),
    )
    # One event for the batch's creation, not one per order (the orders' histories show it first).
    events.record_batch_created(batch, order_count=len(rows), actor=actor,
                                message=f"Imported from {source_filename or 'a spreadsheet'}.")
    columns = _OrderColumns(batch)
    with batch_totals.deferred():  # every chunk's totals in one UPDATE of the batch's row, at the end
        for start in range(0, len(rows), CREATE_CHUNK_ROWS):
            _orders_insert(batch, rows[start:start + CREATE_CHUNK_ROWS], columns)
    batch.refresh_from_db(fields=sorted(BATCH_TOTALS_FIELDS))  # as recorded just now (orders.batch_totals)
    audit_record(AuditAction.UPLOAD, user=user, target=batch, amounts=totals_of(batch.orders.all()),
                 summary=f"Uploaded {source_filename or 'a spreadsheet'}: {plural(len(rows), 'order')} on {account}"
                         + (f", {plural(batch.rejected_row_count, 'invalid row')} left out."
                            if batch.rejected_row_count else ".")
                         + (f" {left_out_note(list(left_out_rows))}" if left_out_rows else ""))
    return batch


def _orders_insert(batch: Batch, rows: Sequence, columns: _OrderColumns) -> None:
    """One chunk of rows: its Recipients (bulk_create: each Order needs its recipient's id),
    then its Orders (`_OrderColumns`), then their count on the batch's totals. Only the
    chunk's instances are alive at a time."""
    recipients = Recipient.objects.bulk_create(
        [Recipient(name=row.name, email=row.email, phone=row.phone, reference=row.reference) for row in rows])
    columns.insert([(recipient.pk, row.product.pk, row.amount, row.currency, row.message, row.send_on,
                     new_order_reference(), row.row) for row, recipient in zip(rows, recipients, strict=True)])
    events.count_created(_Created(batch.pk, row.currency, row.amount) for row in rows)


# Fields whose value (a str, an int id or number, or None) Django sends to the database as it is.
SENT_AS_IS = frozenset({"CharField", "TextField", "ForeignKey", "PositiveIntegerField", "IntegerField"})


@dataclass(frozen=True)
class _Created:
    """What the batch's totals count of an order just inserted (orders.batch_totals)."""

    batch_id: int
    currency: str
    amount: Decimal


class _OrderColumns:
    """The INSERT of a batch's new orders. Django's bulk_create prepares every one of an
    order's ~28 values through its field, row by row, and writes the SQL for each statement:
    at 50,000 orders that was ~5 s of Python for ~0.5 s of database. Here the columns every
    new order of the batch shares (its batch, its status and the other defaults, the time
    it was created) are prepared once, through the same fields, and only a row's own
    values (ROW_FIELDS) per row. PostgreSQL: one statement per chunk, an array per column
    (UNNEST, as bulk_create does there); SQLite: statements of as many rows as its 999
    parameters allow, sent together (executemany). tests/orders/test_batch_creation.py checks
    that an order so inserted holds, column by column, what the ORM would have written."""

    ROW_FIELDS = ("recipient", "product", "amount", "currency", "message", "send_on", "reference", "source_row")

    def __init__(self, batch: Batch) -> None:
        # A template order: the defaults and the creation time, as the ORM would save them.
        template = Order(batch=batch)
        fields = {field.name: field for field in Order._meta.concrete_fields if not field.primary_key}
        self.row_fields = [fields[name] for name in self.ROW_FIELDS]
        # A default made anew for each order (say a uuid4) is not shared: those fields go
        # the ORM's way. An empty dict or list (JSON) is the same text for every order.
        self.plain = not any(field.has_default() and callable(field.default) and field.default not in (dict, list)
                             for name, field in fields.items() if name not in self.ROW_FIELDS)
        shared = [field for name, field in fields.items() if name not in self.ROW_FIELDS]
        self.db = transaction.get_connection()  # the connection itself: each attribute of the proxy is a look-up
        self.shared_values = tuple(field.get_db_prep_save(field.pre_save(template, add=True), self.db)
                                   for field in shared)
        # A row's text and ids go as they are (what these fields send for a str or an int);
        # its amount and date through their field, as the ORM sends them.
        self.prepare = [None if field.get_internal_type() in SENT_AS_IS else field.get_db_prep_save
                        for field in self.row_fields]
        # Nor can a value only the database gives (db_default) be sent as a parameter.
        self.plain = self.plain and not any(hasattr(value, "as_sql") for value in self.shared_values)
        quote = connection.ops.quote_name
        names = [quote(field.column) for field in (*self.row_fields, *shared)]
        self.head = f"INSERT INTO {quote(Order._meta.db_table)} ({', '.join(names)}) "
        self.unnest = self.db.vendor == "postgresql"
        if self.unnest:
            # As Django's bulk_create on PostgreSQL: one array per column (UNNEST), so the
            # statement has a parameter per column, not per value; the shared ones as scalars.
            def db_type(field) -> str:  # no length: varchar[], not varchar(64)[]
                return field.db_type(self.db).split("(")[0]

            self.head += (f"SELECT *, {', '.join(f'%s::{db_type(field)}' for field in shared)} "
                          f"FROM UNNEST({', '.join(f'%s::{db_type(field)}[]' for field in self.row_fields)})")
        else:
            self.head += "VALUES "
            self.placeholders = f"({', '.join(['%s'] * len(names))})"
            # Rows per statement: as many as SQLite takes parameters for (999).
            self.rows_per_statement = max(1, (self.db.features.max_query_params or 999) // len(names))
        self.batch = batch

    def insert(self, values: list[tuple]) -> None:
        """`values`: each order's ROW_FIELDS, in that order (ids for the foreign keys)."""
        if not self.plain:
            Order.objects.bulk_create([Order(batch=self.batch, **dict(zip(
                [field.attname for field in self.row_fields], row, strict=True))) for row in values])
            return
        db, prepare, shared = self.db, self.prepare, self.shared_values
        if self.unnest:
            columns = [[value if prep is None or value is None else prep(value, db) for value in column]
                       for prep, column in zip(prepare, zip(*values))]
            with db.cursor() as cursor:
                cursor.execute(self.head, [*shared, *columns])
            return
        params = [value for row in values
                  for value in (*[value if prep is None or value is None else prep(value, db)
                                  for prep, value in zip(prepare, row)], *shared)]
        width = len(self.row_fields) + len(shared)
        step = self.rows_per_statement * width
        full = len(values) // self.rows_per_statement
        with db.cursor() as cursor:
            # Statements of as many rows as fit, sent together; then the rest in one statement.
            if full:
                cursor.executemany(self.statement(self.rows_per_statement),
                                   [params[start:start + step] for start in range(0, full * step, step)])
            if len(values) > full * self.rows_per_statement:
                cursor.execute(self.statement(len(values) - full * self.rows_per_statement), params[full * step:])

    def statement(self, rows: int) -> str:
        return self.head + ", ".join([self.placeholders] * rows)


def _fits(text: str, field: str) -> str:
    limit = Batch._meta.get_field(field).max_length
    return text.replace("\x00", "")[:limit]


def _username(user) -> str:
    return user.get_username() if user else "system"


@dataclass(frozen=True)
class SendOutcome:
    """What pressing Send did: `queued` orders cleared to go now, or none, with why."""

    state: str  # the batch's state afterwards
    queued: int
    message: str  # one sentence for the person who pressed Send

    @property
    def awaiting_approval(self) -> bool:
        return self.state == BatchState.AWAITING_APPROVAL


class BatchChanged(BatchActionRefused):
    """The batch is no longer what the person confirming it was shown."""


def batch_send(*, batch: Batch, user=None, fingerprint: str | None = None, send_anyway: bool = False) -> SendOutcome:
    """Send a batch's pending orders: queue them now, or at the batch's scheduled time, or
    ask for approval first when their total reaches a threshold (orders.approvals).

    `fingerprint`: what the confirmation page showed (orders.approvals.batch_fingerprint),
    compared under the batch's lock, so a batch changed since (even while the wallet is
    asked) is not sent unseen: BatchChanged. `send_anyway`: an administrator's choice to
    send although the wallet looks short; it is recorded. Refusals raise BatchActionRefused
    with the reason (FundsShort for the wallet)."""
    _balance_refresh_if_old(batch)
    return _batch_send(batch=batch, user=user, fingerprint=fingerprint, send_anyway=send_anyway)


def send_refusal(batch: Batch, *, has_pending: bool) -> str:
    """Why a send of `batch` is refused (`has_pending`: it has orders to send); "" when it
    is not. batch_send asks it under the lock; the confirmation page, beforehand."""
    if batch.state in (BatchState.CANCELLED, BatchState.REJECTED):
        return f"Batch “{batch}” is {batch.get_state_display().lower()}: nothing to send."
    if batch.state == BatchState.AWAITING_APPROVAL:
        return f"Batch “{batch}” is already waiting for an approver."
    if not batch.account.is_active:
        return f"The account “{batch.account}” is switched off. Switch it on, then send again."
    if not has_pending:
        return f"Batch “{batch}” has no pending orders to send."
    return ""


@transaction.atomic
def _batch_send(*, batch: Batch, user, fingerprint: str | None, send_anyway: bool) -> SendOutcome:
    batch = Batch.objects.select_for_update(of=("self",)).select_related("account").get(pk=batch.pk)
    current = batch_fingerprint(batch)
    if fingerprint is not None and fingerprint != current:
        raise BatchChanged(f"“{batch}” changed while you were reviewing it (an order was edited, cancelled or "
                           "sent meanwhile): nothing was sent. Look at it again, then send.")
    pending = batch.orders.filter(status=OrderStatus.PENDING)
    totals = totals_of(pending)
    refusal = send_refusal(batch, has_pending=bool(totals))
    if refusal:
        raise BatchActionRefused(refusal)
    if batch.state == BatchState.APPROVED and batch.approved_fingerprint != current:
        batch_approval_void(batch=batch, user=user, what="the batch")
        batch.refresh_from_db()
    now = timezone.now()
    batch.send_requested_by, batch.send_requested_at = user, now
    reasons = approval_reasons(totals)
    funds = funds_check(batch.account, totals, refresh=False)  # asked before the lock
    if reasons and batch.state != BatchState.APPROVED:
        batch.state = BatchState.AWAITING_APPROVAL
        batch.save(update_fields=["state", "send_requested_by", "send_requested_at", "updated_at"])
        audit_record(AuditAction.APPROVAL_REQUESTED, user=user, target=batch, amounts=totals,
                     summary=f"Asked to send {totals_text(totals)} on {batch.account}; approval needed: "
                             + "; ".join(reasons) + ".")
        return SendOutcome(state=batch.state, queued=0, message=(
            f"“{batch}” needs approval before it is sent ({'; '.join(reasons)}). It waits for a member "
            "of Approvers other than its uploader; nothing was queued."
            + (f" Before it is approved: {funds.message}" if funds and funds.short else "")))
    _funds_allow(batch, funds, user=user, send_anyway=send_anyway, totals=totals)
    batch.save(update_fields=["send_requested_by", "send_requested_at", "updated_at"])
    audit_record(AuditAction.SEND, user=user, target=batch, amounts=totals,
                 summary=f"Sent {totals_text(totals)} on {batch.account}.")
    return _queue_or_schedule(batch, actor=_username(user))


class FundsShort(BatchActionRefused):
    """The wallet cannot pay for the batch; `funds` says by how much."""

    def __init__(self, message: str, funds: FundsCheck) -> None:
        super().__init__(message)
        self.funds = funds


def _balance_refresh_if_old(batch: Batch) -> None:
    """Ask the wallet before the batch is locked: a slow provider then holds no lock, and a
    refused send does not roll the fresh balance back. funds_check reads it afterwards."""
    account = ProviderAccount.objects.get(pk=batch.account_id)
    try:
        account_balance_fresh(account=account)
    except BalanceUnknown:
        pass  # funds_check says so in its message


def _funds_allow(batch: Batch, funds: FundsCheck | None, *, user, send_anyway: bool, totals) -> None:
    """Refuse to queue what the wallet cannot pay for, unless an administrator (superuser)
    chose to send anyway: then record that choice with the balance and the total."""
    if funds is None or not funds.short:
        return
    if not send_anyway:
        raise FundsShort(funds.message, funds)
    if not getattr(user, "is_superuser", False):
        raise FundsShort(f"{funds.message} Only an administrator may send a batch the wallet cannot pay for.",
                         funds)
    audit_record(AuditAction.SEND_ANYWAY, user=user, target=batch, amounts=totals,
                 summary=f"Sent anyway on {batch.account}: the wallet had "
                         f"{amount_text(funds.balance, funds.currency)}, the batch needs "
                         f"{amount_text(funds.needed, funds.currency)} (total {totals_text(totals)}).")


def _queue_or_schedule(batch: Batch, *, actor: str) -> SendOutcome:
    """The batch is cleared to send (under the thresholds, or approved): queue its pending
    orders now, or leave them for the scheduled time (scheduled_batches_queue)."""
    if batch.scheduled_for and batch.scheduled_for > timezone.now():
        when = timezone.localtime(batch.scheduled_for)
        return SendOutcome(state=batch.state, queued=0, message=(
            f"“{batch}” is cleared to send and is scheduled: its orders are queued on "
            f"{when:%Y-%m-%d at %H:%M} ({when.tzname()}), not before."))
    # One statement for the whole batch (its row is locked, so no other send interleaves).
    # A paused account: the orders say why they wait (cleared on resume).
    queued = list(batch.orders.filter(status=OrderStatus.PENDING))
    now = timezone.now()
    account = batch.account
    batch.orders.filter(pk__in=[order.pk for order in queued], status=OrderStatus.PENDING).update(
        status=OrderStatus.QUEUED, queued_at=now, updated_at=now,
        waiting_reason=PAUSED_PREFIX + account.blocked_reason if account.blocked_reason else "")
    events.record_transition(queued, to_status=OrderStatus.QUEUED, actor=actor, message="Cleared to send.")
    batch.state = BatchState.SENDING
    batch.save(update_fields=["state", "updated_at"])
    account_id = account.pk
    # Only once the orders are committed can a worker see them.
    transaction.on_commit(lambda: wake_worker(account_id))
    count = len(queued)
    message = f"Queued {plural(count, 'order')} of “{batch}”."
    if account.blocked_reason:
        message = (f"{message} Sending on {account} is paused: {account.blocked_reason} "
                   "The orders wait and go as soon as sending on the account is resumed.")
    return SendOutcome(state=batch.state, queued=count, message=message)


def batch_approve(*, batch: Batch, user, fingerprint: str | None = None, send_anyway: bool = False) -> SendOutcome:
    """An approver signs a batch awaiting approval: it is queued (or scheduled).

    `fingerprint`: what the approver saw (orders.approvals.batch_fingerprint), so a batch
    changed while they read it is not approved unseen. Approving queues, so a wallet too
    short for the batch refuses it (FundsShort), unless an administrator sends anyway."""
    _balance_refresh_if_old(batch)
    return _batch_approve(batch=batch, user=user, fingerprint=fingerprint, send_anyway=send_anyway)


def _batch_to_decide(batch: Batch, *, user, fingerprint: str | None, verb: str) -> tuple[Batch, str]:
    """The batch, locked, and its fingerprint, once `user` may decide on it now: an approver
    who is not its uploader, a batch awaiting approval, and (`fingerprint`: what the approver
    saw) not changed since it was shown. Call inside a transaction."""
    batch = Batch.objects.select_for_update(of=("self",)).select_related("account").get(pk=batch.pk)
    refusal = approval_refusal(user, batch)
    if refusal:
        raise BatchActionRefused(refusal)
    if batch.state != BatchState.AWAITING_APPROVAL:
        raise BatchActionRefused(f"Batch “{batch}” is {batch.get_state_display().lower()}, not awaiting "
                                 f"approval: there is nothing to {verb}.")
    current = batch_fingerprint(batch)
    if fingerprint is not None and fingerprint != current:
        raise BatchActionRefused(f"“{batch}” changed while you were reviewing it. Review it again, "
                                 "then approve or reject.")
    return batch, current


@transaction.atomic
def _batch_approve(*, batch: Batch, user, fingerprint: str | None, send_anyway: bool) -> SendOutcome:
    batch, current = _batch_to_decide(batch, user=user, fingerprint=fingerprint, verb="approve")
    totals = totals_of(batch.orders.filter(status=OrderStatus.PENDING))
    _funds_allow(batch, funds_check(batch.account, totals, refresh=False), user=user, send_anyway=send_anyway, totals=totals)
    batch.state = BatchState.APPROVED
    batch.approved_by, batch.approved_at, batch.approved_fingerprint = user, timezone.now(), current
    batch.save(update_fields=["state", "approved_by", "approved_at", "approved_fingerprint", "updated_at"])
    audit_record(AuditAction.APPROVE, user=user, target=batch, amounts=totals,
                 summary=f"Approved {totals_text(totals)} on {batch.account}, uploaded by "
                         f"{_username(batch.created_by)}.")
    return _queue_or_schedule(batch, actor=_username(user))


@transaction.atomic
def batch_reject(*, batch: Batch, user, reason: str, fingerprint: str | None = None) -> int:
    """An approver refuses a batch awaiting approval, saying why: its pending orders are
    cancelled with that reason. Returns how many. `fingerprint` as for batch_approve."""
    reason = (reason or "").strip()
    if not reason:
        raise BatchActionRefused("Give a reason for the rejection: the uploader reads it.")
    batch, _ = _batch_to_decide(batch, user=user, fingerprint=fingerprint, verb="reject")
    pending = batch.orders.filter(status=OrderStatus.PENDING)
    totals = totals_of(pending)
    now = timezone.now()
    message = f"Rejected by {user.get_username()}: {reason}"
    stopped = list(pending)
    pending.update(status=OrderStatus.CANCELLED, last_error=message, completed_at=now, updated_at=now)
    events.record_transition(stopped, from_status=OrderStatus.PENDING, to_status=OrderStatus.CANCELLED,
                             actor=user.get_username(), message=message)
    batch.state = BatchState.REJECTED
    batch.rejected_by, batch.rejected_at, batch.rejection_reason = user, now, reason
    batch.save(update_fields=["state", "rejected_by", "rejected_at", "rejection_reason", "updated_at"])
    audit_record(AuditAction.REJECT, user=user, target=batch, amounts=totals,
                 summary=f"Rejected {totals_text(totals)} on {batch.account}: {reason}")
    return len(stopped)


def batch_approval_void(*, batch: Batch, user=None, what: str) -> bool:
    """`what` changed on a batch before it was sent: an approval given for it no longer
    holds. The batch goes back to waiting for an approver. Returns whether one was voided.
    Call inside the transaction that makes the change."""
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    if batch.state != BatchState.APPROVED:
        return False
    approver = _username(batch.approved_by)
    batch.state = BatchState.AWAITING_APPROVAL
    batch.approved_by, batch.approved_at, batch.approved_fingerprint = None, None, ""
    batch.save(update_fields=["state", "approved_by", "approved_at", "approved_fingerprint", "updated_at"])
    audit_record(AuditAction.APPROVAL_VOIDED, user=user, target=batch,
                 amounts=totals_of(batch.orders.filter(status=OrderStatus.PENDING)),
                 summary=f"The approval by {approver} no longer holds: {what} changed after it. "
                         "The batch waits for an approver again.")
    return True


def scheduled_batches_queue() -> list[SendOutcome]:
    """Queue the batches whose scheduled time has come and that are cleared to send: sent
    under the thresholds, or approved (an approval the batch no longer matches is voided).
    A batch whose schedule was cleared after Send goes now."""
    now = timezone.now()
    due = Batch.objects.filter(Q(scheduled_for__lte=now) | Q(scheduled_for__isnull=True),
                               send_requested_at__isnull=False,
                               state__in=[BatchState.PENDING, BatchState.APPROVED]).values_list("pk", flat=True)
    outcomes = []
    for batch_id in due:
        with transaction.atomic():
            batch = Batch.objects.select_for_update(of=("self",)).select_related("account").get(pk=batch_id)
            if batch.state not in (BatchState.PENDING, BatchState.APPROVED) or not batch.send_requested_at:
                continue
            if batch.state == BatchState.APPROVED and batch.approved_fingerprint != batch_fingerprint(batch):
                batch_approval_void(batch=batch, what="the batch")
                continue
            if not batch.orders.filter(status=OrderStatus.PENDING).exists():
                continue
            outcomes.append(_queue_or_schedule(batch, actor="schedule"))
    return outcomes


@transaction.atomic
def batch_cancel(*, batch: Batch, user=None) -> int:
    """Cancel every order of a batch not yet handed to a worker. Returns how many."""
    batch = Batch.objects.select_for_update().get(pk=batch.pk)
    unsent = batch.orders.filter(status__in=[OrderStatus.PENDING, OrderStatus.QUEUED])
    stoppable = list(orders_not_held(unsent))
    held = unsent.count() - len(stoppable)
    if held:
        # All or nothing: "Cancelled 8 orders" must not leave 2 queued unsaid. The worker
        # lets go of them as soon as this transaction ends.
        raise BatchActionRefused(f"A worker holds {plural(held, 'queued order')} of “{batch}” at this instant (it may "
                                 "be sending them), so nothing was cancelled: look at the batch again in a moment, "
                                 "then cancel.")
    if not stoppable:
        # Say what the rest are doing, counted: "the rest are with the provider" was not always true.
        statuses = list(batch.orders.values_list("status", flat=True))
        with_provider = statuses.count(OrderStatus.SENDING) + statuses.count(OrderStatus.PROCESSING)
        delivered, failed = statuses.count(OrderStatus.DELIVERED), statuses.count(OrderStatus.FAILED)
        rest = [
            f"{with_provider} {'is' if with_provider == 1 else 'are'} with the provider (sending or processing)"
            if with_provider else "",
            f"{delivered + failed} finished ({delivered} delivered, {failed} failed)" if delivered + failed else "",
            f"{statuses.count(OrderStatus.CANCELLED)} already cancelled" if OrderStatus.CANCELLED in statuses else "",
        ]
        raise BatchActionRefused(f"Batch “{batch}” has no pending or queued orders left to cancel: "
                                 f"{', '.join(part for part in rest if part) or 'it has no orders'}.")
    now = timezone.now()
    cancelled = [
        order for order in stoppable
        if Order.objects.filter(pk=order.pk, status=order.status).update(
            status=OrderStatus.CANCELLED, completed_at=now, updated_at=now, waiting_reason=""
        )
    ]
    events.record_transition(cancelled, to_status=OrderStatus.CANCELLED,
                             actor=user.get_username() if user else "system", message="Cancelled by staff.")
    totals = totals_of(Order.objects.filter(pk__in=[order.pk for order in cancelled]))
    audit_record(AuditAction.CANCEL, user=user, target=batch, amounts=totals,
                 summary=f"Cancelled {plural(len(cancelled), 'order')} not yet sent ({totals_text(totals)}).")
    batch_state_after_cancel(batch)
    return len(cancelled)


def orders_not_held(orders: QuerySet) -> QuerySet:
    """`orders`, locked, without those another transaction holds this instant (PostgreSQL).

    A cancel holds its batch's row, and a worker claiming queued orders holds them until it
    has counted them on their batch's row (orders.batch_totals): were the cancel to wait
    for those orders, each would wait for the other. The caller says which were left out."""
    if connection.features.has_select_for_update_skip_locked:
        return orders.select_for_update(skip_locked=True, of=("self",))
    return orders


def batch_state_after_cancel(batch: Batch) -> None:
    """Some of `batch`'s orders were just cancelled: it is cancelled when nothing else is
    left, completed when the rest are finished, and otherwise stays as it was. Call inside
    the transaction that cancelled them, with the batch locked."""
    if not batch.orders.exclude(status__in=[OrderStatus.CANCELLED]).exists():
        batch.state = BatchState.CANCELLED
    elif not batch.orders.exclude(status__in=[OrderStatus.CANCELLED, OrderStatus.DELIVERED, OrderStatus.FAILED]).exists():
        batch.state = BatchState.COMPLETED
    batch.save(update_fields=["state", "updated_at"])
