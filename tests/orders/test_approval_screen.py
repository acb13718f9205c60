"""Four eyes in the admin (issue 9), over HTTP with Django's test client: the approval
screen shows what an approver signs; approving queues, rejecting needs a reason and cancels;
nobody approves their own batch; a batch changed under the approver is refused; editing an
approved batch voids the approval; the batch page and list show the states."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from emulators.ugiftme import BOL_CARD, MAGASIN_CARD
from orders.approvals import batch_fingerprint
from orders.batches import batch_approve, batch_create, batch_send
from orders.models import Batch, BatchState, Order, OrderStatus, Recipient
from orders.spreadsheet.context import ValidRow
from providers.models import Product
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recipients.csv"
GROUP_OF = {"sender": "Senders", "approver": "Approvers", "finance": "Finance"}


def make_user(name: str, role: str) -> User:
    user = User.objects.create_user(name, is_staff=True, is_superuser=role == "admin")
    if role in GROUP_OF:
        user.groups.add(Group.objects.get(name=GROUP_OF[role]))
    return user


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"


@pytest.fixture
def sender(db):
    return make_user("sam.sender", "sender")


@pytest.fixture
def approver(db):
    return make_user("alma.approver", "approver")


def approval_url(batch) -> str:
    return reverse("admin:orders_batch_approval", args=[batch.pk])


def batch_url(batch) -> str:
    return reverse("admin:orders_batch_change", args=[batch.pk])


def batch_of(account, lines, *, uploader, message="Thank you!") -> Batch:
    """A pending batch uploaded by `uploader`: one order per (provider product id, amount)."""
    rows = []
    for index, (product_id, amount) in enumerate(lines):
        product = Product.objects.get(account=account, provider_product_id=product_id)
        rows.append(ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                             reference="", message=message, amount=Decimal(amount), currency=product.currency,
                             product=product, send_on=None))
    return batch_create(account=account, rows=rows, user=uploader, source_filename="list.csv")


def awaiting(account, amounts, *, uploader) -> Batch:
    """A GoGift batch of `amounts` (DKK) that its uploader asked to send: awaiting approval."""
    batch = make_batch(account, amounts)
    Batch.objects.filter(pk=batch.pk).update(created_by=uploader)
    batch.refresh_from_db()
    outcome = batch_send(batch=batch, user=uploader)
    assert outcome.awaiting_approval
    batch.refresh_from_db()
    return batch


def upload_and_confirm(client, account) -> Batch:
    """The uploader's own path: the example spreadsheet, previewed, confirmed."""
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    preview = client.post(reverse("admin:orders_batch_import"), {
        "import_file": SimpleUploadedFile("recipients.csv", EXAMPLE.read_bytes()), "format": "0",
        "resource": "0", "account": account.pk, "default_product": product.pk, "message": "Thank you!",
    })
    form = preview.context["confirm_form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    response = client.post(reverse("admin:orders_batch_process_import"), data)
    assert response.status_code == 302
    return Batch.objects.latest("created_at")


def delivered_card(account, email: str, amount: str, *, when) -> Order:
    """A card already bought for `email` (another batch), claimed and sent at `when`."""
    order = make_batch(account, [amount]).orders.get()
    Recipient.objects.filter(pk=order.recipient_id).update(email=email, name="Earlier Recipient")
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.DELIVERED, claimed_at=when, submitted_at=when,
                                             queued_at=when)
    return order


def page_text(response) -> str:
    return response.content.decode()


# --- What the approver signs ------------------------------------------------------------------------


