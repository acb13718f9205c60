"""Adding a provider account in a real browser (issue 10, finding 11): Playwright driving
Debian's Chromium against a live server and the GoGift emulator.

An administrator chooses GoGift, sees only GoGift's credentials (labelled as GoGift's
documents name them) and its settings as fields, saves, and presses "Test connection" on the
account's page. The same steps work with JavaScript off. No page breaks the
Content-Security-Policy or is wider than the window.
"""

import pytest
from django.urls import reverse

from emulators.gogift import TOKEN_PATH
from providers.models import ProviderAccount
from tests.browser.pages import log_in, shot, watch
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID, GOGIFT_TEST_CLIENT_SECRET

pytestmark = pytest.mark.browser

OTHER_CREDENTIALS = ("#id_credential_api_key", "#id_credential_api_token")


def test_an_administrator_adds_a_gogift_account_and_tests_its_connection(
    browser_page, live_server, admin_user, gogift_server
):
    page = watch(browser_page)
    log_in(page, live_server, admin_user)

    page.goto(f"{live_server.url}{reverse('admin:providers_provideraccount_changelist')}")
    page.click("a.addlink")
    page.wait_for_selector("#choose-provider")
    assert page.locator("input[name=kind]").count() == 4
    assert page.locator("input[type=password]").count() == 0  # no credentials before the provider
    shot(page, "account-form-choose-provider")

    page.check("input[name=kind][value=gogift]")
    page.click("#choose-provider")
    page.wait_for_selector("#id_credential_client_id")
    assert page.title().startswith("Add GoGift account")
    for other in OTHER_CREDENTIALS:
        assert page.locator(other).count() == 0, other
    assert page.inner_text("label[for=id_credential_client_id]").rstrip(":") == "Client ID"
    assert "From GoGift" in page.inner_text("#id_credential_client_id_helptext")
    assert page.locator("#id_setting_buyer_name").is_visible()  # settings are fields, on this page
    shot(page, "account-form-gogift")

    page.fill("#id_name", "GoGift in the browser")
    page.fill("#id_credential_client_id", GOGIFT_TEST_CLIENT_ID)
    page.fill("#id_credential_client_secret", GOGIFT_TEST_CLIENT_SECRET)
    page.fill("#id_setting_buyer_name", "Acme A/S")
    page.fill("#id_setting_buyer_email", "finance@acme.example")
    page.fill("#id_api_base_url", gogift_server.base_url)
    page.fill("#id_auth_url", f"{gogift_server.base_url}{TOKEN_PATH}")
    page.click("input[name=_save]")
    page.wait_for_selector("#test-connection")
    account = ProviderAccount.objects.get(name="GoGift in the browser")
    assert account.kind == "gogift" and account.credentials["client_id"] == GOGIFT_TEST_CLIENT_ID
    assert account.settings == {"buyer_name": "Acme A/S", "buyer_email": "finance@acme.example"}
    assert page.input_value("#id_setting_buyer_name") == "Acme A/S"
    shot(page, "account-form-saved")

    page.click("#test-connection")
    page.wait_for_selector(".messagelist .success")
    assert "GoGift in the browser: Connected." in page.inner_text(".messagelist")
    assert "Connected" in page.inner_text(".field-connection")
    shot(page, "account-form-connected")  # page_checked: no policy violation since the last shot either


def test_choosing_the_provider_works_without_javascript(browser_page, live_server, admin_user):
    context = browser_page.context.browser.new_context(java_script_enabled=False,
                                                       viewport={"width": 1400, "height": 1000})
    page = watch(context.new_page())
    log_in(page, live_server, admin_user)

    page.goto(f"{live_server.url}{reverse('admin:providers_provideraccount_add')}")
    page.check("input[name=kind][value=gifty]")
    page.click("#choose-provider")
    page.wait_for_selector("#id_credential_api_token")

    assert page.locator("#id_credential_client_id").count() == 0
    assert page.input_value("#id_rate_limit_per_minute") == "120"  # Gifty's documented limit
    page.fill("#id_name", "Gifty without JavaScript")
    page.fill("#id_credential_api_token", "a-token")
    page.click("input[name=_save]")
    page.wait_for_selector("#test-connection")
    assert ProviderAccount.objects.get(name="Gifty without JavaScript").credentials == {"api_token": "a-token"}
    shot(page, "account-form-without-javascript")
    context.close()
