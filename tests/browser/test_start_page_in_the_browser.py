"""The start page in a real browser (issue 10, finding 3): Playwright driving Debian's Chromium
against a live server.

A Sender logs in, reads that nothing needs attention, and clicks "Send gift cards" to reach
the import page. An Approver logs in when a batch awaits approval, an account is paused, an
order failed and orders wait for a spending limit: each is listed and each link leads to
what it counts. Finance is offered the orders instead. Every page passes `page_checked`
(no server error, nothing wider than the window, no policy violation, no script error);
screenshots: var/screenshots/start-page-<step>.png.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from orders import attention
from orders.batches import batch_send
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount
from tests.browser.pages import arrived, log_in, page_checked, shot, watch
from tests.fixtures.data import make_batch

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"


def person(username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))  # the migrated group (browser_page restores it)
    return user


def test_a_sender_finds_send_gift_cards_at_the_top_and_reaches_the_import_page(
    browser_page, live_server, gogift_account, global_gift_card
):
    make_batch(gogift_account, ["100"])  # a pending batch: nothing to attend to
    page = watch(browser_page)
    log_in(page, live_server, person("sam.sender", "Senders"), PASSWORD)

    button = page.locator("a#send-gift-cards")
    assert button.is_visible() and button.inner_text() == "Send gift cards"
    top = button.bounding_box()["y"]
    assert top < page.locator("#needs-attention").bounding_box()["y"] < page.locator(".app-orders").bounding_box()["y"]
    assert top < 400, "the way in is at the top, without scrolling"
    assert page.inner_text("#needs-attention").endswith("Nothing needs your attention.")
    assert page.locator(".app-django_q").count() == 0  # the task queue is administrators' only
    shot(page, "start-page-sender")

    button.click()
    arrived(page, "#id_import_file")
    assert page.url == f"{live_server.url}{reverse('admin:orders_batch_import')}"
    shot(page, "start-page-import")


def test_an_approver_sees_what_needs_attention_and_each_link_leads_to_it(
    browser_page, live_server, settings, gogift_account, global_gift_card
):
    uploader = person("sam.sender", "Senders")
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0"  # every DKK send needs an approver
    waiting = make_batch(gogift_account, ["100", "250"])
    Batch.objects.filter(pk=waiting.pk).update(created_by=uploader)
    assert batch_send(batch=waiting, user=uploader).state == BatchState.AWAITING_APPROVAL
    ProviderAccount.objects.filter(pk=gogift_account.pk).update(
        blocked_reason="GoGift refused the client credentials.", blocked_at=timezone.now())
    sent = make_batch(gogift_account, ["100", "200", "300"])
    refused, *held = sent.orders.order_by("id")
    Order.objects.filter(pk=refused.pk).update(status=OrderStatus.FAILED, completed_at=timezone.now(),
                                               last_error="The provider refused the email address.")
    Order.objects.filter(pk__in=[order.pk for order in held]).update(
        status=OrderStatus.QUEUED, waiting_reason=f"{WAIT_REASON_START}DKK limit of GoGift sandbox.")

    page = watch(browser_page)
    log_in(page, live_server, person("alma.approver", "Approvers"), PASSWORD)
    section = page.locator("#needs-attention")
    items = section.locator("li").all_inner_texts()
    assert [item.split(" — ")[0] for item in items] == [
        "1 batch awaits your approval",
        "Sending is paused on GoGift sandbox",
        f"1 order failed in the past {attention.RECENT_FAILURE_DAYS} days",
        "2 orders wait for a monthly spending limit",
    ], items
    assert "GoGift refused the client credentials." in items[1]
    assert page.locator("a#batches-to-approve").is_visible()
    shot(page, "start-page-attention")

    section.get_by_role("link", name="1 batch awaits your approval").click()
    arrived(page, "#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    assert page.locator("#result_list .status-awaiting_approval").count() == 1
    shot(page, "start-page-awaiting-approval")

    page.go_back()
    section.get_by_role("link", name="Sending is paused on GoGift sandbox").click()
    arrived(page, "#provideraccount_form")
    assert page.url.endswith(reverse("admin:providers_provideraccount_change", args=[gogift_account.pk]))

    page.go_back()
    section.get_by_role("link", name=f"1 order failed in the past {attention.RECENT_FAILURE_DAYS} days").click()
    arrived(page, "#result_list")
    assert page.locator("#result_list tbody tr").all_inner_texts() == [
        text for text in page.locator("#result_list tbody tr").all_inner_texts() if refused.reference in text]
    assert page.locator("#result_list tbody tr").count() == 1
    shot(page, "start-page-failed-orders")

    page.go_back()
    section.get_by_role("link", name="2 orders wait for a monthly spending limit").click()
    arrived(page, "#result_list")
    assert page.locator("#result_list tbody tr").count() == 2
    page_checked(page)


def test_finance_is_offered_the_orders_and_nothing_to_send(browser_page, live_server, gogift_account,
                                                         global_gift_card):
    make_batch(gogift_account, ["100"])
    page = watch(browser_page)
    log_in(page, live_server, person("fiona.finance", "Finance"), PASSWORD)

    assert page.locator("a#send-gift-cards").count() == 0
    assert "then “Export these orders” (CSV or XLSX)" in page.inner_text("#start-here")
    shot(page, "start-page-finance")

    page.click("a#see-orders")
    arrived(page, "#result_list")
    assert page.url.endswith(reverse("admin:orders_order_changelist"))
    page_checked(page)