def test_the_screen_shows_account_cards_totals_uploader_rejected_rows_recent_recipients_and_limit(
    emulated_gogift_account, sender, approver
):
    account = emulated_gogift_account
    account.monthly_limits = {"DKK": "11000"}
    account.save()
    now = timezone.now()
    delivered_card(account, "Mette.Holm@Example.com", "500", when=now - datetime.timedelta(days=2))
    delivered_card(account, "lars.ostergaard@example.com", "300", when=now - datetime.timedelta(days=40))
    sender_client = client_of(sender)
    batch = upload_and_confirm(sender_client, account)
    send_url = reverse("admin:orders_batch_send", args=[batch.pk])
    shown = sender_client.get(send_url).context["shown"]  # the confirmation page, then its POST
    sent = sender_client.post(send_url, {"post": "yes", "shown": shown}, follow=True)
    assert "needs approval before it is sent" in page_text(sent)

    response = client_of(approver).get(approval_url(batch))

    assert response.status_code == 200
    html = page_text(response)
    review = response.context["review"]
    assert review.account == "GoGift emulated" and review.provider == "GoGift"
    assert '<td id="review-account">GoGift emulated</td>' in html
    assert '<td id="review-cards">10</td>' in html
    assert review.totals == {"DKK": Decimal("11000.00")} and "11,000.00 DKK" in html
    assert "sam.sender on" in html and "recipients.csv" in html  # the uploader, and who asked to send
    assert review.send_requested_by == "sam.sender"
    # The upload's invalid rows, with their reasons.
    assert review.rejected_row_count == 2 and "<strong>2</strong> rows of recipients.csv were invalid" in html
    assert "<td>5</td><td>email</td>" in html and "is not a valid email address" in html
    assert "<td>9</td><td>amount</td>" in html
    # Mette got a card two days ago (the same email in another case); Lars's was 40 days ago.
    assert [card.email for card in review.recent_cards] == ["Mette.Holm@Example.com"]
    assert review.recent_recipient_count == 1 and "Mette.Holm@Example.com" in html
    assert "lars.ostergaard@example.com</td><td>GD-" not in html
    # The limit: 11,000 for the month, 500 spent (the recent card), the batch needs 11,000.
    [line] = review.currencies
    assert (line.limit, line.remaining, line.over_limit) == (Decimal("11000"), Decimal("10500.00"), Decimal("500.00"))
    assert "10,500.00 DKK of 11,000.00 DKK" in html and "500.00 DKK over it" in html
    assert "GoGift keeps no prepaid balance" in html and review.funds is None
    assert "11,000.00 DKK reaches the approval threshold of 1,000.00 DKK" in html
    assert 'name="approve-fingerprint"' in html and review.fingerprint == batch_fingerprint(batch)
    assert 'id="approve-batch"' in html and 'id="reject-batch"' in html


def test_products_list_the_count_of_cards_and_their_amounts(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["100", "100", "250", "2500"], uploader=sender)

    review = client_of(approver).get(approval_url(batch)).context["review"]

    [product] = review.products
    assert (product.title, product.cards, product.total) == ("The Global Gift Card", 4, Decimal("2950.00"))
    assert product.amounts == ((Decimal("100.00"), 2), (Decimal("250.00"), 1), (Decimal("2500.00"), 1))


def test_each_currency_has_its_own_total_and_the_wallet_is_compared_where_reported(
    emulated_ugiftme_account, sender, approver
):
    batch = batch_of(emulated_ugiftme_account, [(BOL_CARD, "100"), (BOL_CARD, "50"), (MAGASIN_CARD, "500")],
                     uploader=sender)
    assert batch_send(batch=batch, user=sender).awaiting_approval  # EUR has no threshold: always approved

    response = client_of(approver).get(approval_url(batch))

    html = page_text(response)
    review = response.context["review"]
    assert review.totals == {"DKK": Decimal("500.00"), "EUR": Decimal("150.00")}
    assert [(line.currency, line.cards, line.total) for line in review.currencies] == [
        ("DKK", 1, Decimal("500.00")), ("EUR", 2, Decimal("150.00"))]
    assert "500.00 DKK" in html and "150.00 EUR" in html and "650" not in html  # never summed across currencies
    # The emulator's wallet: 10,000 EUR.
    assert review.funds.balance == Decimal("10000.00") and not review.funds.short
    assert "The wallet has 10,000.00 EUR, enough for this batch&#x27;s 150.00 EUR." in html
    assert "DKK total cannot be compared with the wallet" in html


def test_a_short_wallet_is_shown_to_the_approver(emulated_ugiftme_account, ugiftme_emulator, sender, approver):
    ugiftme_emulator.wallet_balance = Decimal("120.00")
    batch = batch_of(emulated_ugiftme_account, [(BOL_CARD, "100"), (BOL_CARD, "50")], uploader=sender)
    assert batch_send(batch=batch, user=sender).awaiting_approval

    response = client_of(approver).get(approval_url(batch))

    assert response.context["review"].funds.short
    assert "The wallet has 120.00 EUR, this batch needs 150.00 EUR: top up, then send." in page_text(response)


