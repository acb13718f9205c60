"""Send and Cancel ask first (issue 10, finding 9): the batch page's buttons and the list's
actions show a confirmation page (the account, the cards, the total per currency, the
schedule, whether an approver must sign), and only its POST acts. Against the GoGift
emulator over HTTP: its ledger proves what was bought, and that nothing was bought twice.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from orders import batches, dispatch
from orders.approvals import batch_fingerprint
from orders.batch_totals import batch_totals_refresh
from orders.batches import batch_create
from orders.models import Batch, BatchState, Order, OrderStatus, Submission, SubmissionState
from orders.spreadsheet import ValidRow
from providers.models import Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch, person

EURO_CARD_SKU = "C3D4E5F6"  # the GoGift emulator's Euro Gift Card, 10..500 EUR
CHANGELIST = reverse("admin:orders_batch_changelist")


@pytest.fixture(autouse=True)
def no_thresholds(settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = None


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def sender(db) -> User:
    return person("sam.sender", "Senders")


def send_url(batch) -> str:
    return reverse("admin:orders_batch_send", args=[batch.pk])


def cancel_url(batch) -> str:
    return reverse("admin:orders_batch_cancel", args=[batch.pk])


def mixed_batch(account, lines: list[tuple[str, str]], *, uploader: User | None = None) -> Batch:
    """A pending batch with one order per (SKU, amount): several products, several currencies."""
    rows = []
    for index, (sku, amount) in enumerate(lines):
        product = Product.objects.get(account=account, sku=sku)
        rows.append(ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                             reference=f"E{index:04d}", message="Thank you!", amount=Decimal(amount),
                             currency=product.currency, product=product, send_on=None))
    return batch_create(account=account, rows=rows, user=uploader, source_filename="mixed.csv")


def statuses(batch) -> set[str]:
    return set(batch.orders.values_list("status", flat=True))


def text(response) -> str:
    return response.content.decode()


def no_inline_script_or_style(html: str) -> bool:
    return not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and " style=" not in html


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- The batch page's Send ------------------------------------------------------------------------


def test_the_batch_page_offers_send_and_cancel_as_links_to_their_confirmation_pages(
    admin_client, emulated_gogift_account
):
    batch = make_batch(emulated_gogift_account, ["100"])

    html = text(admin_client.get(reverse("admin:orders_batch_change", args=[batch.pk])))

    assert f'href="{send_url(batch)}" id="send-batch"' in html
    assert f'href="{cancel_url(batch)}" id="cancel-batch"' in html


def test_a_batch_page_with_nothing_left_to_send_or_cancel_offers_neither(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "100"])
    batch.orders.update(status=OrderStatus.PROCESSING)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)

    html = text(admin_client.get(reverse("admin:orders_batch_change", args=[batch.pk])))

    assert 'id="send-batch"' not in html and 'id="cancel-batch"' not in html


def test_the_send_page_shows_the_account_the_cards_and_each_currency_total_and_sends_nothing(
    admin_client, emulated_gogift_account, gogift_emulator
):
    batch = mixed_batch(emulated_gogift_account, [(GLOBAL_GIFT_CARD_SKU, "100"), (GLOBAL_GIFT_CARD_SKU, "250"),
                                                  (EURO_CARD_SKU, "20"), (EURO_CARD_SKU, "30")])

    response = admin_client.get(send_url(batch))

    html = text(response)
    assert response.status_code == 200 and no_inline_script_or_style(html)
    assert '<td id="send-account">GoGift emulated</td>' in html
    assert "GoGift (sandbox)" in html and '<td id="send-cards">4</td>' in html
    totals = re.search(r'<td id="send-totals">(.*?)</td>', html).group(1)
    assert "350.00 DKK</span> (2 cards)" in totals and "50.00 EUR</span> (2 cards)" in totals
    assert "400.00" not in html  # never one sum across currencies
    assert "4 gift cards worth 350.00 DKK and 50.00 EUR" in html
    assert "As soon as you confirm" in html and "Not needed: under the approval thresholds" in html
    assert 'id="confirm-send"' in html and 'value="Yes, send 4 cards"' in html
    assert "No, take me back" in html
    assert statuses(batch) == {OrderStatus.PENDING} and gogift_emulator.ledger == []
    assert not AuditEntry.objects.filter(action=AuditAction.SEND).exists()


def test_the_send_page_says_when_an_approver_must_sign_and_when_it_is_scheduled(
    admin_client, emulated_gogift_account, settings
):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=300,EUR=1000"
    batch = make_batch(emulated_gogift_account, ["100", "250"])
    when = timezone.now() + datetime.timedelta(days=3)
    Batch.objects.filter(pk=batch.pk).update(scheduled_for=when)

    html = text(admin_client.get(send_url(batch)))

    assert "Needed</span>: 350.00 DKK reaches the approval threshold of 300.00 DKK." in html
    assert f"{timezone.localtime(when):%Y-%m-%d %H:%M}" in html and "queued then, not before" in html
    assert "ask an approver to send" in html and 'value="Yes, ask an approver to send 2 cards"' in html


def test_the_send_page_shows_the_monthly_limit_left(admin_client, emulated_gogift_account):
    ProviderAccount.objects.filter(pk=emulated_gogift_account.pk).update(monthly_limits={"DKK": "300"})
    batch = make_batch(emulated_gogift_account, ["100", "250"])

    html = text(admin_client.get(send_url(batch)))

    assert "300.00 DKK left of 300.00 DKK this month: 50.00 DKK over, so some cards wait" in html


def test_a_post_without_the_confirmation_sends_nothing_and_shows_the_page(
    admin_client, emulated_gogift_account, gogift_emulator
):
    batch = make_batch(emulated_gogift_account, ["100", "250"])

    response = admin_client.post(send_url(batch))

    assert response.status_code == 200 and 'id="confirm-send"' in text(response)
    assert statuses(batch) == {OrderStatus.PENDING} and Batch.objects.get(pk=batch.pk).state == BatchState.PENDING
    assert not AuditEntry.objects.filter(action=AuditAction.SEND).exists()
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=1)
    assert gogift_emulator.ledger == []


def test_a_confirmation_of_a_batch_changed_since_the_page_was_shown_sends_nothing(
    admin_client, emulated_gogift_account
):
    batch = make_batch(emulated_gogift_account, ["100", "250"])
    shown = admin_client.get(send_url(batch)).context["shown"]
    Order.objects.filter(pk=batch.orders.order_by("id").first().pk).update(amount=Decimal("4000"))

    response = admin_client.post(send_url(batch), {"post": "yes", "shown": shown})

    assert response.status_code == 200 and statuses(batch) == {OrderStatus.PENDING}
    assert any("changed since the confirmation page was shown" in message for message in messages_of(response))
    assert "4,250.00 DKK" in text(response)  # shown again, as it is now


def edit_while_the_wallet_is_asked(monkeypatch, batch) -> None:
    """Send asks the wallet before it locks the batch: an order of `batch` is edited then."""
    ask_the_wallet = batches._balance_refresh_if_old

    def ask_then_edit(sent):
        ask_the_wallet(sent)
        Order.objects.filter(pk=batch.orders.order_by("id").first().pk).update(amount=Decimal("4000"))

    monkeypatch.setattr(batches, "_balance_refresh_if_old", ask_then_edit)


def test_a_batch_changed_while_send_asks_the_wallet_is_caught_under_the_lock(
    admin_client, emulated_gogift_account, gogift_emulator, monkeypatch
):
    batch = make_batch(emulated_gogift_account, ["100", "250"])
    shown = admin_client.get(send_url(batch)).context["shown"]
    edit_while_the_wallet_is_asked(monkeypatch, batch)

    response = admin_client.post(send_url(batch), {"post": "yes", "shown": shown})

    assert response.status_code == 200 and statuses(batch) == {OrderStatus.PENDING}
    assert any("changed since the confirmation page was shown" in message for message in messages_of(response))
    assert "4,250.00 DKK" in text(response)  # shown again, as it is now
    assert Batch.objects.get(pk=batch.pk).state == BatchState.PENDING
    assert not AuditEntry.objects.filter(action=AuditAction.SEND).exists()
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=1)
    assert gogift_emulator.ledger == []


def test_switching_the_account_to_another_environment_after_the_page_refuses_the_send(
    admin_client, emulated_gogift_account, gogift_emulator
):
    batch = make_batch(emulated_gogift_account, ["100"])
    page = admin_client.get(send_url(batch))
    assert "GoGift (sandbox)" in text(page)
    ProviderAccount.objects.filter(pk=emulated_gogift_account.pk).update(environment="production")

    response = admin_client.post(send_url(batch), {"post": "yes", "shown": page.context["shown"]})

    assert response.status_code == 200 and statuses(batch) == {OrderStatus.PENDING}
    assert any("changed since the confirmation page was shown" in message for message in messages_of(response))
    assert "GoGift (production)" in text(response)  # shown again, where it would now go
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=1)
    assert gogift_emulator.ledger == []


def test_confirming_sends_and_the_provider_creates_each_card_once(
    admin_client, emulated_gogift_account, gogift_emulator
):
    batch = make_batch(emulated_gogift_account, ["100", "250", "300"])
    shown = admin_client.get(send_url(batch)).context["shown"]

    response = admin_client.post(send_url(batch), {"post": "yes", "shown": shown}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:orders_batch_change", args=[batch.pk])
    assert "Queued 3 orders of “test.csv”." in messages_of(response)
    assert statuses(batch) == {OrderStatus.QUEUED}
    # The same confirmation posted again (a double click, the back button) buys nothing more.
    again = admin_client.post(send_url(batch), {"post": "yes", "shown": shown}, follow=True)
    assert any("changed since the confirmation page was shown" in message for message in messages_of(again))
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=10)
    references = sorted(batch.orders.values_list("reference", flat=True))
    assert sorted(entry.reference for entry in gogift_emulator.ledger) == references
    assert AuditEntry.objects.filter(action=AuditAction.SEND).count() == 1


def test_a_batch_with_nothing_to_send_shows_why_and_no_confirm_button(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch.orders.update(status=OrderStatus.CANCELLED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.CANCELLED)

    html = text(admin_client.get(send_url(batch)))

    assert "Batch “test.csv” is cancelled: nothing to send." in html
    assert 'id="confirm-send"' not in html and "Back to the batch" in html


# --- The batch page's Cancel ------------------------------------------------------------------------


def test_the_cancel_page_shows_what_is_cancelled_and_what_cannot_be(admin_client, emulated_gogift_account):
    batch = mixed_batch(emulated_gogift_account, [(GLOBAL_GIFT_CARD_SKU, "100"), (EURO_CARD_SKU, "20"),
                                                  (GLOBAL_GIFT_CARD_SKU, "300"), (GLOBAL_GIFT_CARD_SKU, "400")])
    first, second, third, fourth = batch.orders.order_by("id")
    Order.objects.filter(pk=second.pk).update(status=OrderStatus.QUEUED)
    Order.objects.filter(pk=third.pk).update(status=OrderStatus.PROCESSING)
    Order.objects.filter(pk=fourth.pk).update(status=OrderStatus.DELIVERED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand

    response = admin_client.get(cancel_url(batch))

    html = text(response)
    assert response.status_code == 200 and no_inline_script_or_style(html)
    assert "cancel <strong>2 orders not yet sent (100.00 DKK and 20.00 EUR)</strong>" in html
    assert "1 order already with the provider (sending or processing), too late to stop; 1 delivered" in html
    assert 'value="Yes, cancel 2 orders"' in html and 'id="confirm-cancel"' in html
    assert admin_client.post(cancel_url(batch)).status_code == 200  # no confirmation: the page again
    assert Order.objects.get(pk=first.pk).status == OrderStatus.PENDING

    done = admin_client.post(cancel_url(batch), {"post": "yes"}, follow=True)

    assert "Cancelled 2 orders of “mixed.csv”." in messages_of(done)
    assert {order.pk for order in batch.orders.filter(status=OrderStatus.CANCELLED)} == {first.pk, second.pk}
    assert Order.objects.get(pk=third.pk).status == OrderStatus.PROCESSING


def test_cancelling_one_order_says_one_order(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])

    done = admin_client.post(cancel_url(batch), {"post": "yes"}, follow=True)

    assert "Cancelled 1 order of “test.csv”." in messages_of(done)
    assert "Cancelled 1 order not yet sent (100.00 DKK)." == AuditEntry.objects.get(action=AuditAction.CANCEL).summary


def test_a_batch_with_nothing_to_cancel_says_so_and_offers_no_button(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch.orders.update(status=OrderStatus.DELIVERED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand

    html = text(admin_client.get(cancel_url(batch)))

    assert "has no pending or queued orders left to cancel" in html and 'id="confirm-cancel"' not in html


# --- The list's actions --------------------------------------------------------------------------------


def action(client, name: str, batches, **extra):
    return client.post(CHANGELIST, {"action": name, "_selected_action": [batch.pk for batch in batches], **extra})


def test_the_send_action_lists_each_batch_first_and_sends_only_once_confirmed(
    sender, emulated_gogift_account, gogift_emulator
):
    client = signed_in(sender)
    christmas = mixed_batch(emulated_gogift_account, [(GLOBAL_GIFT_CARD_SKU, "100"), (EURO_CARD_SKU, "20")],
                            uploader=sender)
    lunch = make_batch(emulated_gogift_account, ["250"])
    Batch.objects.filter(pk=lunch.pk).update(created_by=sender)
    anothers = make_batch(emulated_gogift_account, ["500"])
    Batch.objects.filter(pk=anothers.pk).update(name="Someone else's", created_by=person("other", "Senders"))

    page = action(client, "send_batches", [christmas, lunch, anothers])

    html = text(page)
    assert page.status_code == 200 and no_inline_script_or_style(html)
    assert "mixed.csv" in html and "test.csv" in html and "100.00 DKK</span><br><span" in html
    assert "20.00 EUR" in html and "250.00 DKK" in html
    assert "Left out, only its uploader, an approver or an administrator may send or cancel it" in html
    assert "Someone else" in html and 'value="Yes, send 2 batches"' in html
    assert 'name="post" value="yes"' in html and 'name="action" value="send_batches"' in html
    assert {*statuses(christmas), *statuses(lunch), *statuses(anothers)} == {OrderStatus.PENDING}

    done = client.post(CHANGELIST, {"action": "send_batches", "post": "yes", "shown": page.context["shown"],
                                    "_selected_action": [christmas.pk, lunch.pk, anothers.pk]}, follow=True)

    shown = messages_of(done)
    assert "Queued 2 orders of “mixed.csv”." in shown and "Queued 1 order of “test.csv”." in shown
    assert any(message.startswith("“Someone else's” was not touched") for message in shown)
    assert statuses(christmas) == statuses(lunch) == {OrderStatus.QUEUED}
    assert statuses(anothers) == {OrderStatus.PENDING}
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=10)
    expected = sorted([*christmas.orders.values_list("reference", flat=True),
                       *lunch.orders.values_list("reference", flat=True)])
    assert sorted(entry.reference for entry in gogift_emulator.ledger) == expected


def test_the_send_action_without_the_digest_of_what_it_showed_sends_nothing(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])

    page = action(admin_client, "send_batches", [batch], post="yes", shown="something else")

    assert page.status_code == 200 and 'id="confirm-send"' in text(page)
    assert statuses(batch) == {OrderStatus.PENDING}


def test_the_send_action_with_the_real_digest_of_a_batch_changed_since_sends_nothing(
    admin_client, emulated_gogift_account, gogift_emulator
):
    batch = make_batch(emulated_gogift_account, ["100"])
    other = make_batch(emulated_gogift_account, ["200"])
    page = action(admin_client, "send_batches", [batch, other])
    Order.objects.filter(batch=batch).update(amount=Decimal("400"))

    again = action(admin_client, "send_batches", [batch, other], post="yes", shown=page.context["shown"])

    assert again.status_code == 200 and 'id="confirm-send"' in text(again) and "400.00 DKK" in text(again)
    assert any(message.startswith("The selected batches changed since the confirmation page was shown")
               for message in messages_of(again))
    assert statuses(batch) == statuses(other) == {OrderStatus.PENDING}
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=1)
    assert gogift_emulator.ledger == []


def test_the_send_action_checks_each_batch_under_its_lock(
    admin_client, emulated_gogift_account, gogift_emulator, monkeypatch
):
    batch = make_batch(emulated_gogift_account, ["100"])
    page = action(admin_client, "send_batches", [batch])
    edit_while_the_wallet_is_asked(monkeypatch, batch)

    done = admin_client.post(CHANGELIST, {"action": "send_batches", "post": "yes", "shown": page.context["shown"],
                                          "_selected_action": [batch.pk]}, follow=True)

    assert messages_of(done) == ["“test.csv” changed while you were reviewing it (an order was edited, cancelled "
                                 "or sent meanwhile): nothing was sent. Look at it again, then send."]
    assert statuses(batch) == {OrderStatus.PENDING} and Batch.objects.get(pk=batch.pk).state == BatchState.PENDING
    dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=1)
    assert gogift_emulator.ledger == []


def test_the_cancel_action_lists_each_batch_first_and_cancels_only_once_confirmed(
    admin_client, emulated_gogift_account
):
    first = make_batch(emulated_gogift_account, ["100", "250"])
    second = mixed_batch(emulated_gogift_account, [(EURO_CARD_SKU, "20")])
    second.orders.update(status=OrderStatus.DELIVERED)
    batch_totals_refresh([second.pk])  # the stored counts follow statuses set by hand

    page = action(admin_client, "cancel_batches", [first, second])

    html = text(page)
    assert page.status_code == 200 and no_inline_script_or_style(html)
    assert "2 orders, <span class=\"giftdesk-money\">350.00 DKK</span>" in html and "1 delivered" in html
    assert 'id="confirm-cancel"' in html and statuses(first) == {OrderStatus.PENDING}

    done = action(admin_client, "cancel_batches", [first, second], post="yes")

    assert done.status_code == 302 and statuses(first) == {OrderStatus.CANCELLED}
    assert statuses(second) == {OrderStatus.DELIVERED}
    # The page said the second had nothing to cancel: no error about it after the confirmation.
    assert messages_of(admin_client.get(done.url)) == ["Cancelled 2 orders of “test.csv”."]


def test_the_cancel_action_names_the_batches_left_out_once_each(sender, emulated_gogift_account):
    client = signed_in(sender)
    own = make_batch(emulated_gogift_account, ["100"])
    Batch.objects.filter(pk=own.pk).update(created_by=sender)
    anothers = make_batch(emulated_gogift_account, ["500"])
    Batch.objects.filter(pk=anothers.pk).update(name="Someone else's", created_by=person("other", "Senders"))

    done = client.post(CHANGELIST, {"action": "cancel_batches", "post": "yes",
                                    "_selected_action": [own.pk, anothers.pk]}, follow=True)

    assert messages_of(done) == [
        "“Someone else's” was not touched: only its uploader, an approver or an administrator may send or "
        "cancel it; ask one of them.", "Cancelled 1 order of “test.csv”."]
    assert statuses(own) == {OrderStatus.CANCELLED} and statuses(anothers) == {OrderStatus.PENDING}


# --- Who may ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["another sender", "finance"])
def test_only_those_who_may_send_see_the_pages_and_a_forged_confirmation_is_refused(
    role, sender, emulated_gogift_account, gogift_emulator
):
    batch = make_batch(emulated_gogift_account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(created_by=sender)
    client = signed_in(person("second.sender", "Senders") if role == "another sender" else person("fin", "Finance"))

    for url in (send_url(batch), cancel_url(batch)):
        assert client.get(url).status_code == 403
        # The real fingerprint: only the permission check stops it.
        assert client.post(url, {"post": "yes", "shown": batch_fingerprint(batch)}).status_code == 403

    assert statuses(batch) == {OrderStatus.PENDING} and gogift_emulator.ledger == []


def test_the_uploader_and_an_approver_may_open_the_send_page(sender, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(created_by=sender)

    assert signed_in(sender).get(send_url(batch)).status_code == 200
    assert signed_in(person("alma", "Approvers")).get(send_url(batch)).status_code == 200


# --- Wording -------------------------------------------------------------------------------------------


def test_resuming_an_account_counts_its_waiting_submissions_in_words(admin_client, emulated_gogift_account):
    account = emulated_gogift_account
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="GoGift refused the account.")
    Submission.objects.create(account=account, idempotency_key="gd-waiting", state=SubmissionState.RETRY)

    response = admin_client.post(reverse("admin:providers_provideraccount_changelist"),
                                 {"action": "resume_sending", "_selected_action": [account.pk]}, follow=True)

    assert "GoGift emulated: sending resumed; 1 waiting submission will be retried." in messages_of(response)
