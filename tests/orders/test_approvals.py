"""Four eyes (issue 9; DESIGN.md "Approvals and limits"), at the services: which sends need
an approver, that nobody approves their own batch, and that an approval holds only for the
batch as it was approved. The approval screen and `approve_batch` call these same services.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from orders import dispatch
from orders.approvals import approval_reasons, batch_fingerprint
from orders.batches import (
    BatchActionRefused,
    batch_approve,
    batch_create,
    batch_reject,
    batch_send,
    scheduled_batches_queue,
)
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spreadsheet import ValidRow
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import person

THRESHOLDS = "DKK=10000,EUR=1500"


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = THRESHOLDS
    settings.GIFTDESK_RETRY_BASE_SECONDS = 0.05
    settings.GIFTDESK_RETRY_MAX_SECONDS = 0.2


@pytest.fixture
def sender(db) -> User:
    return person("sender", "Senders")


@pytest.fixture
def approver(db) -> User:
    return person("approver", "Approvers")


@pytest.fixture
def account(gogift_account, global_gift_card) -> ProviderAccount:
    """A database-only account (no provider is called) selling DKK, EUR and USD cards."""
    for currency in ("EUR", "USD"):
        Product.objects.create(account=gogift_account, provider_product_id=f"card-{currency}", sku=f"CARD-{currency}",
                               title=f"{currency} card", currency=currency, pricing=PricingKind.RANGE,
                               min_amount=Decimal("1"), max_amount=Decimal("5000"), step=Decimal("0.01"),
                               delivery_methods=["Email"])
    return gogift_account


def upload(account: ProviderAccount, user: User | None, *amounts: str, scheduled_for=None) -> Batch:
    """A pending batch uploaded by `user`, one order per amount: "100" is DKK, "100 EUR" is EUR."""
    rows = []
    for index, text in enumerate(amounts):
        amount, _, currency = text.partition(" ")
        product = Product.objects.filter(account=account, currency=currency or "DKK").order_by("id").first()
        rows.append(ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                             reference=f"E{index:04d}", message="Thank you!", amount=Decimal(amount),
                             currency=product.currency, product=product, send_on=None))
    return batch_create(account=account, rows=rows, user=user, source_filename="gifts.csv",
                        scheduled_for=scheduled_for)


def statuses(batch: Batch) -> set[str]:
    return set(batch.orders.values_list("status", flat=True))


def audit_actions(batch: Batch) -> list[str]:
    return list(AuditEntry.objects.filter(target_kind="batch", target_id=str(batch.pk))
                .order_by("id").values_list("action", flat=True))


def at(moment):
    """Run as if it were `moment` (the scheduled time has come)."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


# --- Which sends need approval -----------------------------------------------------------------------


def test_without_thresholds_no_batch_needs_approval(settings, account, sender):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = None
    batch = upload(account, sender, "5000", "5000", "5000", "5000 EUR", "10 USD")

    outcome = batch_send(batch=batch, user=sender)

    assert (outcome.state, outcome.queued, outcome.awaiting_approval) == (BatchState.SENDING, 5, False)
    assert statuses(batch) == {OrderStatus.QUEUED}
    assert approval_reasons({"DKK": Decimal("1000000")}) == []


@pytest.mark.parametrize("amounts, needs_approval", [
    (["5000", "4990"], False),  # 9,990 DKK: under 10,000
    (["5000", "5000"], True),  # at the threshold
    (["5000", "5000", "50"], True),  # over it
    (["1500"], False),  # 1,500 is EUR's threshold, not DKK's
    (["1499.99 EUR"], False),
    (["1500 EUR"], True),
    (["1000 EUR", "600 EUR"], True),  # the batch's total counts, not each card
])
def test_a_batch_needs_approval_when_its_total_reaches_its_currencys_threshold(account, sender, amounts,
                                                                              needs_approval):
    batch = upload(account, sender, *amounts)

    outcome = batch_send(batch=batch, user=sender)

    batch.refresh_from_db()
    if needs_approval:
        assert (outcome.state, outcome.queued) == (BatchState.AWAITING_APPROVAL, 0)
        assert batch.state == BatchState.AWAITING_APPROVAL
        assert statuses(batch) == {OrderStatus.PENDING}  # nothing queued
        assert "reaches the approval threshold of" in outcome.message and "nothing was queued" in outcome.message
        assert (batch.send_requested_by, audit_actions(batch)) == (sender, [AuditAction.UPLOAD,
                                                                            AuditAction.APPROVAL_REQUESTED])
    else:
        assert (outcome.state, outcome.queued) == (BatchState.SENDING, len(amounts))
        assert statuses(batch) == {OrderStatus.QUEUED}
        assert audit_actions(batch) == [AuditAction.UPLOAD, AuditAction.SEND]