def test_the_providers_fees_are_shown_where_it_quotes_them(emulated_gifty_account, gifty_emulator, sender, approver):
    gifty_emulator.service_fee = 150  # cents per order
    batch = batch_of(emulated_gifty_account, [(GIFTY_VARIABLE_CARD, "25"), (GIFTY_VARIABLE_CARD, "25")],
                     uploader=sender, message="")
    assert batch_send(batch=batch, user=sender).awaiting_approval

    response = client_of(approver).get(approval_url(batch))

    [line] = response.context["review"].currencies
    assert line.quote.subtotal >= Decimal("50.00") and line.quote.fees == Decimal("3.00")
    assert line.quote.total == line.quote.subtotal + line.quote.fees
    html = page_text(response)
    assert "<strong>3.00 in fees</strong>" in html and f"{line.quote.total:,.2f} EUR" in html
    assert "Service fee: 3.00 EUR" in html
    assert not Order.objects.exclude(status=OrderStatus.PENDING).exists() and not gifty_emulator.ledger


# --- Deciding -------------------------------------------------------------------------------------------


def test_approving_queues_the_orders_and_the_batch_is_sending(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000", "250"], uploader=sender)
    client = client_of(approver)
    fingerprint = client.get(approval_url(batch)).context["review"].fingerprint

    response = client.post(approval_url(batch), {"decision": "approve", "approve-fingerprint": fingerprint})

    assert response.status_code == 302 and response.url == batch_url(batch)
    batch.refresh_from_db()
    assert batch.state == BatchState.SENDING and batch.approved_by == approver and batch.approved_at
    assert batch.approved_fingerprint == fingerprint
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}
    page = page_text(client.get(response.url))
    assert "You approved “test.csv”. Queued 2 orders of “test.csv”." in page
    assert "Approved</strong> by alma.approver" in page
    assert AuditEntry.objects.filter(action=AuditAction.APPROVE, user=approver).exists()


def test_rejecting_without_a_reason_is_refused_and_changes_nothing(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)
    client = client_of(approver)
    fingerprint = client.get(approval_url(batch)).context["review"].fingerprint

    response = client.post(approval_url(batch), {"decision": "reject", "reject-fingerprint": fingerprint,
                                                 "reject-reason": "   "})

    assert response.status_code == 400
    assert "Give a reason for the rejection: the uploader reads it." in page_text(response)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and not batch.rejected_by
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}


def test_rejecting_with_a_reason_cancels_the_orders_and_the_uploader_reads_it(
    emulated_gogift_account, sender, approver
):
    batch = awaiting(emulated_gogift_account, ["1000", "500"], uploader=sender)
    client = client_of(approver)
    fingerprint = client.get(approval_url(batch)).context["review"].fingerprint

    response = client.post(approval_url(batch), {"decision": "reject", "reject-fingerprint": fingerprint,
                                                 "reject-reason": "Wrong cost center: use HR-2026."})

    assert response.status_code == 302 and response.url == batch_url(batch)
    batch.refresh_from_db()
    assert batch.state == BatchState.REJECTED and batch.rejected_by == approver
    assert batch.rejection_reason == "Wrong cost center: use HR-2026."
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.CANCELLED}
    assert "2 pending orders cancelled" in page_text(client.get(response.url))
    uploader_page = page_text(client_of(sender).get(batch_url(batch)))
    assert "Rejected</strong> by alma.approver" in uploader_page
    assert "Wrong cost center: use HR-2026." in uploader_page
    assert 'id="send-batch"' not in uploader_page


@pytest.mark.parametrize("role", ["sender", "approver", "admin"])
def test_nobody_approves_their_own_batch(emulated_gogift_account, role):
    uploader = make_user(f"own-{role}", role)
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=uploader)
    client = client_of(uploader)

    page = client.get(approval_url(batch))
    response = client.post(approval_url(batch), {
        "decision": "approve", "approve-fingerprint": batch_fingerprint(batch)}, follow=True)

    assert page.status_code == 200 and 'id="approve-batch"' not in page_text(page)
    refusal = ("Only a member of Approvers or an administrator may approve" if role == "sender"
               else "nobody approves their own batch")
    assert refusal in page_text(page) and refusal in page_text(response)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and batch.approved_by is None
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    rejected = client.post(approval_url(batch), {"decision": "reject", "reject-fingerprint": batch_fingerprint(batch),
                                                 "reject-reason": "No."}, follow=True)
    assert refusal in page_text(rejected)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and not batch.rejection_reason


