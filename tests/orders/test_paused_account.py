"""A paused account stays honest (issue 9; DESIGN.md, engine rules 5 and 9), against the four
emulators over real HTTP.

A request the provider refused for the whole account (402, 401, 403) bought nothing: its
orders go back to waiting, with the reason, and can be cancelled. A request whose outcome is
unknown is only ever retried with its own key. Cards the provider accepted are still looked
up while the account is paused. Resume checks the connection first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from emulators.giftronaut import ORDER_PATH as GIFTRONAUT_ORDER_PATH
from emulators.gifty import ORDERS_PATH as GIFTY_ORDERS_PATH
from emulators.ugiftme import BOL_CARD
from orders import dispatch
from orders.batches import BatchActionRefused, batch_cancel, batch_create, batch_send
from orders.models import Batch, BatchState, EventKind, Order, OrderStatus, Submission, SubmissionState
from orders.spreadsheet import ValidRow
from providers.models import Product, ProviderAccount
from providers.services import account_configure
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD

PAUSED = "Sending is paused for the account: "


@pytest.fixture(autouse=True)
def fast_engine(settings):
    settings.GIFTDESK_RETRY_BASE_SECONDS = 0.05
    settings.GIFTDESK_RETRY_MAX_SECONDS = 0.2
    settings.GIFTDESK_POLL_SECONDS = 0.05  # asynchronous providers are followed quickly
    settings.GIFTDESK_POLL_MAX_SECONDS = 0.2


@dataclass(frozen=True)
class Provider:
    kind: str
    product: str  # provider product id
    amounts: tuple[str, ...]  # more cards than one request carries: several submissions
    method: str
    order_path: str  # where an order is placed
    renews_token: bool  # an OAuth client asks for a fresh token once after a 401

    @property
    def unauthorized_times(self) -> int:
        # Refused twice by an OAuth provider: once with the cached token, once with a fresh one.
        return 2 if self.renews_token else 1


PROVIDERS = {
    "gogift": Provider("gogift", "", ("100", "200", "300", "400", "500"), "POST", "/baskets/finalize", True),
    "giftronaut": Provider("giftronaut", "GC-AMAZON-USD", ("10", "25", "50", "100", "25", "10"), "POST",
                           GIFTRONAUT_ORDER_PATH, True),
    "gifty": Provider("gifty", GIFTY_VARIABLE_CARD, ("25", "30", "40"), "POST", GIFTY_ORDERS_PATH, False),
    "ugiftme": Provider("ugiftme", BOL_CARD, ("50", "100", "25", "50", "100"), "POST", "/orders", False),
}
ACCOUNT_FAULTS = ["insufficient_funds", "unauthorized", "forbidden"]
STATUS_OF_FAULT = {"insufficient_funds": 402, "unauthorized": 401, "forbidden": 403}


@pytest.fixture
def provider(request, db) -> tuple[Provider, ProviderAccount, object]:
    spec = PROVIDERS[request.param]
    account = request.getfixturevalue(f"emulated_{spec.kind}_account")
    return spec, account, request.getfixturevalue(f"{spec.kind}_emulator")


def batch_for(spec: Provider, account: ProviderAccount, amounts=None) -> Batch:
    amounts = list(amounts or spec.amounts)
    if spec.kind == "gogift":
        return make_batch(account, amounts, sku=GLOBAL_GIFT_CARD_SKU)
    # As make_batch does, by product id: UGiftMe's products have no SKUs.
    product = Product.objects.get(account=account, provider_product_id=spec.product)
    rows = [ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                     reference=f"E{index:04d}", message="Thank you!", amount=Decimal(amount),
                     currency=product.currency, product=product, send_on=None)
            for index, amount in enumerate(amounts)]
    return batch_create(account=account, rows=rows, source_filename="test.csv")


def cards_of(emulator, order: Order) -> list:
    """The emulator's cards bought for `order`: by our reference, or (Giftronaut carries none)
    by recipient and amount."""
    return [entry for entry in emulator.ledger
            if entry.reference == order.reference
            or (entry.reference is None and entry.recipient_email == order.recipient.email
                and entry.amount == order.amount)]


def statuses(batch: Batch) -> list[str]:
    return list(batch.orders.order_by("id").values_list("status", flat=True))


def add_fault(spec: Provider, emulator, kind: str) -> None:
    times = spec.unauthorized_times if kind == "unauthorized" else 1
    emulator.faults.add(kind, method=spec.method, path=spec.order_path, times=times)


def first_submission_accepted(account: ProviderAccount) -> Submission:
    """Send the batch's first request, as a worker does, and check the provider took it."""
    first = dispatch.orders_claim(account=account)
    assert dispatch.submission_attempt(first.pk) == SubmissionState.ACCEPTED
    return first


