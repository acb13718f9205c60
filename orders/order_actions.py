"""What staff do to single orders (issue 9, "Per-card actions"): retry the ones the provider
refused, resend one to a corrected email, cancel the ones not yet sent.

The rule behind all three: a new idempotency key is only ever used for an order the
provider definitely did not create (`Order.definitely_refused`, set by orders.dispatch).
An order whose first outcome is unknown is never bought again under a new key: it is
reconciled with its own key, or looked up, by the engine.

The `*_plan` functions are reads for the confirmation pages: what an action would do to
which orders, the money per currency, and what it leaves out and why. The services check
the same things again, under locks, and act in one transaction that also writes the order
events and the audit trail. Nothing here imports the admin.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import transaction
from django.db.models import F, Prefetch, QuerySet
from django.utils import timezone

from audit.models import AuditAction
from audit.services import record as audit_record
from orders import events
from orders.approvals import approval_reasons
from orders.batch_access import may_send_or_cancel_batch
from orders.batches import (
    BatchActionRefused,
    SendOutcome,
    batch_send,
    batch_state_after_cancel,
    new_order_reference,
    orders_not_held,
)
from orders.models import Batch, BatchState, Order, OrderStatus, Recipient
from orders.money import totals_add, totals_text
from providers.models import ProviderAccount
from providers.services import BalanceUnknown, account_balance_fresh

UNKNOWN_OUTCOME = ("GiftDesk is still finding out whether the provider created this card; it is never "
                   "bought again under a new key")
NOT_ALLOWED = ("only its batch's uploader, an approver or an administrator may {verb} it; ask one of them")
REFERENCES_NAMED = 20  # in an audit entry's summary; the entry's amounts cover them all


class OrderActionRefused(Exception):
    """A per-card action that cannot be done; the message says why, to staff."""


@dataclass(frozen=True)
class LeftOut:
    """An order an action does not touch, and why (one clause, for "REFERENCE: why")."""

    order: Order
    reason: str


def _totals(orders: Iterable[Order]) -> dict[str, Decimal]:
    return totals_add((order.currency, order.amount) for order in orders)


@dataclass
class BatchPart:
    """The orders of one batch an action will touch."""

    batch: Batch
    orders: list[Order]

    @property
    def totals_text(self) -> str:
        return totals_text(_totals(self.orders))


@dataclass
class ActionPlan:
    """What an action would do: `orders` it acts on, `left_out` with their reasons."""

    orders: list[Order]
    left_out: list[LeftOut]

    @property
    def totals(self) -> dict[str, Decimal]:
        return _totals(self.orders)

    @property
    def totals_text(self) -> str:
        return totals_text(self.totals)

    @property
    def left_out_totals_text(self) -> str:
        return totals_text(_totals(entry.order for entry in self.left_out))

    @property
    def digest(self) -> str:
        """What the person confirming saw: the confirmation is refused when it no longer
        matches (an order failed, was sent or was cancelled meanwhile)."""
        return hashlib.sha256(repr(sorted(order.pk for order in self.orders)).encode()).hexdigest()

    def by_batch(self) -> list[BatchPart]:
        parts: dict[int, BatchPart] = {}
        for order in self.orders:
            parts.setdefault(order.batch_id, BatchPart(batch=order.batch, orders=[])).orders.append(order)
        return list(parts.values())


# --- What each order is doing, in words ------------------------------------------------------------


def _provider(order: Order) -> str:
    return order.batch.account.get_kind_display()


def _in_doubt(order: Order) -> bool:
    return bool(order.submission_id and order.submission.outcome_unknown)


def _doing(order: Order) -> str:
    provider = _provider(order)
    return {
        OrderStatus.PENDING: "is pending: it has not been sent yet",
        OrderStatus.QUEUED: "is queued: it is about to be sent",
        OrderStatus.SENDING: f"is being sent to {provider} right now",
        OrderStatus.PROCESSING: f"was accepted by {provider}, which is fulfilling it",
        OrderStatus.DELIVERED: "is delivered",
        OrderStatus.FAILED: "has failed",
        OrderStatus.CANCELLED: "is cancelled",
    }.get(order.status, f"is {order.status}")


class _Access:
    """may_send_or_cancel_batch, asked once per batch however many of its orders are selected."""

    def __init__(self, user) -> None:
        self.user = user
        self._allowed: dict[int, bool] = {}

    def __call__(self, batch: Batch) -> bool:
        if batch.pk not in self._allowed:
            self._allowed[batch.pk] = may_send_or_cancel_batch(self.user, batch)
        return self._allowed[batch.pk]


def _new_key_refusal(order: Order, may: _Access, *, verb: str) -> str | None:
    """Why `order` may not be sent again under a new key (retried or resent); None when it
    may: failed, definitely refused by the provider, not resent already."""
    if not may(order.batch):
        return NOT_ALLOWED.format(verb=verb)
    if order.status == OrderStatus.SENDING and _in_doubt(order):
        return UNKNOWN_OUTCOME
    if order.status != OrderStatus.FAILED:
        return f"{_doing(order)}; only failed orders are {_past(verb)}"
    # Prefetched by _loaded. A resend cancelled before it was sent bought nothing.
    resend = next((other for other in order.resends.all() if other.status != OrderStatus.CANCELLED), None)
    if resend is not None:
        return (f"it was already resent to {resend.recipient.email} as {resend.reference}; sending it "
                "again would buy a second card (if that one fails, act on it instead)")
    if not order.definitely_refused or _in_doubt(order):
        return (f"{_provider(order)} never said it refused this card ({order.last_error or 'no reason given'}), "
                "so it may have been created; it is never bought again under a new key. Check it with "
                "the provider first (manage.py reconcile)")
    return None


def _past(verb: str) -> str:
    return {"retry": "retried", "resend": "resent", "cancel": "cancelled"}[verb]


def _cancel_refusal(order: Order, may: _Access) -> str | None:
    if not may(order.batch):
        return NOT_ALLOWED.format(verb="cancel")
    if order.status in (OrderStatus.PENDING, OrderStatus.QUEUED):
        return None
    if order.status == OrderStatus.SENDING and _in_doubt(order):
        return f"{UNKNOWN_OUTCOME}: it can no longer be cancelled"
    if order.status in (OrderStatus.SENDING, OrderStatus.PROCESSING):
        return f"{_doing(order)}: it is with the provider and can no longer be cancelled"
    return f"{_doing(order)}: there is nothing left to cancel"


# --- Plans (reads for the confirmation pages) ---------------------------------------------------------


def _loaded(orders: Iterable[Order] | QuerySet) -> list[Order]:
    # A queryset stays a subquery: a selection across every page can be long.
    ids = orders.values("pk") if isinstance(orders, QuerySet) else [order.pk for order in orders]
    return list(Order.objects.filter(pk__in=ids).select_related(
        "batch__account", "batch__created_by", "submission", "recipient", "product").prefetch_related(
        Prefetch("resends", queryset=Order.objects.select_related("recipient").order_by("id"))
    ).order_by("batch_id", "id"))


def _plan(orders: list[Order], refusal) -> ActionPlan:
    plan = ActionPlan(orders=[], left_out=[])
    for order in orders:
        reason = refusal(order)
        if reason:
            plan.left_out.append(LeftOut(order, reason))
        else:
            plan.orders.append(order)
    return plan


def retry_plan(orders, user) -> ActionPlan:
    """Which of `orders` a retry would send again (failed, definitely refused), and which it
    leaves out with why."""
    may = _Access(user)
    return _plan(_loaded(orders), lambda order: _new_key_refusal(order, may, verb="retry"))


def retry_approval(part: BatchPart) -> list[str]:
    """Why sending `part` again will wait for an approver (with the batch's other pending
    orders, as batch_send counts them); empty when it will not."""
    if part.batch.state == BatchState.AWAITING_APPROVAL:
        return [f"“{part.batch}” already waits for an approver; these orders wait with it"]
    pending = Order.objects.filter(batch=part.batch, status=OrderStatus.PENDING).exclude(
        pk__in=[order.pk for order in part.orders])
    return approval_reasons(totals_add([*((order.currency, order.amount) for order in part.orders),
                                        *pending.values_list("currency", "amount")]))


def cancel_plan(orders, user) -> ActionPlan:
    """Which of `orders` a cancel would stop (pending or queued), and which it leaves out."""
    may = _Access(user)
    return _plan(_loaded(orders), lambda order: _cancel_refusal(order, may))


def resend_refusal(order: Order, user) -> str | None:
    """Why `order` cannot be resent by `user`; None when it can."""
    return _new_key_refusal(_loaded([order])[0], _Access(user), verb="resend")


# --- Retry ------------------------------------------------------------------------------------------


@dataclass
class RetryResult:
    retried: list[Order]
    left_out: list[LeftOut]
    sent: list[str] = field(default_factory=list)  # each batch's send outcome, one sentence each

    @property
    def totals(self) -> dict[str, Decimal]:
        return _totals(self.retried)

    @property
    def message(self) -> str:
        count = len(self.retried)
        parts = [f"Retried {count} order{'s' if count != 1 else ''} ({totals_text(self.totals)})."
                 if count else "Nothing was retried."]
        parts.extend(self.sent)
        return " ".join(parts)


def _username(user) -> str:
    return user.get_username() if user else "system"


def _references(orders: list[Order]) -> str:
    named = ", ".join(order.reference for order in orders[:REFERENCES_NAMED])
    return named + (f" and {len(orders) - REFERENCES_NAMED} more" if len(orders) > REFERENCES_NAMED else "")


def _wallets_asked_first(account_ids: Iterable[int]) -> None:
    """Ask the wallets that Send's funds check reads before any batch is locked. Asked under a
    batch's lock, a balance is stored (the account's row) while a worker's claim may hold that
    row and wait for the batch's row to count what it claimed (orders.batch_totals)."""
    for account in ProviderAccount.objects.filter(pk__in=set(account_ids)).order_by("pk"):
        try:
            account_balance_fresh(account=account)
        except BalanceUnknown:
            pass  # the funds check says so


