"""`manage.py approve_batch BATCH_ID --user U [--reject --reason TEXT]`: every exit, and that a
refusal changes nothing (issue 9, four eyes from the shell)."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from audit.models import AuditAction, AuditEntry
from orders import dispatch
from orders.batches import batch_create, batch_send
from orders.models import Batch, BatchState, OrderStatus
from orders.spreadsheet import ValidRow
from providers.models import Product, ProviderAccount
from tests.fixtures.data import person, GLOBAL_GIFT_CARD_SKU


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=10000"


def approve_batch(*args) -> tuple[int, str, str]:
    """Run the command as a shell would: (exit status, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("approve_batch", *[str(arg) for arg in args], stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def people(db) -> dict[str, User]:
    return {"sender": person("sender", "Senders"), "approver": person("approver", "Approvers"),
            "finance": person("finance", "Finance"), "admin": person("boss", superuser=True)}


def upload(account: ProviderAccount, user: User, *amounts: str) -> Batch:
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    rows = [ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                     reference=f"E{index:04d}", message="Thank you!", amount=Decimal(amount), currency="DKK",
                     product=product, send_on=None)
            for index, amount in enumerate(amounts)]
    return batch_create(account=account, rows=rows, user=user, source_filename="gifts.csv")


@pytest.fixture
def awaiting(gogift_account, global_gift_card, people) -> Batch:
    """10,000 DKK uploaded and sent by the Sender: waiting for an approver."""
    batch = upload(gogift_account, people["sender"], "5000", "5000")
    assert batch_send(batch=batch, user=people["sender"]).awaiting_approval
    return batch


def snapshot(batch: Batch) -> tuple:
    """Everything a decision could change."""
    batch.refresh_from_db()
    return (batch.state, batch.approved_by_id, batch.approved_at, batch.approved_fingerprint, batch.rejected_by_id,
            batch.rejected_at, batch.rejection_reason,
            sorted(batch.orders.values_list("id", "status", "last_error")), AuditEntry.objects.count())


# --- Approving and rejecting -----------------------------------------------------------------------------


def test_approving_queues_the_batch_and_records_who_from_the_command_line(awaiting, people):
    code, out, err = approve_batch(awaiting.pk, "--user", "approver")

    assert (code, err) == (0, "")
    assert out == (f"approver approved batch {awaiting.pk} “gifts.csv” (2 orders, 10,000.00 DKK). "
                   "Queued 2 orders of “gifts.csv”.\n")
    awaiting.refresh_from_db()
    assert (awaiting.state, awaiting.approved_by) == (BatchState.SENDING, people["approver"])
    assert set(awaiting.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}
    entry = AuditEntry.objects.get(action=AuditAction.APPROVE)
    assert (entry.username, entry.address, entry.target_id) == ("approver", "command line", str(awaiting.pk))


def test_an_administrator_approves_anothers_batch(awaiting):
    code, out, err = approve_batch(awaiting.pk, "--user", "boss")

    assert code == 0, err
    awaiting.refresh_from_db()
    assert awaiting.approved_by.username == "boss" and awaiting.state == BatchState.SENDING


def test_an_approved_batch_is_delivered_by_the_provider(emulated_gogift_account, gogift_emulator, people):
    batch = upload(emulated_gogift_account, people["sender"], "5000", "5000", "60")
    batch_send(batch=batch, user=people["sender"])

    code, out, err = approve_batch(batch.pk, "--user", "approver")
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)

    assert code == 0, err
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert sorted(entry.amount for entry in gogift_emulator.ledger) == [Decimal("60"), Decimal("5000"),
                                                                        Decimal("5000")]


def test_rejecting_cancels_the_orders_with_the_reason(awaiting, people):
    code, out, err = approve_batch(awaiting.pk, "--user", "approver", "--reject", "--reason", "Over the Q4 budget.")

    assert (code, err) == (0, "")
    assert out == (f"approver rejected batch {awaiting.pk} “gifts.csv” (2 orders, 10,000.00 DKK): 2 orders "
                   "cancelled. Reason: Over the Q4 budget.\n")
    awaiting.refresh_from_db()
    assert (awaiting.state, awaiting.rejected_by, awaiting.rejection_reason) == (
        BatchState.REJECTED, people["approver"], "Over the Q4 budget.")
    assert awaiting.rejected_at is not None
    assert set(awaiting.orders.values_list("status", "last_error")) == {
        (OrderStatus.CANCELLED, "Rejected by approver: Over the Q4 budget.")}


