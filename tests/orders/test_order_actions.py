"""Per-card actions (issue 9): retry failed orders, resend to a corrected email, cancel orders
not yet sent, against the GoGift emulator over HTTP, and their admin confirmation pages.

The rule every test here guards: a new idempotency key is only ever used for an order the
provider definitely refused. An order whose first outcome is unknown is never bought
twice: the emulator's ledger, which records every card it issued, is the proof.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from orders import dispatch
from orders.batches import batch_approve, batch_create, batch_send
from orders.models import Batch, BatchState, EventKind, Order, OrderStatus, Submission
from orders.order_actions import (
    UNKNOWN_OUTCOME,
    OrderActionRefused,
    order_resend,
    orders_cancel,
    orders_retry,
)
from orders.spreadsheet import ValidRow
from providers.clients.base import PermanentError
from providers.models import Product
from tests.fixtures.data import person, GLOBAL_GIFT_CARD_SKU, make_batch

ORDER_CHANGELIST = reverse("admin:orders_order_changelist")
BATCH_CHANGELIST = reverse("admin:orders_batch_changelist")


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.GIFTDESK_RETRY_BASE_SECONDS = 0.05
    settings.GIFTDESK_RETRY_MAX_SECONDS = 0.2
    settings.GIFTDESK_APPROVAL_THRESHOLDS = None


@pytest.fixture
def admin(db) -> User:
    return person("boss", superuser=True)


def pump(account) -> None:
    dispatch.account_pump(account.pk, budget_seconds=20)


def cards_for(emulator, order: Order) -> list:
    return [entry for entry in emulator.ledger if entry.reference == order.reference]


def fresh(order: Order) -> Order:
    return Order.objects.select_related("recipient", "submission").get(pk=order.pk)


def refused_by_an_outage(account, emulator, settings, amounts=("100",)) -> Batch:
    """A batch whose orders GoGift never created: every attempt got a 500 until GiftDesk gave
    up. The outage then ends."""
    settings.GIFTDESK_MAX_SUBMIT_ATTEMPTS = 2
    batch = make_batch(account, list(amounts))
    batch_send(batch=batch)
    emulator.faults.add("http_500", path="/baskets", times=2)  # up to 3 cards travel together
    pump(account)
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.FAILED}
    assert emulator.ledger == [] and emulator.faults.pending == []  # the outage is over
    return batch


def unknown_outcome(account, emulator) -> Order:
    """An order GoGift created, whose answer was lost: its submission's outcome is unknown."""
    batch = make_batch(account, ["100"])
    batch_send(batch=batch)
    emulator.faults.add("drop_after_commit", path="/baskets/finalize")
    dispatch.account_pump(account.pk, budget_seconds=0)
    order = fresh(batch.orders.get())
    assert order.status == OrderStatus.SENDING and order.submission.outcome_unknown
    assert len(cards_for(emulator, order)) == 1  # GoGift did create it
    return order


def batch_with_emails(account, emails: list[str]) -> Batch:
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    rows = [ValidRow(row=index + 2, name=f"Recipient {index}", email=email, phone="+4512345678",
                     reference=f"E{index}", message="Thank you!", amount=Decimal("100"), currency="DKK",
                     product=product, send_on=None)
            for index, email in enumerate(emails)]
    return batch_create(account=account, rows=rows, source_filename="test.csv")


# --- The engine says which refusals are definite -------------------------------------------------


def test_a_value_the_provider_refuses_is_marked_definitely_refused(emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, ["100"])
    Order.objects.filter(batch=batch).update(amount=Decimal("55"))  # slipped past the import
    batch_send(batch=batch)

    pump(emulated_gogift_account)

    order = batch.orders.get()
    assert order.status == OrderStatus.FAILED and order.definitely_refused
    assert "55" in order.last_error and gogift_emulator.ledger == []


def test_a_refusal_after_an_unknown_outcome_is_not_definite(emulated_gogift_account, gogift_emulator):
    order = unknown_outcome(emulated_gogift_account, gogift_emulator)
    Submission.objects.filter(pk=order.submission_id).update(next_attempt_at=timezone.now())
    attempt = dispatch._start_attempt(order.submission_id)  # the next attempt, with the same key...

    # ...is refused: that says nothing about the first attempt, which GoGift committed.
    dispatch._reject(attempt, [order], PermanentError("GoGift refused the order: the basket expired"), cause=None)

    order = fresh(order)
    assert order.status == OrderStatus.FAILED and not order.definitely_refused


