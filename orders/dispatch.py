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
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditAction
from audit.services import record as audit_record
from giftdesk.text import plural
from orders import batch_totals, events, spending
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
    """Move up to `limit` queued orders that may travel together into a new submission.

    The key is created and committed with the claim, before any request uses it.

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
        first = candidates.order_by("id").only("id", *group).first()
        submission = None
        if first is not None:
            same_group = {field: getattr(first, field) for field in group}
            rows = list(candidates.filter(**same_group).order_by("id").values_list("id", "currency", "amount")[:limit])
            ids = spending.limits_fit(rows, remaining)
            submission = Submission.objects.create(
                account=account, idempotency_key=new_idempotency_key(), state=SubmissionState.PREPARED,
                claimed_by=worker_name(), claimed_at=now,
            )
            # Conditional: an order another worker took in the meantime is not taken again.
            # claimed_at: the month the order's amount counts against (orders.spending).
            claimed = Order.objects.filter(id__in=ids, status=OrderStatus.QUEUED).update(
                status=OrderStatus.SENDING, submission=submission, updated_at=now, claimed_at=now,
                waiting_reason="",
            )
            if claimed == len(ids):
                # The month's spend after this claim, without asking the database again.
                taken = set(ids)
                for order_id, currency, amount in rows:
                    if currency in spent and order_id in taken:
                        spent[currency] += amount
            else:
                spent = None  # another worker took some of them: wait_reasons_record asks
            if claimed:
                events.record_transition(
                    submission.orders.all(), from_status=OrderStatus.QUEUED, to_status=OrderStatus.SENDING,
                    actor=worker_name(), submission=submission,
                    message=f"Claimed into submission {submission.idempotency_key}.",
                )
            else:
                submission.delete()
                submission = None
        spending.wait_reasons_record(account=account, limits=limits, now=now, spent=spent)
        return submission


# --- Submitting --------------------------------------------------------------------------------


def _start_attempt(submission_id: int) -> Submission | None:
    """prepared|retry -> in_flight, conditionally: only one worker attempts at a time."""
    now = timezone.now()
    started = Submission.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=submission_id, state__in=ATTEMPTABLE, account__blocked_reason="",
    ).update(
        state=SubmissionState.IN_FLIGHT, attempts=F("attempts") + 1, claimed_by=worker_name(),
        claimed_at=now, updated_at=now, attempt_token=uuid.uuid4().hex,
    )
    if not started:
        return None
    return Submission.objects.select_related("account").get(pk=submission_id)


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
    return list(
        submission.orders.filter(status=status).select_related("recipient", "product", "batch").order_by("id")
    )


def submission_client(submission: Submission, order_ids: list[int], *,
                      actor: str | None = None) -> tuple[ProviderClient, events.CallRecorder]:
    """A client for one attempt (or lookup), holding the account's rate limit across workers, and
    its calls, each recorded linked to `order_ids`: `calls.last` caused what is recorded next."""
    calls = events.CallRecorder(submission_id=submission.pk, order_ids=order_ids, actor=actor or worker_name())
    return account_client(submission.account, recorder=calls), calls


def status_request(submission: Submission, orders: list[Order]) -> StatusRequest:
    """The lookup of a submission's provider order, for the cards of `orders`."""
    return StatusRequest(provider_reference=submission.provider_reference, cards=card_requests(orders),
                         idempotency_key=submission.idempotency_key)


def submission_attempt(submission_id: int) -> str | None:
    """Attempt one submission; returns its new state, or None when it was not ours to try."""
    submission = _start_attempt(submission_id)
    if submission is None:
        return None
    orders = _orders_in(submission, OrderStatus.SENDING)
    if not orders:
        return _settle_without_orders(submission)
    client, calls = submission_client(submission, [order.pk for order in orders])
    try:
        result = client.submit(_submit_request(submission, orders))
    except AccountError as exc:
        return _block_account(submission, orders, exc, cause=calls.last)
    except PermanentError as exc:
        return _reject(submission, orders, exc, cause=calls.last)
    except (TransientError, OutcomeUnknown) as exc:
        return _retry_later(submission, orders, exc, cause=calls.last)
    except ProviderError as exc:  # A new subclass: treat as unknown, never as success.
        return _retry_later(submission, orders, OutcomeUnknown(exc.message), cause=calls.last)
    return _accept(submission, orders, result, cause=calls.last)


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
    with batch_totals.deferred():  # the batches' totals move once each, in id order, after the orders
        return _results_apply(submission, orders, result, from_status=from_status, cause=cause)