def test_the_reason_names_the_total_and_the_threshold(account, sender):
    batch = upload(account, sender, "5000", "5000", "50")

    outcome = batch_send(batch=batch, user=sender)

    assert "10,050.00 DKK reaches the approval threshold of 10,000.00 DKK" in outcome.message


def test_a_currency_without_a_threshold_always_needs_approval(account, sender):
    batch = upload(account, sender, "1 USD")

    outcome = batch_send(batch=batch, user=sender)

    assert outcome.awaiting_approval and outcome.queued == 0
    assert "USD has no approval threshold, so every USD send needs approval" in outcome.message
    assert statuses(batch) == {OrderStatus.PENDING}


def test_a_threshold_of_zero_means_every_batch_in_that_currency(settings, account, sender):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0,EUR=1500"
    small = upload(account, sender, "50")
    euros = upload(account, sender, "50 EUR")

    assert batch_send(batch=small, user=sender).awaiting_approval
    assert not batch_send(batch=euros, user=sender).awaiting_approval
    assert statuses(small) == {OrderStatus.PENDING} and statuses(euros) == {OrderStatus.QUEUED}


@pytest.mark.parametrize("amounts, needs_approval", [
    (["100", "1500 EUR"], True),  # EUR reaches its threshold, DKK does not
    (["5000", "5000", "100 EUR"], True),  # DKK reaches, EUR does not
    (["5000", "4000", "1400 EUR"], False),  # neither; never summed across currencies
])
def test_a_two_currency_batch_needs_approval_when_either_currency_reaches(account, sender, amounts,
                                                                         needs_approval):
    batch = upload(account, sender, *amounts)

    outcome = batch_send(batch=batch, user=sender)

    assert outcome.awaiting_approval is needs_approval
    assert statuses(batch) == {OrderStatus.PENDING if needs_approval else OrderStatus.QUEUED}


# --- Who may approve -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role, words", [
    ("sender", "Only a member of Approvers or an administrator may approve or reject a batch; "
               "uploader is neither."),
    ("approver", "uploader uploaded “gifts.csv”, and nobody approves their own batch (administrators "
                 "included): another approver must decide."),
    ("admin", "uploader uploaded “gifts.csv”, and nobody approves their own batch (administrators "
              "included): another approver must decide."),
])
def test_nobody_approves_or_rejects_their_own_batch(account, role, words):
    uploader = person("uploader", {"sender": "Senders", "approver": "Approvers"}.get(role),
                      superuser=role == "admin")
    batch = upload(account, uploader, "5000", "5000")
    batch_send(batch=batch, user=uploader)

    with pytest.raises(BatchActionRefused) as approving:
        batch_approve(batch=batch, user=uploader)
    with pytest.raises(BatchActionRefused) as rejecting:
        batch_reject(batch=batch, user=uploader, reason="Too much.")

    assert str(approving.value) == str(rejecting.value) == words
    batch.refresh_from_db()
    assert (batch.state, batch.approved_by, batch.rejected_by) == (BatchState.AWAITING_APPROVAL, None, None)
    assert statuses(batch) == {OrderStatus.PENDING}
    assert audit_actions(batch) == [AuditAction.UPLOAD, AuditAction.APPROVAL_REQUESTED]


@pytest.mark.parametrize("group", ["Senders", "Finance"])
def test_a_sender_or_finance_may_not_approve_anothers_batch(account, sender, group):
    batch = upload(account, sender, "5000", "5000")
    batch_send(batch=batch, user=sender)
    outsider = person("outsider", group)

    with pytest.raises(BatchActionRefused, match="Only a member of Approvers or an administrator"):
        batch_approve(batch=batch, user=outsider)

    batch.refresh_from_db()
    assert (batch.state, batch.approved_by) == (BatchState.AWAITING_APPROVAL, None)
    assert statuses(batch) == {OrderStatus.PENDING}


def test_an_administrator_approves_anothers_batch(account, sender):
    batch = upload(account, sender, "5000", "5000")
    batch_send(batch=batch, user=sender)
    admin = person("boss", superuser=True)

    outcome = batch_approve(batch=batch, user=admin)

    assert (outcome.state, outcome.queued) == (BatchState.SENDING, 2)
    batch.refresh_from_db()
    assert batch.approved_by == admin and statuses(batch) == {OrderStatus.QUEUED}