def test_a_card_the_answer_left_out_is_not_definitely_refused(emulated_gogift_account):
    from providers.clients.base import SubmitResult

    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    submission = dispatch.orders_claim(account=emulated_gogift_account)
    attempt = dispatch._start_attempt(submission.pk)

    dispatch._accept(attempt, list(batch.orders.all()), SubmitResult(provider_reference="x", cards=[]), cause=None)

    order = batch.orders.get()
    assert order.status == OrderStatus.FAILED and not order.definitely_refused
    assert order.last_error == "The provider's answer did not mention this card."


def test_a_card_a_webhook_reports_failed_is_definitely_refused_and_can_be_resent(
    emulated_gogift_account, gogift_emulator, admin
):
    from providers.clients.base import CardStatus, CardUpdate

    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    order = batch.orders.get()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PROCESSING)  # still being fulfilled

    dispatch.card_updates_apply(account=emulated_gogift_account, actor="webhook", updates=[CardUpdate(
        status=CardStatus.FAILED, order_reference=order.reference, error="The email bounced.")])

    order = fresh(order)
    assert order.status == OrderStatus.FAILED and order.definitely_refused
    assert order_resend(order, email="right@example.com", user=admin).status == OrderStatus.QUEUED


# --- Retry ------------------------------------------------------------------------------------------


def test_an_order_whose_outcome_is_unknown_is_never_retried_and_is_bought_once(
    emulated_gogift_account, gogift_emulator, admin
):
    order = unknown_outcome(emulated_gogift_account, gogift_emulator)
    key = order.submission.idempotency_key

    result = orders_retry([order], admin)

    assert result.retried == [] and [entry.reason for entry in result.left_out] == [UNKNOWN_OUTCOME]
    assert fresh(order).status == OrderStatus.SENDING and fresh(order).submission_id == order.submission_id
    assert not AuditEntry.objects.filter(action=AuditAction.RETRY).exists()

    pump(emulated_gogift_account)  # the engine settles it with the same key

    order = fresh(order)
    assert order.status == OrderStatus.DELIVERED and order.submission.idempotency_key == key
    assert len(cards_for(gogift_emulator, order)) == 1
    assert "is delivered" in orders_retry([order], admin).left_out[0].reason
    assert Submission.objects.count() == 1 and len(cards_for(gogift_emulator, order)) == 1


def test_a_failed_order_that_may_exist_is_never_retried_nor_resent(emulated_gogift_account, gogift_emulator, admin):
    order = unknown_outcome(emulated_gogift_account, gogift_emulator)
    Submission.objects.filter(pk=order.submission_id).update(next_attempt_at=timezone.now())
    attempt = dispatch._start_attempt(order.submission_id)
    dispatch._reject(attempt, [order], PermanentError("GoGift refused the order: the basket expired"), cause=None)

    result = orders_retry([order], admin)
    with pytest.raises(OrderActionRefused, match="never said it refused this card"):
        order_resend(order, email="someone.else@example.com", user=admin)

    assert result.retried == [] and "it is never bought again under a new key" in result.left_out[0].reason
    pump(emulated_gogift_account)
    assert fresh(order).status == OrderStatus.FAILED and fresh(order).retries == 0
    assert not Order.objects.filter(resend_of=order).exists()
    assert len(gogift_emulator.ledger) == 1  # the one card GoGift made the first time, never a second


