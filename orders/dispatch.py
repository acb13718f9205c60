"""The delivery engine: claim, submit, record, retry, sweep.

Every step is a small service that locks or conditionally updates rows, checks their
state, acts, and records. The database decides what happens, never the task queue: any
step may run twice (the ORM broker delivers at least once) and still buys each card once.

Order:      queued -> sending -> processing | delivered | failed
Submission: prepared -> in_flight -> accepted | rejected | retry (-> in_flight ...)
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditAction
from audit.services import record as audit_record
from giftdesk.text import plural
from orders import batch_totals, events, leases, spending
from orders.models import (
    Batch,
    BatchState,
    Order,
    OrderStatus,
    ProviderCall,
    Submission,
    SubmissionState,
    TERMINAL_STATUSES,
)
from providers.clients import client_class
from providers.clients.base import (
    AccountError,
    CardRequest,
    CardStatus,
    CardUpdate,
    OutcomeUnknown,
    PermanentError,
    ProviderClient,
    ProviderError,
    RateLimited,
    StatusRequest,
    SubmitRequest,
    SubmitResult,
    TransientError,
)
from providers.models import ProviderAccount
from providers.services import account_block, account_check, account_client, account_resume

def worker_name() -> str:
    """Who acts, for the event log: this host and process (asked each time: workers fork)."""
    return f"worker {socket.gethostname()}:{os.getpid()}"
ATTEMPTABLE = (SubmissionState.PREPARED, SubmissionState.RETRY)


def new_idempotency_key() -> str:
    return f"gd-{uuid.uuid4().hex}"


# --- Claiming --------------------------------------------------------------------------------


# The card fields a provider may require to be equal within one request, as order fields.
GROUP_FIELDS = {"currency": "currency", "product": "product_id", "message": "message", "send_on": "send_on"}


def claim_limit(account: ProviderAccount) -> int:
    provider_cap = client_class(account.kind).max_cards_per_submission
    limit = max(account.max_cards_per_request, 1)
    return min(limit, provider_cap) if provider_cap else limit


def orders_claim(*, account: ProviderAccount, limit: int | None = None) -> Submission | None:
    """Move up to `limit` queued orders that may travel together into a new submission
    (orders_claim_round, one basket)."""
    claimed = orders_claim_round(account=account, limit=limit, baskets=1)
    return claimed[0] if claimed else None


def round_baskets(account: ProviderAccount) -> int:
    """How many submissions a pump claims, sends and records together (one round): up to
    ROUND_CARDS cards, and at most ROUND_BASKETS requests, so a round at a slow provider's
    pace (Gifty: 2 a second) still records within seconds."""
    return max(1, min(ROUND_BASKETS, ROUND_CARDS // claim_limit(account)))


ROUND_CARDS = 500
ROUND_BASKETS = 10


def orders_claim_round(*, account: ProviderAccount, limit: int | None = None, baskets: int = 1) -> list[Submission]:
    """Move queued orders into up to `baskets` new submissions of up to `limit` orders each,
    the orders of one submission those that may travel together; in one transaction, whatever
    the number of submissions (one read, one INSERT of submissions, one UPDATE and one INSERT
    of events per 500 orders).

    The keys are created and committed with the claim, before any request uses them.

    Monthly spending limits (engine rule 8): the account's row is locked first, so reading
    the month's spend and claiming are one step that one worker at a time takes on an
    account; an order that would take a currency over its limit is not claimed and says
    why (orders.spending). The lock is taken with or without limits: a limit set while a
    claim is under way then applies to the next claim, never halfway through one.
    """
    limit = limit or claim_limit(account)
    group = [GROUP_FIELDS[name] for name in client_class(account.kind).submission_group]
    with transaction.atomic():
        now = timezone.now()
        limits = spending.account_limits_locked(account)
        spent = spending.month_spent_by_currency(account, limits, now=now)
        remaining = {currency: cap - spent[currency] for currency, cap in limits.items()}
        candidates = Order.objects.filter(batch__account=account, status=OrderStatus.QUEUED)
        over = Q()
        for currency, left in remaining.items():
            over |= Q(currency=currency, amount__gt=left)
        if over:
            candidates = candidates.exclude(over)
        if connection.features.has_select_for_update_skip_locked:
            # Two workers never take each other's rows, nor wait for rows someone else holds.
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        columns = list(dict.fromkeys(("id", "currency", "amount", "batch_id", *group)))
        window = list(candidates.order_by("id").values_list(*columns)[:limit * baskets])
        submissions: list[Submission] = []
        if window:
            positions = [columns.index(field) for field in group]
            if baskets == 1:
                # One read for the usual claim: the first `limit` claimable orders, of which those
                # in the first one's group (the fields its provider wants equal within a request).
                # Only when other groups are mixed in are more of the first's own looked for.
                same_group = {field: window[0][position] for field, position in zip(group, positions)}
                rows = [row for row in window if all(row[position] == window[0][position] for position in positions)]
                if len(rows) < len(window) == limit:
                    rows = list(candidates.filter(**same_group).order_by("id").values_list(*columns)[:limit])
            else:
                rows = window
            fits = set(spending.limits_fit([row[:3] for row in rows], remaining))
            filled = _baskets_fill([row for row in rows if row[0] in fits], positions, limit=limit, baskets=baskets)
            submissions = _submissions_create(account, len(filled), now=now) if filled else []
            # The orders were read locked (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the write
            # transaction), so the conditional UPDATE moves them all, or the claim is rolled back.
            # claimed_at: the month the order's amount counts against (orders.spending).
            _orders_update({row[0]: {"status": OrderStatus.SENDING, "submission": submission.pk, "updated_at": now,
                                     "claimed_at": now, "waiting_reason": ""}
                            for submission, basket in zip(submissions, filled) for row in basket},
                           from_statuses=(OrderStatus.QUEUED,))
            events.record_transitions_each(
                ((Order(pk=row[0], currency=row[1], amount=row[2], batch_id=row[3]), OrderStatus.QUEUED,
                  OrderStatus.SENDING, f"Claimed into submission {submission.idempotency_key}.", submission, None)
                 for submission, basket in zip(submissions, filled) for row in basket),
                actor=worker_name())
            # The month's spend after this claim, without asking the database again.
            for basket in filled:
                for _order_id, currency, amount, *_rest in basket:
                    if currency in spent:
                        spent[currency] += amount
        spending.wait_reasons_record(account=account, limits=limits, now=now, spent=spent)
        return submissions


def _baskets_fill(rows: list[tuple], positions: list[int], *, limit: int, baskets: int) -> list[list[tuple]]:
    """The claimed `rows` (in queue order) as at most `baskets` requests of at most `limit`
    each, a request's rows equal at `positions` (the provider's group fields). A row that would
    open one request too many stays queued, for the next claim."""
    filled: list[list[tuple]] = []
    open_basket: dict[tuple, list[tuple]] = {}
    for row in rows:
        key = tuple(row[position] for position in positions)
        basket = open_basket.get(key)
        if basket is None or len(basket) >= limit:
            if len(filled) >= baskets:
                continue
            basket = open_basket[key] = []
            filled.append(basket)
        basket.append(row)
    return filled


def _submissions_create(account: ProviderAccount, count: int, *, now: datetime) -> list[Submission]:
    """`count` new submissions of the account, prepared, each with its own key: one INSERT."""
    submissions = [Submission(account=account, idempotency_key=new_idempotency_key(), state=SubmissionState.PREPARED,
                              claimed_by=worker_name(), claimed_at=now) for _ in range(count)]
    if connection.features.can_return_rows_from_bulk_insert:
        Submission.objects.bulk_create(submissions)
    else:  # ids are needed at once: one by one where the database does not return them
        for submission in submissions:
            submission.save()
    return submissions


# --- Submitting --------------------------------------------------------------------------------


def _start_attempt(submission_id: int) -> Submission | None:
    """_start_attempts for one submission: it, started, or None."""
    started = _start_attempts([submission_id])
    return started[0] if started else None


def _start_attempts(submission_ids: list[int]) -> list[Submission]:
    """prepared|retry -> in_flight, conditionally: only one worker attempts each at a time. One
    UPDATE for all, giving them one token; returns those it started, in the order given (with
    their accounts). The attempts hold a lease from now on, renewed while they run (orders.leases)."""
    now = timezone.now()
    token = uuid.uuid4().hex
    # The account's pause as EXISTS, not as a join: Django turns an UPDATE with a join into
    # `id IN (SELECT ...)`, which PostgreSQL does not re-check against a concurrent update of the
    # row, so two workers could both start the same attempt (and both send it).
    unpaused = Exists(ProviderAccount.objects.filter(pk=OuterRef("account_id"), blocked_reason=""))
    started = Submission.objects.filter(_due(now), unpaused, pk__in=submission_ids, state__in=ATTEMPTABLE).update(
        state=SubmissionState.IN_FLIGHT, attempts=F("attempts") + 1, claimed_by=worker_name(),
        claimed_at=now, updated_at=now, attempt_token=token, lease_until=leases.lease_from_now(),
    )
    if not started:
        return []
    held = Submission.objects.select_related("account").filter(
        pk__in=submission_ids, state=SubmissionState.IN_FLIGHT, attempt_token=token).in_bulk()
    return [held[pk] for pk in submission_ids if pk in held]


def _attempts_release(submissions: list[Submission]) -> None:
    """Attempts started but never sent (the round stopped before their turn) go back to what
    they were, their attempt not counted: no request went out under this start, so nothing
    about them is in doubt that was not before."""
    if not submissions:
        return
    Submission.objects.filter(
        pk__in=[submission.pk for submission in submissions], state=SubmissionState.IN_FLIGHT,
        attempt_token=submissions[0].attempt_token,
    ).update(
        # A first attempt came from prepared; a later one from retry.
        state=Case(When(attempts__lte=1, outcome_unknown=False, then=Value(SubmissionState.PREPARED)),
                   default=Value(SubmissionState.RETRY)),
        attempts=F("attempts") - 1, lease_until=None, updated_at=timezone.now(),
    )


def _owned(submission: Submission):
    """The submission, if this attempt still holds it: the only way to record its outcome."""
    return Submission.objects.filter(
        pk=submission.pk, state=SubmissionState.IN_FLIGHT, attempt_token=submission.attempt_token
    )


def _settle_without_orders(submission: Submission) -> str:
    """An attempt found none of its orders still to send: another attempt of the same
    submission (taken over from a worker presumed dead) already got the answer. Derive the
    submission's state from its orders, so the cards still being fulfilled are followed up."""
    statuses = set(submission.orders.values_list("status", flat=True))
    processing = OrderStatus.PROCESSING in statuses
    state = (SubmissionState.ACCEPTED if processing or OrderStatus.DELIVERED in statuses
             else SubmissionState.REJECTED)
    _owned(submission).update(
        state=state, updated_at=timezone.now(),
        next_poll_at=timezone.now() if processing else None,
    )
    return state