def _results_apply(
    submission: Submission, orders: list[Order], result: SubmitResult, *, from_status: str,
    cause: ProviderCall | None,
) -> int:
    now = timezone.now()
    by_reference = {card.order_reference: card for card in result.cards}
    still_processing = 0
    for order in orders:
        card = by_reference.get(order.reference)
        if card is None and from_status == OrderStatus.PROCESSING:
            still_processing += 1  # Not mentioned in a status answer: ask again later.
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
            still_processing += 1
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
        if Order.objects.filter(pk=order.pk, status=from_status).update(**fields):
            events.record_transition(
                [order], from_status=from_status, to_status=new_status, actor=worker_name(), submission=submission,
                provider_call=cause, message=error or _accepted_message(submission, card, new_status, held_until=held),
            )
            still_processing += new_status == OrderStatus.PROCESSING
    return still_processing


def _accepted_message(submission: Submission, card, status: str, *, held_until: date | None = None) -> str:
    provider = submission.account.get_kind_display()
    order_id = card.provider_order_id if card and card.provider_order_id else submission.provider_reference
    if held_until:
        return (f"Accepted by {provider} (order {order_id}) for a later delivery date. "
                f"{_scheduled_note(held_until)}: it stays processing until that date.")
    if status == OrderStatus.PROCESSING:
        return f"Accepted by {provider} (order {order_id}); {provider} is fulfilling it."
    return f"{'Delivered' if status == OrderStatus.DELIVERED else 'Done'} by {provider} (order {order_id})."


@transaction.atomic
def _accept(submission: Submission, orders: list[Order], result: SubmitResult, *, cause: ProviderCall | None) -> str:
    now = timezone.now()
    _apply_results(submission, orders, result, from_status=OrderStatus.SENDING, cause=cause)
    # Counted from the database: an attempt taken over may have moved some of them already.
    processing = submission.orders.filter(status=OrderStatus.PROCESSING).exists()
    _owned(submission).update(
        state=SubmissionState.ACCEPTED,
        provider_reference=result.provider_reference or submission.provider_reference,
        last_error="", next_attempt_at=None, updated_at=now,
        next_poll_at=_poll_not_before_delivery(
            submission, now + timedelta(seconds=settings.GIFTDESK_POLL_SECONDS)) if processing else None,
    )
    _complete_finished_batches({order.batch_id for order in orders})
    return SubmissionState.ACCEPTED


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
    _fail_orders(submission, orders, exc.message, cause=cause, definitely_refused=not in_doubt)
    _complete_finished_batches({order.batch_id for order in orders})
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
    for order in orders:
        single = Submission.objects.create(
            account_id=submission.account_id, idempotency_key=new_idempotency_key(),
            state=SubmissionState.PREPARED, split_from=submission, claimed_by=worker_name(), claimed_at=now,
        )
        Order.objects.filter(pk=order.pk, status=OrderStatus.SENDING).update(submission=single, updated_at=now)
        events.record_note([order], actor=worker_name(), submission=single, provider_call=cause,
                           message=f"{submission.account.get_kind_display()} refused the request this card "
                           f"was part of ({exc.message}); it is sent again on its own.")
    return SubmissionState.REJECTED