def test_a_definitely_refused_order_is_retried_under_a_new_key_and_bought_once(
    emulated_gogift_account, gogift_emulator, settings, admin
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    order = batch.orders.get()
    first_key = order.submission.idempotency_key

    result = orders_retry([order], admin)

    assert [retried.pk for retried in result.retried] == [order.pk] and result.left_out == []
    assert "Retried 1 order (100.00 DKK)." in result.message and "Queued 1 order" in result.message
    order = fresh(order)
    assert (order.status, order.retries, order.submission, order.definitely_refused) == (
        OrderStatus.QUEUED, 1, None, False)
    pump(emulated_gogift_account)
    order = fresh(order)
    assert order.status == OrderStatus.DELIVERED
    assert order.submission.idempotency_key != first_key
    assert len(cards_for(gogift_emulator, order)) == 1 and len(gogift_emulator.ledger) == 1
    assert order.events.filter(
        message="Retried by boss (retry 1): sent again under a new idempotency key.").count() == 1
    entry = AuditEntry.objects.get(action=AuditAction.RETRY)
    assert entry.username == "boss" and entry.amounts == {"DKK": "100.00"} and order.reference in entry.summary
    assert Batch.objects.get(pk=batch.pk).state == BatchState.COMPLETED


def test_a_retry_the_provider_refuses_again_buys_nothing_and_can_be_retried_again(
    emulated_gogift_account, gogift_emulator, admin
):
    batch = make_batch(emulated_gogift_account, ["100"])
    Order.objects.filter(batch=batch).update(amount=Decimal("55"))
    batch_send(batch=batch)
    pump(emulated_gogift_account)

    orders_retry(batch.orders.all(), admin)
    pump(emulated_gogift_account)

    order = fresh(batch.orders.get())
    assert order.status == OrderStatus.FAILED and order.definitely_refused and order.retries == 1
    assert len(set(Submission.objects.values_list("idempotency_key", flat=True))) == 2
    assert gogift_emulator.ledger == []


def test_retrying_twice_at_once_sends_the_order_once(emulated_gogift_account, gogift_emulator, settings, admin):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    order = batch.orders.get()

    first = orders_retry([order], admin)
    second = orders_retry([order], admin)  # a double click, or a second tab

    assert len(first.retried) == 1 and second.retried == []
    assert "is queued" in second.left_out[0].reason
    pump(emulated_gogift_account)
    assert fresh(order).retries == 1 and len(gogift_emulator.ledger) == 1


def test_a_retry_over_the_approval_threshold_waits_for_an_approver(
    emulated_gogift_account, gogift_emulator, settings, admin
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings, amounts=("100", "200"))
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=100"

    result = orders_retry(batch.orders.all(), admin)

    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and "needs approval" in result.message
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    pump(emulated_gogift_account)
    assert gogift_emulator.ledger == []  # nothing moves before the approver

    batch_approve(batch=batch, user=person("approver", "Approvers"))
    pump(emulated_gogift_account)

    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert sorted(entry.amount for entry in gogift_emulator.ledger) == [Decimal("100"), Decimal("200")]


def test_a_retry_leaves_out_orders_not_failed_and_says_what_each_is_doing(
    emulated_gogift_account, gogift_emulator, settings, admin
):
    failed = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings).orders.get()
    pending = make_batch(emulated_gogift_account, ["50"]).orders.get()

    result = orders_retry([failed, pending], admin)

    assert [order.pk for order in result.retried] == [failed.pk]
    assert [(entry.order.pk, entry.reason) for entry in result.left_out] == [
        (pending.pk, "is pending: it has not been sent yet; only failed orders are retried")]
    assert fresh(pending).status == OrderStatus.PENDING