# --- Refusals: exit 2, the reason on stderr, nothing changed --------------------------------------------


@pytest.mark.parametrize("args, reason", [
    (["--user", "sender"],
     "Only a member of Approvers or an administrator may approve or reject a batch; sender is neither."),
    (["--user", "finance"],
     "Only a member of Approvers or an administrator may approve or reject a batch; finance is neither."),
    (["--user", "ghost"], "no user named 'ghost'."),
    ([], "give --user: the approver who signs this decision."),
    (["--user", "approver", "--reject"],
     "--reject needs --reason TEXT: the uploader reads why their batch was rejected."),
    (["--user", "approver", "--reject", "--reason", "   "],
     "--reject needs --reason TEXT: the uploader reads why their batch was rejected."),
    (["--user", "approver", "--reason", "Looks fine"],
     "--reason goes with --reject; an approval takes no reason."),
    (["--user", "sender", "--reject", "--reason", "Changed my mind"],
     "Only a member of Approvers or an administrator may approve or reject a batch; sender is neither."),
], ids=["a sender", "finance", "no such user", "no user given", "reject without reason", "blank reason",
        "reason without reject", "a sender rejecting"])
def test_a_refused_decision_exits_two_with_the_reason_and_changes_nothing(awaiting, args, reason):
    before = snapshot(awaiting)

    code, out, err = approve_batch(awaiting.pk, *args)

    assert (code, out) == (2, "")
    assert err.startswith("Refused: ") and reason in err and err.rstrip().endswith("Nothing was changed.")
    assert snapshot(awaiting) == before


@pytest.mark.parametrize("role", ["approver", "admin"])
@pytest.mark.parametrize("decision", [[], ["--reject", "--reason", "No."]], ids=["approve", "reject"])
def test_nobody_decides_on_their_own_batch_from_the_shell(gogift_account, global_gift_card, people, role, decision):
    uploader = people[role]
    batch = upload(gogift_account, uploader, "5000", "5000")
    batch_send(batch=batch, user=uploader)
    before = snapshot(batch)

    code, out, err = approve_batch(batch.pk, "--user", uploader.username, *decision)

    assert code == 2, out
    assert (f"Refused: {uploader.username} uploaded “gifts.csv”, and nobody approves their own batch "
            "(administrators included): another approver must decide.") in err
    assert snapshot(batch) == before


@pytest.mark.parametrize("batch_id, reason", [
    ("999999", "no batch number 999999."),
    ("seven", "BATCH_ID 'seven' is not a batch number"),
])
def test_a_batch_that_does_not_exist_exits_two(awaiting, batch_id, reason):
    before = snapshot(awaiting)

    code, out, err = approve_batch(batch_id, "--user", "approver")

    assert code == 2 and reason in err
    assert snapshot(awaiting) == before


def test_a_batch_not_awaiting_approval_exits_two(gogift_account, global_gift_card, people):
    pending = upload(gogift_account, people["sender"], "5000", "5000")  # never sent
    sent = upload(gogift_account, people["sender"], "100")
    batch_send(batch=sent, user=people["sender"])  # under the threshold: sending
    for batch, state in ((pending, "pending (not sent)"), (sent, "sending")):
        before = snapshot(batch)
        for decision in ([], ["--reject", "--reason", "No."]):
            code, out, err = approve_batch(batch.pk, "--user", "approver", *decision)
            assert code == 2 and f"is {state}, not awaiting approval" in err, err
            assert snapshot(batch) == before


def test_a_batch_is_decided_once(awaiting):
    assert approve_batch(awaiting.pk, "--user", "approver")[0] == 0
    before = snapshot(awaiting)

    code, out, err = approve_batch(awaiting.pk, "--user", "boss", "--reject", "--reason", "Too late.")

    assert code == 2 and "is sending, not awaiting approval: there is nothing to reject" in err
    assert snapshot(awaiting) == before