def refused_mid_batch(spec: Provider, account: ProviderAccount, emulator, fault: str):
    """A batch whose first request is accepted and whose next one the provider refuses for
    the account. Returns (batch, first submission, ids of the accepted orders)."""
    batch = batch_for(spec, account)
    assert batch_send(batch=batch).queued == len(spec.amounts)
    first = first_submission_accepted(account)
    accepted = set(first.orders.values_list("id", flat=True))
    add_fault(spec, emulator, fault)
    dispatch.account_pump(account.pk, budget_seconds=20)
    assert emulator.faults.injected[fault] == (spec.unauthorized_times if fault == "unauthorized" else 1)
    return batch, first, accepted


def assert_refused_orders_wait(batch: Batch, accepted: set[int], account: ProviderAccount) -> list[Order]:
    account.refresh_from_db()
    assert account.blocked_reason, "the account was not paused"
    waiting = list(batch.orders.exclude(pk__in=accepted).order_by("id"))
    assert waiting and {order.status for order in waiting} == {OrderStatus.QUEUED}
    assert {order.waiting_reason for order in waiting} == {PAUSED + account.blocked_reason}
    return waiting


# --- Refused mid-batch: back to waiting, cancellable, delivered once after resume --------------


@pytest.mark.parametrize("fault", ACCOUNT_FAULTS)
@pytest.mark.parametrize("provider", list(PROVIDERS), indirect=True)
def test_orders_refused_for_the_account_wait_and_are_delivered_once_after_resume(provider, fault):
    spec, account, emulator = provider
    batch, first, accepted = refused_mid_batch(spec, account, emulator, fault)

    waiting = assert_refused_orders_wait(batch, accepted, account)
    # The refused request; the other claims of its round (if any) were never sent.
    refused = Submission.objects.exclude(pk=first.pk).get(attempts=1)
    assert refused.state == SubmissionState.REJECTED and not refused.outcome_unknown
    assert "went back to waiting" in refused.last_error
    for unsent in Submission.objects.exclude(pk__in=[first.pk, refused.pk]):
        assert (unsent.state, unsent.attempts) == (SubmissionState.REJECTED, 0)
        assert unsent.last_error.startswith("Not sent: sending on the account was paused")
    last = {order.pk: order.events.filter(kind=EventKind.STATUS).order_by("id").last() for order in waiting}
    assert all((event.from_status, event.to_status) == (OrderStatus.SENDING, OrderStatus.QUEUED)
               for event in last.values())
    carried = [event for event in last.values() if event.submission_id == refused.pk]
    assert carried
    for transition in carried:
        assert transition.provider_call.http_status == STATUS_OF_FAULT[fault]  # the refusal itself
    # Each order the refused request carried went back by that refusal.
    assert {event.order_id for event in carried} == set(carried[0].provider_call.orders.values_list("id", flat=True))
    # Nothing was bought for them; the accepted cards were.
    assert all(cards_of(emulator, order) == [] for order in waiting)
    assert len(emulator.ledger) == len(accepted)

    dispatch.account_sending_resume(account=account)
    dispatch.account_pump(account.pk, budget_seconds=30)

    assert statuses(batch) == [OrderStatus.DELIVERED] * len(spec.amounts)
    for order in batch.orders.all():
        assert len(cards_of(emulator, order)) == 1, order
        assert order.waiting_reason == ""
    assert len(emulator.ledger) == len(spec.amounts)
    # Sent again under new keys: the refused key bought nothing and is never used again.
    assert not batch.orders.filter(submission=refused).exists()
    assert Batch.objects.get(pk=batch.pk).state == BatchState.COMPLETED