def _fail_orders(submission: Submission, orders: list[Order], reason: str, *, cause: ProviderCall | None,
                 definitely_refused: bool = False) -> None:
    """`definitely_refused`: the provider refused the request, so it bought nothing and staff
    may retry the orders under a new key (orders.order_actions)."""
    now = timezone.now()
    # One conditional UPDATE per status it may be in, so the event and the batch's totals get
    # the status it really had (an attempt taken over may have moved it meanwhile).
    left = list(orders)
    with batch_totals.deferred():
        for previous in (OrderStatus.SENDING, OrderStatus.PROCESSING):
            failed = [
                order for order in left
                if Order.objects.filter(pk=order.pk, status=previous).update(
                    status=OrderStatus.FAILED, last_error=reason, completed_at=now, updated_at=now,
                    definitely_refused=definitely_refused,
                )
            ]
            events.record_transition(failed, from_status=previous, to_status=OrderStatus.FAILED,
                                     actor=worker_name(), submission=submission, provider_call=cause, message=reason)
            left = [order for order in left if order not in failed]


# --- Polling --------------------------------------------------------------------------------------


def poll_delay(polls: int) -> float:
    """Seconds until the next lookup of a provider order: doubling, capped."""
    return min(settings.GIFTDESK_POLL_SECONDS * 2 ** max(polls - 1, 0), settings.GIFTDESK_POLL_MAX_SECONDS)


def submission_poll(submission_id: int) -> int | None:
    """Ask the provider about the cards it is still fulfilling; returns how many still are,
    or None when this poll was not due or another worker took it."""
    now = timezone.now()
    submission = Submission.objects.select_related("account").filter(
        pk=submission_id, state=SubmissionState.ACCEPTED, next_poll_at__lte=now,
    ).first()
    if submission is None:
        return None
    # A lease: the conditional update makes this worker the only one polling it now.
    lease = now + timedelta(seconds=max(settings.GIFTDESK_POLL_SECONDS, settings.Q_TIMEOUT_SECONDS))
    if not Submission.objects.filter(pk=submission.pk, next_poll_at=submission.next_poll_at).update(next_poll_at=lease):
        return None
    orders = _orders_in(submission, OrderStatus.PROCESSING)
    if not orders:
        Submission.objects.filter(pk=submission.pk).update(next_poll_at=None)
        return 0
    if not client_class(submission.account.kind).supports_status:
        return _scheduled_cards_deliver(submission, orders)
    client, calls = submission_client(submission, [order.pk for order in orders])
    delay = settings.GIFTDESK_POLL_SECONDS
    try:
        result = client.fetch_status(status_request(submission, orders))
    except AccountError as exc:
        # Refused for the account: an order would be too, so sending pauses. The cards are
        # with the provider whatever the lookup says: asked again, seldom while the refusal
        # lasts (not to hammer it), and at once when sending is resumed.
        _pause_account(submission.account_id, exc.message)
        events.record_note(orders, actor=worker_name(), submission=submission, provider_call=calls.last,
                           message=f"Status lookup refused for the account: {exc.message} It is asked "
                                   "again later, and as soon as sending on the account is resumed.")
        later = max(settings.GIFTDESK_POLL_MAX_SECONDS, exc.retry_after or 0)
        Submission.objects.filter(pk=submission.pk).update(next_poll_at=timezone.now() + timedelta(seconds=later))
        return len(orders)
    except ProviderError as exc:
        # The cards are with the provider whatever the lookup says: never fail them for a
        # failed lookup; ask again, less often.
        events.record_note(orders, actor=worker_name(), submission=submission, provider_call=calls.last,
                           message=f"Status lookup failed: {exc.message} It is asked again later.")
        later = max(delay * 4, exc.retry_after or 0)
        Submission.objects.filter(pk=submission.pk).update(next_poll_at=timezone.now() + timedelta(seconds=later))
        return len(orders)
    with transaction.atomic():
        still = _apply_results(submission, orders, result, from_status=OrderStatus.PROCESSING, cause=calls.last)
        Submission.objects.filter(pk=submission.pk).update(
            next_poll_at=_poll_not_before_delivery(
                submission, timezone.now() + timedelta(seconds=poll_delay(submission.polls + 1))) if still else None,
            polls=F("polls") + 1, updated_at=timezone.now(),
        )
        _complete_finished_batches({order.batch_id for order in orders})
    return still