def _lock_batches(batch_ids: Iterable[int]) -> dict[int, Batch]:
    # Batches first, in one order, as batch_send and batch_cancel lock them: no deadlock.
    return {batch.pk: batch for batch in Batch.objects.select_for_update(of=("self",)).select_related("account")
            .filter(pk__in=set(batch_ids)).order_by("pk")}


@transaction.atomic
def orders_retry(orders, user) -> RetryResult:
    """Send again, each under a new idempotency key, the orders the provider definitely
    refused; leave every other order as it is, with why. Each batch is then sent as Send
    would (approval, schedule, limits); a batch the send refuses keeps its orders failed."""
    loaded = _loaded(orders)
    _wallets_asked_first(order.batch.account_id for order in loaded if order.status == OrderStatus.FAILED)
    _lock_batches(order.batch_id for order in loaded)
    plan = retry_plan(loaded, user)
    result = RetryResult(retried=[], left_out=list(plan.left_out))
    actor = _username(user)
    for part in plan.by_batch():
        try:
            with transaction.atomic():  # a batch the send refuses is left as it was
                retried = _retry_part(part, user=user, actor=actor)
                if retried:
                    result.sent.append(_send_again(part.batch, user=user))
        except BatchActionRefused as exc:
            result.left_out.extend(LeftOut(order, f"not retried: {exc}") for order in part.orders)
            continue
        result.retried.extend(retried)
        lost = set(part.orders) - set(retried)
        result.left_out.extend(LeftOut(order, "it changed while this was being done: look at it again")
                               for order in part.orders if order in lost)
    return result


