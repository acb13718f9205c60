"""Send asks first, and the progress bar follows the send in place (issue 10, findings 9 and
10): Playwright driving Debian's Chromium against a live server and a real worker process.

A person opens a batch, presses Send, reads the confirmation page (the account, the cards,
the total), confirms, and watches the bar: half the cards go at once, the other half wait
for the account's monthly limit, and the bar says so without reloading the page. The limit
is raised, the worker sends the rest, the bar reaches 100% and the page reloads once to show
the finished batch. The emulator's ledger holds each card once. Signed out meanwhile, the
page stops asking and shows the login. No page breaks the Content-Security-Policy;
screenshots go to var/screenshots/send-*.png.
"""

import re

import pytest
from django.urls import reverse

from orders.dispatch import wake_worker
from orders.models import Batch, BatchState, OrderStatus
from providers.models import ProviderAccount
from tests.browser.pages import log_in, page_checked, shot, watch
from tests.fixtures.data import make_batch

pytestmark = pytest.mark.browser

# Set on the batch page once it has loaded: still there later means the page was never reloaded.
MARK_THIS_PAGE = "() => { window.sameBatchPage = true; }"
BAR_AT = """([percent, state]) => { const bar = document.querySelector("#batch-progress");
  return window.sameBatchPage === true && bar && bar.dataset.finishedPercent === percent
    && bar.dataset.state === state; }"""
RELOADED_FINISHED = """() => { const bar = document.querySelector("#batch-progress");
  return window.sameBatchPage === undefined && bar && bar.dataset.finishedPercent === "100"
    && bar.dataset.state === "completed"; }"""


def test_a_person_confirms_a_send_and_watches_the_bar_reach_100_percent(
    browser_page, live_server, admin_user, worker, emulated_gogift_account, gogift_emulator
):
    account = emulated_gogift_account
    # Five cards fit this month's limit; the other five wait until it is raised.
    ProviderAccount.objects.filter(pk=account.pk).update(monthly_limits={"DKK": "500"})
    batch = make_batch(account, ["100"] * 10)
    page = watch(browser_page)
    batch_url = f"{live_server.url}/admin/orders/batch/{batch.pk}/change/"
    loads = []
    page.on("load", lambda loaded: loads.append(loaded.url))

    log_in(page, live_server, admin_user)

    # The batch page: Send is a link to a page that asks.
    page.goto(batch_url)
    assert page.get_attribute("#batch-progress", "data-finished-percent") == "0"
    assert page.get_attribute("#batch-progress", "data-state") == "pending"
    shot(page, "send-batch-page")
    page.click("#send-batch")
    page.wait_for_selector("#confirm-send")
    assert page.inner_text("#send-account") == "GoGift emulated"
    assert page.inner_text("#send-cards") == "10"
    assert "1,000.00 DKK (10 cards)" in page.inner_text("#send-totals")
    assert "500.00 DKK over, so some cards wait" in page.inner_text("#content")
    assert page.get_attribute("#confirm-send", "value") == "Yes, send 10 cards"
    shot(page, "send-confirmation")
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    assert gogift_emulator.ledger == []

    # Confirmed: the batch page follows the send without reloading.
    page.click("#confirm-send")
    page.wait_for_selector("#batch-progress[data-state=sending]")
    assert "Queued 10 orders" in page.inner_text(".messagelist")
    page.evaluate(MARK_THIS_PAGE)
    page.wait_for_function(BAR_AT, arg=["50", "sending"], timeout=90_000)
    assert page.get_attribute("#batch-progress", "aria-valuenow") == "50"
    assert page.inner_text("[data-count=delivered]") == "5" and page.inner_text("[data-count=waiting]") == "5"
    assert "5 orders wait for a monthly spending limit" in page.inner_text("#batch-progress")
    assert "5 of 10 orders finished (50%)" in page.inner_text("#batch-progress")
    shot(page, "send-progress-half")

    # The limit is raised: the worker sends the rest, and the page reloads once when done.
    ProviderAccount.objects.filter(pk=account.pk).update(monthly_limits={"DKK": "2000"})
    wake_worker(account.pk)
    page.wait_for_function(RELOADED_FINISHED, timeout=90_000)
    assert page.locator(".giftdesk-orders .status-delivered").count() == 10
    assert "Completed" in page.inner_text(".field-state")
    shot(page, "send-progress-done")

    batch.refresh_from_db()
    assert batch.state == BatchState.COMPLETED
    assert sorted(entry.reference for entry in gogift_emulator.ledger) == sorted(
        batch.orders.values_list("reference", flat=True))  # each card bought once
    # The batch page loaded three times: before Send, after the confirmation, and the one reload.
    assert [url for url in loads if url == batch_url] == [batch_url] * 3, loads
    page_checked(page)


def test_signed_out_while_following_a_send_the_page_stops_asking_and_shows_the_login(
    browser_page, live_server, admin_user, emulated_gogift_account
):
    # Sending, with no worker: the page keeps asking for the progress until it is told to stop.
    batch = make_batch(emulated_gogift_account, ["100", "100"])
    batch.orders.update(status=OrderStatus.QUEUED)
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)
    page = watch(browser_page)
    progress_url = reverse("admin:orders_batch_progress", args=[batch.pk])
    asked = []
    page.on("request", lambda request: asked.append(request.url) if progress_url in request.url else None)
    log_in(page, live_server, admin_user)
    page.goto(f"{live_server.url}/admin/orders/batch/{batch.pk}/change/")
    with page.expect_response(lambda response: progress_url in response.url and response.status == 200):
        pass  # the script follows the send

    page.context.clear_cookies()  # signed out (elsewhere, or the session expired)

    page.wait_for_url(re.compile(r"/admin/login/\?next="), timeout=20_000)  # reloaded once: the login page
    shot(page, "send-follow-signed-out")
    seen = len(asked)
    page.wait_for_timeout(7_000)  # more than two of the script's periods
    assert len(asked) == seen, asked  # nobody asks any more
    page_checked(page)
