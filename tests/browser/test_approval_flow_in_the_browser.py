"""Four eyes in a real browser (issue 9): Playwright driving Debian's Chromium, two people in
two browser contexts, a real worker process delivering.

A Sender uploads two batches over the approval threshold and presses Send on each: both
wait for an approver. An Approver logs in elsewhere, reads the approval screen (totals,
the upload's invalid rows), approves one and rejects the other with a reason. The uploader
reads the reason; the approved batch is delivered. No page breaks the Content-Security-Policy.
"""

import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from orders.models import Batch, BatchState, OrderStatus
from tests.browser.pages import ROOT, import_form_filled, log_in, page_checked, shot, watch

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "recipients.csv"
PASSWORD = "correct horse battery staple"
SMALL_CSV = "name,email,amount\nNora Nielsen,nora.nielsen@example.com,1000\nPer Poulsen,per.poulsen@example.com,500\n"


def person(username: str, group: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def upload_and_send(page, live_server, account, path: Path) -> Batch:
    """The Sender's path: upload, preview, confirm, press Send."""
    page.goto(f"{live_server.url}/admin/orders/batch/import/")
    import_form_filled(page, account, path)
    page.click("input[type=submit]")
    page.wait_for_selector("#confirm-import")
    page.click("#confirm-import input[type=submit]")
    page.wait_for_selector("#send-batch")
    page.click("#send-batch")
    page.click("#confirm-send")  # the confirmation page asks first
    page.wait_for_selector("#approval-banner")
    assert "needs approval before it is sent" in page.inner_text(".messagelist")
    return Batch.objects.latest("created_at")


def test_a_sender_asks_an_approver_rejects_one_batch_and_approves_another_which_is_delivered(
    browser_page, live_server, settings, worker, emulated_gogift_account, gogift_emulator, tmp_path
):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    sender, approver = person("sam.sender", "Senders"), person("alma.approver", "Approvers")
    small = tmp_path / "team-lunch.csv"
    small.write_text(SMALL_CSV)

    # The Sender: two uploads, each over the threshold; Send asks for approval.
    page = watch(browser_page)
    log_in(page, live_server, sender, PASSWORD)
    christmas = upload_and_send(page, live_server, emulated_gogift_account, EXAMPLE)
    banner = page.inner_text("#approval-banner")
    assert "waiting for an approver since" in banner and "asked by sam.sender" in banner
    assert page.locator("#send-batch").count() == 0 and page.locator("#review-and-approve").count() == 0
    shot(page, "approval-sender-awaiting")
    lunch = upload_and_send(page, live_server, emulated_gogift_account, small)
    assert {christmas.state, Batch.objects.get(pk=lunch.pk).state} == {BatchState.AWAITING_APPROVAL}
    assert not gogift_emulator.ledger

    # The Approver, in a browser context of their own.
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    review = watch(context.new_page())
    review.set_default_timeout(15_000)
    log_in(review, live_server, approver, PASSWORD)
    review.goto(f"{live_server.url}/admin/orders/batch/?state__exact=awaiting_approval")
    assert review.locator("#result_list .status-awaiting_approval").count() == 2
    review.click(f"#result_list a:text-is('{christmas.name}')")
    review.click("#review-and-approve")
    review.wait_for_selector("#approval-decision")
    assert "11,000.00 DKK" in review.inner_text("#review-totals")
    assert review.inner_text("#review-cards") == "10" and "sam.sender" in review.inner_text("#review-uploader")
    assert "is not a valid email address" in review.inner_text("#review-rejected-rows")
    shot(review, "approval-screen")
    review.click("#approve-batch")
    review.wait_for_selector(".messagelist")
    assert "You approved “recipients.csv”. Queued 10 orders" in review.inner_text(".messagelist")

    review.goto(f"{live_server.url}/admin/orders/batch/{lunch.pk}/approval/")
    assert "1,500.00 DKK" in review.inner_text("#review-totals")
    review.fill("#id_reject-reason", "Team lunches go through the HR budget, not gift cards.")
    review.click("#reject-batch")
    review.wait_for_selector(".messagelist")
    assert "You rejected “team-lunch.csv”: 2 pending orders cancelled." in review.inner_text(".messagelist")

    # The Sender reads the reason.
    page.goto(f"{live_server.url}/admin/orders/batch/{lunch.pk}/change/")
    banner = page.inner_text("#approval-banner")
    assert "Rejected by alma.approver" in banner
    assert "Team lunches go through the HR budget, not gift cards." in banner
    assert page.locator("#send-batch").count() == 0
    shot(page, "approval-rejected")

    # The approved batch is delivered by the worker; the rejected one bought nothing.
    page.goto(f"{live_server.url}/admin/orders/batch/{christmas.pk}/change/")
    deadline = time.monotonic() + 90
    while page.locator(".giftdesk-orders .status-delivered").count() < 10:
        assert time.monotonic() < deadline, worker.output()
        time.sleep(1)
        page.reload()
    assert "Approved by alma.approver" in page.inner_text("#approval-banner")
    shot(page, "approval-delivered")
    christmas.refresh_from_db()
    assert christmas.approved_by == approver and christmas.state == BatchState.COMPLETED
    assert set(christmas.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert set(lunch.orders.values_list("status", flat=True)) == {OrderStatus.CANCELLED}
    assert sorted(entry.reference for entry in gogift_emulator.ledger) == sorted(
        christmas.orders.values_list("reference", flat=True))
    page_checked(page)
    page_checked(review)
    context.close()
