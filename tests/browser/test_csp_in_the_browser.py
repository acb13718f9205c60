"""The admin works under the Content-Security-Policy, in a real browser.

Chromium reports every blocked inline script, style attribute, event handler or foreign
source as a console error ("Refused to ...", "... violates the following Content Security
Policy directive"); a page listener (added by the browser, so the policy itself cannot block
it) reports each `securitypolicyviolation` event too: `pages.watch` hears both. The main admin
pages are walked and each must pass `page_checked` (no violation, and no server error, script
error or page wider than the window); screenshots go to var/screenshots/csp-*.png.
"""

import pytest
from django.conf import settings
from django.urls import reverse

from orders.models import Batch, BatchState
from tests.browser.pages import ADMIN_PASSWORD, page_checked, shot, watch
from tests.fixtures.data import make_batch

pytestmark = pytest.mark.browser


def visit(page, url, name):
    answer = page.goto(url)
    assert answer.status == 200, url
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # late violations (deferred scripts) reach the console
    shot(page, f"csp-{name}")


def test_the_main_admin_pages_raise_no_content_security_policy_violation(
    browser_page, live_server, admin_user, emulated_gogift_account
):
    page = watch(browser_page)
    batch = make_batch(emulated_gogift_account, ["100", "250"])
    order = batch.orders.first()
    sending = make_batch(emulated_gogift_account, ["100"])
    Batch.objects.filter(pk=sending.pk).update(state=BatchState.SENDING)  # loads follow_send.js

    # Someone guessing another user's password meets the lockout page (GIFTDESK_LOGIN_FAILURE_LIMIT).
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        visit(page, f"{live_server.url}{reverse('admin:login')}", "login")
        page.fill("#id_username", "someone-else")
        page.fill("#id_password", f"guess-{attempt}")
        page.click("input[type=submit]")
    page.wait_for_selector("#locked-out")
    shot(page, "csp-locked-out")

    # The login form is part of the walk, so this test logs in by hand rather than with pages.log_in.
    visit(page, f"{live_server.url}{reverse('admin:login')}", "login")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    pages = {
        "index": reverse("admin:index"),
        "batch-list": reverse("admin:orders_batch_changelist"),
        "import-form": reverse("admin:orders_batch_import"),
        "batch-page": reverse("admin:orders_batch_change", args=[batch.pk]),
        "batch-sending": reverse("admin:orders_batch_change", args=[sending.pk]),
        "order-list": reverse("admin:orders_order_changelist"),
        "order-page": reverse("admin:orders_order_change", args=[order.pk]),
        "order-export": reverse("admin:orders_order_export"),
        "account-page": reverse("admin:providers_provideraccount_change", args=[emulated_gogift_account.pk]),
        "lockouts": reverse("admin:axes_accessattempt_changelist"),
        "two-factor": reverse("admin-two-factor"),
    }
    for name, path in pages.items():
        visit(page, f"{live_server.url}{path}", name)
    assert page.locator("#two-factor-qr svg").count() == 1  # the QR code drew, under the policy

    # The export page's button downloads the file under the policy (no inline script on the way).
    page.goto(f"{live_server.url}{pages['order-export']}?status__exact=pending")
    with page.expect_download() as started:
        page.click("#export-xlsx")
    assert started.value.suggested_filename.endswith(".xlsx") and started.value.failure() is None
    page.wait_for_timeout(300)
    page_checked(page)

    # The watch hears a violation when there is one, so the passing checks above mean something.
    page.evaluate("""() => { const img = document.createElement("img");
        img.setAttribute("src", "https://example.invalid/x.png"); document.body.append(img); }""")
    page.wait_for_timeout(300)
    with pytest.raises(AssertionError, match="img-src"):
        page_checked(page)