# --- Cards for a later delivery date -------------------------------------------------------------


def _delivery_later(order: Order) -> date | None:
    """The order's delivery date when it is after today (GiftDesk's time zone), else None."""
    return order.send_on if order.send_on and order.send_on > timezone.localdate() else None


def _scheduled_note(send_on: date) -> str:
    return f"Scheduled for {send_on.isoformat()}"


def _poll_not_before_delivery(submission: Submission, moment: datetime) -> datetime:
    """When to ask about the submission's cards: `moment`, unless every card it is still
    fulfilling waits for a later delivery date; then at the start of the first such date."""
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
        delivered = [order for order in due if Order.objects.filter(pk=order.pk, status=OrderStatus.PROCESSING).update(
            status=OrderStatus.DELIVERED, waiting_reason="", completed_at=now, updated_at=now)]
        events.record_transition(delivered, from_status=OrderStatus.PROCESSING, to_status=OrderStatus.DELIVERED,
                                 actor=worker_name(), submission=submission,
                                 message=f"Delivery date reached: {provider} accepted this card for today "
                                         f"({provider} has no status lookup to ask).")
        waiting = submission.orders.filter(status=OrderStatus.PROCESSING, send_on__isnull=False).exists()
        # A card with no date cannot be asked about at this provider: it is not polled again.
        Submission.objects.filter(pk=submission.pk).update(
            next_poll_at=_poll_not_before_delivery(submission, now) if waiting else None, updated_at=now)
        _complete_finished_batches({order.batch_id for order in orders})
    return len(orders) - len(delivered)


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, capped; never sooner than the provider asked."""
    base = settings.GIFTDESK_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0))
    delay = min(random.uniform(base / 2, base), settings.GIFTDESK_RETRY_MAX_SECONDS)
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
        # Failing now could leave a bought card behind a "failed" order: keep asking.
        delay = max(delay, settings.GIFTDESK_RETRY_MAX_SECONDS)
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
    for batch_id in sorted(batch_ids):  # batch rows in id order, as everywhere: no deadlock
        unfinished = Order.objects.filter(batch_id=batch_id).exclude(status__in=TERMINAL_STATUSES)
        if not unfinished.exists():
            Batch.objects.filter(pk=batch_id, state=BatchState.SENDING).update(
                state=BatchState.COMPLETED, updated_at=timezone.now()
            )


# --- Pumping ------------------------------------------------------------------------------------


@dataclass
class PumpReport:
    attempted: int = 0
    claimed: int = 0
    polled: int = 0


def account_pump(account_id: int, *, budget_seconds: float | None = None) -> PumpReport:
    """Send and follow up everything of one account that is due, for at most `budget_seconds`.

    Retries and status lookups due within the budget are waited for here; later ones are
    picked up by the periodic sweep. Safe to run in several workers at once.
    """
    budget = budget_seconds if budget_seconds is not None else settings.Q_TIMEOUT_SECONDS * 0.6
    deadline = time.monotonic() + budget
    report = PumpReport()
    while True:  # At least one pass, however small the budget.
        account = ProviderAccount.objects.filter(pk=account_id).first()
        if account is None or not account.is_active:
            return report
        # A paused account buys nothing: no attempt, no claim. The cards its provider
        # accepted are still looked up: a lookup buys nothing (DESIGN.md, engine rule 9).
        paused = account.is_blocked
        due = [] if paused else _due_submission_ids(account)
        for submission_id in due:
            if submission_attempt(submission_id) is not None:
                report.attempted += 1
        polls = _due_poll_ids(account)
        for submission_id in polls:
            if submission_poll(submission_id) is not None:
                report.polled += 1
        submission = None
        if paused:
            _unsent_claims_release(account)
        else:
            submission = orders_claim(account=account)
            if submission is not None:
                report.claimed += 1
                if submission_attempt(submission.pk) is not None:
                    report.attempted += 1
        if time.monotonic() >= deadline:
            return report
        if submission is not None or due or polls:
            continue
        wait = _seconds_until_next_work(account)
        if wait is None or time.monotonic() + wait >= deadline:
            return report
        time.sleep(max(wait, 0.05))


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
    if upcoming is None:
        return None
    return max((upcoming - timezone.now()).total_seconds(), 0.0)


def accounts_with_work() -> list[int]:
    """Accounts that have queued orders or submissions due for an attempt, unless paused, and
    accounts with a status lookup due, paused or not (a lookup buys nothing)."""
    now = timezone.now()
    queued = Order.objects.filter(status=OrderStatus.QUEUED).values_list("batch__account_id", flat=True)
    attempts = Submission.objects.filter(_due(now), state__in=ATTEMPTABLE).values_list("account_id", flat=True)
    polls = Submission.objects.filter(state=SubmissionState.ACCEPTED, next_poll_at__lte=now).values_list(
        "account_id", flat=True)
    sending = (Q(pk__in=queued) | Q(pk__in=attempts)) & Q(blocked_reason="")
    return sorted(
        set(ProviderAccount.objects.filter(sending | Q(pk__in=polls), is_active=True).values_list("pk", flat=True))
    )


def stale_submissions_release(*, older_than: timedelta | None = None) -> int:
    """A worker died while a request was in flight: retry those submissions with their key."""
    older_than = older_than or timedelta(seconds=settings.GIFTDESK_STALE_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    stale = list(Submission.objects.filter(state=SubmissionState.IN_FLIGHT, claimed_at__lt=cutoff))
    released = 0
    for submission in stale:
        released += Submission.objects.filter(
            pk=submission.pk, state=SubmissionState.IN_FLIGHT, claimed_at=submission.claimed_at
        ).update(
            # The request may have reached the provider (rule 4): from now on only the same key
            # or a lookup settles it, never a new key, whatever the provider answers next.
            state=SubmissionState.RETRY, next_attempt_at=timezone.now(), outcome_unknown=True,
            last_error=f"The worker sending this ({submission.claimed_by}) stopped answering; "
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
    # together; the batches' rows once each, in id order, after the orders.
    with transaction.atomic():
        with batch_totals.deferred():
            outcome, batch_ids = _card_updates_apply(account=account, updates=updates, actor=actor)
        _complete_finished_batches(batch_ids)
    return outcome


def _card_updates_apply(*, account: ProviderAccount, updates: list[CardUpdate], actor: str) -> tuple[str, set[int]]:
    """What the updates changed, in words, and the batches of the orders they moved."""
    changed, ignored, kept = 0, 0, 0
    batch_ids = set()
    for update in updates:
        orders = Order.objects.filter(batch__account=account)
        if update.order_reference:
            orders = orders.filter(reference=update.order_reference)
        elif update.provider_order_id:
            orders = orders.filter(provider_order_id=update.provider_order_id)
        else:
            ignored += 1
            continue
        new_status = CARD_STATUS[update.status]
        for order in orders.filter(status=OrderStatus.PROCESSING):
            if new_status == OrderStatus.DELIVERED and _delivery_later(order):
                kept += 1  # delivered on its date, not before: it stays processing until then
                continue
            if new_status == order.status:
                continue
            now = timezone.now()
            fields = {"status": new_status, "updated_at": now, "last_error": update.error,
                      "completed_at": now if new_status in TERMINAL_STATUSES else None}
            if update.details:
                fields["provider_details"] = {**order.provider_details, **update.details}
            if update.provider_card_id:
                fields.update(Order.card_code_columns(update.provider_card_id))
            if new_status == OrderStatus.FAILED:
                fields["definitely_refused"] = True  # the provider itself reports the card failed
            if Order.objects.filter(pk=order.pk, status=order.status).update(**fields):
                events.record_transition([order], to_status=new_status, actor=actor,
                                         message=update.error or "Reported by the provider's webhook.")
                changed += 1
                batch_ids.add(order.batch_id)
    return (f"{plural(changed, 'order')} updated"
            + (f", {plural(ignored, 'update')} without an order reference" if ignored else "")
            + (f", {kept:,} kept processing until their delivery date" if kept else "")), batch_ids