def _submit_request(submission: Submission, orders: list[Order]) -> SubmitRequest:
    def remember_reference(reference: str) -> None:
        # Committed at once (autocommit): a retry continues this provider order.
        Submission.objects.filter(pk=submission.pk).update(provider_reference=reference)
        submission.provider_reference = reference

    batch = orders[0].batch
    return SubmitRequest(
        idempotency_key=submission.idempotency_key,
        reference=submission.idempotency_key,
        provider_reference=submission.provider_reference,
        remember_reference=remember_reference,
        sender_name=batch.sender_name or submission.account.settings.get("sender_name", ""),
        # No send_at from the batch's schedule: the engine queues a scheduled batch at its
        # time (orders.batches.scheduled_batches_queue), and a time already past could be
        # refused. Each card's own send_on date still goes with it.
        cards=card_requests(orders),
    )


def card_requests(orders: list[Order]) -> list[CardRequest]:
    """The cards of `orders` as the provider client takes them (to submit, or to look up)."""
    return [
        CardRequest(
            order_reference=order.reference,
            recipient_name=order.recipient.name,
            recipient_email=order.recipient.email,
            recipient_phone=order.recipient.phone,
            amount=order.amount,
            currency=order.currency,
            product_id=order.product.provider_product_id,
            sku=order.product.sku,
            message=order.message,
            send_on=order.send_on,
        )
        for order in orders
    ]


def _orders_in(submission: Submission, status: str) -> list[Order]:
    return _orders_by_submission([submission], status).get(submission.pk, [])


def _orders_by_submission(submissions: list[Submission], status: str) -> dict[int, list[Order]]:
    """The orders of `submissions` in `status`, by submission, each list in id order: one read."""
    by_submission: dict[int, list[Order]] = {}
    rows = (Order.objects.filter(submission__in=[submission.pk for submission in submissions], status=status)
            .select_related("recipient", "product", "batch").order_by("id"))
    for order in rows:
        by_submission.setdefault(order.submission_id, []).append(order)
    return by_submission


def submission_client(submission: Submission, order_ids: list[int], *, actor: str | None = None,
                      lookup: bool = False,
                      buffer: events.CallBuffer | None = None) -> tuple[ProviderClient, events.CallRecorder]:
    """A client for one attempt (or lookup), holding the account's rate limit across workers, and
    its calls, each recorded linked to `order_ids`: `calls.last` caused what is recorded next.
    `lookup`: a status lookup, which never takes a slot an order waits for (RateLimited instead).
    `buffer`: the calls wait there, to be stored with those of the round (events.CallBuffer)."""
    calls = events.CallRecorder(submission_id=submission.pk, order_ids=order_ids, actor=actor or worker_name(),
                                buffer=buffer)
    return account_client(submission.account, recorder=calls, lookup=lookup), calls


def status_request(submission: Submission, orders: list[Order]) -> StatusRequest:
    """The lookup of a submission's provider order, for the cards of `orders`."""
    return StatusRequest(provider_reference=submission.provider_reference, cards=card_requests(orders),
                         idempotency_key=submission.idempotency_key)


@dataclass
class Answer:
    """A provider's answer about a submission's cards, waiting to be recorded with others."""
    submission: Submission
    orders: list[Order]
    result: SubmitResult
    cause: ProviderCall | None


# A round records what it has heard at least this often, so the admin shows progress while a
# round at a slow provider's pace is still sending.
RECORD_EVERY_SECONDS = 1.0


def submission_attempt(submission_id: int) -> str | None:
    """Attempt one submission; returns its new state, or None when it was not ours to try."""
    return submissions_attempt([submission_id]).get(submission_id)


def submissions_attempt(submission_ids: list[int], *, deadline: float | None = None) -> dict[int, str]:
    """Attempt these submissions (a round), one request each, in turn; returns the new state of
    each attempted. Started together (one UPDATE, one lease renewed for all), their orders read
    together, and the answers recorded together (one transaction for the calls, the orders'
    changes and events, and the submissions), at least every RECORD_EVERY_SECONDS.

    An answer not yet recorded is as safe as a request in flight: if the worker dies, the
    attempt's lease runs out and it is taken over and replayed with its key (rule 4). What is not
    an acceptance (a refusal, an error, an unknown outcome) is recorded at once, after the answers
    before it. After a refusal for the account, or our own rate limiter's wait, and past
    `deadline` (time.monotonic()), the attempts not yet sent go back unsent."""
    started = _start_attempts(submission_ids)
    if not started:
        return {}
    outcomes: dict[int, str] = {}
    calls = events.CallBuffer()
    answers: list[Answer] = []
    unsent = list(started)
    # Renewed beside the attempts until they are settled, however long their calls take: only
    # a dead worker's lease runs out (orders.leases).
    with leases.renewing(*started):
        try:
            orders_of = _orders_by_submission(started, OrderStatus.SENDING)
            first_unrecorded = None
            while unsent:
                if outcomes and deadline is not None and time.monotonic() >= deadline:
                    break
                submission = unsent.pop(0)
                orders = orders_of.get(submission.pk)
                if not orders:
                    _answers_record(answers, calls)
                    outcomes[submission.pk] = _settle_without_orders(submission)
                    continue
                client, recorder = submission_client(submission, [order.pk for order in orders], buffer=calls)
                try:
                    result = (lookup_before_replay(submission, orders, client)
                              or client.submit(_submit_request(submission, orders)))
                except ProviderError as exc:
                    _answers_record(answers, calls)  # the answers before it first, and its calls
                    outcomes[submission.pk] = _attempt_failed(submission, orders, exc, cause=recorder.last)
                    if isinstance(exc, (AccountError, RateLimited)):
                        break  # the next requests would meet the same refusal, or the same wait
                    continue
                answers.append(Answer(submission, orders, result, recorder.last))
                outcomes[submission.pk] = SubmissionState.ACCEPTED
                first_unrecorded = first_unrecorded or time.monotonic()
                if time.monotonic() - first_unrecorded >= RECORD_EVERY_SECONDS:
                    _answers_record(answers, calls)
                    first_unrecorded = None
            _answers_record(answers, calls)
        finally:
            # Also when something failed: those never sent are not left to a lease running out.
            _attempts_release(unsent)
    return outcomes