def test_a_sender_retries_only_the_orders_of_their_own_batches(
    emulated_gogift_account, gogift_emulator, settings
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    owner, other = person("owner", "Senders"), person("other", "Senders")
    Batch.objects.filter(pk=batch.pk).update(created_by=owner)

    refused = orders_retry(batch.orders.all(), other)
    finance = orders_retry(batch.orders.all(), person("finance", "Finance"))

    assert refused.retried == [] and "only its batch's uploader" in refused.left_out[0].reason
    assert finance.retried == [] and fresh(batch.orders.get()).status == OrderStatus.FAILED
    assert len(orders_retry(batch.orders.all(), owner).retried) == 1


# --- Resend -----------------------------------------------------------------------------------------


def test_a_resend_to_a_corrected_email_buys_one_card_for_the_new_address_only(
    emulated_gogift_account, gogift_emulator, admin
):
    batch = batch_with_emails(emulated_gogift_account, ["anna@localhost"])  # GoGift refuses this address
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    original = fresh(batch.orders.get())
    assert original.status == OrderStatus.FAILED and original.definitely_refused
    assert "recipientEmail" in original.last_error

    resend = order_resend(original, email="  anna@example.com ", user=admin)

    assert resend.resend_of == original and resend.batch == batch and resend.reference != original.reference
    assert (resend.product, resend.amount, resend.currency, resend.message) == (
        original.product, original.amount, original.currency, original.message)
    assert (resend.recipient.email, resend.recipient.name, resend.recipient.phone) == (
        "anna@example.com", "Recipient 0", "+4512345678")
    assert resend.status == OrderStatus.QUEUED and "Queued 1 order" in resend.send_outcome
    pump(emulated_gogift_account)
    assert fresh(resend).status == OrderStatus.DELIVERED and fresh(original).status == OrderStatus.FAILED
    assert [(entry.reference, entry.recipient_email) for entry in gogift_emulator.ledger] == [
        (resend.reference, "anna@example.com")]
    assert original.events.filter(kind=EventKind.NOTE, message__contains=resend.reference).exists()
    entry = AuditEntry.objects.get(action=AuditAction.RESEND)
    assert entry.amounts == {"DKK": "100.00"} and "anna@localhost" in entry.summary


@pytest.mark.parametrize("email, reason", [
    ("", "Give the corrected email address"),
    ("not-an-email", "is not a valid email address"),
    ("anna@example.com\nBcc: x@example.com", "is not a valid email address"),
    ("ANNA@LOCALHOST", "is the address the card was already sent to"),
])
def test_a_resend_to_a_bad_or_unchanged_email_is_refused_and_creates_nothing(
    emulated_gogift_account, gogift_emulator, admin, email, reason
):
    batch = batch_with_emails(emulated_gogift_account, ["anna@localhost"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)

    with pytest.raises(OrderActionRefused, match=re.escape(reason)):
        order_resend(batch.orders.get(), email=email, user=admin)

    assert batch.orders.count() == 1 and not AuditEntry.objects.filter(action=AuditAction.RESEND).exists()


def test_an_order_is_resent_once_and_then_neither_resent_nor_retried_again(
    emulated_gogift_account, gogift_emulator, admin
):
    batch = batch_with_emails(emulated_gogift_account, ["anna@localhost"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    original = batch.orders.get()
    order_resend(original, email="anna@example.com", name="Anna Berg", user=admin)

    with pytest.raises(OrderActionRefused, match="already resent to anna@example.com"):
        order_resend(original, email="anna.berg@example.com", user=admin)
    retry = orders_retry([original], admin)

    assert retry.retried == [] and "would buy a second card" in retry.left_out[0].reason
    assert Order.objects.filter(resend_of=original).count() == 1
    assert Order.objects.get(resend_of=original).recipient.name == "Anna Berg"


def test_a_resend_cancelled_before_it_was_sent_does_not_block_another(emulated_gogift_account, gogift_emulator,
                                                                       admin, settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0"  # every send waits for an approver: nothing leaves
    batch = batch_with_emails(emulated_gogift_account, ["anna@localhost"])
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)
    Order.objects.filter(batch=batch).update(status=OrderStatus.FAILED, definitely_refused=True)
    original = batch.orders.get()
    first = order_resend(original, email="anna@example.com", user=admin)
    assert first.status == OrderStatus.PENDING and "needs approval" in first.send_outcome
    orders_cancel([first], admin)

    second = order_resend(original, email="anna.berg@example.com", user=admin)

    assert second.resend_of == original and gogift_emulator.ledger == []


def test_a_resend_of_an_order_not_failed_is_refused(emulated_gogift_account, admin):
    order = make_batch(emulated_gogift_account, ["100"]).orders.get()

    with pytest.raises(OrderActionRefused, match="is pending: it has not been sent yet; only failed orders are resent"):
        order_resend(order, email="new@example.com", user=admin)


def test_a_resend_name_with_a_control_character_is_refused(emulated_gogift_account, gogift_emulator, admin):
    batch = batch_with_emails(emulated_gogift_account, ["anna@localhost"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)

    with pytest.raises(OrderActionRefused, match="control character"):
        order_resend(batch.orders.get(), email="anna@example.com", name="Anna\x07", user=admin)
    assert Order.objects.count() == 1


# --- Cancel -----------------------------------------------------------------------------------------


def test_cancel_stops_only_pending_and_queued_orders(emulated_gogift_account, gogift_emulator, admin):
    sent = make_batch(emulated_gogift_account, ["100", "200", "300"])
    batch_send(batch=sent)
    dispatch.orders_claim(account=emulated_gogift_account, limit=1)  # one is with a worker
    unsent = make_batch(emulated_gogift_account, ["50"])

    result = orders_cancel(Order.objects.all(), admin)

    in_flight = sent.orders.get(status=OrderStatus.SENDING)
    assert len(result.cancelled) == 3 and result.totals == {"DKK": Decimal("550")}
    assert [(entry.order.pk, entry.reason) for entry in result.left_out] == [
        (in_flight.pk, "is being sent to GoGift right now: it is with the provider and can no longer be cancelled")]
    assert Batch.objects.get(pk=unsent.pk).state == BatchState.CANCELLED
    assert Batch.objects.get(pk=sent.pk).state == BatchState.SENDING
    assert sorted(AuditEntry.objects.filter(action=AuditAction.CANCEL).values_list("amounts", flat=True),
                  key=str) == [{"DKK": "50.00"}, {"DKK": "500.00"}]
    pump(emulated_gogift_account)
    assert [entry.reference for entry in gogift_emulator.ledger] == [in_flight.reference]
    assert Batch.objects.get(pk=sent.pk).state == BatchState.COMPLETED


def test_cancel_leaves_finished_orders_and_other_senders_orders_alone(emulated_gogift_account, admin):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    owner = person("owner", "Senders")
    Batch.objects.filter(pk=batch.pk).update(created_by=owner)
    first, second = batch.orders.order_by("id")
    Order.objects.filter(pk=first.pk).update(status=OrderStatus.DELIVERED)

    by_other = orders_cancel(batch.orders.all(), person("other", "Senders"))
    by_owner = orders_cancel(batch.orders.all(), owner)

    assert by_other.cancelled == [] and "only its batch's uploader" in by_other.left_out[0].reason
    assert [order.pk for order in by_owner.cancelled] == [second.pk]
    assert by_owner.left_out[0].reason == "is delivered: there is nothing left to cancel"
    assert Batch.objects.get(pk=batch.pk).state == BatchState.COMPLETED


# --- The admin: confirmation first, then the action ---------------------------------------------------


def action(client, url, action_name, ids, *, follow=False, **extra):
    return client.post(url, {"action": action_name, "_selected_action": ids, **extra}, follow=follow)


def no_inline_script_or_style(html: str) -> bool:
    return not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and " style=" not in html


def test_the_retry_confirmation_lists_orders_and_totals_and_does_nothing_until_confirmed(
    emulated_gogift_account, gogift_emulator, settings, admin, client
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings, amounts=("100", "250"))
    delivered = make_batch(emulated_gogift_account, ["50"]).orders.get()
    Order.objects.filter(pk=delivered.pk).update(status=OrderStatus.DELIVERED)
    client.force_login(admin)
    ids = [*batch.orders.values_list("pk", flat=True), delivered.pk]

    page = action(client, ORDER_CHANGELIST, "retry_orders", ids)

    html = page.content.decode()
    assert page.status_code == 200 and no_inline_script_or_style(html)
    assert "2 failed orders (350.00 DKK)" in html and "new idempotency key" in html
    assert all(order.reference in html for order in batch.orders.all())
    assert "1 order will be left out" in html and "Is delivered; only failed orders are retried." in html
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.FAILED}  # nothing yet
    digest = page.context["plan"].digest

    done = action(client, ORDER_CHANGELIST, "retry_orders", ids, post="yes", plan=digest)

    assert done.status_code == 302
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}
    assert fresh(delivered).status == OrderStatus.DELIVERED


def test_a_confirmation_that_no_longer_matches_the_orders_does_nothing(
    emulated_gogift_account, gogift_emulator, settings, admin, client
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings, amounts=("100", "250"))
    client.force_login(admin)
    ids = list(batch.orders.values_list("pk", flat=True))

    page = action(client, ORDER_CHANGELIST, "retry_orders", ids, post="yes", plan="what-was-shown-before")

    assert page.status_code == 200 and "The orders changed since the confirmation page was shown" in \
        page.content.decode()
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.FAILED}


def test_the_batch_page_offers_retry_and_its_page_does_nothing_on_get(
    emulated_gogift_account, gogift_emulator, settings, admin, client
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    client.force_login(admin)
    url = reverse("admin:orders_batch_retry_failed", args=[batch.pk])

    batch_page = client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    confirmation = client.get(url)

    assert f'href="{url}"' in batch_page
    html = confirmation.content.decode()
    assert confirmation.status_code == 200 and "1 failed order (100.00 DKK)" in html and no_inline_script_or_style(html)
    assert "no approval needed" in html
    assert batch.orders.get().status == OrderStatus.FAILED
    assert client.post(url, {"plan": confirmation.context["plan"].digest}).status_code == 200  # not confirmed
    assert batch.orders.get().status == OrderStatus.FAILED

    done = client.post(url, {"post": "yes", "plan": confirmation.context["plan"].digest})

    assert done.status_code == 302 and done.url == reverse("admin:orders_batch_change", args=[batch.pk])
    assert batch.orders.get().status == OrderStatus.QUEUED


def test_the_batch_action_says_when_approval_will_be_needed(
    emulated_gogift_account, gogift_emulator, settings, admin, client
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=100"
    client.force_login(admin)

    page = action(client, BATCH_CHANGELIST, "retry_failed_orders", [batch.pk])
    html = page.content.decode()
    assert "waits for an approver" in html and "reaches the approval threshold of 100.00 DKK" in html

    action(client, BATCH_CHANGELIST, "retry_failed_orders", [batch.pk], post="yes",
           plan=page.context["plan"].digest)

    assert Batch.objects.get(pk=batch.pk).state == BatchState.AWAITING_APPROVAL
    assert batch.orders.get().status == OrderStatus.PENDING


def test_the_cancel_confirmation_then_cancel(emulated_gogift_account, admin, client):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    client.force_login(admin)
    ids = list(batch.orders.values_list("pk", flat=True))

    page = action(client, ORDER_CHANGELIST, "cancel_orders", ids)
    assert "2 orders not yet sent (300.00 DKK)" in page.content.decode()
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}

    action(client, ORDER_CHANGELIST, "cancel_orders", ids, post="yes", plan=page.context["plan"].digest)

    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.CANCELLED}
    assert Batch.objects.get(pk=batch.pk).state == BatchState.CANCELLED


def test_the_resend_form_then_resend(emulated_gogift_account, gogift_emulator, admin, client):
    batch = batch_with_emails(emulated_gogift_account, ["anna@localhost"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    original = batch.orders.get()
    client.force_login(admin)

    page = action(client, ORDER_CHANGELIST, "resend_order", [original.pk])
    html = page.content.decode()
    assert 'name="email"' in html and "100.00 DKK" in html and original.reference in html
    assert no_inline_script_or_style(html) and Order.objects.count() == 1

    bad = action(client, ORDER_CHANGELIST, "resend_order", [original.pk], post="yes", email="anna@localhost",
                 name="")
    assert "is the address the card was already sent to" in bad.content.decode() and Order.objects.count() == 1

    done = action(client, ORDER_CHANGELIST, "resend_order", [original.pk], post="yes", email="anna@example.com",
                  name="Anna")

    resend = Order.objects.get(resend_of=original)
    assert done.status_code == 302 and done.url == reverse("admin:orders_order_change", args=[resend.pk])
    assert resend.recipient.email == "anna@example.com" and resend.status == OrderStatus.QUEUED


def test_resend_wants_exactly_one_order(emulated_gogift_account, admin, client):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    client.force_login(admin)

    response = action(client, ORDER_CHANGELIST, "resend_order", list(batch.orders.values_list("pk", flat=True)),
                      follow=True)

    assert "Select exactly one order to resend" in response.content.decode()


def test_finance_is_never_offered_nor_allowed_the_per_card_actions(
    emulated_gogift_account, gogift_emulator, settings, client
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    client.force_login(person("finance", "Finance"))
    order = batch.orders.get()

    offered = client.get(ORDER_CHANGELIST).context["action_form"].fields["action"].choices
    for name in ("retry_orders", "resend_order", "cancel_orders"):
        assert name not in {value for value, _ in offered}
        action(client, ORDER_CHANGELIST, name, [order.pk], post="yes", email="x@example.com")
    action(client, BATCH_CHANGELIST, "retry_failed_orders", [batch.pk], post="yes")
    url = reverse("admin:orders_batch_retry_failed", args=[batch.pk])

    assert client.get(url).status_code == 403 and client.post(url, {"post": "yes"}).status_code == 403
    assert fresh(order).status == OrderStatus.FAILED and Order.objects.count() == 1
    assert 'id="retry-failed"' not in client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()


def test_a_sender_sees_anothers_orders_left_out_and_cannot_open_their_batch_retry(
    emulated_gogift_account, gogift_emulator, settings, client
):
    batch = refused_by_an_outage(emulated_gogift_account, gogift_emulator, settings)
    Batch.objects.filter(pk=batch.pk).update(created_by=person("owner", "Senders"))
    client.force_login(person("other", "Senders"))
    order = batch.orders.get()

    page = action(client, ORDER_CHANGELIST, "retry_orders", [order.pk])
    html = page.content.decode()

    assert "None of these orders can be retried" in html and "Only its batch" in html
    assert 'type="submit"' not in html.split('id="confirm-action"')[1]
    assert client.get(reverse("admin:orders_batch_retry_failed", args=[batch.pk])).status_code == 403
    assert fresh(order).status == OrderStatus.FAILED
