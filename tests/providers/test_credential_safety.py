"""Stored credentials cannot be read back by pointing an account at a listener (issue 8,
finding 2): changing an account's API or token URL clears them, the change is in the
account's audit log, and a production account talks only to its provider's documented hosts
or those GIFTDESK_PROVIDER_HOSTS_ALLOWED lists. A real loopback server stands in for the
attacker's listener and records everything it receives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from auditlog.models import LogEntry as AuditLogEntry
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.test import override_settings
from django.urls import reverse

from emulators.loopback import EmulatorRequest, EmulatorResponse, LoopbackServer, json_response
from providers.clients import client_class
from providers.models import ProviderAccount
from providers.services import account_check, account_configure
from tests.commands import run_command
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID, GOGIFT_TEST_CLIENT_SECRET

# Per kind: the stored credentials (URL-safe, so a form body carries them as they are) and
# whether the kind has a token URL of its own.
SECRETS = {
    "gogift": {"client_id": "gogift-id-4a1f", "client_secret": "gogift-secret-9c2e"},
    "giftronaut": {"client_id": "giftronaut-id-77b0", "client_secret": "giftronaut-secret-31d8"},
    "gifty": {"api_token": "gifty-token-5e6a"},
    "ugiftme": {"api_key": "ugiftme-key-0f93"},
}
TOKEN_URL_KINDS = {"gogift"}  # Giftronaut's token URL follows its API URL; Gifty and UGiftMe have none.
SETTINGS = {"giftronaut": {"sender_name": "Acme"}}


class Listener:
    """An attacker's server: records every request, answers like a token service would."""

    def __init__(self, redirect_to: str = "") -> None:
        self.redirect_to = redirect_to
        self.received: list[EmulatorRequest] = []

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        self.received.append(request)
        if self.redirect_to:
            return EmulatorResponse(307, b"", {"Location": f"{self.redirect_to}{request.path}"})
        return json_response(200, {"access_token": "listener-token", "expires_in": 300})

    def saw(self, secret: str) -> bool:
        return any(secret in _everything(request) for request in self.received)


def _everything(request: EmulatorRequest) -> str:
    return f"{request.method} {request.path} {request.query} {dict(request.headers)} {request.body.decode(errors='replace')}"


@pytest.fixture
def listener() -> Iterator[tuple[Listener, str]]:
    app = Listener()
    with LoopbackServer(app) as server:
        yield app, server.base_url


def stored_account(kind: str, **urls: str) -> ProviderAccount:
    account, _ = account_configure(name=f"{kind} account", kind=kind, environment="sandbox",
                                   values={**SECRETS[kind], **SETTINGS.get(kind, {})}, **urls)
    return account


def admin_change(client, account, follow=True, **fields):
    data = {"name": account.name, "environment": account.environment, "api_base_url": account.api_base_url,
            "auth_url": account.auth_url, "max_cards_per_request": account.max_cards_per_request,
            "rate_limit_per_minute": account.rate_limit_per_minute, "is_active": "on", **fields}
    return client.post(reverse("admin:providers_provideraccount_change", args=[account.pk]), data, follow=follow)


def admin_test_connection(client, account) -> str:
    response = client.post(reverse("admin:providers_provideraccount_changelist"), {
        "action": "test_connection", "_selected_action": [account.pk]}, follow=True)
    return response.content.decode()


# --- Changing a URL clears the credentials ---------------------------------------------------


@pytest.mark.parametrize("kind", SECRETS)
def test_pointing_an_account_at_a_listener_and_testing_it_sends_no_stored_secret(admin_client, listener, kind):
    app, url = listener
    account = stored_account(kind)
    endpoints = {"api_base_url": url, **({"auth_url": f"{url}/connect/token"} if kind in TOKEN_URL_KINDS else {})}

    page = admin_change(admin_client, account, **endpoints).content.decode()
    admin_test_connection(admin_client, account)

    for secret in SECRETS[kind].values():
        assert not app.saw(secret), f"{kind}: {secret} reached the listener"
    assert "Credentials cleared because the API URL" in page and "changed: enter them again" in page
    account.refresh_from_db()
    assert account.credentials == {}