def test_a_batch_changed_while_the_approver_reads_it_is_not_approved(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000", "250"], uploader=sender)
    client = client_of(approver)
    fingerprint = client.get(approval_url(batch)).context["review"].fingerprint
    order = batch.orders.order_by("id").first()
    Order.objects.filter(pk=order.pk).update(amount=Decimal("5000"))  # edited meanwhile

    response = client.post(approval_url(batch), {"decision": "approve", "approve-fingerprint": fingerprint},
                           follow=True)

    assert "changed while you were reviewing it. Review it again, then approve or reject." in page_text(response)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and batch.approved_by is None
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    # The page shown again is the batch as it is now, with the new total to sign.
    assert response.context["review"].totals == {"DKK": Decimal("5250.00")}
    assert response.context["review"].fingerprint != fingerprint


def test_a_batch_changed_while_the_approver_reads_it_is_not_rejected_unseen(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)
    client = client_of(approver)
    fingerprint = client.get(approval_url(batch)).context["review"].fingerprint
    Batch.objects.filter(pk=batch.pk).update(message="A new message")

    response = client.post(approval_url(batch), {"decision": "reject", "reject-fingerprint": fingerprint,
                                                 "reject-reason": "Too much."}, follow=True)

    assert "changed while you were reviewing it" in page_text(response)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and not batch.rejection_reason


def test_a_post_without_the_fingerprint_approves_nothing(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)

    response = client_of(approver).post(approval_url(batch), {"decision": "approve"}, follow=True)

    assert "The approval form was incomplete" in page_text(response)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL


def test_a_batch_not_awaiting_approval_offers_no_decision(emulated_gogift_account, sender, approver):
    batch = make_batch(emulated_gogift_account, ["1000"])
    client = client_of(approver)

    page = client.get(approval_url(batch))
    response = client.post(approval_url(batch), {
        "decision": "approve", "approve-fingerprint": batch_fingerprint(batch)}, follow=True)

    assert "not awaiting approval: there is nothing to decide" in page_text(page)
    assert 'id="approve-batch"' not in page_text(page)
    assert "not awaiting approval: there is nothing to approve" in page_text(response)
    batch.refresh_from_db()
    assert batch.state == BatchState.PENDING


def test_finance_sees_the_review_read_only_with_the_reason(emulated_gogift_account, sender):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)
    finance = make_user("fia.finance", "finance")

    page = client_of(finance).get(approval_url(batch))

    html = page_text(page)
    assert page.status_code == 200 and "1,000.00 DKK" in html
    assert 'id="approve-batch"' not in html and 'id="reject-batch"' not in html
    assert "fia.finance is neither" in html


def test_a_user_without_view_permission_gets_403(emulated_gogift_account, sender):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)
    nobody = make_user("no.groups", "none")
    client = client_of(nobody)

    assert client.get(approval_url(batch)).status_code == 403
    assert client.post(approval_url(batch), {"decision": "approve",
                                             "approve-fingerprint": batch_fingerprint(batch)}).status_code == 403
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL


# --- The batch page and list ------------------------------------------------------------------------


def test_the_awaiting_banner_offers_review_to_approvers_only_and_hides_send(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)

    for_approver = page_text(client_of(approver).get(batch_url(batch)))
    for_uploader = page_text(client_of(sender).get(batch_url(batch)))

    assert "waiting for an approver since" in for_approver and "asked by sam.sender" in for_approver
    assert f'id="review-and-approve" href="{approval_url(batch)}"' in for_approver
    assert "asked by sam.sender" in for_uploader and 'id="review-and-approve"' not in for_uploader
    assert 'id="send-batch"' not in for_approver and 'id="send-batch"' not in for_uploader
    assert 'id="cancel-batch"' in for_uploader  # the uploader may still withdraw it


def test_the_approved_banner_names_the_approver_and_the_scheduled_time(emulated_gogift_account, sender, approver):
    batch = make_batch(emulated_gogift_account, ["1000"])
    later = timezone.now() + datetime.timedelta(days=3)
    Batch.objects.filter(pk=batch.pk).update(created_by=sender, scheduled_for=later)
    batch.refresh_from_db()
    batch_send(batch=batch, user=sender)
    batch_approve(batch=batch, user=approver)

    html = page_text(client_of(sender).get(batch_url(batch)))

    assert "Approved</strong> by alma.approver" in html
    assert f"It is queued at its “Send at” time, {timezone.localtime(later):%Y-%m-%d %H:%M}" in html
    assert 'id="send-batch"' not in html