def _retry_part(part: BatchPart, *, user, actor: str) -> list[Order]:
    now = timezone.now()
    retried = []
    for order in part.orders:
        # Conditional: only a failed, refused order becomes pending again, once.
        if not Order.objects.filter(pk=order.pk, status=OrderStatus.FAILED, definitely_refused=True).update(
            status=OrderStatus.PENDING, retries=F("retries") + 1, submission=None, definitely_refused=False,
            last_error="", waiting_reason="", queued_at=None, submitted_at=None, completed_at=None,
            updated_at=now,
        ):
            continue
        order.refresh_from_db(fields=["retries"])
        events.record_transition(
            [order], from_status=OrderStatus.FAILED, to_status=OrderStatus.PENDING, actor=actor,
            message=f"Retried by {actor} (retry {order.retries}): sent again under a new idempotency key.",
        )
        order.status = OrderStatus.PENDING
        retried.append(order)
    if retried:
        totals = _totals(retried)
        audit_record(AuditAction.RETRY, user=user, target=part.batch, amounts=totals,
                     summary=f"Retried {len(retried)} failed order{'s' if len(retried) != 1 else ''} the provider "
                             f"refused ({_references(retried)}), {totals_text(totals)}, under new idempotency keys.")
    return retried


def _send_again(batch: Batch, *, user) -> str:
    """The retried (or resent) orders are pending: send them as Send would. A batch already
    waiting for an approver keeps them with it (the approver sees them)."""
    batch.refresh_from_db(fields=["state"])
    if batch.state == BatchState.AWAITING_APPROVAL:
        return f"“{batch}” already waits for an approver; the orders wait with it."
    outcome: SendOutcome = batch_send(batch=batch, user=user)
    return outcome.message


