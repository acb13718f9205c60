"""Reconciliation: ask each provider what became of the orders it accepted, and report every
difference with what GiftDesk has.

Which orders: created on or after a day (server time zone, as `export_orders --from`), of
one account or of every active one, that the provider accepted (`processing`, `delivered`),
and those marked `failed` whose request did reach the provider (its submission stored a
provider reference, or the order a provider order id): a card the provider has but GiftDesk
marked failed is money spent and unseen. Each provider order (submission) is asked about
once, through the provider client's status lookup (`fetch_status`), within the account's
rate limit and with every call recorded on its orders, the way the delivery engine polls
(orders.dispatch).

A reconciliation only reports. It never changes an order, a submission or an account: what
it finds is for a person to look into. Where a provider documents no order lookup (GoGift)
its orders are counted as "not checked", never guessed. A lookup that fails is a difference
("could not ask"): unchecked is not agreement.

A run can outlast one task (Gifty allows 120 requests a minute), so it runs in slices: each
claims the run, asks until its time is up, saves where it stopped (the last submission asked
about) and lets go; the admin's task queues the next slice, the command loops. A slice whose
process died (killed, a machine lost) leaves its claim to expire; a run nobody took up again
long after that is marked failed when the next reconciliation starts, never left "running".
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditAction
from audit.services import record as audit_record
from giftdesk.text import plural
from orders.dispatch import CARD_STATUS, status_request, submission_client
from orders.exports import ExportCriteria
from orders.models import BOUGHT_STATUSES, Order, OrderStatus, Reconciliation, ReconciliationState, Submission
from providers.clients import client_class
from providers.clients.base import CardResult, PermanentError, ProviderError, RateLimited, TransientError
from providers.models import ProviderAccount

DEFAULT_DAYS = 30
# The report keeps this many lines (the count of differences stays exact): enough to work
# through, and a provider that forgot everything cannot make the row unreadably large.
REPORT_LINES_KEPT = 5000
CENT = Decimal("0.01")
NO_LOOKUP = "{provider} documents no order lookup"
SUBMISSIONS_PER_PAGE = 100
# A provider's own 429 (with Retry-After) during a lookup: asked again this often before the
# lookup counts as "could not ask".
PROVIDER_LIMIT_RETRIES = 3


class Kind(models.TextChoices):
    """What a report line says differs."""

    UNKNOWN = "unknown", "Not known to the provider"
    STATUS = "status", "Status differs"
    COST = "cost", "Cost differs"
    UNCHECKED = "unchecked", "Could not ask"


def default_since() -> date:
    return timezone.localdate() - timedelta(days=DEFAULT_DAYS)


def scope_text(account: ProviderAccount | None) -> str:
    return str(account) if account is not None else "every active account"


def slice_seconds() -> float:
    """How long one slice asks: well inside a task's timeout, leaving room for the last lookup."""
    return settings.Q_TIMEOUT_SECONDS * 0.6


def stale_after() -> timedelta:
    """A run whose claim ran out this long ago (or never claimed, created this long ago) has
    nobody left to take it up: longer than the queue takes to hand a lost task out again
    (its `retry`, three timeouts)."""
    return timedelta(seconds=settings.Q_TIMEOUT_SECONDS * 5)


# --- Which orders ----------------------------------------------------------------------------------


def orders_to_reconcile(*, account: ProviderAccount | None, since: date) -> QuerySet:
    """The orders a reconciliation asks about (see the module's docstring)."""
    orders = ExportCriteria(created_from=since, account=account).queryset()
    if account is None:
        orders = orders.filter(batch__account__is_active=True)
    reached = ~Q(provider_order_id="") | Q(submission__provider_reference__gt="")
    return orders.filter(Q(status__in=BOUGHT_STATUSES) | (Q(status=OrderStatus.FAILED) & reached))


# --- Starting ------------------------------------------------------------------------------------------


def reconciliation_start(*, user=None, account: ProviderAccount | None = None, since: date | None = None,
                         how: str = "") -> Reconciliation:
    """A new reconciliation, running, and its audit entry (who asked, from where, for what)."""
    since = since or default_since()
    with transaction.atomic():
        reconciliation = Reconciliation.objects.create(requested_by=user, account=account, since=since)
        audit_record(AuditAction.RECONCILE, user=user, target=reconciliation, summary=(
            f"Started {reconciliation}: asked the providers what became of the orders of {scope_text(account)} "
            f"created since {since.isoformat()}{' ' + how if how else ''}. It only reads; no order is changed."))
    return reconciliation


