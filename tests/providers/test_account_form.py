"""The account form as staff see it (issue 10, finding 11): the provider is chosen first, then
its form shows only its credentials, labelled and explained as its documents do, and its
settings as fields (never JSON); "Test connection" is a button on the account's page."""

import json
import re
from html import unescape

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEntry
from providers.clients import client_class
from providers.models import ProviderAccount, ProviderKind
from providers.services import account_configure

ADD_URL = reverse("admin:providers_provideraccount_add")

# What each provider's documents call its credentials, and a phrase of where to find them
# (seeds 000-004, see /shared/seeds/README.md).
DOCUMENTED = {
    "gogift": {"client_id": ("Client ID", "From GoGift"),
               "client_secret": ("Client secret", "keep it confidential")},
    "giftronaut": {"client_id": ("Client ID", "Apps section of Giftronaut's developer portal"),
                   "client_secret": ("Client secret", "Giftronaut shows it only once")},
    "gifty": {"api_token": ("API token", "developer's page in your Gifty dashboard")},
    "ugiftme": {"api_key": ("API key", "issued from the UGiftMe dashboard")},
}
EVERY_CREDENTIAL = {key for credentials in DOCUMENTED.values() for key in credentials}
# A credential of another provider for each kind, as a forged post would carry it.
FOREIGN = {"gogift": "api_token", "giftronaut": "api_key", "gifty": "client_id", "ugiftme": "client_secret"}


def change_url(account) -> str:
    return reverse("admin:providers_provideraccount_change", args=[account.pk])


def connection_url(account) -> str:
    return reverse("admin:providers_provideraccount_test_connection", args=[account.pk])


def input_names(html: str, prefix: str) -> set[str]:
    return {name.removeprefix(prefix) for name in re.findall(rf'name="({prefix}\w+)"', html)}


def label_of(html: str, field: str) -> str:
    return unescape(re.search(rf'<label[^>]*for="id_{field}"[^>]*>([^<]*)</label>', html).group(1)).strip().rstrip(":")


def help_of(html: str, field: str) -> str:
    return unescape(re.search(rf'<div class="help" id="id_{field}_helptext">\s*<div>(.*?)</div>', html, re.S).group(1))


def new_account_post(kind: str, **fields) -> dict:
    return {"name": f"New {kind}", "environment": "sandbox", "api_base_url": "", "auth_url": "",
            "max_cards_per_request": "", "rate_limit_per_minute": "", "monthly_limits": "", "is_active": "on",
            **fields}


def staff(username: str, group: str) -> Client:
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


# --- Adding: the provider first, then only its fields ----------------------------------------


def test_adding_starts_by_asking_which_provider_and_saves_nothing(admin_client, db):
    html = admin_client.get(ADD_URL).content.decode()
    assert set(re.findall(r'name="kind" value="(\w+)"', html)) == set(ProviderKind.values)
    assert "GoGift: Client ID and Client secret" in html and "Gifty: API token" in html
    assert 'name="_choose_provider"' in html and 'name="_save"' not in html
    assert input_names(html, "credential_") == set() and input_names(html, "setting_") == set()

    response = admin_client.post(f"{ADD_URL}?_changelist_filters=kind%3Dgifty",
                                 {"kind": "gogift", "_choose_provider": "Next"})

    assert response.status_code == 302
    assert response.url == f"{ADD_URL}?_changelist_filters=kind%3Dgifty&kind=gogift"
    assert not ProviderAccount.objects.exists()


def test_going_on_without_choosing_a_provider_asks_again(admin_client, db):
    response = admin_client.post(ADD_URL, {"_choose_provider": "Next"})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert not ProviderAccount.objects.exists()


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_the_add_form_of_a_provider_shows_only_its_credentials_as_its_documents_name_them(admin_client, db, kind):
    html = admin_client.get(f"{ADD_URL}?kind={kind}").content.decode()

    assert input_names(html, "credential_") == set(DOCUMENTED[kind]) | {"webhook_secret"}
    assert not input_names(html, "credential_") & (EVERY_CREDENTIAL - set(DOCUMENTED[kind]))
    for key, (label, where) in DOCUMENTED[kind].items():
        assert label_of(html, f"credential_{key}") == label
        assert where in help_of(html, f"credential_{key}")
    # Its settings are fields of their own, on this same page.
    assert input_names(html, "setting_") == set(client_class(kind).setting_fields)
    assert 'name="settings"' not in html and 'name="kind"' not in html
    assert f"{ProviderKind(kind).label} credentials" in html and 'id="choose-another-provider"' in html