@pytest.mark.parametrize("state", [BatchState.PENDING, BatchState.SENDING])
def test_only_a_batch_awaiting_approval_is_approved_or_rejected(account, sender, approver, state):
    batch = upload(account, sender, "5000", "5000")
    if state == BatchState.SENDING:
        batch_send(batch=batch, user=sender)
        batch_approve(batch=batch, user=approver)
        approver_again = person("second-approver", "Approvers")
    else:
        approver_again = approver

    label = BatchState(state).label.lower()
    with pytest.raises(BatchActionRefused, match=re.escape(f"is {label}, not awaiting approval: there is nothing "
                                                           "to approve")):
        batch_approve(batch=batch, user=approver_again)
    with pytest.raises(BatchActionRefused, match="not awaiting approval: there is nothing to reject"):
        batch_reject(batch=batch, user=approver_again, reason="Too much.")

    batch.refresh_from_db()
    assert batch.state == state and batch.rejected_by is None
    assert OrderStatus.CANCELLED not in statuses(batch)


# --- Approving -------------------------------------------------------------------------------------------


def test_an_approved_batch_is_queued_and_delivered_with_one_card_per_order(
    emulated_gogift_account, gogift_emulator, sender, approver
):
    batch = upload(emulated_gogift_account, sender, "5000", "5000", "250")
    assert batch_send(batch=batch, user=sender).awaiting_approval
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=5)
    assert gogift_emulator.ledger == [] and statuses(batch) == {OrderStatus.PENDING}  # nothing leaves unapproved

    outcome = batch_approve(batch=batch, user=approver, fingerprint=batch_fingerprint(batch))

    assert (outcome.state, outcome.queued, outcome.message) == (BatchState.SENDING, 3, "Queued 3 orders of “gifts.csv”.")
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)
    batch.refresh_from_db()
    assert batch.state == BatchState.COMPLETED and statuses(batch) == {OrderStatus.DELIVERED}
    assert (batch.approved_by, batch.send_requested_by) == (approver, sender)
    assert batch.approved_at is not None and batch.approved_fingerprint
    for order in batch.orders.all():
        assert [entry.amount for entry in gogift_emulator.ledger if entry.reference == order.reference] == [order.amount]
    assert len(gogift_emulator.ledger) == 3
    assert audit_actions(batch) == [AuditAction.UPLOAD, AuditAction.APPROVAL_REQUESTED, AuditAction.APPROVE]
    approval = AuditEntry.objects.get(action=AuditAction.APPROVE)
    assert (approval.username, approval.amounts) == ("approver", {"DKK": "10250.00"})
    assert "uploaded by sender" in approval.summary


def test_an_approval_with_a_stale_fingerprint_is_refused(account, sender, approver):
    batch = upload(account, sender, "5000", "5000")
    batch_send(batch=batch, user=sender)
    seen = batch_fingerprint(batch)
    Order.objects.filter(pk=batch.orders.first().pk).update(amount=Decimal("4000"))  # changed while reviewed

    with pytest.raises(BatchActionRefused, match="changed while you were reviewing it. Review it again"):
        batch_approve(batch=batch, user=approver, fingerprint=seen)

    batch.refresh_from_db()
    assert (batch.state, batch.approved_by, batch.approved_fingerprint) == (BatchState.AWAITING_APPROVAL, None, "")
    assert statuses(batch) == {OrderStatus.PENDING}
    assert batch_approve(batch=batch, user=approver, fingerprint=batch_fingerprint(batch)).queued == 2


# --- Rejecting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_rejection_needs_a_reason(account, sender, approver, reason):
    batch = upload(account, sender, "5000", "5000")
    batch_send(batch=batch, user=sender)

    with pytest.raises(BatchActionRefused, match="Give a reason for the rejection: the uploader reads it."):
        batch_reject(batch=batch, user=approver, reason=reason)

    batch.refresh_from_db()
    assert (batch.state, batch.rejected_by, batch.rejection_reason) == (BatchState.AWAITING_APPROVAL, None, "")
    assert statuses(batch) == {OrderStatus.PENDING}