def reconciliation_request(*, user, account: ProviderAccount) -> tuple[Reconciliation, bool]:
    """The admin's "Reconcile with the provider": a reconciliation of the account's last
    DEFAULT_DAYS days, run by a worker. One already running for the account is returned
    instead (False) rather than asking the provider everything twice."""
    stale_reconciliations_stop()
    running = Reconciliation.objects.filter(account=account, state=ReconciliationState.RUNNING).first()
    if running is not None:
        return running, False
    reconciliation = reconciliation_start(user=user, account=account)
    transaction.on_commit(lambda: reconciliation_queue(reconciliation.pk))
    return reconciliation, True


def reconciliation_queue(reconciliation_id: int) -> None:
    """Queue `orders.tasks.reconcile` (named by its path: tasks.py imports this module)."""
    async_task("orders.tasks.reconcile", reconciliation_id, task_name=f"reconcile-{reconciliation_id}",
               group="giftdesk-reconcile")


def stale_reconciliations_stop() -> int:
    """Mark failed the runs nobody is running any more (a worker or a command killed mid-run),
    so none shows as running for ever and a new one can start. Returns how many."""
    now = timezone.now()
    cutoff = now - stale_after()
    error = (f"Stopped: the process running it ended before it finished, and nobody took it up again "
             f"(noticed {timezone.localtime(now):%Y-%m-%d %H:%M}). Start a new reconciliation.")
    # Conditional: a slice that claims the run first keeps it (its claim moves past the cutoff).
    return Reconciliation.objects.filter(
        Q(claimed_until__lt=cutoff) | Q(claimed_until__isnull=True, created_at__lt=cutoff),
        state=ReconciliationState.RUNNING,
    ).update(state=ReconciliationState.FAILED, error=error, summary=f"The reconciliation did not finish: {error}",
             finished_at=now)


# --- Running --------------------------------------------------------------------------------------------


class _Slice:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)


def reconciliation_run(reconciliation_id: int, *, budget_seconds: float | None = None) -> bool | None:
    """Run the next slice of a reconciliation, asking for at most `budget_seconds` (default
    `slice_seconds()`). Returns True when it is finished, False when more remains (run it
    again), None when it was not this caller's to run (finished, or held by another slice).
    Safe to run twice, and in two workers at once: one claims, the other gets None."""
    budget = slice_seconds() if budget_seconds is None else budget_seconds
    now = timezone.now()
    claimed = Reconciliation.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lte=now), pk=reconciliation_id,
        state=ReconciliationState.RUNNING,
    ).update(claimed_until=now + timedelta(seconds=budget + settings.Q_TIMEOUT_SECONDS),
             started_at=Coalesce("started_at", now))
    if not claimed:
        return None
    reconciliation = Reconciliation.objects.select_related("account").get(pk=reconciliation_id)
    try:
        done = _run_slice(reconciliation, _Slice(budget))
    except BaseException as exc:  # Ctrl-C too: a run nobody finishes must not show as running
        _finish_failed(reconciliation, f"{type(exc).__name__}: {exc}".removesuffix(": "))
        raise
    if done:
        _finish(reconciliation)
    else:
        _save_progress(reconciliation, release=True)
    return done


def _run_slice(reconciliation: Reconciliation, work: _Slice) -> bool:
    orders = orders_to_reconcile(account=reconciliation.account, since=reconciliation.since)
    asked = 0  # every slice asks about one submission at least, however small its budget
    while True:
        page = list(
            orders.filter(submission_id__gt=reconciliation.cursor).order_by("submission_id")
            .values_list("submission_id", flat=True).distinct()[:SUBMISSIONS_PER_PAGE]
        )
        if not page:
            break
        for submission_id in page:
            if asked and not work.left():
                return False
            submission = Submission.objects.select_related("account").get(pk=submission_id)
            group = list(orders.filter(submission_id=submission_id).select_related("recipient").order_by("id"))
            if not _reconcile_submission(reconciliation, submission, group, work):
                return False  # held back by the rate limit past the slice's end: the next slice asks
            reconciliation.cursor = submission_id
            asked += 1
        _save_progress(reconciliation, release=False)  # a slice that dies resumes from here
    # Orders without a submission were never sent through the engine: nothing to ask by.
    for order in orders.filter(submission__isnull=True).select_related("recipient").order_by("id"):
        _add_lines(reconciliation, [_could_not_ask(order, "GiftDesk holds no provider order to look it up by.")])
    return True