def test_the_token_url_is_asked_only_of_providers_that_hand_out_tokens(admin_client, db):
    pages = {kind: admin_client.get(f"{ADD_URL}?kind={kind}").content.decode() for kind in ProviderKind.values}
    assert {kind for kind, html in pages.items() if 'name="auth_url"' in html} == {"gogift", "giftronaut"}
    assert "https://auth-pre.gogift.io/connect/token in sandbox" in pages["gogift"]
    assert "Gifty allows 120 a minute" in pages["gifty"] and 'name="rate_limit_per_minute" value="120"' in pages["gifty"]


def test_an_account_is_added_with_its_credentials_and_settings_in_one_form(admin_client, db):
    response = admin_client.post(f"{ADD_URL}?kind=gogift", new_account_post(
        "gogift", credential_client_id="id-1", credential_client_secret="secret-1",
        setting_buyer_name="Acme A/S", setting_buyer_email="finance@acme.example"))

    account = ProviderAccount.objects.get()
    assert response.status_code == 302 and response.url == change_url(account)
    assert account.kind == "gogift" and account.credentials == {"client_id": "id-1", "client_secret": "secret-1"}
    assert account.settings == {"buyer_name": "Acme A/S", "buyer_email": "finance@acme.example"}
    # Blank sending fields take GiftDesk's defaults (GoGift documents no limits of its own).
    assert (account.max_cards_per_request, account.rate_limit_per_minute) == (10, 60)


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_a_forged_credential_of_another_provider_is_refused_and_nothing_is_saved(admin_client, db, kind):
    own = next(iter(DOCUMENTED[kind]))
    response = admin_client.post(f"{ADD_URL}?kind={kind}", new_account_post(
        kind, **{f"credential_{own}": "mine", f"credential_{FOREIGN[kind]}": "forged"}))

    assert response.status_code == 200
    foreign_label = next(label for labels in DOCUMENTED.values() for key, (label, _) in labels.items()
                         if key == FOREIGN[kind])
    name = ProviderKind(kind).label
    assert f"{foreign_label} does not apply to {name} accounts; {name} uses " in response.content.decode()
    assert not ProviderAccount.objects.exists()


def test_a_forged_credential_on_the_account_page_changes_nothing(admin_client, db):
    account, _ = account_configure(name="Wallet", kind="ugiftme", environment="sandbox", values={"api_key": "k"})
    response = admin_client.post(change_url(account), {
        **new_account_post("ugiftme", name="Wallet", max_cards_per_request="5", rate_limit_per_minute="60"),
        "credential_client_id": "forged", "credential_client_secret": "forged"})

    assert ("Client ID and Client secret do not apply to UGiftMe accounts; UGiftMe uses API key and Webhook secret."
            in response.content.decode())
    account.refresh_from_db()
    assert account.credentials == {"api_key": "k"} and account.max_cards_per_request == 10


def test_a_credential_typed_before_another_error_is_asked_for_again_next_to_its_field(admin_client, db):
    response = admin_client.post(f"{ADD_URL}?kind=gifty", new_account_post(
        "gifty", credential_api_token="typed-token", max_cards_per_request="0"))

    html = response.content.decode()
    assert response.status_code == 200 and not ProviderAccount.objects.exists()
    row = html[html.index('class="form-row errors field-credential_api_token'):]
    row = row[:row.index('name="credential_api_token"')]
    assert "Enter the API token again: credentials are never sent back to the browser." in row
    assert "typed-token" not in html  # never sent back
    assert "Enter the Webhook secret again" not in html  # only what was typed