def test_send_at_is_an_editable_field_of_a_pending_batch(emulated_gogift_account, sender):
    batch = make_batch(emulated_gogift_account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(created_by=sender)
    client = client_of(sender)

    page = client.get(batch_url(batch))
    response = client.post(batch_url(batch), form_data(page, scheduled_for=datetime.datetime(2031, 5, 4, 9, 30)))

    assert "<label>Send at:</label>" in page_text(page) and 'name="scheduled_for_0"' in page_text(page)
    assert response.status_code == 302
    batch.refresh_from_db()
    assert timezone.localtime(batch.scheduled_for).replace(tzinfo=None) == datetime.datetime(2031, 5, 4, 9, 30)


def form_data(page, **changes) -> dict:
    """The batch form as shown, with `changes` (scheduled_for as a naive local datetime)."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = changes.get(name, form.initial.get(name, field.initial))
        if name == "scheduled_for":
            data["scheduled_for_0"] = value.strftime("%Y-%m-%d") if value else ""
            data["scheduled_for_1"] = value.strftime("%H:%M:%S") if value else ""
        else:
            data[name] = "" if value is None else value
    return data


def approved_later(account, sender, approver) -> Batch:
    """An approved batch scheduled three days ahead: approved, not yet queued."""
    batch = make_batch(account, ["1000", "250"])
    Batch.objects.filter(pk=batch.pk).update(created_by=sender, scheduled_for=timezone.now() + datetime.timedelta(days=3))
    batch.refresh_from_db()
    batch_send(batch=batch, user=sender)
    batch_approve(batch=batch, user=approver)
    batch.refresh_from_db()
    assert batch.state == BatchState.APPROVED
    return batch


@pytest.mark.parametrize("change", [
    {"message": "A different message"},
    {"sender_name": "Someone else"},
    {"scheduled_for": datetime.datetime(2031, 1, 2, 8, 0)},
])
def test_editing_what_the_approver_signed_voids_the_approval(emulated_gogift_account, sender, approver, change):
    batch = approved_later(emulated_gogift_account, sender, approver)
    client = client_of(sender)
    page = client.get(batch_url(batch))

    response = client.post(batch_url(batch), form_data(page, **change), follow=True)

    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL
    assert batch.approved_by is None and batch.approved_at is None and batch.approved_fingerprint == ""
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    html = page_text(response)
    assert "changed after alma.approver approved “test.csv”, so that approval no longer holds" in html
    assert "waiting for an approver since" in page_text(client.get(batch_url(batch)))
    voided = AuditEntry.objects.get(action=AuditAction.APPROVAL_VOIDED)
    assert voided.user == sender and "The approval by alma.approver no longer holds" in voided.summary
    # What was changed is kept, and the approver must sign it anew.
    for name, value in change.items():
        stored = getattr(batch, name)
        assert (timezone.localtime(stored).replace(tzinfo=None) if name == "scheduled_for" else stored) == value


def test_editing_only_the_name_keeps_the_approval(emulated_gogift_account, sender, approver):
    batch = approved_later(emulated_gogift_account, sender, approver)
    client = client_of(sender)

    client.post(batch_url(batch), form_data(client.get(batch_url(batch)), name="Renamed"))

    batch.refresh_from_db()
    assert batch.name == "Renamed" and batch.state == BatchState.APPROVED and batch.approved_by == approver
    assert not AuditEntry.objects.filter(action=AuditAction.APPROVAL_VOIDED).exists()


def test_saving_the_form_never_undoes_a_decision_made_while_it_was_open(emulated_gogift_account, sender, approver):
    batch = awaiting(emulated_gogift_account, ["1000"], uploader=sender)
    client = client_of(sender)
    page = client.get(batch_url(batch))  # the form is read while the batch awaits approval
    batch_approve(batch=batch, user=approver)  # ...and the approver approves it meanwhile (queued now)

    response = client.post(batch_url(batch), form_data(page, name="Renamed"))

    assert response.status_code == 403  # sent while the form was open: no longer editable
    batch.refresh_from_db()
    assert batch.state == BatchState.SENDING and batch.name == "test.csv" and batch.approved_by == approver


def test_the_list_filters_on_the_approval_states_and_shows_a_badge(emulated_gogift_account, sender, approver):
    waiting = awaiting(emulated_gogift_account, ["1000"], uploader=sender)
    Batch.objects.filter(pk=waiting.pk).update(name="Waiting batch")
    Batch.objects.filter(pk=make_batch(emulated_gogift_account, ["100"]).pk).update(name="Pending batch")
    client = client_of(approver)

    filtered = client.get(reverse("admin:orders_batch_changelist"), {"state__exact": "awaiting_approval"})
    everything = client.get(reverse("admin:orders_batch_changelist"))

    assert [batch.name for batch in filtered.context["cl"].result_list] == ["Waiting batch"]
    assert '<span class="status status-awaiting_approval">Awaiting approval</span>' in page_text(filtered)
    assert "Pending batch" in page_text(everything) and "Pending batch" not in page_text(filtered)
    assert "?state__exact=awaiting_approval" in page_text(everything)  # offered in the filter
