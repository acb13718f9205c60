"""The admin in a real browser: Playwright driving Debian's Chromium (never a downloaded one).

A person's whole path: log in, upload the example spreadsheet, read the preview, confirm,
send, and watch every valid order become delivered while a real worker process runs. Every
page passes `page_checked` (no server error, policy violation or script error, nothing wider
than the window).
"""

import time

import pytest

from orders.models import Batch, OrderStatus
from tests.browser.pages import ROOT, SCREENSHOTS, import_form_filled, log_in, page_checked, shot, watch

pytestmark = pytest.mark.browser

EXAMPLE = ROOT / "examples" / "recipients.csv"
VAR = SCREENSHOTS.parent  # this test's screenshots: var/browser-*.png

def test_a_user_uploads_previews_confirms_sends_and_sees_every_card_delivered(
    browser_page, live_server, admin_user, worker, emulated_gogift_account, gogift_emulator
):
    page = watch(browser_page)
    log_in(page, live_server, admin_user)

    page.goto(f"{live_server.url}/admin/orders/batch/")
    page.click("text=Import")
    import_form_filled(page, emulated_gogift_account, EXAMPLE)
    page.click("input[type=submit]")

    page.wait_for_selector("#confirm-import")
    body = page.inner_text("#content")
    assert "10 valid rows will become orders" in body
    assert "2 invalid rows will be left out" in body
    assert "is not a valid email address" in body
    shot(page, "browser-preview", VAR)

    page.click("#confirm-import input[type=submit]")
    page.wait_for_selector("#send-batch")
    assert "created with 10 orders" in page.inner_text(".messagelist")
    page.click("#send-batch")
    page.click("#confirm-send")  # the confirmation page asks first
    assert "Queued 10 orders" in page.inner_text(".messagelist")

    deadline = time.monotonic() + 90
    while page.locator(".giftdesk-orders .status-delivered").count() < 10:
        assert time.monotonic() < deadline, worker.output()
        time.sleep(1)
        page.reload()
    shot(page, "browser-delivered", VAR)

    batch = Batch.objects.get()
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert sorted(entry.reference for entry in gogift_emulator.ledger) == sorted(
        batch.orders.values_list("reference", flat=True))
    assert "Completed" in page.inner_text(".field-state")


def test_a_refused_file_is_explained_on_the_upload_page(browser_page, live_server, admin_user,
                                                        emulated_gogift_account, tmp_path):
    page = watch(browser_page)
    log_in(page, live_server, admin_user)
    old_excel = tmp_path / "list.xls"
    old_excel.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)

    page.goto(f"{live_server.url}/admin/orders/batch/import/")
    page.set_input_files("#id_import_file", str(old_excel))
    page.select_option("#id_account", label=emulated_gogift_account.name)
    page.click("input[type=submit]")

    error = page.inner_text(".errorlist")
    assert "Save the spreadsheet as CSV" in error
    assert not Batch.objects.exists()
    page_checked(page)
