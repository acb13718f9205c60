"""Scheduled sending: a batch's "send at" (the engine queues it then, not before, approval
permitting) and a card's own `send_on` date (accepted by the provider for that date, it stays
`processing` with "Scheduled for DATE" until then, not `delivered` the day it was ordered).

GiftDesk's clock cannot be moved from a test without mocking it, so "the time has come" is
written into the database instead: a schedule moved into the past, or a delivery date that
is today. The emulators' own clocks move by hand (ManualClock)."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from emulators.clock import ManualClock
from emulators.giftronaut import GiftronautEmulator
from orders import dispatch
from orders.batches import batch_approve, batch_create, batch_send, scheduled_batches_queue
from orders.models import Batch, BatchState, EventKind, Order, OrderStatus, Submission
from orders.spreadsheet import ValidRow
from providers.clients.base import CardStatus, CardUpdate
from providers.models import Product
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU
from tests.fixtures.emulators_giftronaut import GIFTRONAUT_TEST_CLIENT_ID, GIFTRONAUT_TEST_CLIENT_SECRET

GIFTRONAUT_CARD = "GC-AMAZON-USD"


@pytest.fixture
def giftronaut_emulator() -> GiftronautEmulator:
    """The Giftronaut emulator on a clock the test moves: a scheduled order waits for it."""
    return GiftronautEmulator(environment="sandbox", clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                              clock=ManualClock())


@pytest.fixture(autouse=True)
def quick_polls(settings):
    settings.GIFTDESK_POLL_SECONDS = 0.05
    settings.GIFTDESK_POLL_MAX_SECONDS = 0.2


def batch_of(account, amounts: list[str], *, sku: str = GLOBAL_GIFT_CARD_SKU, user=None, scheduled_for=None,
             send_on=None) -> Batch:
    product = Product.objects.get(account=account, sku=sku)
    rows = [ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                     reference="", message="Thank you!", amount=Decimal(amount), currency=product.currency,
                     product=product, send_on=send_on)
            for index, amount in enumerate(amounts)]
    return batch_create(account=account, rows=rows, user=user, scheduled_for=scheduled_for,
                        source_filename="scheduled.csv")


def statuses(batch) -> set[str]:
    return set(batch.orders.values_list("status", flat=True))


def the_time_comes(batch) -> None:
    Batch.objects.filter(pk=batch.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))


def approver(username: str = "avery.approver"):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", is_staff=True)
    user.groups.add(Group.objects.get(name="Approvers"))
    return user


# --- A batch's "send at" --------------------------------------------------------------------------


def test_sending_a_batch_scheduled_later_queues_nothing_and_says_when(emulated_gogift_account, admin_user):
    later = timezone.now() + timedelta(hours=3)
    batch = batch_of(emulated_gogift_account, ["100", "200"], scheduled_for=later)

    outcome = batch_send(batch=batch, user=admin_user)

    when = timezone.localtime(later)
    assert outcome.queued == 0
    assert outcome.message == (f"“{batch}” is cleared to send and is scheduled: its orders are queued on "
                               f"{when:%Y-%m-%d at %H:%M} ({when.tzname()}), not before.")
    batch.refresh_from_db()
    assert batch.state == BatchState.PENDING and batch.send_requested_by == admin_user
    assert statuses(batch) == {OrderStatus.PENDING}
    assert AuditEntry.objects.filter(action=AuditAction.SEND, target_id=str(batch.pk)).count() == 1


def test_a_scheduled_batch_is_not_queued_before_its_time(emulated_gogift_account):
    batch = batch_of(emulated_gogift_account, ["100"], scheduled_for=timezone.now() + timedelta(minutes=2))
    batch_send(batch=batch)

    assert scheduled_batches_queue() == []
    assert statuses(batch) == {OrderStatus.PENDING}
    assert dispatch.accounts_with_work() == []


def test_a_scheduled_batch_is_queued_once_its_time_has_come(emulated_gogift_account, gogift_emulator):
    batch = batch_of(emulated_gogift_account, ["100", "200"], scheduled_for=timezone.now() + timedelta(minutes=2))
    batch_send(batch=batch)
    the_time_comes(batch)

    [outcome] = scheduled_batches_queue()

    assert outcome.queued == 2 and statuses(batch) == {OrderStatus.QUEUED}
    batch.refresh_from_db()
    assert batch.state == BatchState.SENDING
    assert set(Order.objects.filter(batch=batch).values_list("events__actor", flat=True)) >= {"schedule"}
    assert scheduled_batches_queue() == []  # the next sweep finds nothing more to do
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=20)
    assert statuses(batch) == {OrderStatus.DELIVERED} and len(gogift_emulator.ledger) == 2


def test_a_scheduled_batch_nobody_sent_is_not_queued_at_its_time(emulated_gogift_account):
    batch = batch_of(emulated_gogift_account, ["100"], scheduled_for=timezone.now() - timedelta(minutes=1))

    assert scheduled_batches_queue() == []
    assert statuses(batch) == {OrderStatus.PENDING}


def test_a_scheduled_batch_needing_approval_waits_for_it_then_for_its_time(
    emulated_gogift_account, sender_user, settings
):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    batch = batch_of(emulated_gogift_account, ["1000", "500"], user=sender_user,
                     scheduled_for=timezone.now() + timedelta(hours=1))
    assert batch_send(batch=batch, user=sender_user).awaiting_approval
    the_time_comes(batch)

    assert scheduled_batches_queue() == []  # not approved yet: its time passing changes nothing
    assert statuses(batch) == {OrderStatus.PENDING}

    Batch.objects.filter(pk=batch.pk).update(scheduled_for=timezone.now() + timedelta(hours=1))
    outcome = batch_approve(batch=batch, user=approver())
    assert outcome.queued == 0 and "scheduled" in outcome.message
    batch.refresh_from_db()
    assert batch.state == BatchState.APPROVED and statuses(batch) == {OrderStatus.PENDING}


def approved_batch_due_in_seconds(account, sender_user, seconds: float) -> Batch:
    """A batch over the threshold, sent and approved, scheduled `seconds` from now. Its
    schedule is part of what the approver signed, so the time is waited for, not rewritten."""
    batch = batch_of(account, ["1000", "500"], user=sender_user,
                     scheduled_for=timezone.now() + timedelta(seconds=seconds))
    batch_send(batch=batch, user=sender_user)
    outcome = batch_approve(batch=batch, user=approver())
    assert outcome.queued == 0
    return batch


def wait_until(moment) -> None:
    time.sleep(max((moment - timezone.now()).total_seconds(), 0) + 0.05)


def test_an_approved_scheduled_batch_is_queued_at_its_time(emulated_gogift_account, sender_user, settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    batch = approved_batch_due_in_seconds(emulated_gogift_account, sender_user, 1.5)
    assert scheduled_batches_queue() == []

    wait_until(batch.scheduled_for)
    [outcome] = scheduled_batches_queue()

    assert outcome.queued == 2 and statuses(batch) == {OrderStatus.QUEUED}
    batch.refresh_from_db()
    assert batch.state == BatchState.SENDING


def test_an_approved_scheduled_batch_changed_after_approval_is_voided_at_its_time_not_sent(
    emulated_gogift_account, gogift_emulator, sender_user, settings
):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    batch = approved_batch_due_in_seconds(emulated_gogift_account, sender_user, 1.5)
    order = batch.orders.order_by("id").last()
    Order.objects.filter(pk=order.pk).update(amount=Decimal("4000"))  # changed after the approval

    wait_until(batch.scheduled_for)
    assert scheduled_batches_queue() == []

    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and batch.approved_by is None
    assert statuses(batch) == {OrderStatus.PENDING}
    voided = AuditEntry.objects.get(action=AuditAction.APPROVAL_VOIDED, target_id=str(batch.pk))
    assert "no longer holds" in voided.summary
    assert scheduled_batches_queue() == []  # waiting for an approver again, not for the clock
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=0)
    assert gogift_emulator.ledger == []


def test_the_batch_schedule_is_not_sent_to_the_provider_as_a_send_time(
    emulated_giftronaut_account, giftronaut_emulator
):
    batch = batch_of(emulated_giftronaut_account, ["50"], sku=GIFTRONAUT_CARD,
                     scheduled_for=timezone.now() + timedelta(minutes=5))
    batch_send(batch=batch)
    the_time_comes(batch)
    scheduled_batches_queue()

    dispatch.account_pump(emulated_giftronaut_account.pk, budget_seconds=10)

    [order_request] = [request for request in giftronaut_emulator.requests if request.method == "POST"
                       and request.path.startswith("/api/v1/orders/")]
    assert order_request.json()["sendTiming"] == {"type": "IMMEDIATE"}
    assert statuses(batch) == {OrderStatus.DELIVERED}


# --- A card's send_on -----------------------------------------------------------------------------


def test_a_card_accepted_for_a_later_date_stays_processing_until_that_date(emulated_gogift_account, gogift_emulator):
    tomorrow = timezone.localdate() + timedelta(days=1)
    batch = batch_of(emulated_gogift_account, ["100"], send_on=tomorrow)
    batch_send(batch=batch)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=2)

    order = batch.orders.get()
    assert order.status == OrderStatus.PROCESSING and order.completed_at is None
    assert order.waiting_reason == f"Scheduled for {tomorrow.isoformat()}"
    assert order.provider_order_id and len(gogift_emulator.ledger) == 1  # bought once, for that date
    accepted = order.events.filter(kind=EventKind.STATUS, to_status=OrderStatus.PROCESSING).get()
    assert f"Scheduled for {tomorrow.isoformat()}: it stays processing until that date." in accepted.message
    submission = Submission.objects.get()
    assert timezone.localtime(submission.next_poll_at).date() == tomorrow  # not asked again before
    batch.refresh_from_db()
    assert batch.state == BatchState.SENDING

    # The date comes (written into the database) and the submission's lookup is due.
    Order.objects.filter(pk=order.pk).update(send_on=timezone.localdate())
    Submission.objects.update(next_poll_at=timezone.now())
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=2)

    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED and order.waiting_reason == "" and order.completed_at
    assert "Delivery date reached" in order.events.filter(to_status=OrderStatus.DELIVERED).get().message
    assert len(gogift_emulator.ledger) == 1
    batch.refresh_from_db()
    assert batch.state == BatchState.COMPLETED


def test_a_card_for_today_is_delivered_at_once(emulated_gogift_account):
    batch = batch_of(emulated_gogift_account, ["100"], send_on=timezone.localdate())
    batch_send(batch=batch)

    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=2)

    assert batch.orders.get().status == OrderStatus.DELIVERED


def test_a_scheduled_card_at_a_provider_with_status_lookups_is_delivered_when_the_provider_says_so(
    emulated_giftronaut_account, giftronaut_emulator
):
    tomorrow = timezone.localdate() + timedelta(days=1)
    batch = batch_of(emulated_giftronaut_account, ["50"], sku=GIFTRONAUT_CARD, send_on=tomorrow)
    batch_send(batch=batch)
    dispatch.account_pump(emulated_giftronaut_account.pk, budget_seconds=0)

    order = batch.orders.get()
    assert order.status == OrderStatus.PROCESSING and order.waiting_reason == f"Scheduled for {tomorrow}"
    assert timezone.localtime(Submission.objects.get().next_poll_at).date() == tomorrow

    # The day comes for both clocks: the emulator's (Giftronaut sends at 09:00 UTC that day)
    # and ours; then each lookup moves the order on until Giftronaut reports it sent.
    giftronaut_emulator.clock.advance(timedelta(days=2).total_seconds())
    Order.objects.filter(pk=order.pk).update(send_on=timezone.localdate())
    Submission.objects.update(next_poll_at=timezone.now())
    dispatch.account_pump(emulated_giftronaut_account.pk, budget_seconds=5)

    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED and order.waiting_reason == ""


def test_a_webhook_saying_delivered_before_the_date_keeps_the_card_processing(emulated_gogift_account):
    tomorrow = timezone.localdate() + timedelta(days=1)
    batch = batch_of(emulated_gogift_account, ["100"], send_on=tomorrow)
    batch_send(batch=batch)
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=2)
    order = batch.orders.get()
    update = CardUpdate(status=CardStatus.DELIVERED, order_reference=order.reference)

    summary = dispatch.card_updates_apply(account=emulated_gogift_account, updates=[update], actor="webhook")

    assert summary == "0 orders updated, 1 kept processing until their delivery date"
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING and order.waiting_reason == f"Scheduled for {tomorrow}"

    Order.objects.filter(pk=order.pk).update(send_on=timezone.localdate())
    assert dispatch.card_updates_apply(account=emulated_gogift_account, updates=[update],
                                       actor="webhook") == "1 order updated"
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED


# --- The import form ------------------------------------------------------------------------------


def upload(client, account, rows: str, **fields):
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    return client.post(reverse("admin:orders_batch_import"), {
        "import_file": SimpleUploadedFile("scheduled.csv", rows.encode()), "format": "0", "resource": "0",
        "account": account.pk, "default_product": product.pk, "message": "Thank you!", **fields,
    })


def confirm(client, preview_response):
    form = preview_response.context["confirm_form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    return client.post(reverse("admin:orders_batch_process_import"), data)


ROWS = "name,email,amount,send_on\nAna,ana@example.com,100,\nBo,bo@example.com,200,{date}\n"


def test_the_preview_shows_each_rows_send_on_date(admin_client, emulated_gogift_account):
    later = timezone.localdate() + timedelta(days=10)

    html = upload(admin_client, emulated_gogift_account, ROWS.format(date=later.isoformat())).content.decode()

    assert "<th>Send on</th>" in html
    assert f"<td>Thank you!</td><td>{later.isoformat()}</td>" in html
    assert "<td>Thank you!</td><td>—</td>" in html


def test_send_at_in_the_import_form_schedules_the_batch(admin_client, emulated_gogift_account):
    later = timezone.localtime() + timedelta(days=2)
    send_at = later.strftime("%Y-%m-%dT%H:%M")

    preview = upload(admin_client, emulated_gogift_account, ROWS.format(date=""), scheduled_for=send_at)
    assert preview.status_code == 200
    assert f"Send at {later:%Y-%m-%d %H:%M}" in preview.content.decode()
    response = confirm(admin_client, preview)

    batch = Batch.objects.get()
    assert response.status_code == 302
    assert timezone.localtime(batch.scheduled_for).strftime("%Y-%m-%dT%H:%M") == send_at
    assert batch_send(batch=batch).queued == 0


def test_send_at_in_the_past_is_refused_with_a_clear_error(admin_client, emulated_gogift_account):
    earlier = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")

    response = upload(admin_client, emulated_gogift_account, ROWS.format(date=""), scheduled_for=earlier)

    html = response.content.decode()
    assert "“Send at” must be in the future" in html and "has passed" in html
    assert "Confirm and create the batch" not in html
    assert not Batch.objects.exists()


def test_send_at_that_passes_before_the_confirm_is_refused_and_creates_nothing(admin_client, emulated_gogift_account):
    soon = timezone.localtime() + timedelta(minutes=5)
    preview = upload(admin_client, emulated_gogift_account, ROWS.format(date=""),
                     scheduled_for=soon.strftime("%Y-%m-%dT%H:%M"))
    form = preview.context["confirm_form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    data["scheduled_for"] = (timezone.localtime() - timedelta(minutes=1)).isoformat()  # the time passed meanwhile

    response = admin_client.post(reverse("admin:orders_batch_process_import"), data, follow=True)

    assert "“Send at” must be in the future" in response.content.decode()
    assert not Batch.objects.exists()


def test_send_at_that_is_not_a_time_is_refused(admin_client, emulated_gogift_account):
    response = upload(admin_client, emulated_gogift_account, ROWS.format(date=""), scheduled_for="next tuesday")

    assert "Enter a valid date/time." in response.content.decode()
    assert not Batch.objects.exists()