def test_a_rejection_cancels_the_orders_with_the_reason_and_is_recorded(account, sender, approver):
    batch = upload(account, sender, "5000", "5000", "100 EUR")
    batch_send(batch=batch, user=sender)

    cancelled = batch_reject(batch=batch, user=approver, reason="  Over the Q4 budget.  ")

    assert cancelled == 3
    batch.refresh_from_db()
    assert batch.state == BatchState.REJECTED
    assert (batch.rejected_by, batch.rejection_reason) == (approver, "Over the Q4 budget.")
    assert timezone.now() - batch.rejected_at < timedelta(minutes=1)
    assert batch.approved_by is None
    for order in batch.orders.all():
        assert order.status == OrderStatus.CANCELLED
        assert order.last_error == "Rejected by approver: Over the Q4 budget."
        assert order.events.filter(to_status=OrderStatus.CANCELLED, actor="approver").exists()
    entry = AuditEntry.objects.get(action=AuditAction.REJECT)
    assert (entry.username, entry.amounts) == ("approver", {"DKK": "10000.00", "EUR": "100.00"})
    assert entry.summary.endswith("Over the Q4 budget.")
    with pytest.raises(BatchActionRefused, match="is rejected: nothing to send"):
        batch_send(batch=batch, user=sender)


# --- An approval holds only for the batch as approved ---------------------------------------------------


@pytest.fixture
def approved_for_later(account, sender, approver) -> Batch:
    """A batch of 10,100 DKK scheduled two hours from now, approved: its orders wait for the time."""
    batch = upload(account, sender, "5000", "5000", "100", scheduled_for=timezone.now() + timedelta(hours=2))
    assert batch_send(batch=batch, user=sender).awaiting_approval
    outcome = batch_approve(batch=batch, user=approver)
    assert (outcome.state, outcome.queued) == (BatchState.APPROVED, 0) and "is scheduled" in outcome.message
    return batch


def assert_voided(batch: Batch) -> None:
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL
    assert (batch.approved_by, batch.approved_at, batch.approved_fingerprint) == (None, None, "")
    assert statuses(batch) == {OrderStatus.PENDING}
    voided = AuditEntry.objects.get(action=AuditAction.APPROVAL_VOIDED, target_id=str(batch.pk))
    assert "The approval by approver no longer holds" in voided.summary
    assert "waits for an approver again" in voided.summary


def test_an_approved_scheduled_batch_is_queued_at_its_time(approved_for_later):
    with at(approved_for_later.scheduled_for + timedelta(minutes=1)):
        outcomes = scheduled_batches_queue()

    assert [(outcome.state, outcome.queued) for outcome in outcomes] == [(BatchState.SENDING, 3)]
    assert statuses(approved_for_later) == {OrderStatus.QUEUED}
    assert not AuditEntry.objects.filter(action=AuditAction.APPROVAL_VOIDED).exists()


def test_an_amount_changed_after_approval_voids_it_at_the_scheduled_time(approved_for_later, approver):
    # Still over the threshold afterwards: the edit, not the total, voids the approval.
    Order.objects.filter(batch=approved_for_later, amount=Decimal("100")).update(amount=Decimal("200"))

    with at(approved_for_later.scheduled_for + timedelta(minutes=1)):
        assert scheduled_batches_queue() == []

    assert_voided(approved_for_later)
    # A fresh approval of the batch as it now is sends it.
    with at(approved_for_later.scheduled_for + timedelta(minutes=2)):
        assert batch_approve(batch=approved_for_later, user=approver).queued == 3


def test_a_schedule_moved_after_approval_voids_it(approved_for_later):
    Batch.objects.filter(pk=approved_for_later.pk).update(scheduled_for=timezone.now() - timedelta(minutes=1))

    assert scheduled_batches_queue() == []

    assert_voided(approved_for_later)


@pytest.mark.parametrize("change", [{"environment": "production"},
                                    {"api_base_url": "https://elsewhere.example.com/api"}])
def test_pointing_the_account_elsewhere_after_approval_voids_it(approved_for_later, change):
    # The approver saw where the cards go (the account's environment): not where they would go now.
    assert approved_for_later.account.environment == "sandbox" and not approved_for_later.account.api_base_url
    ProviderAccount.objects.filter(pk=approved_for_later.account_id).update(**change)

    with at(approved_for_later.scheduled_for + timedelta(minutes=1)):
        assert scheduled_batches_queue() == []

    assert_voided(approved_for_later)


def test_sending_an_approved_batch_again_after_an_edit_asks_for_approval_again(approved_for_later, sender):
    Order.objects.filter(batch=approved_for_later, amount=Decimal("100")).update(amount=Decimal("50"))

    outcome = batch_send(batch=approved_for_later, user=sender)

    assert (outcome.state, outcome.queued) == (BatchState.AWAITING_APPROVAL, 0)
    assert_voided(approved_for_later)
    assert audit_actions(approved_for_later)[-2:] == [AuditAction.APPROVAL_VOIDED, AuditAction.APPROVAL_REQUESTED]
