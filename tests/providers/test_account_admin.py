"""The provider account admin: its form is built from what each client declares, and the
account list and page carry what orders add (Resume sending, the products waiting orders use)."""

import pytest
from django.urls import reverse

from providers import forms as account_forms
from providers import services
from providers.clients import client_class
from providers.clients.base import ProviderClient, SettingField
from providers.forms import account_form
from providers.models import ProviderAccount, ProviderKind
from providers.services import account_configure

ADD_URL = reverse("admin:providers_provideraccount_add")


def change_url(account) -> str:
    return reverse("admin:providers_provideraccount_change", args=[account.pk])


def credential_fields(form_class) -> set[str]:
    return {name.removeprefix("credential_") for name in form_class.base_fields if name.startswith("credential_")}


def setting_fields(form_class) -> set[str]:
    return {name.removeprefix("setting_") for name in form_class.base_fields if name.startswith("setting_")}


def declared_credentials() -> set[str]:
    return {key for kind in ProviderKind.values for key in client_class(kind).credential_fields} | {"webhook_secret"}


@pytest.fixture
def gogift_account(db) -> ProviderAccount:
    account, _ = account_configure(name="GoGift", kind="gogift", environment="sandbox", values={
        "client_id": "id", "client_secret": "secret", "buyer_name": "Acme A/S",
    })
    # A key stored before configure_account refused unknown keys: the form keeps it.
    ProviderAccount.objects.filter(pk=account.pk).update(settings={**account.settings, "legacy_note": "kept"})
    account.refresh_from_db()
    return account


def account_post(account, **fields) -> dict:
    return {
        "name": account.name, "environment": account.environment, "api_base_url": "", "auth_url": "",
        "max_cards_per_request": 10, "rate_limit_per_minute": 60, "is_active": "on", **fields,
    }


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_the_form_for_a_kind_shows_exactly_its_declared_settings(kind):
    form_class = account_form(kind)
    assert setting_fields(form_class) == set(client_class(kind).setting_fields)
    # Only this kind's credentials (issue 10, finding 11), no longer every provider's.
    assert credential_fields(form_class) == set(client_class(kind).credential_fields) | {"webhook_secret"}
    for key, declared in client_class(kind).setting_fields.items():
        assert form_class.base_fields[f"setting_{key}"].label == declared.label


def test_the_first_step_of_adding_asks_only_for_the_provider():
    # Issue 10, finding 11: the provider first, then that provider's credentials and settings.
    form_class = account_form(None)
    assert set(form_class.base_fields) == {"kind"}
    assert credential_fields(form_class) | setting_fields(form_class) == set()
    assert declared_credentials() == {"client_id", "client_secret", "api_token", "api_key", "webhook_secret"}


def test_a_new_provider_declaring_its_fields_gets_them_without_admin_code(monkeypatch):
    class FifthClient(ProviderClient):
        kind = "fifth"
        display_name = "Fifth"
        credential_fields = {"access_key": "Access key"}
        setting_fields = {"store_id": SettingField("Store id", "From the Fifth dashboard.", required=True)}

    monkeypatch.setattr(account_forms, "client_class", lambda kind: FifthClient)
    monkeypatch.setattr(services, "client_class", lambda kind: FifthClient)
    form_class = account_form("fifth")
    assert credential_fields(form_class) == {"access_key", "webhook_secret"}
    assert setting_fields(form_class) == {"store_id"}
    field = form_class.base_fields["setting_store_id"]
    assert field.label == "Store id" and "From the Fifth dashboard." in field.help_text
    assert not field.required  # the checklist asks for it; saving the account never waits for it


def test_the_change_page_shows_the_kinds_settings_with_their_stored_values(admin_client, gogift_account):
    html = admin_client.get(change_url(gogift_account)).content.decode()
    assert "GoGift settings" in html
    assert 'name="setting_buyer_name"' in html and 'value="Acme A/S"' in html
    assert 'name="setting_sender_name"' not in html  # Giftronaut's, not GoGift's
    assert 'name="kind"' not in html  # another kind is another account


def test_saving_settings_keeps_the_keys_the_form_does_not_show(admin_client, gogift_account):
    response = admin_client.post(change_url(gogift_account), account_post(
        gogift_account, setting_buyer_email=" finance@acme.example ", setting_buyer_name=""))
    assert response.status_code == 302
    gogift_account.refresh_from_db()
    assert gogift_account.settings == {"buyer_email": "finance@acme.example", "legacy_note": "kept"}
    assert gogift_account.credentials["client_secret"] == "secret"


def test_a_credential_of_another_kind_is_refused_naming_what_the_kind_uses(admin_client, gogift_account):
    response = admin_client.post(change_url(gogift_account), account_post(gogift_account, credential_api_key="k"))
    assert response.status_code == 200
    assert ("API key does not apply to GoGift accounts; GoGift uses Client ID, Client secret and Webhook secret."
            in response.content.decode())


def test_adding_an_account_goes_on_to_its_page_for_the_settings(admin_client, db):
    # Issue 10, finding 11: the provider is chosen first; its form has its credentials and settings.
    first = admin_client.get(ADD_URL).content.decode()
    assert 'name="kind"' in first and 'name="credential_' not in first and 'name="setting_' not in first
    page = admin_client.get(f"{ADD_URL}?kind=gifty").content.decode()
    assert 'name="credential_api_token"' in page and 'name="setting_language"' in page

    response = admin_client.post(ADD_URL, {
        "name": "Gifty", "kind": "gifty", "environment": "sandbox", "api_base_url": "", "auth_url": "",
        "max_cards_per_request": 1, "rate_limit_per_minute": 120, "is_active": "on", "credential_api_token": "t",
    })

    account = ProviderAccount.objects.get(name="Gifty")
    assert response.status_code == 302 and response.url == change_url(account)
    assert account.credentials == {"api_token": "t"}
    assert 'name="setting_language"' in admin_client.get(response.url).content.decode()


def test_resume_sending_is_on_the_account_list_and_clears_the_pause(admin_client, emulated_gogift_account):
    # Resume checks the connection first (issue 9): the account talks to the emulator.
    account = emulated_gogift_account
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="GoGift refused the account.")
    response = admin_client.post(reverse("admin:providers_provideraccount_changelist"), {
        "action": "resume_sending", "_selected_action": [account.pk]}, follow=True)
    assert "GoGift emulated: sending resumed; 0 waiting submissions will be retried." in response.content.decode()
    account.refresh_from_db()
    assert account.blocked_reason == "" and account.blocked_at is None


def test_the_account_page_checks_the_products_of_waiting_orders(admin_client, gogift_account):
    html = admin_client.get(change_url(gogift_account)).content.decode()
    assert "Products in use exist in this environment" in html