@pytest.mark.parametrize("fault", ACCOUNT_FAULTS)
@pytest.mark.parametrize("provider", ["gogift", "ugiftme"], indirect=True)
def test_orders_refused_for_the_account_can_be_cancelled(provider, fault):
    spec, account, emulator = provider
    batch, _, accepted = refused_mid_batch(spec, account, emulator, fault)
    waiting = assert_refused_orders_wait(batch, accepted, account)

    assert batch_cancel(batch=batch) == len(waiting)

    for order in Order.objects.filter(pk__in=[order.pk for order in waiting]):
        assert order.status == OrderStatus.CANCELLED and order.waiting_reason == ""
    # Nothing more to cancel: the refusal says truthfully what the rest are doing.
    with pytest.raises(BatchActionRefused) as refusal:
        batch_cancel(batch=batch)
    message = str(refusal.value)
    assert f"{len(waiting)} already cancelled" in message and "already with the provider" not in message
    # Resumed, the cancelled orders are never bought.
    dispatch.account_sending_resume(account=account)
    dispatch.account_pump(account.pk, budget_seconds=30)
    assert len(emulator.ledger) == len(accepted)
    assert all(cards_of(emulator, order) == [] for order in waiting)


def test_a_refusal_message_counts_what_the_orders_are_doing(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100", "200", "300", "400", "500"])
    batch_send(batch=batch)
    first_submission_accepted(emulated_gogift_account)  # 3 delivered
    second = dispatch.orders_claim(account=emulated_gogift_account)  # 2 claimed, not yet sent

    with pytest.raises(BatchActionRefused) as refusal:
        batch_cancel(batch=batch)

    assert str(refusal.value) == (
        f"Batch “{batch}” has no pending or queued orders left to cancel: 2 are with the provider "
        "(sending or processing), 3 finished (3 delivered, 0 failed).")
    assert second.orders.filter(status=OrderStatus.SENDING).count() == 2


def test_bad_credentials_before_any_order_leave_the_batch_cancellable(emulated_gogift_account, gogift_emulator):
    account_configure(name=emulated_gogift_account.name, kind="gogift", environment="sandbox",
                      values={"client_secret": "wrong"})
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    batch_send(batch=batch)
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=10)

    assert statuses(batch) == [OrderStatus.QUEUED] * 2
    assert batch_cancel(batch=batch) == 2
    assert Batch.objects.get(pk=batch.pk).state == BatchState.CANCELLED
    assert gogift_emulator.ledger == []


# --- An unknown outcome, then an account refusal: the same key, never a second card ----------


@pytest.mark.parametrize("first_fault, refusal", [
    ("drop_before", "insufficient_funds"),  # no answer (nothing was placed), then 402
    ("drop_after_commit", "forbidden"),  # placed but no answer, then 403
    ("drop_after_commit", "unauthorized"),  # placed but no answer, then 401 (even with a fresh token)
])
def test_a_refusal_after_an_unknown_outcome_keeps_the_key_and_never_buys_twice(
    emulated_gogift_account, gogift_emulator, first_fault, refusal
):
    account = emulated_gogift_account
    batch = make_batch(account, ["100", "200"])
    batch_send(batch=batch)
    gogift_emulator.faults.add(first_fault, method="POST", path="/baskets/finalize")
    submission = dispatch.orders_claim(account=account)
    assert dispatch.submission_attempt(submission.pk) == SubmissionState.RETRY  # no answer: unknown
    gogift_emulator.faults.add(refusal, method="POST", path="/baskets/finalize",
                               times=2 if refusal == "unauthorized" else 1)

    dispatch.account_pump(account.pk, budget_seconds=10)  # the retry is refused for the account

    account.refresh_from_db()
    assert account.blocked_reason
    submission = Submission.objects.get()
    key = submission.idempotency_key
    # The first request may have bought the cards: never re-queued, never a new key.
    assert submission.state == SubmissionState.RETRY and submission.outcome_unknown
    assert statuses(batch) == [OrderStatus.SENDING] * 2
    with pytest.raises(BatchActionRefused, match="2 are with the provider"):
        batch_cancel(batch=batch)
    assert len(gogift_emulator.ledger) == (2 if first_fault == "drop_after_commit" else 0)

    dispatch.account_sending_resume(account=account)
    dispatch.account_pump(account.pk, budget_seconds=10)

    assert statuses(batch) == [OrderStatus.DELIVERED] * 2
    assert Submission.objects.get().idempotency_key == key
    for order in batch.orders.all():
        assert len(cards_of(gogift_emulator, order)) == 1
    assert len(gogift_emulator.ledger) == 2
    finalize_keys = {r.headers.get("Idempotency-Key") for r in gogift_emulator.requests
                     if r.path == "/baskets/finalize"}
    assert finalize_keys == {f"{key}-finalize"}


