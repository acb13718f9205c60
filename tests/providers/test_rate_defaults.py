"""A new account's rate limit defaults to its provider's documented limit (Gifty: 120 a minute,
seed 003), declared in the provider's client module, however the account is created; stored
accounts keep theirs."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from providers.clients import client_class
from providers.models import RATE_LIMIT_FALLBACK, ProviderAccount, ProviderKind
from providers.services import account_configure

# What the seeds document: Gifty "is limited to 120 requests per minute"; the others name no number.
DOCUMENTED = {"gifty": 120, "gogift": None, "giftronaut": None, "ugiftme": None}
ADD_URL = reverse("admin:providers_provideraccount_add")


def expected(kind: str) -> int:
    return DOCUMENTED[kind] or RATE_LIMIT_FALLBACK


def test_each_client_declares_its_documented_rate():
    assert {kind: client_class(kind).max_requests_per_minute for kind in ProviderKind.values} == DOCUMENTED
    assert RATE_LIMIT_FALLBACK == 60  # today's default, where nothing is documented


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_an_account_created_in_code_gets_the_documented_rate(db, kind):
    account = ProviderAccount.objects.create(name=f"New {kind}", kind=kind)
    account.refresh_from_db()
    assert account.rate_limit_per_minute == expected(kind)


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_an_account_configured_by_command_gets_the_documented_rate(db, kind):
    out = StringIO()
    call_command("configure_account", f"CLI {kind}", "--kind", kind, "--environment", "sandbox", stdout=out)
    assert ProviderAccount.objects.get(name=f"CLI {kind}").rate_limit_per_minute == expected(kind)


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_an_account_added_in_the_admin_with_the_rate_blank_gets_the_documented_rate(admin_client, kind):
    page = admin_client.get(f"{ADD_URL}?kind={kind}").content.decode()
    assert f'name="rate_limit_per_minute" value="{expected(kind)}"' in page
    response = admin_client.post(f"{ADD_URL}?kind={kind}", {
        "name": f"Admin {kind}", "environment": "sandbox", "api_base_url": "", "auth_url": "",
        "max_cards_per_request": "", "rate_limit_per_minute": "", "monthly_limits": "", "is_active": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ProviderAccount.objects.get(name=f"Admin {kind}").rate_limit_per_minute == expected(kind)


def test_a_rate_chosen_at_creation_is_kept(db):
    assert ProviderAccount.objects.create(name="Slow", kind="gifty", rate_limit_per_minute=30).rate_limit_per_minute == 30
    configured, _ = account_configure(name="Slow CLI", kind="gifty", environment="production",
                                      values={"rate_limit_per_minute": "40"})
    assert configured.rate_limit_per_minute == 40


def test_a_stored_account_keeps_its_rate(db):
    """Accounts from before the documented defaults keep what they hold (60 for a Gifty account)."""
    account = ProviderAccount.objects.create(name="Old Gifty", kind="gifty", rate_limit_per_minute=60)
    account.name = "Old Gifty, renamed"
    account.save()
    account_configure(name="Old Gifty, renamed", kind="gifty", environment="production", values={"language": "nl"})
    account.refresh_from_db()
    assert account.rate_limit_per_minute == 60