def _reconcile_submission(reconciliation: Reconciliation, submission: Submission, group: list[Order],
                          work: _Slice) -> bool:
    """Ask about one provider order and note what differs. False: the account's rate limit
    held the lookup back for longer than the slice has left."""
    provider_class = client_class(submission.account.kind)
    provider = provider_class.display_name
    if not provider_class.supports_status:
        reconciliation.orders_not_checkable += len(group)
        counts = reconciliation.not_checkable_by_provider
        counts[provider] = counts.get(provider, 0) + len(group)
        return True
    if not submission.provider_reference:
        # The engine stores the reference of every request a provider accepted: this one
        # has nothing to be looked up by.
        _add_lines(reconciliation, [_could_not_ask(order, f"GiftDesk holds no {provider} reference for it.")
                                    for order in group])
        return True
    lines = _ask(reconciliation, submission, group, provider, work)
    if lines is None:
        return False
    reconciliation.orders_checked += len(group)
    if submission.account_id not in reconciliation.checked_account_ids:
        reconciliation.checked_account_ids.append(submission.account_id)
    _add_lines(reconciliation, lines)
    return True


def _ask(reconciliation: Reconciliation, submission: Submission, orders: list[Order], provider: str,
         work: _Slice) -> list[dict] | None:
    """The differences between `orders` and what the provider says of the submission's order;
    None when a rate limit holds the lookup back for longer than the slice has left."""
    provider_limit_retries = 0
    while True:
        client, _ = submission_client(submission, [order.pk for order in orders], actor=str(reconciliation),
                                      lookup=True)
        try:
            result = client.fetch_status(status_request(submission, orders))
        except TransientError as exc:
            # GiftDesk's own limiter (RateLimited: nothing was sent), or the provider's 429:
            # wait as told, if the slice can, and ask again.
            ours = isinstance(exc, RateLimited)
            told_to_wait = ours or (exc.status_code == 429 and exc.retry_after is not None)
            if not told_to_wait or (not ours and provider_limit_retries >= PROVIDER_LIMIT_RETRIES):
                return [_could_not_ask(order, _without_retry_promise(exc)) for order in orders]
            wait = exc.retry_after or 1.0
            if wait >= work.left():
                return None
            provider_limit_retries += not ours
            time.sleep(wait)
            continue
        except PermanentError as exc:
            if exc.status_code == 404:
                # The provider has no such order: none of its cards.
                return [line for order in orders if (line := _compare(order, None, provider))]
            return [_could_not_ask(order, _without_retry_promise(exc)) for order in orders]
        except ProviderError as exc:
            return [_could_not_ask(order, _without_retry_promise(exc)) for order in orders]
        by_reference = {card.order_reference: card for card in result.cards}
        return [line for order in orders if (line := _compare(order, by_reference.get(order.reference), provider))]


# --- Comparing -----------------------------------------------------------------------------------------


def _compare(order: Order, card: CardResult | None, provider: str) -> dict | None:
    """The difference between GiftDesk's order and the provider's card, or None when they agree.

    GiftDesk `processing` while the provider has delivered agrees: the engine's next lookup
    records it. Costs are compared where the provider reports one and the card is bought."""
    ours = order.status
    if card is None:
        if ours == OrderStatus.FAILED:
            return None  # neither has a card
        return _line(order, Kind.UNKNOWN, _status_name(ours), "not known",
                     f"the provider does not know this card: {provider} has no such card, GiftDesk has it as "
                     f"{_status_name(ours)}.")
    theirs = CARD_STATUS[card.status]
    if ours == OrderStatus.FAILED:
        if theirs == OrderStatus.FAILED:
            return None
        return _line(order, Kind.STATUS, _status_name(ours), _status_name(theirs),
                     f"{provider} has this card as {_status_name(theirs)}, but GiftDesk marked it failed: it "
                     "was bought and is probably charged for.")
    if theirs == OrderStatus.FAILED:
        why = f" ({card.error.rstrip('.')})" if card.error else ""
        return _line(order, Kind.STATUS, _status_name(ours), _status_name(theirs),
                     f"{provider} has this card as failed{why}, GiftDesk as {_status_name(ours)}.")
    if ours == OrderStatus.DELIVERED and theirs == OrderStatus.PROCESSING:
        return _line(order, Kind.STATUS, _status_name(ours), _status_name(theirs),
                     f"{provider} is still fulfilling this card, GiftDesk has it as delivered.")
    return _cost_difference(order, card, provider)