# --- Resend -----------------------------------------------------------------------------------------


def _clean_email(email: str, *, old: str) -> str:
    email = (email or "").strip()
    if not email:
        raise OrderActionRefused("Give the corrected email address.")
    if email.lower() == (old or "").strip().lower():
        raise OrderActionRefused(f"{email} is the address the card was already sent to: give the corrected one.")
    try:
        EmailValidator()(email)
    except ValidationError:
        raise OrderActionRefused(f"“{email}” is not a valid email address.") from None
    if len(email) > Recipient._meta.get_field("email").max_length:
        raise OrderActionRefused("That email address is too long.")
    return email


def _clean_name(name: str | None, *, old: str) -> str:
    name = (name or "").strip() or old
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise OrderActionRefused("The name contains an invisible control character; retype it.")
    limit = Recipient._meta.get_field("name").max_length
    if len(name) > limit:
        raise OrderActionRefused(f"The name is longer than {limit} characters.")
    return name


@transaction.atomic
def order_resend(order: Order, *, email: str, name: str | None = None, user) -> Order:
    """A new order for the same card to a corrected email, linked to `order` (a failed order
    the provider definitely refused), in the same batch, then sent as Send would.

    Returns the new order; its `send_outcome` attribute is the batch send's sentence.
    Raises OrderActionRefused with the reason, and then nothing is created."""
    _wallets_asked_first(Batch.objects.filter(pk=order.batch_id).values_list("account_id", flat=True))
    _lock_batches([order.batch_id])
    list(Order.objects.select_for_update().filter(pk=order.pk).values_list("pk", flat=True))  # lock, then read
    original = _loaded([order])[0]
    refusal = _new_key_refusal(original, _Access(user), verb="resend")
    if refusal:
        raise OrderActionRefused(f"{original.reference} was not resent: {refusal}.")
    email = _clean_email(email, old=original.recipient.email)
    name = _clean_name(name, old=original.recipient.name)
    actor = _username(user)
    old = original.recipient
    recipient = Recipient.objects.create(name=name, email=email, phone=old.phone, reference=old.reference)
    today = timezone.localdate()
    resend = Order.objects.create(
        batch=original.batch, recipient=recipient, product=original.product, amount=original.amount,
        currency=original.currency, message=original.message, reference=new_order_reference(),
        # A delivery date already past would be refused: the resend goes now.
        send_on=original.send_on if original.send_on and original.send_on >= today else None,
        source_row=original.source_row, resend_of=original,
    )
    events.record_transition(
        [resend], from_status="", to_status=OrderStatus.PENDING, actor=actor,
        message=f"Resend of {original.reference} (refused: {original.last_error or 'no reason given'}) "
                f"to {email}, by {actor}.")
    events.record_note([original], actor=actor,
                       message=f"Resent to {email} (was {old.email}) as {resend.reference} by {actor}.")
    audit_record(AuditAction.RESEND, user=user, target=resend, amounts={resend.currency: resend.amount},
                 summary=f"Resent {original.reference} ({totals_text({resend.currency: resend.amount})}) to "
                         f"{email} instead of {old.email}, as {resend.reference}.")
    try:
        resend.send_outcome = _send_again(original.batch, user=user)
    except BatchActionRefused as exc:
        raise OrderActionRefused(f"{original.reference} was not resent: {exc}") from None
    resend.refresh_from_db()
    return resend