def test_an_account_added_without_credentials_says_so_beside_the_success(admin_client, db):
    response = admin_client.post(f"{ADD_URL}?kind=gogift", new_account_post("gogift"), follow=True)

    account = ProviderAccount.objects.get()
    assert response.redirect_chain[-1][0] == change_url(account) and account.credentials == {}
    warning = [str(message) for message in response.context["messages"] if message.level_tag == "warning"]
    assert warning == ["New gogift has no credentials yet: enter its Client ID and Client secret on its page "
                       "before testing the connection."]


def test_an_account_added_with_its_credentials_gets_no_such_warning(admin_client, db):
    response = admin_client.post(f"{ADD_URL}?kind=gifty", new_account_post("gifty", credential_api_token="t"),
                                 follow=True)

    assert [message for message in response.context["messages"] if message.level_tag == "warning"] == []


# --- The account's page: settings as fields --------------------------------------------------


@pytest.mark.parametrize("kind", [kind for kind in ProviderKind.values if client_class(kind).setting_fields])
def test_the_account_page_shows_each_setting_as_a_field_never_as_json(admin_client, db, kind):
    declared = client_class(kind).setting_fields
    values = {key: f"value-{index}" for index, key in enumerate(declared)}
    account, _ = account_configure(name="Account", kind=kind, environment="sandbox", values=values)

    html = admin_client.get(change_url(account)).content.decode()

    for key, setting in declared.items():
        assert label_of(html, f"setting_{key}") == setting.label
        assert re.search(rf'name="setting_{key}"[^>]*value="{values[key]}"', html), key
    assert 'name="settings"' not in html and "<textarea" not in html.split('name="monthly_limits"')[0]
    assert json.dumps(account.settings) not in html and "{&quot;" not in html


# --- Test connection, a button on the account's page -----------------------------------------


def test_the_account_page_has_a_test_connection_button_posting_to_its_own_url(admin_client, emulated_gogift_account):
    html = admin_client.get(change_url(emulated_gogift_account)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*id="test-connection-form"', html)
    assert form and form.group(1) == connection_url(emulated_gogift_account)
    assert 'id="test-connection"' in html


def test_test_connection_against_the_emulator_says_connected_and_is_recorded(admin_client, admin_user,
                                                                           emulated_gogift_account):
    response = admin_client.post(connection_url(emulated_gogift_account))

    assert response.status_code == 302 and response.url == change_url(emulated_gogift_account)
    page = admin_client.get(response.url).content.decode()
    assert "GoGift emulated: Connected." in page
    emulated_gogift_account.refresh_from_db()
    assert emulated_gogift_account.last_check_ok is True
    entry = AuditEntry.objects.get(action=AuditAction.ACCOUNT_CHANGE)
    assert entry.user == admin_user and entry.summary.startswith("Tested the connection: Connected.")


def test_test_connection_with_a_bad_credential_says_not_connected(admin_client, emulated_ugiftme_account):
    account_configure(name=emulated_ugiftme_account.name, kind="ugiftme", environment="sandbox",
                      values={"api_key": "ugm_not_a_key"})

    response = admin_client.post(connection_url(emulated_ugiftme_account), follow=True)

    page = response.content.decode()
    assert response.redirect_chain[-1][0] == change_url(emulated_ugiftme_account)
    assert "UGiftMe emulated: Not connected." in page and 'class="error"' in page
    emulated_ugiftme_account.refresh_from_db()
    assert emulated_ugiftme_account.last_check_ok is False
    assert AuditEntry.objects.get().summary.startswith("Tested the connection: Not connected.")


def test_finance_may_read_the_account_but_not_test_its_connection(db, emulated_ugiftme_account):
    finance = staff("fiona", "Finance")

    page = finance.get(change_url(emulated_ugiftme_account)).content.decode()
    response = finance.post(connection_url(emulated_ugiftme_account))

    assert 'id="test-connection"' not in page
    assert response.status_code == 403
    emulated_ugiftme_account.refresh_from_db()
    assert emulated_ugiftme_account.last_checked_at is None and not AuditEntry.objects.exists()


def test_test_connection_is_a_post_only(admin_client, emulated_ugiftme_account):
    assert admin_client.get(connection_url(emulated_ugiftme_account)).status_code == 405
    emulated_ugiftme_account.refresh_from_db()
    assert emulated_ugiftme_account.last_checked_at is None