def _cost_difference(order: Order, card: CardResult, provider: str) -> dict | None:
    if card.cost is None:
        return None
    theirs = _money(card.cost, card.cost_currency)
    if order.cost is None:
        if order.status != OrderStatus.DELIVERED:
            return None  # still being fulfilled: the cost is recorded with the outcome
        return _line(order, Kind.COST, "no cost recorded", theirs,
                     f"{provider} charged {theirs} for this card; GiftDesk recorded no cost.")
    same_amount = order.cost.quantize(CENT) == card.cost.quantize(CENT)
    same_currency = not card.cost_currency or card.cost_currency.upper() == (order.cost_currency or "").upper()
    if same_amount and same_currency:
        return None
    ours = _money(order.cost, order.cost_currency)
    return _line(order, Kind.COST, ours, theirs,
                 f"the cost differs: {provider} charged {theirs}, GiftDesk recorded {ours}.")


def _without_retry_promise(exc: ProviderError) -> str:
    # The clients' errors are written for the engine ("It will be retried."): a
    # reconciliation makes no retry, so the promise is left out.
    return exc.message.partition(" It will be ")[0]


def _could_not_ask(order: Order, reason: str) -> dict:
    return _line(order, Kind.UNCHECKED, _status_name(order.status), "", f"could not ask: {reason}")


def _line(order: Order, kind: Kind, ours: str, theirs: str, message: str) -> dict:
    return {
        "order_id": order.pk,
        "reference": order.reference,
        "email": order.recipient.email,
        "spreadsheet_reference": order.recipient.reference,
        "kind": kind.value,
        "ours": ours,
        "theirs": theirs,
        "message": message,
    }


def _status_name(status: str) -> str:
    return OrderStatus(status).label.lower()


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(CENT):,} {currency}".strip()


# --- Recording -------------------------------------------------------------------------------------------


def _add_lines(reconciliation: Reconciliation, lines: list[dict]) -> None:
    reconciliation.differences_count += len(lines)
    room = REPORT_LINES_KEPT - len(reconciliation.lines)
    if room > 0:
        reconciliation.lines.extend(lines[:room])


PROGRESS_FIELDS = ["cursor", "orders_checked", "orders_not_checkable", "differences_count", "lines",
                   "checked_account_ids", "not_checkable_by_provider"]


def _progress(reconciliation: Reconciliation) -> dict:
    return {name: getattr(reconciliation, name) for name in PROGRESS_FIELDS}


def _save_progress(reconciliation: Reconciliation, *, release: bool) -> None:
    # Let go: the claim ends now (not cleared), so it also says when the run last moved.
    extra = {"claimed_until": timezone.now()} if release else {}
    Reconciliation.objects.filter(pk=reconciliation.pk, state=ReconciliationState.RUNNING).update(
        **_progress(reconciliation), **extra)


def _finish(reconciliation: Reconciliation) -> None:
    state = ReconciliationState.DIFFERENCES if reconciliation.differences_count else ReconciliationState.AGREED
    Reconciliation.objects.filter(pk=reconciliation.pk, state=ReconciliationState.RUNNING).update(
        **_progress(reconciliation), state=state, summary=summary_text(reconciliation),
        finished_at=timezone.now(), claimed_until=None)


def _finish_failed(reconciliation: Reconciliation, error: str) -> None:
    Reconciliation.objects.filter(pk=reconciliation.pk, state=ReconciliationState.RUNNING).update(
        **_progress(reconciliation), state=ReconciliationState.FAILED, error=error,
        summary=f"The reconciliation did not finish: {error}", finished_at=timezone.now(), claimed_until=None)


def summary_text(reconciliation: Reconciliation) -> str:
    """“Checked 120 orders on 3 accounts: 2 differences; 40 GoGift orders not checked: GoGift
    documents no order lookup.”"""
    accounts = len(reconciliation.checked_account_ids)
    found = reconciliation.differences_count
    if found:
        outcome = plural(found, "difference")
        if found > len(reconciliation.lines):
            outcome += f" (the first {len(reconciliation.lines):,} listed)"
    else:
        outcome = "everything agrees" if reconciliation.orders_checked else "nothing to compare"
    text = f"Checked {plural(reconciliation.orders_checked, 'order')} on {plural(accounts, 'account')}: {outcome}"
    for provider, count in sorted(reconciliation.not_checkable_by_provider.items()):
        text += f"; {plural(count, f'{provider} order')} not checked: {NO_LOOKUP.format(provider=provider)}"
    return text + "."


def line_text(line: dict) -> str:
    """One report line as the command prints it: the order, whom it was for, what differs."""
    spreadsheet = line["spreadsheet_reference"] or "none"
    return (f"Order {line['order_id']} ({line['reference']}, {line['email']}, spreadsheet reference "
            f"{spreadsheet}): {line['message']}")