def test_a_refusal_after_a_dead_worker_keeps_the_key_and_never_buys_twice(emulated_gogift_account, gogift_emulator):
    """A worker killed while its request was in flight: the provider may have placed the
    order, so a later account refusal must not send the cards again under a new key."""
    from datetime import timedelta

    from django.utils import timezone

    account = emulated_gogift_account
    batch = make_batch(account, ["100", "200"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=account)
    # The first attempt placed the order, then its worker died before recording the answer.
    assert dispatch.submission_attempt(submission.pk) == SubmissionState.ACCEPTED
    Order.objects.filter(batch=batch).update(status=OrderStatus.SENDING)
    Submission.objects.filter(pk=submission.pk).update(
        state=SubmissionState.IN_FLIGHT, lease_until=timezone.now() - timedelta(seconds=1))  # nobody renewed it
    assert len(gogift_emulator.ledger) == 2

    assert dispatch.stale_submissions_release() == 1
    assert Submission.objects.get().outcome_unknown
    gogift_emulator.faults.add("forbidden", method="POST", path="/baskets/finalize")
    dispatch.account_pump(account.pk, budget_seconds=10)

    account.refresh_from_db()
    assert account.blocked_reason  # the replay was refused: the key waits, nothing re-queued
    assert Submission.objects.get().state == SubmissionState.RETRY
    assert statuses(batch) == [OrderStatus.SENDING] * 2
    dispatch.account_sending_resume(account=account)
    dispatch.account_pump(account.pk, budget_seconds=10)
    assert statuses(batch) == [OrderStatus.DELIVERED] * 2
    assert Submission.objects.count() == 1
    assert len(gogift_emulator.ledger) == 2


# --- Accepted cards are looked up while the account is paused -----------------------------------


@pytest.mark.parametrize("provider", ["ugiftme", "giftronaut"], indirect=True)
def test_accepted_cards_keep_being_looked_up_and_are_delivered_while_paused(provider):
    spec, account, emulator = provider
    if spec.kind == "ugiftme":
        emulator.polls_to_finish = 3  # the cards stay processing for a few lookups
    batch = batch_for(spec, account)
    batch_send(batch=batch)
    first = first_submission_accepted(account)
    accepted = set(first.orders.values_list("id", flat=True))
    assert set(first.orders.values_list("status", flat=True)) == {OrderStatus.PROCESSING}
    add_fault(spec, emulator, "forbidden")

    report = dispatch.account_pump(account.pk, budget_seconds=20)

    account.refresh_from_db()
    assert account.blocked_reason  # paused, and stays so
    assert report.polled >= 2
    assert set(Order.objects.filter(pk__in=accepted).values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert_refused_orders_wait(batch, accepted, account)
    assert len(emulator.ledger) == len(accepted)
    # While paused, nothing was ordered after the refusal; only lookups went out.
    refused_at = max(i for i, r in enumerate(emulator.requests)
                     if r.method == "POST" and r.path.startswith(spec.order_path))
    after = emulator.requests[refused_at + 1:]
    assert after and all(r.method == "GET" for r in after)
    assert dispatch.accounts_with_work() == []  # nothing due: the sweep leaves it alone


def test_a_paused_account_with_a_lookup_due_is_woken_and_with_retries_only_is_not(
    emulated_ugiftme_account, ugiftme_emulator
):
    account = emulated_ugiftme_account
    batch = batch_for(PROVIDERS["ugiftme"], account, ["50", "100", "25", "50"])
    batch_send(batch=batch)
    first = first_submission_accepted(account)
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="UGiftMe refused access.")
    Submission.objects.filter(pk=first.pk).update(next_poll_at=timezone.now() - timedelta(seconds=1))

    assert dispatch.accounts_with_work() == [account.pk]  # a lookup is due

    Submission.objects.filter(pk=first.pk).update(next_poll_at=timezone.now() + timedelta(hours=1))
    assert dispatch.accounts_with_work() == []  # queued orders and no lookup due: it sleeps


def test_a_paused_pump_does_not_spin_on_retries_it_may_not_make(emulated_gogift_account, gogift_emulator):
    account = emulated_gogift_account
    batch = make_batch(account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=account)
    # A retry due long ago, on an account paused since: it must wait for the resume.
    Submission.objects.filter(pk=submission.pk).update(
        state=SubmissionState.RETRY, attempts=1, next_attempt_at=timezone.now() - timedelta(minutes=5))
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="GoGift refused the account.")
    before = len(gogift_emulator.requests)

    started = time.monotonic()
    report = dispatch.account_pump(account.pk, budget_seconds=5)

    assert time.monotonic() - started < 2  # nothing it may do: it returns, it does not wait or spin
    assert (report.attempted, report.claimed) == (0, 0)
    assert len(gogift_emulator.requests) == before
    assert Submission.objects.get().state == SubmissionState.RETRY