def _attempt_failed(submission: Submission, orders: list[Order], exc: ProviderError, *,
                    cause: ProviderCall | None) -> str:
    """What an attempt's error means for the submission (its calls already recorded)."""
    if isinstance(exc, AccountError):
        return _block_account(submission, orders, exc, cause=cause)
    if isinstance(exc, PermanentError):
        return _reject(submission, orders, exc, cause=cause)
    if isinstance(exc, (TransientError, OutcomeUnknown)):
        return _retry_later(submission, orders, exc, cause=cause)
    # A new subclass: treat as unknown, never as success.
    return _retry_later(submission, orders, OutcomeUnknown(exc.message), cause=cause)


def _answers_record(answers: list[Answer], calls: events.CallBuffer) -> None:
    """Record the calls waiting in `calls` and the acceptances in `answers` (then emptied), in
    one transaction: a call is never stored without what it caused, nor that without its call."""
    if not answers:
        calls.flush()
        return
    with transaction.atomic():
        calls.flush()
        _accept_many(answers)
    answers.clear()


CARD_STATUS = {
    CardStatus.DELIVERED: OrderStatus.DELIVERED,
    CardStatus.PROCESSING: OrderStatus.PROCESSING,
    CardStatus.FAILED: OrderStatus.FAILED,
}


def _apply_results(
    submission: Submission, orders: list[Order], result: SubmitResult, *, from_status: str,
    cause: ProviderCall | None,
) -> int:
    """Move each order to what the provider says of its card; returns how many are still processing."""
    [(still, changes)] = _results_changes([Answer(submission, orders, result, cause)], from_status=from_status)
    return len(still) + sum(status == OrderStatus.PROCESSING for _order, status in changes)


def _results_changes(answers: list[Answer], *, from_status: str) -> list[tuple[list[Order], list[tuple[Order, str]]]]:
    """_apply_results for several answers at once; for each: (the orders it left as they are,
    still to be asked about; each order it moved, with its new status)."""
    # In the caller's transaction when there is one (no savepoint: statements cost), else its own.
    with transaction.atomic(savepoint=False):
        with batch_totals.deferred():  # the batches' totals move once each, in id order, after the orders
            return _results_apply(answers, from_status=from_status)


def _results_apply(answers: list[Answer], *, from_status: str) -> list[tuple[list[Order], list[tuple[Order, str]]]]:
    """In bulk: what each card becomes is decided here, then the orders still in `from_status`
    are locked (the winners: an attempt taken over may have moved some meanwhile), changed by
    one conditional UPDATE per 500 and recorded with one INSERT of events."""
    now = timezone.now()
    kept: list[list[Order]] = []
    planned: dict[int, tuple[Order, str, dict, str, Answer]] = {}
    for answer in answers:
        kept.append([])
        for order, new_status, fields, message in _answer_plan(answer, from_status=from_status, now=now):
            if fields is None:
                kept[-1].append(order)
            else:
                planned[order.pk] = (order, new_status, fields, message, answer)
    if not planned:
        return [(still, []) for still in kept]
    won = _orders_locked(list(planned), (from_status,))
    changes = [planned[order_id] for order_id in sorted(won)]
    _orders_update({order.pk: fields for order, _status, fields, _message, _answer in changes},
                   from_statuses=(from_status,))
    events.record_transitions_each(
        ((order, from_status, new_status, message, answer.submission, answer.cause)
         for order, new_status, _fields, message, answer in changes), actor=worker_name())
    moved: dict[int, list[tuple[Order, str]]] = {}
    for order, new_status, _fields, _message, answer in changes:
        moved.setdefault(id(answer), []).append((order, new_status))
    return [(still, moved.get(id(answer), [])) for still, answer in zip(kept, answers)]


def _answer_plan(answer: Answer, *, from_status: str, now: datetime):
    """(order, new status, its fields, message) for each order of the answer; fields None for an
    order the answer leaves as it is (not mentioned in a status answer, or unchanged)."""
    submission, result = answer.submission, answer.result
    by_reference = {card.order_reference: card for card in result.cards}
    for order in answer.orders:
        card = by_reference.get(order.reference)
        if card is None and from_status == OrderStatus.PROCESSING:
            yield order, from_status, None, ""  # Not mentioned in a status answer: ask again later.
            continue
        if card is None:
            new_status, error = OrderStatus.FAILED, "The provider's answer did not mention this card."
        else:
            new_status, error = CARD_STATUS[card.status], card.error
        # Accepted for a later delivery date: processing, saying so, until that date.
        held = _delivery_later(order) if new_status in (OrderStatus.DELIVERED, OrderStatus.PROCESSING) else None
        if held:
            new_status = OrderStatus.PROCESSING
        if new_status == from_status:
            yield order, from_status, None, ""
            continue
        fields = {
            "status": new_status, "last_error": error, "updated_at": now,
            "completed_at": now if new_status in TERMINAL_STATUSES else None,
        }
        if from_status == OrderStatus.SENDING:
            fields["submitted_at"] = now
        if card is not None:
            fields.update({key: value for key, value in {
                "provider_order_id": card.provider_order_id,
                "provider_details": card.details, "cost": card.cost, "cost_currency": card.cost_currency,
            }.items() if value not in ("", None, {})})
            if card.provider_card_id:  # a code is cash: stored encrypted, shown as its last 4
                fields.update(Order.card_code_columns(card.provider_card_id))
        if card is not None and new_status == OrderStatus.FAILED and not submission.outcome_unknown:
            # The provider itself says this card failed, in a definite answer: nothing was
            # bought, so staff may retry it under a new key. Never for a card the answer left
            # out, nor for a submission whose outcome was ever in doubt.
            fields["definitely_refused"] = True
        fields["waiting_reason"] = _scheduled_note(held) if held else ""
        yield order, new_status, fields, error or _accepted_message(submission, card, new_status, held_until=held)


def _orders_locked(order_ids: list[int], statuses: tuple[str, ...]) -> dict[int, str]:
    """Of `order_ids`, those in one of `statuses` now, with it; locked until the transaction ends.

    Inside the caller's transaction. PostgreSQL: FOR UPDATE of the orders only; a row another
    transaction changes first is re-read once it commits (READ COMMITTED) and left out if its
    status moved on. SQLite: every transaction is BEGIN IMMEDIATE (settings), so nobody writes
    between this read and the caller's UPDATE. Either way the rows returned are the ones the
    caller's conditional UPDATE (status in `statuses`) changes: its winners, exactly."""
    rows = Order.objects.filter(pk__in=order_ids, status__in=statuses).order_by("pk")
    if connection.features.has_select_for_update:
        rows = rows.select_for_update(of=("self",) if connection.features.has_select_for_update_of else ())
    return dict(rows.values_list("pk", "status"))


# Orders per UPDATE statement in _orders_update.
UPDATE_CHUNK = 500


def _max_query_params() -> int:
    """Parameters one statement may carry: SQLite's limit since 3.32 (999 before; Django
    assumes 999 for its own bulk methods), PostgreSQL's protocol limit."""
    if connection.vendor == "sqlite":
        import sqlite3

        return 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
    return connection.features.max_query_params or 65535


def _orders_update(fields_by_id: dict[int, dict], *, from_statuses: tuple[str, ...]) -> int:
    """Write each order's fields, conditionally (status still in `from_statuses`): _rows_update.

    For rows the caller locked with _orders_locked: the UPDATE must change every one of them;
    anything else means another writer got in, and the transaction is rolled back (raised)."""
    moved = _rows_update(Order.objects.filter(status__in=from_statuses), fields_by_id)
    if moved != len(fields_by_id):
        raise RuntimeError(f"{len(fields_by_id) - moved} of {len(fields_by_id)} locked orders changed under the "
                           "lock: the transaction is rolled back.")
    return moved


