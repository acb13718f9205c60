"""The import preview in a real browser (issue 10, findings 6 and 8): the same file uploaded
twice is named at the top with a link to its batch, warnings are counted beside the valid and
invalid rows and stand apart in the table; after a form error the file is kept for the next
try. Screenshots: var/screenshots/preview-*.png.
"""

import pytest
from django.urls import reverse

from orders.models import Batch
from tests.browser.pages import ROOT, arrived, import_form_filled, log_in, shot, watch

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "recipients.csv"


def fill_import_form(page, live_server, account) -> None:
    page.goto(f"{live_server.url}{reverse('admin:orders_batch_import')}")
    import_form_filled(page, account, EXAMPLE)


def background(page, selector: str) -> str:
    return page.eval_on_selector(selector, "(element) => getComputedStyle(element).backgroundColor")


def test_the_same_file_uploaded_twice_is_named_at_the_top_of_the_preview(
        browser_page, live_server, admin_user, emulated_gogift_account):
    page = watch(browser_page)
    log_in(page, live_server, admin_user)

    fill_import_form(page, live_server, emulated_gogift_account)
    page.click("input[type=submit]")
    arrived(page, "#confirm-import")
    assert page.inner_text("#preview-counts") == "10 valid · 2 invalid · 0 with warnings"
    assert page.locator("#same-file-notice").count() == 0 and page.locator("#id_leave_out_recent").count() == 0
    shot(page, "preview-1-first-upload")
    page.click("#confirm-import input[name=confirm]")
    arrived(page, ".messagelist")
    first = Batch.objects.get()

    fill_import_form(page, live_server, emulated_gogift_account)
    page.click("input[type=submit]")
    arrived(page, "#same-file-notice")

    notice = page.inner_text("#same-file-notice")
    assert "This file was uploaded before." in notice and f"“{first.name}”" in notice
    assert f"by {admin_user.username}" in notice and "Pending (not sent)" in notice
    assert page.get_attribute("#same-file-notice a", "href") == reverse("admin:orders_batch_change",
                                                                        args=[first.pk])
    # At the top: above the counts' neighbour, the confirm button.
    notice_top = page.locator("#same-file-notice").bounding_box()["y"]
    assert notice_top < page.locator("#confirm-import input[name=confirm]").bounding_box()["y"]
    assert page.inner_text("#preview-counts") == "10 valid · 2 invalid · 10 with warnings"
    assert page.is_checked("#id_leave_out_recent")
    assert ("Leave out the 10 recipients who got or are due to get a card in the last 30 days"
            in page.inner_text("#confirm-import"))
    # Rows with a warning look different from plain valid rows (the first upload's rows had none).
    assert page.locator("table.giftdesk-valid tr.giftdesk-row-warning").count() == 10
    assert background(page, "table.giftdesk-valid tr.giftdesk-row-warning td") != "rgba(0, 0, 0, 0)"
    shot(page, "preview-2-same-file-again")

    # Left ticked, every valid row is left out: nothing is created, and the message says why.
    page.click("#confirm-import input[name=confirm]")
    arrived(page, ".messagelist")
    assert "Every valid row is a recent recipient" in page.inner_text(".messagelist")
    assert Batch.objects.count() == 1
    shot(page, "preview-3-all-left-out")


def test_after_a_form_error_the_file_is_kept_for_the_next_try(
        browser_page, live_server, admin_user, emulated_gogift_account):
    page = watch(browser_page)
    log_in(page, live_server, admin_user)

    fill_import_form(page, live_server, emulated_gogift_account)
    page.fill("#id_scheduled_for", "2000-01-01T10:00")  # "Send at" in the past
    page.click("input[type=submit]")
    arrived(page, "#kept-upload")

    assert "“Send at” must be in the future" in page.inner_text(".errorlist")
    assert page.inner_text("#kept-upload") == ("Kept from your last try: recipients.csv (1007 bytes). "
                                               "Choose another file to replace it.")
    assert "name (or first_name + last_name), email, amount" in page.inner_text("#content")
    shot(page, "preview-4-kept-after-an-error")

    page.fill("#id_scheduled_for", "")
    page.click("input[type=submit]")  # No file chosen: the kept one is used.
    arrived(page, "#confirm-import")
    assert page.inner_text("#preview-counts") == "10 valid · 2 invalid · 0 with warnings"
    shot(page, "preview-5-kept-file-previewed")