def test_a_claim_taken_as_the_account_was_paused_goes_back_to_waiting(emulated_gogift_account, gogift_emulator):
    account = emulated_gogift_account
    batch = make_batch(account, ["100", "200"])
    batch_send(batch=batch)
    claimed = dispatch.orders_claim(account=account)  # a worker claimed them...
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="GoGift refused the account.")

    dispatch.account_pump(account.pk, budget_seconds=2)  # ...and the account was paused before it sent

    assert statuses(batch) == [OrderStatus.QUEUED] * 2
    assert Submission.objects.get(pk=claimed.pk).state == SubmissionState.REJECTED
    assert not any(r.path.startswith("/baskets") for r in gogift_emulator.requests)  # nothing sent
    assert batch_cancel(batch=batch) == 2


# --- Sending to a paused account; resuming ------------------------------------------------------


def test_a_batch_sent_to_a_paused_account_says_so_and_goes_after_resume(emulated_gogift_account, gogift_emulator):
    account = emulated_gogift_account
    ProviderAccount.objects.filter(pk=account.pk).update(
        blocked_reason="GoGift refused the account (HTTP 402: no credit). Fix it with GoGift, then resume sending.")
    batch = make_batch(account, ["100", "200"])

    outcome = batch_send(batch=batch)

    assert outcome.queued == 2
    assert outcome.message == (
        f"Queued 2 orders of “{batch}”. Sending on {account} is paused: GoGift refused the account (HTTP 402: "
        "no credit). Fix it with GoGift, then resume sending. The orders wait and go as soon as sending on "
        "the account is resumed.")
    assert set(batch.orders.values_list("waiting_reason", flat=True)) == {
        PAUSED + "GoGift refused the account (HTTP 402: no credit). Fix it with GoGift, then resume sending."}
    dispatch.account_pump(account.pk, budget_seconds=2)
    assert statuses(batch) == [OrderStatus.QUEUED] * 2 and gogift_emulator.ledger == []

    dispatch.account_sending_resume(account=account)
    assert set(batch.orders.values_list("waiting_reason", flat=True)) == {""}
    dispatch.account_pump(account.pk, budget_seconds=10)
    assert statuses(batch) == [OrderStatus.DELIVERED] * 2 and len(gogift_emulator.ledger) == 2