def _rows_update(rows: QuerySet, fields_by_id: dict[int, dict], *, common: dict | None = None) -> int:
    """Write each row's fields, to those of `rows` (a condition each must still meet): one UPDATE
    per 500 rows, a value the same for every row of the statement (or in `common`) set as such,
    one that differs by a CASE on the id (a row without that field keeps its value). Returns how
    many rows changed."""
    model = rows.model
    common = common or {}
    ids = sorted(fields_by_id)
    names = sorted({name for fields in fields_by_id.values() for name in fields})
    chunk_size = max(1, min(UPDATE_CHUNK, (_max_query_params() - 20 - 2 * len(common)) // (1 + 2 * len(names))))
    changed = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start:start + chunk_size]
        values = {model._meta.get_field(name).attname: value for name, value in common.items()}
        for name in names:
            field = model._meta.get_field(name)
            given = {row_id: fields_by_id[row_id][name] for row_id in chunk if name in fields_by_id[row_id]}
            if not given:
                continue
            first = next(iter(given.values()))
            if len(given) == len(chunk) and all(value == first for value in given.values()):
                values[field.attname] = first
                continue
            case = Case(*(When(pk=row_id, then=Value(value, output_field=field)) for row_id, value in given.items()),
                        default=F(field.attname), output_field=field)
            if connection.features.requires_casted_case_in_updates:
                case = Cast(case, output_field=field)
            values[field.attname] = case
        changed += rows.filter(pk__in=chunk).update(**values)
    return changed


def _accepted_message(submission: Submission, card, status: str, *, held_until: date | None = None) -> str:
    provider = submission.account.get_kind_display()
    order_id = card.provider_order_id if card and card.provider_order_id else submission.provider_reference
    if held_until:
        return (f"Accepted by {provider} (order {order_id}) for a later delivery date. "
                f"{_scheduled_note(held_until)}: it stays processing until that date.")
    if status == OrderStatus.PROCESSING:
        return f"Accepted by {provider} (order {order_id}); {provider} is fulfilling it."
    return f"{'Delivered' if status == OrderStatus.DELIVERED else 'Done'} by {provider} (order {order_id})."


def _accept(submission: Submission, orders: list[Order], result: SubmitResult, *, cause: ProviderCall | None) -> str:
    _accept_many([Answer(submission, orders, result, cause)])
    return SubmissionState.ACCEPTED


def _accept_many(answers: list[Answer]) -> None:
    """Settle accepted submissions: their orders moved to what the provider said (one UPDATE, one
    INSERT of events), then the submissions (one UPDATE, conditional on each attempt still holding
    its submission) and the batches they finished. In one transaction."""
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        outcomes = _results_changes(answers, from_status=OrderStatus.SENDING)
        # A submission with a card still being fulfilled is looked up later. Where this answer left
        # none processing, the database is asked (one read for all): an attempt taken over may have
        # moved some already.
        unsure = [answer.submission.pk for answer, (_kept, changes) in zip(answers, outcomes)
                  if not any(status == OrderStatus.PROCESSING for _order, status in changes)]
        processing_before = set(Order.objects.filter(submission__in=unsure, status=OrderStatus.PROCESSING)
                                .values_list("submission_id", flat=True)) if unsure else set()
        fields = {}
        for answer, (_kept, changes) in zip(answers, outcomes):
            submission = answer.submission
            processing = [order for order, status in changes if status == OrderStatus.PROCESSING]
            next_poll_at = None
            if processing or submission.pk in processing_before:
                first_poll = now + timedelta(seconds=poll_delay(0, webhooks=webhooks_report(submission.account)))
                next_poll_at = _poll_not_before_delivery(submission, first_poll, processing=processing)
            fields[submission.pk] = {
                "provider_reference": answer.result.provider_reference or submission.provider_reference,
                "next_poll_at": next_poll_at,
            }
        _rows_update(
            Submission.objects.filter(state=SubmissionState.IN_FLIGHT,
                                      attempt_token__in={answer.submission.attempt_token for answer in answers}),
            fields, common={"state": SubmissionState.ACCEPTED, "last_error": "", "next_attempt_at": None,
                            "updated_at": now})
        _complete_finished_batches(set().union(*(_batches_maybe_finished(changes) for _kept, changes in outcomes)))


def _batches_maybe_finished(changes: list[tuple[Order, str]]) -> set[int]:
    """The batches these changes may have finished: those of orders moved, less those where a
    moved order is not finished. A batch nothing here moved is checked by whoever moved it."""
    return ({order.batch_id for order, _status in changes}
            - {order.batch_id for order, status in changes if status not in TERMINAL_STATUSES})


@transaction.atomic
def _reject(submission: Submission, orders: list[Order], exc: PermanentError, *, cause: ProviderCall | None) -> str:
    if len(orders) > 1 and submission.split_from_id is None and submission.attempts <= 1:
        return _split(submission, orders, exc, cause=cause)
    # Only the attempt holding the submission may fail its orders.
    if not _owned(submission).update(state=SubmissionState.REJECTED, last_error=exc.message,
                                     updated_at=timezone.now()):
        return SubmissionState.REJECTED
    # Read under the row lock just taken: a refusal after an unknown outcome proves nothing
    # about the earlier attempt, so only a submission never in doubt marks its orders.
    in_doubt = Submission.objects.filter(pk=submission.pk).values_list("outcome_unknown", flat=True).first()
    failed = _fail_orders(submission, orders, exc.message, cause=cause, definitely_refused=not in_doubt)
    _complete_finished_batches({order.batch_id for order in failed})
    return SubmissionState.REJECTED


def _split(submission: Submission, orders: list[Order], exc: PermanentError, *, cause: ProviderCall | None) -> str:
    """The provider refused a multi-card request: try each card alone, once, so one bad
    row never fails its neighbours. Safe with new keys: a refused request bought nothing."""
    now = timezone.now()
    if not _owned(submission).update(
        state=SubmissionState.REJECTED, updated_at=now,
        last_error=f"Refused as a whole; each card is retried alone. {exc.message}",
    ):
        return SubmissionState.REJECTED  # Another attempt holds it now and decides.
    # In bulk: the orders still sending (locked), a new submission each (one INSERT), each
    # moved to its own (one UPDATE), a note each (one INSERT).
    sending = _orders_locked([order.pk for order in orders], (OrderStatus.SENDING,))
    moving = [order for order in orders if order.pk in sending]
    singles = [Submission(account_id=submission.account_id, idempotency_key=new_idempotency_key(),
                          state=SubmissionState.PREPARED, split_from=submission, claimed_by=worker_name(),
                          claimed_at=now) for _order in moving]
    if connection.features.can_return_rows_from_bulk_insert:
        Submission.objects.bulk_create(singles)
    else:  # ids are needed at once: one by one where the database does not return them
        for single in singles:
            single.save()
    _orders_update({order.pk: {"submission": single.pk, "updated_at": now} for order, single in zip(moving, singles)},
                   from_statuses=(OrderStatus.SENDING,))
    events.record_notes_each(zip(moving, singles), actor=worker_name(), provider_call=cause,
                             message=f"{submission.account.get_kind_display()} refused the request this card "
                                     f"was part of ({exc.message}); it is sent again on its own.")
    return SubmissionState.REJECTED


def _fail_orders(submission: Submission, orders: list[Order], reason: str, *, cause: ProviderCall | None,
                 definitely_refused: bool = False) -> list[Order]:
    """`definitely_refused`: the provider refused the request, so it bought nothing and staff
    may retry the orders under a new key (orders.order_actions). Returns the orders failed."""
    now = timezone.now()
    # Those still sending or processing, locked, each with the status it really has (an
    # attempt taken over may have moved some meanwhile): one UPDATE for all, and each event
    # and its batch's totals from that status.
    current = _orders_locked([order.pk for order in orders], (OrderStatus.SENDING, OrderStatus.PROCESSING))
    failed = [order for order in orders if order.pk in current]
    _orders_update({order.pk: {"status": OrderStatus.FAILED, "last_error": reason, "completed_at": now,
                               "updated_at": now, "definitely_refused": definitely_refused} for order in failed},
                   from_statuses=(OrderStatus.SENDING, OrderStatus.PROCESSING))
    events.record_transitions([(order, current[order.pk], OrderStatus.FAILED, reason) for order in failed],
                              actor=worker_name(), submission=submission, provider_call=cause)
    return failed


# --- Polling --------------------------------------------------------------------------------------


def poll_delay(polls: int, *, webhooks: bool = False) -> float:
    """Seconds until the next lookup of a provider order after `polls` lookups (0: the first,
    counted from its acceptance): GIFTDESK_POLL_SECONDS, then doubling, capped. An account
    whose provider reports by webhook starts from GIFTDESK_POLL_WEBHOOK_SECONDS: its
    lookups are the fallback for a webhook that never came."""
    first = settings.GIFTDESK_POLL_WEBHOOK_SECONDS if webhooks else settings.GIFTDESK_POLL_SECONDS
    # The exponent is bounded: past the cap it changes nothing, and a float overflows.
    return min(first * 2 ** min(max(polls - 1, 0), 30), settings.GIFTDESK_POLL_MAX_SECONDS)


def webhooks_report(account: ProviderAccount) -> bool:
    """Whether the provider tells GiftDesk by webhook when the account's cards are done: its
    client reads webhooks and the account has the secret to verify them (without one, every
    delivery is refused: orders.webhooks)."""
    if client_class(account.kind).parse_webhook is ProviderClient.parse_webhook:
        return False
    return account.has_credentials and bool(account.credentials.get("webhook_secret"))


def _poll_lease_seconds() -> float:
    """How long a poll is this worker's alone: long enough for a lookup's requests to answer
    or time out. A worker killed mid-lookup holds it no longer than this; two lookups of one
    order at once would be harmless anyway (a lookup buys nothing, and each state change is
    conditional)."""
    per_request = settings.GIFTDESK_HTTP_CONNECT_TIMEOUT + settings.GIFTDESK_HTTP_READ_TIMEOUT
    return max(settings.GIFTDESK_POLL_SECONDS, min(3 * per_request, settings.Q_TIMEOUT_SECONDS))


def lookup_before_replay(submission: Submission, orders: list[Order], client: ProviderClient) -> SubmitResult | None:
    """For an attempt at a submission whose earlier outcome is unknown (engine rule 4): where
    the provider can look its order up by the reference an earlier attempt stored, ask it
    first (a lookup buys nothing) and take its answer as the attempt's. None when there is no
    such lookup or it told nothing: the request is then replayed with the same key, which
    buys nothing new either. No provider documents a lookup by our own key or reference, so
    without a stored reference there is nothing to ask."""
    if not (submission.outcome_unknown and submission.provider_reference
            and client_class(submission.account.kind).supports_status):
        return None
    try:
        result = client.fetch_status(status_request(submission, orders))
    except (AccountError, RateLimited):
        raise  # what a request would meet too: the attempt pauses the account, or waits
    except ProviderError:
        return None  # the replay with the same key settles it
    # Only an answer about every card settles them; a card it left out is not failed for it.
    named = {card.order_reference for card in result.cards}
    return result if all(order.reference in named for order in orders) else None


def submission_poll(submission_id: int) -> int | None:
    """Ask the provider about the cards it is still fulfilling; returns how many still are,
    or None when this poll was not due or another worker took it."""
    return submissions_poll([submission_id]).get(submission_id)


def submissions_poll(submission_ids: list[int]) -> dict[int, int]:
    """Look up these submissions' cards (a round of polls), one lookup each, in turn; returns
    how many cards of each polled are still being fulfilled. Taken together (one UPDATE), their
    orders read together, and the answers recorded together (one transaction for the calls, the
    orders' changes and events, and the submissions), at least every RECORD_EVERY_SECONDS; a
    failed lookup is recorded at once, after the answers before it."""
    taken, lease = _polls_take(submission_ids)
    if not taken:
        return {}
    orders_of = _orders_by_submission(taken, OrderStatus.PROCESSING)
    still: dict[int, int] = {}
    empty = [submission.pk for submission in taken if not orders_of.get(submission.pk)]
    if empty:
        Submission.objects.filter(pk__in=empty).update(next_poll_at=None)
        still.update(dict.fromkeys(empty, 0))
    calls = events.CallBuffer()
    answers: list[Answer] = []
    first_unrecorded = None
    for index, submission in enumerate(taken):
        orders = orders_of.get(submission.pk)
        if not orders:
            continue
        if not client_class(submission.account.kind).supports_status:
            still[submission.pk] = _scheduled_cards_deliver(submission, orders)
            continue
        client, recorder = submission_client(submission, [order.pk for order in orders], lookup=True, buffer=calls)
        try:
            result = client.fetch_status(status_request(submission, orders))
        except ProviderError as exc:
            still.update(_polls_record(answers, calls))  # the answers before it first, and its calls
            if isinstance(exc, RateLimited):
                # The rest are not asked now: due again, they wait with it (_poll_failed), not
                # for the end of this call's lease.
                rest = [later.pk for later in taken[index + 1:]]
                Submission.objects.filter(pk__in=rest, next_poll_at=lease).update(next_poll_at=timezone.now())
                still[submission.pk] = _poll_failed(submission, orders, exc, cause=recorder.last)
                break
            still[submission.pk] = _poll_failed(submission, orders, exc, cause=recorder.last)
            continue
        answers.append(Answer(submission, orders, result, recorder.last))
        first_unrecorded = first_unrecorded or time.monotonic()
        if time.monotonic() - first_unrecorded >= RECORD_EVERY_SECONDS:
            still.update(_polls_record(answers, calls))
            first_unrecorded = None
    still.update(_polls_record(answers, calls))
    return still


def _polls_take(submission_ids: list[int]) -> tuple[list[Submission], datetime]:
    """Of these submissions, those whose lookup is due, taken by this worker (in the order
    given, with their accounts), and the lease they are taken until: one UPDATE moves their next
    lookup to the end of a short lease, a moment of this call's own (its microseconds at random),
    by which they are then read. A worker killed mid-lookup holds them no longer than the lease;
    two lookups of one order at once would be harmless anyway (a lookup buys nothing, and each
    state change is conditional). Every lookup taken is rescheduled by its outcome."""
    now = timezone.now()
    lease = now + timedelta(seconds=_poll_lease_seconds(), microseconds=random.randrange(1_000_000))
    if not Submission.objects.filter(pk__in=submission_ids, state=SubmissionState.ACCEPTED,
                                     next_poll_at__lte=now).update(next_poll_at=lease):
        return [], lease
    held = Submission.objects.select_related("account").filter(
        pk__in=submission_ids, state=SubmissionState.ACCEPTED, next_poll_at=lease).in_bulk()
    return [held[pk] for pk in submission_ids if pk in held], lease


def _poll_failed(submission: Submission, orders: list[Order], exc: ProviderError, *,
                 cause: ProviderCall | None) -> int:
    """A lookup that told nothing (its calls already recorded): when to ask again, and the note
    that says why. Returns how many cards are still being fulfilled: all of them."""
    if isinstance(exc, RateLimited):
        # Orders are using the account's rate limit (a lookup never takes their slots):
        # nothing was asked, so nothing to note; asked again once they have gone. The
        # account's other lookups due by then would be held back too: they wait with it, so
        # a worker sending orders does not try each of them in turn between two orders.
        later = min(max(exc.retry_after or 0, settings.GIFTDESK_POLL_SECONDS), MAX_RETRY_AFTER_SECONDS)
        moment = timezone.now() + timedelta(seconds=later)
        Submission.objects.filter(pk=submission.pk).update(next_poll_at=moment)
        Submission.objects.filter(account_id=submission.account_id, state=SubmissionState.ACCEPTED,
                                  next_poll_at__lt=moment).update(next_poll_at=moment)
        return len(orders)
    if isinstance(exc, AccountError):
        # Refused for the account: an order would be too, so sending pauses. The cards are
        # with the provider whatever the lookup says: asked again, seldom while the refusal
        # lasts (not to hammer it), and at once when sending is resumed.
        _pause_account(submission.account_id, exc.message)
        events.record_note(orders, actor=worker_name(), submission=submission, provider_call=cause,
                           message=f"Status lookup refused for the account: {exc.message} It is asked "
                                   "again later, and as soon as sending on the account is resumed.")
        later = max(settings.GIFTDESK_POLL_MAX_SECONDS, exc.retry_after or 0)
        Submission.objects.filter(pk=submission.pk).update(next_poll_at=timezone.now() + timedelta(seconds=later))
        return len(orders)
    # The cards are with the provider whatever the lookup says: never fail them for a
    # failed lookup; ask again, less often.
    events.record_note(orders, actor=worker_name(), submission=submission, provider_call=cause,
                       message=f"Status lookup failed: {exc.message} It is asked again later.")
    # A failed lookup counts as one: lookups go on backing off (doubling) as they fail,
    # so a provider in trouble is not hammered; later still when it asks (Retry-After).
    later = max(poll_delay(submission.polls + 1, webhooks=webhooks_report(submission.account)),
                min(exc.retry_after or 0, MAX_RETRY_AFTER_SECONDS))
    now = timezone.now()
    Submission.objects.filter(pk=submission.pk).update(
        next_poll_at=now + timedelta(seconds=later), polls=F("polls") + 1, updated_at=now)
    return len(orders)


def _polls_record(answers: list[Answer], calls: events.CallBuffer) -> dict[int, int]:
    """Record the calls waiting in `calls` and the lookups' answers in `answers` (then emptied),
    in one transaction; returns how many cards of each submission are still being fulfilled."""
    if not answers:
        calls.flush()
        return {}
    still: dict[int, int] = {}
    with transaction.atomic():
        calls.flush()
        outcomes = _results_changes(answers, from_status=OrderStatus.PROCESSING)
        now = timezone.now()
        next_polls = {}
        for answer, (kept, changes) in zip(answers, outcomes):
            submission = answer.submission
            processing = kept + [order for order, status in changes if status == OrderStatus.PROCESSING]
            still[submission.pk] = len(processing)
            next_polls[submission.pk] = {"next_poll_at": _poll_not_before_delivery(
                submission, now + timedelta(seconds=poll_delay(submission.polls + 1,
                                                               webhooks=webhooks_report(submission.account))),
                processing=processing) if processing else None}
        _rows_update(Submission.objects.all(), next_polls, common={"polls": F("polls") + 1, "updated_at": now})
        _complete_finished_batches({order.batch_id for answer in answers for order in answer.orders})
    answers.clear()
    return still


# --- Cards for a later delivery date -------------------------------------------------------------


def _delivery_later(order: Order) -> date | None:
    """The order's delivery date when it is after today (GiftDesk's time zone), else None."""
    return order.send_on if order.send_on and order.send_on > timezone.localdate() else None


def _scheduled_note(send_on: date) -> str:
    return f"Scheduled for {send_on.isoformat()}"


def _poll_not_before_delivery(submission: Submission, moment: datetime, *, processing: list[Order] = ()) -> datetime:
    """When to ask about the submission's cards: `moment`, unless every card it is still
    fulfilling waits for a later delivery date; then at the start of the first such date.
    `processing`: some of its orders known to be processing now (no need to ask the database
    when one of them is due already)."""
    if any(not _delivery_later(order) for order in processing):
        return moment
    processing = submission.orders.filter(status=OrderStatus.PROCESSING)
    if processing.filter(Q(send_on__isnull=True) | Q(send_on__lte=timezone.localdate())).exists():
        return moment
    first = processing.order_by("send_on").values_list("send_on", flat=True).first()
    if first is None:
        return moment
    return max(moment, timezone.make_aware(datetime.combine(first, datetime.min.time())))


def _scheduled_cards_deliver(submission: Submission, orders: list[Order]) -> int:
    """A provider without a status lookup accepted these cards for a later date: on that
    date they count as delivered (there is nothing to ask). Returns how many still wait."""
    provider = submission.account.get_kind_display()
    now = timezone.now()
    due = [order for order in orders if order.send_on and not _delivery_later(order)]
    with transaction.atomic():
        # The due orders still processing (locked): one UPDATE, one INSERT of their events.
        still = _orders_locked([order.pk for order in due], (OrderStatus.PROCESSING,))
        delivered = [order for order in due if order.pk in still]
        _orders_update({order.pk: {"status": OrderStatus.DELIVERED, "waiting_reason": "", "completed_at": now,
                                   "updated_at": now} for order in delivered},
                       from_statuses=(OrderStatus.PROCESSING,))
        events.record_transition(delivered, from_status=OrderStatus.PROCESSING, to_status=OrderStatus.DELIVERED,
                                 actor=worker_name(), submission=submission,
                                 message=f"Delivery date reached: {provider} accepted this card for today "
                                         f"({provider} has no status lookup to ask).")
        waiting = submission.orders.filter(status=OrderStatus.PROCESSING, send_on__isnull=False).exists()
        # A card with no date cannot be asked about at this provider: it is not polled again.
        Submission.objects.filter(pk=submission.pk).update(
            next_poll_at=_poll_not_before_delivery(submission, now) if waiting else None, updated_at=now)
        _complete_finished_batches({order.batch_id for order in delivered})
    return len(orders) - len(delivered)


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (half to all of it), capped at GIFTDESK_RETRY_MAX_SECONDS
    with the jitter kept at the cap, so submissions that failed together (an outage) do not
    all come back at one moment; never sooner than the provider asked (Retry-After: the
    larger wins, up to MAX_RETRY_AFTER_SECONDS)."""
    # The exponent is bounded: past the cap it changes nothing, and a float overflows.
    ceiling = min(settings.GIFTDESK_RETRY_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 30),
                  settings.GIFTDESK_RETRY_MAX_SECONDS)
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


MAX_RETRY_AFTER_SECONDS = 3600.0  # A provider asking for more is not waited for blindly.


@transaction.atomic
def _retry_later(
    submission: Submission, orders: list[Order], exc: ProviderError, *, cause: ProviderCall | None
) -> str:
    now = timezone.now()
    unknown = submission.outcome_unknown or isinstance(exc, OutcomeUnknown)
    attempts = submission.attempts
    if isinstance(exc, RateLimited):
        attempts -= 1  # Held back by our own limiter: nothing was sent, no attempt spent.
        cause = None  # Nor did an earlier call of this attempt cause it.
    if attempts >= settings.GIFTDESK_MAX_SUBMIT_ATTEMPTS and not unknown:
        return _reject(submission, orders, PermanentError(
            f"Gave up after {attempts} attempts. Last error: {exc.message}"), cause=cause)
    delay = retry_delay(attempts, exc.retry_after)
    message = exc.message
    if unknown and attempts >= settings.GIFTDESK_MAX_SUBMIT_ATTEMPTS:
        # Failing now could leave a bought card behind a "failed" order: keep asking, at the
        # backoff's cap (a minute by default, jittered, or the provider's Retry-After). Asking
        # is safe: the request is replayed with the same key, or the order looked up, and
        # neither buys anything.
        message = (f"Still waiting for {submission.account.get_kind_display()} to confirm whether this "
                   f"order was placed; asked again with the same idempotency key. Last error: {exc.message}")
    if not _owned(submission).update(
        state=SubmissionState.RETRY, last_error=message, updated_at=now, attempts=attempts,
        outcome_unknown=unknown, next_attempt_at=now + timedelta(seconds=delay),
    ):
        return SubmissionState.RETRY  # Taken over meanwhile: the newer attempt decides.
    Order.objects.filter(pk__in=[order.pk for order in orders]).update(last_error=message)
    events.record_note(orders, actor=worker_name(), submission=submission, provider_call=cause,
                       message=f"{message} (attempt {attempts}; next in {delay:.0f} s)")
    return SubmissionState.RETRY


@transaction.atomic
def _block_account(
    submission: Submission, orders: list[Order], exc: AccountError, *, cause: ProviderCall | None
) -> str:
    """The provider refused the account (401, 402, 403): pause it until staff fix it.

    A refused request bought nothing, so its orders go back to waiting (`queued`, with the
    reason): they can be cancelled, and after resume they are claimed under a new key. But
    when an earlier attempt's outcome is unknown, that attempt may have bought the cards:
    the submission then waits to be retried with its own key, never a new one (rule 4)."""
    now = timezone.now()
    _pause_account(submission.account_id, exc.message)
    if submission.outcome_unknown:
        # An account refusal is not this submission's fault: the attempt does not count.
        if _owned(submission).update(
            state=SubmissionState.RETRY, attempts=max(submission.attempts - 1, 0),
            last_error=exc.message, next_attempt_at=None, updated_at=now,
        ):
            events.record_note(
                orders, actor=worker_name(), submission=submission, provider_call=cause,
                message=f"Sending paused for the whole account: {exc.message} An earlier attempt may have "
                "placed this order, so it waits to be asked again with the same idempotency key once "
                "sending on the account is resumed.")
        return SubmissionState.RETRY
    if not _owned(submission).update(
        state=SubmissionState.REJECTED, next_attempt_at=None, updated_at=now,
        last_error=f"Refused for the account, so nothing was bought; its orders went back to waiting "
                   f"and are sent again under a new key once sending is resumed. {exc.message}",
    ):
        return SubmissionState.REJECTED  # Another attempt holds it now and decides.
    waiting = PAUSED_PREFIX + exc.message
    requeued = [
        order for order in orders
        if Order.objects.filter(pk=order.pk, status=OrderStatus.SENDING, submission=submission).update(
            status=OrderStatus.QUEUED, submission=None, waiting_reason=waiting, last_error=exc.message,
            updated_at=now,
        )
    ]
    events.record_transition(
        requeued, from_status=OrderStatus.SENDING, to_status=OrderStatus.QUEUED, actor=worker_name(),
        submission=submission, provider_call=cause,
        message=f"Back to waiting: {submission.account.get_kind_display()} refused the account, so nothing "
                f"was bought. {exc.message}",
    )
    return SubmissionState.REJECTED


# Why a queued order waits while its account is paused; resuming clears only these.
PAUSED_PREFIX = "Sending is paused for the account: "


def _pause_account(account_id: int, reason: str) -> None:
    """Pause the account's sending and say why on every order of it waiting to be sent."""
    account_block(account_id=account_id, reason=reason)
    Order.objects.filter(batch__account_id=account_id, status=OrderStatus.QUEUED).update(
        waiting_reason=PAUSED_PREFIX + reason, updated_at=timezone.now())


def _complete_finished_batches(batch_ids: set[int]) -> None:
    """Complete those of `batch_ids` still sending whose every order is finished: one UPDATE.

    Called in the transaction that finished orders of them, after their totals moved: their
    batch rows are locked by it already, so a transaction finishing the same batch's last other
    orders waits for this one, then sees its orders finished (each statement reads what is
    committed) and completes the batch; none is left sending with every order done."""
    if not batch_ids:
        return
    unfinished = Order.objects.filter(batch_id=OuterRef("pk")).exclude(status__in=TERMINAL_STATUSES)
    Batch.objects.filter(~Exists(unfinished), pk__in=sorted(batch_ids), state=BatchState.SENDING).update(
        state=BatchState.COMPLETED, updated_at=timezone.now())


# --- Pumping ------------------------------------------------------------------------------------


@dataclass
class PumpReport:
    attempted: int = 0
    claimed: int = 0
    polled: int = 0


def account_pump(account_id: int, *, budget_seconds: float | None = None) -> PumpReport:
    """Send and follow up everything of one account that is due, for at most `budget_seconds`.

    Retries, status lookups and leases about to run out (orders.leases) due within the budget
    are waited for here; later ones are picked up by the periodic sweeps. Safe to run in several
    workers at once.
    """
    budget = budget_seconds if budget_seconds is not None else settings.Q_TIMEOUT_SECONDS * 0.6
    deadline = time.monotonic() + budget
    report = PumpReport()
    leases_checked = float("-inf")
    while True:  # At least one pass, however small the budget.
        account = ProviderAccount.objects.filter(pk=account_id).first()
        if account is None or not account.is_active:
            return report
        # A paused account buys nothing: no attempt, no claim. The cards its provider
        # accepted are still looked up: a lookup buys nothing (DESIGN.md, engine rule 9).
        paused = account.is_blocked
        # A request in flight whose worker died (its lease ran out) is taken over here and is
        # then due like any retry; a takeover buys nothing, so also while paused. Looked for
        # after each wait, and else at most once a second: one small read, not one per claim.
        if time.monotonic() - leases_checked >= LEASE_CHECK_SECONDS:
            stale_submissions_release(account_id=account.pk)
            leases_checked = time.monotonic()
        # Each kind of work in rounds: several submissions per statement (orders.dispatch,
        # submissions_attempt and submissions_poll).
        due = [] if paused else _due_submission_ids(account)
        if due:
            report.attempted += len(submissions_attempt(due, deadline=deadline))
        polls = _due_poll_ids(account)
        if polls:
            report.polled += len(submissions_poll(polls))
        claimed = []
        if paused:
            _unsent_claims_release(account)
        else:
            claimed = orders_claim_round(account=account, baskets=round_baskets(account))
            if claimed:
                report.claimed += len(claimed)
                report.attempted += len(submissions_attempt([submission.pk for submission in claimed],
                                                            deadline=deadline))
        if time.monotonic() >= deadline:
            return report
        if claimed or due or polls:
            continue
        wait = _seconds_until_next_work(account)
        if wait is None or time.monotonic() + wait >= deadline:
            return report
        time.sleep(max(wait, 0.05))
        leases_checked = float("-inf")  # woken for what came due: a lease run out may be it


# How often a busy pump looks for leases run out on its account (an idle one: after each wait).
LEASE_CHECK_SECONDS = 1.0


def _unsent_claims_release(account: ProviderAccount) -> None:
    """Claims taken just as the account was paused were never sent (prepared: no request
    went out under their keys): their orders go back to waiting with the others, so they
    can be cancelled, instead of staying `sending` while the account is paused."""
    for submission in Submission.objects.filter(account=account, state=SubmissionState.PREPARED, attempts=0):
        now = timezone.now()
        with transaction.atomic():
            if not Submission.objects.filter(pk=submission.pk, state=SubmissionState.PREPARED, attempts=0).update(
                state=SubmissionState.REJECTED, updated_at=now,
                last_error="Not sent: sending on the account was paused; its orders went back to waiting.",
            ):
                continue  # Attempted meanwhile (the account was resumed): that attempt decides.
            orders = list(submission.orders.filter(status=OrderStatus.SENDING).order_by("id")
                          .select_for_update(of=("self",)))  # the orders read are the orders moved
            Order.objects.filter(pk__in=[order.pk for order in orders], status=OrderStatus.SENDING,
                                 submission=submission).update(
                status=OrderStatus.QUEUED, submission=None, updated_at=now,
                waiting_reason=PAUSED_PREFIX + account.blocked_reason)
            events.record_transition(orders, from_status=OrderStatus.SENDING, to_status=OrderStatus.QUEUED,
                                     actor=worker_name(), submission=submission,
                                     message="Back to waiting, not sent: sending on the account is paused.")


def wake_worker(account_id: int) -> None:
    """Queue `orders.tasks.pump_account` for the account (named by its path: tasks.py
    imports this module)."""
    async_task("orders.tasks.pump_account", account_id, task_name=f"pump-account-{account_id}",
               group="giftdesk-send")


def _due(now=None) -> Q:
    now = now or timezone.now()
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def _due_submission_ids(account: ProviderAccount) -> list[int]:
    return list(
        Submission.objects.filter(_due(), account=account, state__in=ATTEMPTABLE)
        .order_by("next_attempt_at", "id").values_list("id", flat=True)[:100]
    )


def _due_poll_ids(account: ProviderAccount) -> list[int]:
    return list(
        Submission.objects.filter(account=account, state=SubmissionState.ACCEPTED, next_poll_at__lte=timezone.now())
        .order_by("next_poll_at").values_list("id", flat=True)[:100]
    )


def _seconds_until_next_work(account: ProviderAccount) -> float | None:
    # A paused account only looks cards up: its retries are not due, however soon they were set.
    retry = None if account.is_blocked else (
        Submission.objects.filter(account=account, state=SubmissionState.RETRY, next_attempt_at__isnull=False)
        .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    )
    poll = (
        Submission.objects.filter(account=account, state=SubmissionState.ACCEPTED, next_poll_at__isnull=False)
        .order_by("next_poll_at").values_list("next_poll_at", flat=True).first()
    )
    upcoming = min((moment for moment in (retry, poll) if moment is not None), default=None)
    seconds = None if upcoming is None else max((upcoming - timezone.now()).total_seconds(), 0.0)
    # A request in flight elsewhere whose lease is about to run out (its worker may be dead) is
    # waited for and taken over; a live worker's lease is not: no slot is held watching it.
    lease = leases.seconds_until_expiry(account.pk)
    return min((wait for wait in (seconds, lease) if wait is not None), default=None)


def accounts_with_work() -> list[int]:
    """Accounts that have queued orders, submissions due for an attempt or requests in flight
    whose lease runs out (their pump takes it over, or waits for it: orders.leases), unless
    paused, and accounts with a status lookup due, paused or not (a lookup buys nothing). A
    request in flight with a lease renewed lately needs no pump: its worker is alive."""
    now = timezone.now()
    queued = Order.objects.filter(status=OrderStatus.QUEUED).values_list("batch__account_id", flat=True)
    attempts = Submission.objects.filter(_due(now), state__in=ATTEMPTABLE).values_list("account_id", flat=True)
    in_flight = Submission.objects.filter(leases.running_out()).values_list("account_id", flat=True)
    polls = Submission.objects.filter(state=SubmissionState.ACCEPTED, next_poll_at__lte=now).values_list(
        "account_id", flat=True)
    sending = (Q(pk__in=queued) | Q(pk__in=attempts) | Q(pk__in=in_flight)) & Q(blocked_reason="")
    return sorted(
        set(ProviderAccount.objects.filter(sending | Q(pk__in=polls), is_active=True).values_list("pk", flat=True))
    )


def stale_submissions_release(*, account_id: int | None = None) -> int:
    """A worker died while a request was in flight (its lease ran out, orders.leases): take
    those submissions over, to be retried at once with their own key. `account_id`: only that
    account's (its pump). Each takeover is one update, conditional on the lease still being run
    out and on the attempt's token: of two sweepers racing, one takes it over, and a lease
    renewed meanwhile is left to its live worker."""
    stale = Submission.objects.filter(leases.expired())
    if account_id is not None:
        stale = stale.filter(account_id=account_id)
    released = 0
    for pk, token, claimed_by in stale.values_list("pk", "attempt_token", "claimed_by"):
        now = timezone.now()
        released += Submission.objects.filter(leases.expired(), pk=pk, attempt_token=token).update(
            # The request may have reached the provider (rule 4): from now on only the same key
            # or a lookup settles it, never a new key, whatever the provider answers next.
            state=SubmissionState.RETRY, next_attempt_at=now, outcome_unknown=True, updated_at=now,
            last_error=f"The worker sending this ({claimed_by}) stopped renewing its lease; "
            "retrying with the same idempotency key.",
        )
    return released


class ResumeRefused(Exception):
    """Sending on the account stays paused; the message says why and what to fix."""


def account_sending_resume(*, account: ProviderAccount, user=None) -> int:
    """Staff fixed what paused the account: check its connection, then clear the pause and let
    its orders go on. A failed check refuses (ResumeRefused) and the account stays paused:
    resumed, it would only be paused again by its next request.

    Returns how many waiting submissions will be retried (with their own keys).
    """
    account = ProviderAccount.objects.get(pk=account.pk)
    if not account.is_blocked:
        return 0
    # Before the transaction: a provider call must not hold the account's row locked.
    check = account_check(account=account)
    if not check.ok:
        raise ResumeRefused(f"Sending on {account} stays paused: the connection check failed: "
                            f"{check.message.rstrip('.')}. Fix it, then resume.")
    with transaction.atomic():
        reason = account_resume(account=account)
        if not reason:
            return 0  # Resumed by someone else meanwhile.
        now = timezone.now()
        waiting = Submission.objects.filter(account=account, state=SubmissionState.RETRY).update(next_attempt_at=now)
        queued = Order.objects.filter(
            batch__account=account, status=OrderStatus.QUEUED, waiting_reason__startswith=PAUSED_PREFIX,
        ).update(waiting_reason="", updated_at=now)
        # Lookups refused while the account was paused were put off: ask again now.
        Submission.objects.filter(account=account, state=SubmissionState.ACCEPTED, next_poll_at__gt=now).update(
            next_poll_at=now)
        audit_record(AuditAction.RESUME, user=user, target=account, summary=(
            f"Resumed sending on {account}, paused because: {reason} The connection check passed "
            f"({check.message.rstrip('.')}). {queued} queued order{'s' if queued != 1 else ''} and "
            f"{waiting} waiting submission{'s' if waiting != 1 else ''} (retried with their own keys) go on."))
        transaction.on_commit(lambda: wake_worker(account.pk))
    return waiting


# --- Webhooks ---------------------------------------------------------------------------------------

def card_updates_apply(*, account: ProviderAccount, updates: list[CardUpdate], actor: str) -> str:
    """Apply what a provider's webhook says of its cards, to orders the provider is
    fulfilling. An order still `sending` is left to its own request (retried with the same
    key, it records the provider's ids and cost); a finished order stays as it is, so a late
    or replayed event can never undo a delivery."""
    # One transaction (the webhook view's, or its own): each order and its batch's totals move
    # together; the batches' rows once each, in id order, after the orders. No savepoint in the
    # view's transaction (two statements more): an error rolls the whole request back anyway.
    with transaction.atomic(savepoint=False):
        with batch_totals.deferred():
            outcome, batch_ids = _card_updates_apply(account=account, updates=updates, actor=actor)
        _complete_finished_batches(batch_ids)
    return outcome


def _card_updates_apply(*, account: ProviderAccount, updates: list[CardUpdate], actor: str) -> tuple[str, set[int]]:
    """What the updates changed, in words, and the batches of the orders they moved.

    In bulk: the account's orders in fulfilment that the updates name are read and locked in
    one query; the updates are applied to them in their order in memory (an update naming an
    order an earlier one moved finds it moved, as one at a time would); then one conditional
    UPDATE per 500 orders and one INSERT of their events."""
    ignored = sum(1 for update in updates if not update.order_reference and not update.provider_order_id)
    references = {update.order_reference for update in updates if update.order_reference}
    provider_ids = {update.provider_order_id for update in updates
                    if not update.order_reference and update.provider_order_id}
    named = Q(reference__in=sorted(references)) if references else Q()
    if provider_ids:
        named |= Q(provider_order_id__in=sorted(provider_ids))
    orders = []
    if references or provider_ids:
        rows = Order.objects.filter(named, batch__account=account, status=OrderStatus.PROCESSING).order_by("pk")
        if connection.features.has_select_for_update:
            rows = rows.select_for_update(of=("self",) if connection.features.has_select_for_update_of else ())
        orders = list(rows)
    by_reference: dict[str, list[Order]] = {}
    by_provider_id: dict[str, list[Order]] = {}
    for order in orders:
        by_reference.setdefault(order.reference, []).append(order)
        by_provider_id.setdefault(order.provider_order_id, []).append(order)
    status_now = {order.pk: order.status for order in orders}
    moves: dict[int, tuple[Order, str, dict, str]] = {}
    kept = 0
    now = timezone.now()
    for update in updates:
        if update.order_reference:
            matches = by_reference.get(update.order_reference, [])
        elif update.provider_order_id:
            matches = by_provider_id.get(update.provider_order_id, [])
        else:
            continue
        new_status = CARD_STATUS[update.status]
        for order in matches:
            if status_now[order.pk] != OrderStatus.PROCESSING:
                continue  # moved by an earlier update of this delivery
            if new_status == OrderStatus.DELIVERED and _delivery_later(order):
                kept += 1  # delivered on its date, not before: it stays processing until then
                continue
            if new_status == OrderStatus.PROCESSING:
                continue
            fields = {"status": new_status, "updated_at": now, "last_error": update.error,
                      "completed_at": now if new_status in TERMINAL_STATUSES else None}
            if update.details:
                fields["provider_details"] = {**order.provider_details, **update.details}
            if update.provider_card_id:
                fields.update(Order.card_code_columns(update.provider_card_id))
            if new_status == OrderStatus.FAILED:
                fields["definitely_refused"] = True  # the provider itself reports the card failed
            moves[order.pk] = (order, new_status, fields, update.error or "Reported by the provider's webhook.")
            status_now[order.pk] = new_status
    changes = [moves[order_id] for order_id in sorted(moves)]
    _orders_update({order.pk: fields for order, _status, fields, _message in changes},
                   from_statuses=(OrderStatus.PROCESSING,))
    events.record_transitions([(order, OrderStatus.PROCESSING, new_status, message)
                               for order, new_status, _fields, message in changes], actor=actor)
    batch_ids = {order.batch_id for order, _status, _fields, _message in changes}
    return (f"{plural(len(changes), 'order')} updated"
            + (f", {plural(ignored, 'update')} without an order reference" if ignored else "")
            + (f", {kept:,} kept processing until their delivery date" if kept else "")), batch_ids
