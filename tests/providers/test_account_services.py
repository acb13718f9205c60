"""Account services every provider shares: the pre-launch checklist, wallet balances, the
schedules, and the provider's price in the import preview."""

from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from orders.models import Order, OrderStatus
from orders.selectors import waiting_products_no_longer_offered
from providers.checklist import account_checklist
from providers.models import Product, ProviderAccount
from providers.services import account_balance_refresh, account_check
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD


def checklist(account) -> dict[str, tuple[bool, str]]:
    items = account_checklist(account, products_no_longer_offered=waiting_products_no_longer_offered(account))
    return {item.label: (item.ok, item.detail) for item in items}


def test_a_ready_account_passes_every_check(emulated_gogift_account):
    account_check(account=emulated_gogift_account)
    emulated_gogift_account.refresh_from_db()
    assert all(ok for ok, _ in checklist(emulated_gogift_account).values()), checklist(emulated_gogift_account)


def test_the_checklist_names_what_is_missing_and_what_to_do(emulated_gogift_account):
    account = emulated_gogift_account
    ProviderAccount.objects.filter(pk=account.pk).update(
        settings={}, rate_limit_per_minute=60, blocked_reason="GoGift refused the account: no credit.")
    account.refresh_from_db()
    items = checklist(account)
    assert items["Credentials work"] == (False, "Not tested yet: use the “Test connection” action.")
    ok, detail = items["Required settings present"]
    assert not ok and "Buyer account id" in detail and "Buyer phone" in detail
    ok, detail = items["Sending not paused"]
    assert not ok and "no credit" in detail and "Resume sending" in detail


def test_the_checklist_flags_waiting_orders_whose_product_is_gone(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    Product.objects.filter(pk=batch.orders.get().product_id).update(is_active=False)
    ok, detail = checklist(emulated_gogift_account)["Products in use exist in this environment"]
    assert not ok and "The Global Gift Card" in detail and "Sync the catalog" in detail


def test_the_checklist_leaves_out_the_products_check_when_not_given_what_orders_use(emulated_gogift_account):
    labels = [item.label for item in account_checklist(emulated_gogift_account)]
    assert "Products in use exist in this environment" not in labels
    assert labels[:3] == ["Credentials entered", "Credentials work", "Catalog synced"]


def test_the_checklist_holds_gifty_to_its_documented_rate_limit(emulated_gifty_account):
    ProviderAccount.objects.filter(pk=emulated_gifty_account.pk).update(rate_limit_per_minute=200)
    emulated_gifty_account.refresh_from_db()
    ok, detail = checklist(emulated_gifty_account)["Rate limit set"]
    assert not ok and "above the provider's limit of 120" in detail


def test_a_wallet_balance_is_fetched_and_kept_on_the_account(emulated_ugiftme_account, ugiftme_emulator):
    message = account_balance_refresh(account=emulated_ugiftme_account)
    emulated_ugiftme_account.refresh_from_db()
    assert emulated_ugiftme_account.balance is not None and emulated_ugiftme_account.balance > 0
    assert emulated_ugiftme_account.balance_currency == "EUR"
    assert (timezone.now() - emulated_ugiftme_account.balance_checked_at).total_seconds() < 60
    assert f"{emulated_ugiftme_account.balance} EUR" in message


def test_a_provider_without_a_wallet_says_so(emulated_gogift_account):
    assert "keeps no balance" in account_balance_refresh(account=emulated_gogift_account)


def test_the_sweep_catalog_and_balance_schedules_exist(db):
    schedules = dict(Schedule.objects.values_list("name", "func"))
    assert schedules["giftdesk-sweep"] == "orders.tasks.sweep"
    assert schedules["giftdesk-catalog-sync"] == "providers.tasks.sync_all_catalogs"
    assert schedules["giftdesk-balances"] == "providers.tasks.refresh_balances"
    assert Schedule.objects.get(name="giftdesk-catalog-sync").schedule_type == Schedule.DAILY


def test_the_import_preview_shows_gifty_fees_before_confirming(admin_client, emulated_gifty_account):
    product = Product.objects.get(account=emulated_gifty_account, provider_product_id=GIFTY_VARIABLE_CARD)
    upload = SimpleUploadedFile(
        "gifty.csv", b"name,email,amount,message\nAna,ana@example.com,25,Thanks!\nBo,bo@example.com,40,Well done\n")
    response = admin_client.post(reverse("admin:orders_batch_import"), {
        "import_file": upload, "format": "0", "resource": "0",
        "account": emulated_gifty_account.pk, "default_product": product.pk,
    })
    quote = response.context["result"].giftdesk_quote
    assert quote.subtotal == Decimal("65.00") and quote.fees > 0 and quote.total == quote.subtotal + quote.fees
    html = response.content.decode()
    assert 'id="provider-quote"' in html and f"{quote.fees} EUR in fees" in html
    assert not Order.objects.exists()  # a price preview creates nothing


def test_card_details_are_refreshed_from_the_provider(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    Order.objects.filter(batch=batch).update(status=OrderStatus.DELIVERED)
    response = admin_client.post(reverse("admin:orders_order_changelist"), {
        "action": "refresh_card_details", "_selected_action": list(batch.orders.values_list("pk", flat=True)),
    }, follow=True)
    assert "the provider reported no card for this order" in response.content.decode()