def test_changing_only_the_token_url_clears_the_credentials_too(admin_client, listener):
    app, url = listener
    account = stored_account("gogift")

    page = admin_change(admin_client, account, auth_url=f"{url}/connect/token").content.decode()
    result = admin_test_connection(admin_client, account)

    assert not app.saw(SECRETS["gogift"]["client_secret"])
    assert app.received == []  # no client id or secret: the token request is never sent
    assert "Not connected" in result
    assert "Credentials cleared because the token URL changed: enter them again (Client ID, Client secret)." in page
    account.refresh_from_db()
    assert account.credentials == {}


def test_credentials_typed_with_the_new_url_are_the_ones_sent(admin_client, listener):
    app, url = listener
    account = stored_account("gifty")

    admin_change(admin_client, account, api_base_url=url, credential_api_token="typed-with-the-new-url")
    admin_test_connection(admin_client, account)

    # The listener does see what reaches it (so the tests above prove something), and only
    # what was typed for it.
    assert app.saw("typed-with-the-new-url") and not app.saw(SECRETS["gifty"]["api_token"])


def test_saving_the_same_urls_keeps_the_credentials(admin_client, listener):
    _, url = listener
    account = stored_account("ugiftme", api_base_url=url)

    page = admin_change(admin_client, account, api_base_url=f"{url}/").content.decode()  # a trailing slash is no change

    assert "Credentials cleared" not in page
    account.refresh_from_db()
    assert account.credentials == SECRETS["ugiftme"]


def test_a_url_change_keeps_the_webhook_secret_which_is_never_sent(admin_client, listener):
    _, url = listener
    account, _ = account_configure(name="UGiftMe", kind="ugiftme", environment="sandbox",
                                   values={**SECRETS["ugiftme"], "webhook_secret": "whsec-kept"})

    admin_change(admin_client, account, api_base_url=url)

    account.refresh_from_db()
    assert account.credentials == {"webhook_secret": "whsec-kept"}


def test_configure_account_clears_the_credentials_when_the_url_changes(db, listener):
    app, url = listener
    stored_account("ugiftme")

    status, output = run_command("configure_account", "ugiftme account", "--kind", "ugiftme",
                                 "--environment", "sandbox", "--api-base-url", url)
    account_check(account=ProviderAccount.objects.get())

    assert app.received and not app.saw(SECRETS["ugiftme"]["api_key"])
    assert status == 0
    assert "Credentials cleared because the API URL changed: enter them again (API key)." in output


# --- The change is recorded -----------------------------------------------------------------


def test_a_url_change_is_in_the_accounts_audit_log_with_who_and_no_secret(admin_client, admin_user, listener):
    _, url = listener
    account = stored_account("gogift")
    ciphertext = account.credentials_encrypted

    admin_change(admin_client, account, api_base_url=url, auth_url=f"{url}/connect/token")

    entry = AuditLogEntry.objects.get_for_object(account).filter(action=AuditLogEntry.Action.UPDATE).get()
    assert entry.actor == admin_user
    assert entry.changes_dict["api_base_url"] == ["", url]
    assert entry.changes_dict["auth_url"] == ["", f"{url}/connect/token"]
    assert entry.additional_data == {"credentials_cleared": ["client_id", "client_secret"]}
    history = admin_client.get(reverse("admin:providers_provideraccount_auditlog", args=[account.pk]))
    assert history.status_code == 200 and url in history.content.decode()

    logged = " ".join(
        [f"{e.changes} {e.changes_text} {e.serialized_data} {e.additional_data}" for e in AuditLogEntry.objects.all()]
        + [e.change_message for e in AdminLogEntry.objects.all()]
    )
    account.refresh_from_db()
    for secret in [*SECRETS["gogift"].values(), ciphertext, account.credentials_encrypted]:
        assert secret not in logged
    assert "credentials_encrypted" not in logged


