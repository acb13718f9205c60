"""Funds: a batch's total against the UGiftMe wallet (GET /wallet on the emulator, over HTTP).

Short funds are a warning at the preview; Send and approval refuse them with the wallet and
the total, queueing nothing; an administrator may send anyway, and that is recorded. The
balance is asked again when the stored one is older than GIFTDESK_BALANCE_MAX_AGE_SECONDS."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from emulators.ugiftme import MAGASIN_CARD, UNIVERSAL_CARD
from orders.batches import FundsShort, batch_approve, batch_create, batch_send
from orders.funds import funds_check
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spreadsheet import ValidRow
from providers.models import Product, ProviderAccount
from tests.admin_client import confirm_send

SHORT = "The wallet has 1,200.00 EUR, this batch needs 5,000.00 EUR: top up, then send."


@pytest.fixture
def wallet_of_1200(ugiftme_emulator):
    ugiftme_emulator.wallet_balance = Decimal("1200.00")
    return ugiftme_emulator


def wallet_requests(emulator) -> int:
    return sum(1 for request in emulator.requests if request.method == "GET" and request.path == "/wallet")


def ugiftme_batch(account: ProviderAccount, amounts: list[str], *, product_id: str = UNIVERSAL_CARD, user=None) -> Batch:
    product = Product.objects.get(account=account, provider_product_id=product_id)
    rows = [ValidRow(row=index + 2, name=f"Recipient {index}", email=f"r{index}@example.com", phone="",
                     reference="", message="Thank you!", amount=Decimal(amount), currency=product.currency,
                     product=product, send_on=None)
            for index, amount in enumerate(amounts)]
    return batch_create(account=account, rows=rows, user=user, source_filename="funds.csv")


def five_thousand_eur(account, user=None) -> Batch:
    return ugiftme_batch(account, ["500"] * 10, user=user)


def statuses(batch) -> set[str]:
    return set(batch.orders.values_list("status", flat=True))


# --- The comparison -------------------------------------------------------------------------------


def test_a_short_wallet_is_reported_with_the_balance_and_what_the_batch_needs(emulated_ugiftme_account,
                                                                              wallet_of_1200):
    check = funds_check(emulated_ugiftme_account, {"EUR": Decimal("5000")})

    assert check.short and check.message == SHORT
    assert (check.balance, check.currency, check.needed) == (Decimal("1200.00"), "EUR", Decimal("5000"))
    assert (timezone.now() - check.checked_at) < timedelta(minutes=1)


def test_a_wallet_that_covers_the_batch_says_so(emulated_ugiftme_account, wallet_of_1200):
    check = funds_check(emulated_ugiftme_account, {"EUR": Decimal("1200")})

    assert not check.short
    assert check.message == "The wallet has 1,200.00 EUR, enough for this batch's 1,200.00 EUR."


def test_a_total_in_another_currency_than_the_wallet_is_not_compared_and_says_so(emulated_ugiftme_account,
                                                                                wallet_of_1200):
    check = funds_check(emulated_ugiftme_account, {"DKK": Decimal("50000"), "EUR": Decimal("100")})

    assert not check.short and check.needed == Decimal("100")
    assert "enough for this batch's 100.00 EUR" in check.message
    assert ("This batch's DKK total cannot be compared with the wallet, which is kept in EUR: UGiftMe converts "
            "at its own rate when it charges.") in check.message


def test_a_provider_without_a_wallet_has_no_funds_check(emulated_gogift_account):
    assert funds_check(emulated_gogift_account, {"DKK": Decimal("1000000")}) is None


def test_a_stale_balance_is_asked_again_before_the_comparison(emulated_ugiftme_account, wallet_of_1200, settings):
    settings.GIFTDESK_BALANCE_MAX_AGE_SECONDS = 300
    ProviderAccount.objects.filter(pk=emulated_ugiftme_account.pk).update(
        balance=Decimal("99999.00"), balance_currency="EUR", balance_checked_at=timezone.now() - timedelta(minutes=6))
    asked_before = wallet_requests(wallet_of_1200)

    check = funds_check(emulated_ugiftme_account, {"EUR": Decimal("5000")})

    assert wallet_requests(wallet_of_1200) == asked_before + 1
    assert check.short and check.balance == Decimal("1200.00")
    account = ProviderAccount.objects.get(pk=emulated_ugiftme_account.pk)
    assert account.balance == Decimal("1200.00")
    assert timezone.now() - account.balance_checked_at < timedelta(minutes=1)


def test_a_fresh_balance_is_not_asked_again(emulated_ugiftme_account, wallet_of_1200, settings):
    settings.GIFTDESK_BALANCE_MAX_AGE_SECONDS = 300
    ProviderAccount.objects.filter(pk=emulated_ugiftme_account.pk).update(
        balance=Decimal("99999.00"), balance_currency="EUR", balance_checked_at=timezone.now() - timedelta(minutes=4))
    asked_before = wallet_requests(wallet_of_1200)

    check = funds_check(emulated_ugiftme_account, {"EUR": Decimal("5000")})

    assert wallet_requests(wallet_of_1200) == asked_before
    assert not check.short and check.balance == Decimal("99999.00")  # the stored one, not the emulator's


def test_a_failed_refresh_keeps_the_stored_balance_and_says_how_old_it_is(emulated_ugiftme_account, wallet_of_1200):
    ProviderAccount.objects.filter(pk=emulated_ugiftme_account.pk).update(
        balance=Decimal("800.00"), balance_currency="EUR", balance_checked_at=timezone.now() - timedelta(hours=2))
    wallet_of_1200.faults.add("http_500", method="GET", path="/wallet", times=None)

    check = funds_check(emulated_ugiftme_account, {"EUR": Decimal("5000")})

    assert check.short and check.balance == Decimal("800.00")
    assert check.message.startswith("The wallet has 800.00 EUR, this batch needs 5,000.00 EUR: top up, then send.")
    assert "balance not refreshed" in check.message and "read 2\xa0hours ago" in check.message
    assert ProviderAccount.objects.get(pk=emulated_ugiftme_account.pk).balance == Decimal("800.00")


def test_a_balance_never_read_and_not_readable_now_is_not_called_short(emulated_ugiftme_account, wallet_of_1200):
    wallet_of_1200.faults.add("http_500", method="GET", path="/wallet", times=None)

    check = funds_check(emulated_ugiftme_account, {"EUR": Decimal("5000")})

    assert not check.short and not check.known and check.balance is None
    assert "balance could not be read" in check.message and "No earlier balance is known" in check.message


def test_send_asks_a_failing_wallet_once_and_never_under_the_batch_lock(emulated_ugiftme_account, wallet_of_1200):
    """The wallet is asked before the batch is locked; inside, the stored balance is used."""
    ProviderAccount.objects.filter(pk=emulated_ugiftme_account.pk).update(
        balance=Decimal("800.00"), balance_currency="EUR", balance_checked_at=timezone.now() - timedelta(hours=2))
    wallet_of_1200.faults.add("http_500", method="GET", path="/wallet", times=None)
    batch = five_thousand_eur(emulated_ugiftme_account)

    with pytest.raises(FundsShort) as refused:
        batch_send(batch=batch)

    assert wallet_requests(wallet_of_1200) == 1
    assert str(refused.value).startswith("The wallet has 800.00 EUR, this batch needs 5,000.00 EUR")
    assert "read 2\xa0hours ago" in str(refused.value)


# --- Send and approval ----------------------------------------------------------------------------


def test_send_refuses_short_funds_with_the_wallet_and_the_total_and_queues_nothing(emulated_ugiftme_account,
                                                                                  wallet_of_1200, admin_user):
    batch = five_thousand_eur(emulated_ugiftme_account)

    with pytest.raises(FundsShort) as refused:
        batch_send(batch=batch, user=admin_user)

    assert str(refused.value) == SHORT
    batch.refresh_from_db()
    assert batch.state == BatchState.PENDING and batch.send_requested_at is None
    assert statuses(batch) == {OrderStatus.PENDING}
    assert not AuditEntry.objects.filter(action__in=[AuditAction.SEND, AuditAction.SEND_ANYWAY]).exists()
    assert wallet_of_1200.ledger == []


def test_the_refreshed_balance_is_kept_although_send_was_refused(emulated_ugiftme_account, wallet_of_1200):
    batch = five_thousand_eur(emulated_ugiftme_account)

    with pytest.raises(FundsShort):
        batch_send(batch=batch)

    account = ProviderAccount.objects.get(pk=emulated_ugiftme_account.pk)
    assert account.balance == Decimal("1200.00") and account.balance_checked_at is not None


def test_an_administrator_may_send_anyway_and_it_is_recorded_with_the_balance_and_total(
    emulated_ugiftme_account, wallet_of_1200, admin_user
):
    batch = five_thousand_eur(emulated_ugiftme_account)

    outcome = batch_send(batch=batch, user=admin_user, send_anyway=True)

    assert outcome.queued == 10 and statuses(batch) == {OrderStatus.QUEUED}
    entry = AuditEntry.objects.get(action=AuditAction.SEND_ANYWAY)
    assert entry.user == admin_user and entry.target_id == str(batch.pk)
    assert entry.amounts == {"EUR": "5000.00"}
    assert "the wallet had 1,200.00 EUR, the batch needs 5,000.00 EUR" in entry.summary


def test_send_anyway_by_someone_not_an_administrator_is_refused(emulated_ugiftme_account, wallet_of_1200,
                                                               sender_user):
    batch = five_thousand_eur(emulated_ugiftme_account, user=sender_user)

    with pytest.raises(FundsShort) as refused:
        batch_send(batch=batch, user=sender_user, send_anyway=True)

    assert str(refused.value) == f"{SHORT} Only an administrator may send a batch the wallet cannot pay for."
    assert statuses(batch) == {OrderStatus.PENDING}
    assert not AuditEntry.objects.filter(action=AuditAction.SEND_ANYWAY).exists()


def test_a_batch_the_wallet_covers_is_sent_as_before(emulated_ugiftme_account, wallet_of_1200):
    batch = ugiftme_batch(emulated_ugiftme_account, ["500", "500"])

    assert batch_send(batch=batch).queued == 2


def test_a_dkk_batch_is_not_refused_by_a_wallet_kept_in_eur(emulated_ugiftme_account, wallet_of_1200):
    batch = ugiftme_batch(emulated_ugiftme_account, ["500"] * 20, product_id=MAGASIN_CARD)  # 10,000 DKK

    assert batch_send(batch=batch).queued == 20


def approver(username: str = "avery.approver", *, superuser: bool = False):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", is_staff=True,
                                                is_superuser=superuser)
    user.groups.add(Group.objects.get(name="Approvers"))
    return user


def test_approving_a_batch_the_wallet_cannot_pay_for_is_refused_and_it_keeps_waiting(
    emulated_ugiftme_account, wallet_of_1200, sender_user, settings
):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "EUR=1000"
    batch = five_thousand_eur(emulated_ugiftme_account, user=sender_user)
    outcome = batch_send(batch=batch, user=sender_user)
    assert outcome.awaiting_approval and f"Before it is approved: {SHORT}" in outcome.message

    with pytest.raises(FundsShort) as refused:
        batch_approve(batch=batch, user=approver())

    assert str(refused.value) == SHORT
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL and batch.approved_by is None
    assert statuses(batch) == {OrderStatus.PENDING}


def test_an_administrator_approving_may_send_anyway(emulated_ugiftme_account, wallet_of_1200, sender_user, settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "EUR=1000"
    batch = five_thousand_eur(emulated_ugiftme_account, user=sender_user)
    batch_send(batch=batch, user=sender_user)
    administrator = approver("ada.admin", superuser=True)

    outcome = batch_approve(batch=batch, user=administrator, send_anyway=True)

    assert outcome.queued == 10
    assert AuditEntry.objects.get(action=AuditAction.SEND_ANYWAY).user == administrator


# --- The admin ---------------------------------------------------------------------------------------


def send_url(batch) -> str:
    return reverse("admin:orders_batch_send", args=[batch.pk])


def test_the_admin_refuses_send_and_offers_an_administrator_send_anyway(admin_client, emulated_ugiftme_account,
                                                                        wallet_of_1200, admin_user):
    batch = five_thousand_eur(emulated_ugiftme_account, user=admin_user)

    page = admin_client.get(send_url(batch)).content.decode()  # the page says so before anything is posted

    assert SHORT in page and 'id="send-anyway"' in page and "Send anyway (administrator)" in page
    assert "As an administrator you may send it anyway" in page and 'id="confirm-send"' not in page

    page = confirm_send(admin_client, batch).content.decode()  # a plain confirmation is still refused

    assert SHORT in page and 'id="send-anyway"' in page and "Send anyway (administrator)" in page
    assert statuses(batch) == {OrderStatus.PENDING}

    page = confirm_send(admin_client, batch, send_anyway="1").content.decode()

    assert "Queued 10 orders" in page and 'id="send-anyway"' not in page
    assert statuses(batch) == {OrderStatus.QUEUED}
    assert AuditEntry.objects.filter(action=AuditAction.SEND_ANYWAY, user=admin_user).count() == 1


def test_the_admin_offers_no_send_anyway_to_a_sender_and_refuses_it_posted(sender, sender_user,
                                                                          emulated_ugiftme_account, wallet_of_1200):
    batch = five_thousand_eur(emulated_ugiftme_account, user=sender_user)

    page = sender.get(send_url(batch)).content.decode()  # refused on the page: no "Yes, send" to press
    assert SHORT in page and 'id="send-anyway"' not in page and 'id="confirm-send"' not in page
    assert "Top up the wallet, then send; only an administrator may send it anyway." in page

    posted = confirm_send(sender, batch, send_anyway="1")

    assert [str(message) for message in posted.context["messages"]] == [
        f"{SHORT} Only an administrator may send a batch the wallet cannot pay for."]
    assert statuses(batch) == {OrderStatus.PENDING}
    assert not AuditEntry.objects.filter(action=AuditAction.SEND_ANYWAY).exists()


def test_the_admin_offers_no_send_anyway_when_funds_were_not_the_reason(admin_client, emulated_ugiftme_account,
                                                                       wallet_of_1200, admin_user):
    batch = ugiftme_batch(emulated_ugiftme_account, ["500"], user=admin_user)
    Order.objects.filter(batch=batch).update(status=OrderStatus.CANCELLED)

    page = confirm_send(admin_client, batch).content.decode()

    assert "has no pending orders to send" in page and 'id="send-anyway"' not in page


# --- The preview -------------------------------------------------------------------------------------


def upload(client, account, rows: str, **fields):
    return client.post(reverse("admin:orders_batch_import"), {
        "import_file": SimpleUploadedFile("funds.csv", rows.encode()), "format": "0", "resource": "0",
        "account": account.pk, "message": "Thank you!", **fields,
    })


def eur_rows(count: int, amount: str = "500") -> str:
    return "name,email,amount,product\n" + "".join(
        f"Person {index},p{index}@example.com,{amount},{UNIVERSAL_CARD}\n" for index in range(count))


def test_the_preview_warns_of_short_funds_and_still_offers_the_batch(admin_client, emulated_ugiftme_account,
                                                                    wallet_of_1200):
    response = upload(admin_client, emulated_ugiftme_account, eur_rows(10))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<p id="wallet-check" class="giftdesk-warning"><strong>Warning:</strong> {SHORT}</p>' in html
    assert 'name="confirm"' in html  # a warning, not an error
    assert not Batch.objects.exists()


def test_the_preview_says_when_the_wallet_covers_the_batch(admin_client, emulated_ugiftme_account, wallet_of_1200):
    html = upload(admin_client, emulated_ugiftme_account, eur_rows(2)).content.decode()

    assert ('<p id="wallet-check" class="giftdesk-note">The wallet has 1,200.00 EUR, enough for this batch&#x27;s '
            "1,000.00 EUR.</p>") in html


def test_the_preview_shows_the_monthly_limit_left_and_warns_when_the_batch_is_over_it(
    admin_client, emulated_ugiftme_account, wallet_of_1200
):
    ProviderAccount.objects.filter(pk=emulated_ugiftme_account.pk).update(monthly_limits={"EUR": "800"})

    html = upload(admin_client, emulated_ugiftme_account, eur_rows(2)).content.decode()

    assert '<p id="limit-EUR" class="giftdesk-warning"><strong>Warning:</strong>' in html
    assert "over the monthly spending limit of UGiftMe emulated by 200.00 EUR (800.00 EUR left this month)" in html
    assert 'name="confirm"' in html

    html = upload(admin_client, emulated_ugiftme_account, eur_rows(1)).content.decode()

    assert '<p id="limit-EUR" class="giftdesk-note">800.00 EUR left of the monthly spending limit this month; ' \
           "this batch uses 500.00 EUR.</p>" in html


def test_the_preview_shows_no_limit_line_for_a_currency_without_a_limit(admin_client, emulated_ugiftme_account,
                                                                       wallet_of_1200):
    ProviderAccount.objects.filter(pk=emulated_ugiftme_account.pk).update(monthly_limits={"DKK": "800"})

    html = upload(admin_client, emulated_ugiftme_account, eur_rows(1)).content.decode()

    assert 'id="limit-EUR"' not in html and "monthly spending limit" not in html