def test_resume_is_refused_while_the_connection_check_fails(emulated_gogift_account, gogift_emulator):
    account = emulated_gogift_account
    batch = make_batch(account, ["100"])
    batch_send(batch=batch)
    gogift_emulator.faults.add("insufficient_funds", path="/baskets/finalize")
    dispatch.account_pump(account.pk, budget_seconds=10)
    account_configure(name=account.name, kind="gogift", environment="sandbox", values={"client_secret": "wrong"})
    account.refresh_from_db()
    reason = account.blocked_reason

    with pytest.raises(dispatch.ResumeRefused) as refusal:
        dispatch.account_sending_resume(account=account)

    message = str(refusal.value)
    assert message.startswith(f"Sending on {account} stays paused: the connection check failed: ")
    assert "invalid_client" in message and message.endswith(". Fix it, then resume.")
    account.refresh_from_db()
    assert account.blocked_reason == reason and account.last_check_ok is False
    assert batch.orders.get().waiting_reason == PAUSED + reason
    assert not AuditEntry.objects.filter(action=AuditAction.RESUME).exists()
    dispatch.account_pump(account.pk, budget_seconds=2)
    assert statuses(batch) == [OrderStatus.QUEUED] and gogift_emulator.ledger == []


def test_the_admin_shows_a_refused_resume_as_an_error_and_records_a_resume(
    admin_client, admin_user, emulated_gogift_account, gogift_emulator
):
    account = emulated_gogift_account
    changelist = reverse("admin:providers_provideraccount_changelist")
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="GoGift refused the account.")
    gogift_emulator.faults.add("unauthorized", path="/products/filter", times=2)

    response = admin_client.post(changelist, {"action": "resume_sending", "_selected_action": [account.pk]},
                                 follow=True)

    [message] = list(response.context["messages"])
    assert message.level_tag == "error"
    assert str(message).startswith("Sending on GoGift emulated stays paused: the connection check failed: ")
    account.refresh_from_db()
    assert account.blocked_reason == "GoGift refused the account."

    response = admin_client.post(changelist, {"action": "resume_sending", "_selected_action": [account.pk]},
                                 follow=True)

    [message] = list(response.context["messages"])
    assert (message.level_tag, str(message)) == (
        "success", "GoGift emulated: sending resumed; 0 waiting submissions will be retried.")
    account.refresh_from_db()
    assert account.blocked_reason == ""
    [entry] = AuditEntry.objects.filter(action=AuditAction.RESUME)
    assert entry.user == admin_user and entry.target_kind == "provideraccount"
    assert entry.target_id == str(account.pk)
    assert "GoGift refused the account." in entry.summary and "connection check passed" in entry.summary


def test_a_resumed_account_looks_up_at_once_what_a_refused_lookup_put_off(
    emulated_ugiftme_account, ugiftme_emulator, settings
):
    settings.GIFTDESK_POLL_MAX_SECONDS = 3600  # how long a refused lookup is put off
    account = emulated_ugiftme_account
    batch = batch_for(PROVIDERS["ugiftme"], account, ["50"])
    batch_send(batch=batch)
    first = first_submission_accepted(account)
    ugiftme_emulator.faults.add("unauthorized", method="GET", path="/orders/order-requests")
    Submission.objects.filter(pk=first.pk).update(next_poll_at=timezone.now())

    dispatch.account_pump(account.pk, budget_seconds=1)

    account.refresh_from_db()
    assert "UGiftMe rejected the API key" in account.blocked_reason
    first.refresh_from_db()
    assert first.next_poll_at > timezone.now()  # put off while the refusal lasts
    assert batch.orders.get().status == OrderStatus.PROCESSING  # never failed for a refused lookup

    dispatch.account_sending_resume(account=account)
    dispatch.account_pump(account.pk, budget_seconds=10)

    assert batch.orders.get().status == OrderStatus.DELIVERED
    assert len(ugiftme_emulator.ledger) == 1
