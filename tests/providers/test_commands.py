"""The scriptable interface for accounts: configure_account, sync_catalog, check_providers
(seed_demo, an emulators command: tests/emulators/test_seed_demo.py)."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID, GOGIFT_TEST_CLIENT_SECRET


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def configure(server, *extra) -> str:
    return run(
        "configure_account", "GoGift CLI", "--kind", "gogift", "--environment", "sandbox",
        "--api-base-url", server.base_url, "--auth-url", f"{server.base_url}/connect/token",
        "--set", f"client_id={GOGIFT_TEST_CLIENT_ID}", "--set", f"client_secret={GOGIFT_TEST_CLIENT_SECRET}",
        *extra,
    )


def test_configure_account_creates_then_updates_the_same_account(db, gogift_server):
    assert "Created GoGift account “GoGift CLI” (sandbox)" in configure(gogift_server, "--set", "buyer_name=Acme A/S")
    assert "Updated" in configure(gogift_server, "--set", "max_cards_per_request=25")

    account = ProviderAccount.objects.get()
    assert account.settings == {"buyer_name": "Acme A/S"}
    assert account.max_cards_per_request == 25
    assert account.credentials == {"client_id": GOGIFT_TEST_CLIENT_ID, "client_secret": GOGIFT_TEST_CLIENT_SECRET}
    assert GOGIFT_TEST_CLIENT_SECRET not in account.credentials_encrypted


@pytest.mark.parametrize("extra, words", [
    (["--set", "nonsense"], "--set takes KEY=VALUE"),
    (["--set", "max_cards_per_request=many"], "must be a whole number"),
    (["--set", "rate_limit_per_minute=0"], "must be at least 1"),
])
def test_configure_account_refuses_bad_values_and_saves_nothing(db, gogift_server, extra, words):
    with pytest.raises(CommandError, match=words):
        configure(gogift_server, *extra)
    assert not ProviderAccount.objects.exists()


def test_configure_account_will_not_change_an_accounts_kind(db, gogift_server):
    configure(gogift_server)
    with pytest.raises(CommandError, match="cannot become 'gifty'"):
        run("configure_account", "GoGift CLI", "--kind", "gifty", "--environment", "sandbox")


def test_sync_catalog_mirrors_the_catalog_and_deactivates_what_disappeared(db, gogift_server):
    configure(gogift_server)
    account = ProviderAccount.objects.get()
    gone = Product.objects.create(account=account, provider_product_id="1", sku="OLD", title="Discontinued",
                                  currency="DKK", pricing="fixed", denominations=["100"])

    output = run("sync_catalog", "--account", "GoGift CLI")

    assert "1 no longer offered" in output
    gone.refresh_from_db()
    assert gone.is_active is False  # kept for the orders that used it, never deleted
    card = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    assert card.title == "The Global Gift Card" and card.pricing_summary() == "50–5,000 DKK in steps of 10"


def test_sync_catalog_names_an_unknown_account(db):
    with pytest.raises(CommandError, match="No account named 'Nope'"):
        run("sync_catalog", "--account", "Nope")


def test_check_providers_reports_connected(db, gogift_server):
    configure(gogift_server)
    assert "GoGift CLI: Connected." in run("check_providers")
    assert ProviderAccount.objects.get().last_check_ok is True


def test_check_providers_fails_with_what_to_fix(db, gogift_server):
    configure(gogift_server, "--set", "client_secret=wrong")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_providers", stdout=out, stderr=out)
    assert "NOT CONNECTED" in out.getvalue() and "invalid_client" in out.getvalue()
    assert ProviderAccount.objects.get().last_check_ok is False


def test_the_roles_exist_with_their_permissions(db):
    finance = Group.objects.get(name="Finance")
    assert finance.permissions.filter(codename="view_order").exists()
    assert not finance.permissions.filter(codename="change_batch").exists()
    assert Group.objects.get(name="Senders").permissions.filter(codename="add_batch").exists()