# --- Cancel -----------------------------------------------------------------------------------------


@dataclass
class CancelResult:
    cancelled: list[Order]
    left_out: list[LeftOut]

    @property
    def totals(self) -> dict[str, Decimal]:
        return _totals(self.cancelled)

    @property
    def message(self) -> str:
        count = len(self.cancelled)
        if not count:
            return "Nothing was cancelled."
        return f"Cancelled {count} order{'s' if count != 1 else ''} not yet sent ({totals_text(self.totals)})."


@transaction.atomic
def orders_cancel(orders, user) -> CancelResult:
    """Cancel the orders not yet with the provider (pending or queued); leave the others as
    they are, each with what it is doing. Each batch's state follows, as batch_cancel's."""
    loaded = _loaded(orders)
    batches = _lock_batches(order.batch_id for order in loaded)
    plan = cancel_plan(loaded, user)
    result = CancelResult(cancelled=[], left_out=list(plan.left_out))
    actor = _username(user)
    now = timezone.now()
    for part in plan.by_batch():
        cancelled = []
        free = set(orders_not_held(Order.objects.filter(pk__in=[order.pk for order in part.orders]).order_by())
                   .values_list("pk", flat=True))
        for order in part.orders:
            if order.pk not in free:  # waited for, it would deadlock (orders.batches.orders_not_held)
                result.left_out.append(LeftOut(order, "a worker held it at that instant (it may be sending it), so it "
                                                      "was not cancelled: look at it again"))
                continue
            # Conditional: an order a worker claimed a moment ago is with the provider now.
            if Order.objects.filter(pk=order.pk, status=order.status).update(
                status=OrderStatus.CANCELLED, completed_at=now, updated_at=now, waiting_reason="",
            ):
                cancelled.append(order)
            else:
                result.left_out.append(LeftOut(order, "a worker took it to send just now: it is with the provider"))
        if not cancelled:
            continue
        for status in {order.status for order in cancelled}:
            events.record_transition([order for order in cancelled if order.status == status],
                                     from_status=status, to_status=OrderStatus.CANCELLED, actor=actor,
                                     message=f"Cancelled by {actor}.")
        totals = _totals(cancelled)
        audit_record(AuditAction.CANCEL, user=user, target=part.batch, amounts=totals,
                     summary=f"Cancelled {len(cancelled)} order{'s' if len(cancelled) != 1 else ''} not yet "
                             f"sent ({_references(cancelled)}), {totals_text(totals)}.")
        batch_state_after_cancel(batches[part.batch.pk])
        for order in cancelled:
            order.status = OrderStatus.CANCELLED
        result.cancelled.extend(cancelled)
    return result