# --- Production accounts talk to documented hosts only ------------------------------------------


def test_each_client_knows_its_providers_documented_hosts():
    assert client_class("gogift").documented_hosts == {
        "api.gogift.io", "auth.gogift.io", "api-pre.gogift.io", "auth-pre.gogift.io"}
    assert client_class("giftronaut").documented_hosts == {"api.giftronaut.com"}
    assert client_class("gifty").documented_hosts == {"api.gifty.nl"}
    assert client_class("ugiftme").documented_hosts == {"api.ugift.me", "api-stage.ugift.me"}


@override_settings(GIFTDESK_PROVIDER_HOSTS_ALLOWED=[])
def test_a_production_account_pointed_elsewhere_is_refused_before_anything_is_sent(db, listener):
    app, url = listener
    account, _ = account_configure(name="UGiftMe", kind="ugiftme", environment="production",
                                   api_base_url=url, values=SECRETS["ugiftme"])

    result = account_check(account=account)

    assert not result.ok
    assert "GiftDesk did not send the request to 127.0.0.1" in result.message
    assert "api.ugift.me" in result.message and "GIFTDESK_PROVIDER_HOSTS_ALLOWED" in result.message
    assert app.received == []


def test_the_token_request_is_checked_too(db):
    token_listener, api_listener = Listener(), Listener()
    with LoopbackServer(token_listener) as token_server, LoopbackServer(api_listener) as api_server:
        api_url = api_server.base_url.replace("127.0.0.1", "localhost")
        account, _ = account_configure(
            name="GoGift", kind="gogift", environment="production", api_base_url=api_url,
            auth_url=f"{token_server.base_url}/connect/token", values=SECRETS["gogift"])
        with override_settings(GIFTDESK_PROVIDER_HOSTS_ALLOWED=["localhost"]):
            result = account_check(account=account)

    assert "GiftDesk did not send the request to 127.0.0.1" in result.message
    assert token_listener.received == [] and api_listener.received == []


def test_a_host_listed_in_the_setting_is_allowed(db, gogift_production_server):
    account, _ = account_configure(
        name="GoGift", kind="gogift", environment="production", api_base_url=gogift_production_server.base_url,
        auth_url=f"{gogift_production_server.base_url}/connect/token",
        values={"client_id": GOGIFT_TEST_CLIENT_ID, "client_secret": GOGIFT_TEST_CLIENT_SECRET})

    with override_settings(GIFTDESK_PROVIDER_HOSTS_ALLOWED=[]):
        assert "GIFTDESK_PROVIDER_HOSTS_ALLOWED" in account_check(account=account).message
    with override_settings(GIFTDESK_PROVIDER_HOSTS_ALLOWED=["127.0.0.1"]):
        result = account_check(account=account)
    assert result.ok, result.message


@override_settings(GIFTDESK_PROVIDER_HOSTS_ALLOWED=[])
def test_a_sandbox_account_may_point_anywhere(db, listener):
    # Sandbox credentials buy nothing, and a changed URL has cleared the stored ones.
    app, url = listener
    account, _ = account_configure(name="UGiftMe", kind="ugiftme", environment="sandbox",
                                   api_base_url=url, values={"api_key": "sandbox-key"})

    account_check(account=account)

    assert app.saw("sandbox-key")


def test_a_redirect_is_not_followed_with_the_credentials(db):
    elsewhere = Listener()
    with LoopbackServer(elsewhere) as target:
        redirecting = Listener(redirect_to=target.base_url.replace("127.0.0.1", "localhost"))
        with LoopbackServer(redirecting) as server:
            account, _ = account_configure(name="UGiftMe", kind="ugiftme", environment="production",
                                           api_base_url=server.base_url, values=SECRETS["ugiftme"])
            with override_settings(GIFTDESK_PROVIDER_HOSTS_ALLOWED=["127.0.0.1"]):
                result = account_check(account=account)

    assert not result.ok and "redirect (HTTP 307) to localhost" in result.message
    assert redirecting.received and elsewhere.received == []
