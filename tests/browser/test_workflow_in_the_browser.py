"""The whole workflow as HR and marketing staff live it (issue 10), in a real browser:
Playwright driving Debian's Chromium against a live server and a real worker process.

Log in -> the start page's "Send gift cards" -> choose the account and product -> download
the template -> upload an HR export with a title row, a bad email, an amount the product does
not sell and a recipient who got a card last week -> read the preview -> download the rejected
rows -> confirm, leaving out the recent recipient -> Send, confirmed on its own page -> the
progress bar reaches 100% by itself -> an order's page -> the order list searched by the
spreadsheet's reference -> the export.

Every page passes `page_checked` (no server error, nothing wider than the window, no policy
violation, no script error) and is saved as var/screenshots/workflow/workflow-NN-<step>.png.
The element ids are the ones agreed for issue 10.
"""

import csv
import io
import re
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from giftdesk.text import plural
from orders.batches import batch_create
from orders.models import Batch, BatchState, OrderStatus
from orders.money import amount_text
from orders.spreadsheet import ValidRow
from providers.models import Product
from tests.browser.pages import Screenshots, arrived, downloaded, log_in, page_checked, watch
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU

pytestmark = pytest.mark.browser

# An HR system's export: a title line above the header, as real ones have.
TITLE = "Christmas gifts 2025 (exported from PeopleHR 2025-12-01)"
RECENT = ("Ida Lund", "ida.lund@example.com")  # got a card last week
SENT = {  # reference -> (name, email, amount): the rows that become cards
    "EMP-1001": ("Mette Frederiksen Holm", "mette.holm@example.com", "500"),
    "EMP-1002": ("Lars Østergaard", "lars.ostergaard@example.com", "250"),
    "EMP-1010": ("Mikkel Brandt", "mikkel.brandt@example.com", "750"),
}
BAD_EMAIL, BAD_AMOUNT = "anders.baek@example", "55"  # The Global Gift Card: 50-5,000 in steps of 10
ROWS = [  # in file order; the header is row 2, so these are rows 3-8
    ("Mette Frederiksen Holm", "mette.holm@example.com", "500", "Tak for en fantastisk indsats i år!", "EMP-1001"),
    ("Lars Østergaard", "lars.ostergaard@example.com", "250", "Tillykke med jubilæet!", "EMP-1002"),
    ("Anders Bæk", BAD_EMAIL, "500", "Tak for i år!", "EMP-1004"),
    ("Jonas Vestergaard", "jonas.vestergaard@example.com", BAD_AMOUNT, "Tak for hjælpen!", "EMP-1008"),
    (*RECENT, "500", "God jul og godt nytår!", "EMP-1009"),
    ("Mikkel Brandt", "mikkel.brandt@example.com", "750", "Tak for din indsats som mentor.", "EMP-1010"),
]
BAD_EMAIL_ROW, BAD_AMOUNT_ROW = 5, 6


def hr_export(path):
    """The upload: title row, header (row 2), four valid rows (one a recent recipient), two invalid."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([TITLE, "", "", "", ""])
    writer.writerow(["name", "email", "amount", "message", "reference"])
    writer.writerows(ROWS)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def card_sent_last_week(account, product) -> Batch:
    """An earlier batch that gave Ida Lund a card: the upload's recent recipient."""
    batch = batch_create(account=account, source_filename="autumn-awards.csv", rows=[ValidRow(
        row=2, name=RECENT[0], email=RECENT[1], phone="", reference="EMP-1009", message="Tak!",
        amount=Decimal("500"), currency=product.currency, product=product, send_on=None)])
    week_ago = timezone.now() - timedelta(days=7)
    batch.orders.update(status=OrderStatus.DELIVERED, created_at=week_ago, completed_at=week_ago)
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.COMPLETED)
    return batch


def csv_rows(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def test_a_person_goes_from_the_start_page_to_the_export_and_every_page_holds_up(
    browser_page, live_server, admin_user, worker, emulated_gogift_account, gogift_emulator, tmp_path, request
):
    account = emulated_gogift_account
    card = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    earlier = card_sent_last_week(account, card)
    upload = hr_export(tmp_path / "christmas-2025.csv")
    page = watch(browser_page)
    shots = Screenshots("workflow", request)

    def step(name: str) -> None:
        page_checked(page)
        shots.take(page, name)

    # 1. Log in: the start page, with a clear way in.
    log_in(page, live_server, admin_user)
    step("start-page")
    page.click("a#send-gift-cards")
    arrived(page, "#id_import_file")
    assert page.url.endswith(reverse("admin:orders_batch_import")), page.url
    step("import-form")

    # 2. Choose the account, then its product: each offered with its price rule.
    page.select_option("#id_account", label=account.name)
    offered = page.locator("#id_default_product option", has_text="The Global Gift Card").first
    offered.wait_for(state="attached")
    assert "in steps of 10" in offered.inner_text(), offered.inner_text()
    product = Product.objects.get(pk=offered.get_attribute("value"))
    assert product.account == account
    page.select_option("#id_default_product", value=str(product.pk))
    step("account-and-product-chosen")

    # 3. The template for that account and product: the columns and one example row.
    href = page.get_attribute("a#template-csv", "href")
    assert f"account={account.pk}" in href and f"product={product.pk}" in href, href
    template = downloaded(page, "a#template-csv")
    assert template.filename.endswith(".csv"), template.filename
    rows = csv_rows(template.text)
    header_at = next(index for index, row in enumerate(rows)
                     if {"email", "amount"} <= {cell.strip().lower() for cell in row})
    header = [cell.strip().lower() for cell in rows[header_at]]
    assert {"name", "email", "amount"} <= set(header), header
    examples = [row for row in rows[header_at + 1:] if "@" in row[header.index("email")]]
    assert len(examples) == 1, rows
    assert product.amount_error(Decimal(examples[0][header.index("amount")])) is None, examples
    step("template-downloaded")

    # 4. Upload the HR export.
    page.set_input_files("#id_import_file", str(upload))
    page.click("form[enctype='multipart/form-data'] input[type=submit]")
    arrived(page, "#confirm-import")

    # 5. The preview: counts at the top, the header row found, the invalid rows with their
    # reasons, the recent recipient named.
    counts = page.inner_text("#preview-counts")
    for count in (r"\b4 valid\b", r"\b2 invalid\b", r"\b1 (rows? )?(with )?warnings?\b"):
        assert re.search(count, counts), counts  # "4 valid · 2 invalid · 1 with warnings"
    assert re.search(r"\brow 2\b", page.inner_text("#header-row-note"), re.IGNORECASE), \
        page.inner_text("#header-row-note")
    content = page.inner_text("#content")
    assert f"{BAD_EMAIL}' is not a valid email address" in content
    assert product.amount_error(Decimal(BAD_AMOUNT)) in content
    recent_warning = (f"{RECENT[1]} got or is due to get a card in the last "
                      f"{settings.GIFTDESK_RECENT_RECIPIENT_DAYS} days")
    expect(page.locator("#content").get_by_text(recent_warning).first).to_be_visible()
    expect(page.locator("#id_leave_out_recent")).to_be_visible()
    step("preview")

    # 6. The rejected rows, to fix in the spreadsheet: each problem with its row.
    rejected = downloaded(page, "a#download-invalid")
    problems = {(row[0], row[2]) for row in csv_rows(rejected.text)[1:]}
    assert any(row == str(BAD_EMAIL_ROW) and "is not a valid email address" in problem
               for row, problem in problems), problems
    assert (str(BAD_AMOUNT_ROW), product.amount_error(Decimal(BAD_AMOUNT))) in problems, problems
    assert len({row for row, _ in problems}) == 2, problems
    step("rejected-rows-downloaded")

    # 7. Confirm, leaving out the recipient who got a card last week.
    page.check("#id_leave_out_recent")
    page.click("#confirm-import input[name=confirm]")
    arrived(page, "#send-batch")
    assert f"created with {plural(len(SENT), 'order')}" in page.inner_text(".messagelist")
    batch = Batch.objects.exclude(pk=earlier.pk).get()
    assert sorted(batch.orders.values_list("recipient__email", flat=True)) == sorted(
        email for _, email, _ in SENT.values())
    step("batch-created")

    # 8. Send asks first: the account, how many cards, how much.
    total = sum(Decimal(amount) for _, _, amount in SENT.values())
    page.click("#send-batch")
    arrived(page, "#confirm-send")
    asked = page.inner_text("#content")
    assert account.name in asked, asked
    assert re.search(rf"\b{len(SENT)} (gift )?cards\b", asked), asked
    assert amount_text(total, product.currency) in asked, asked
    assert not gogift_emulator.ledger  # nothing bought before the confirmation
    step("send-confirmation")

    # 9. Send: the progress bar fills by itself (nobody presses reload). GoGift's rate limit
    # holds the order back a few seconds, so the page first shows the send under way.
    gogift_emulator.faults.add("http_429", method="POST", path="/baskets/finalize", retry_after=6)
    page.click("#confirm-send")
    progress = page.locator("#batch-progress")
    expect(progress).to_be_visible()
    assert int(progress.get_attribute("data-finished-percent")) < 100, "finished before the page showed it"
    expect(progress).to_have_attribute("data-state", BatchState.SENDING)
    step("sending")
    try:
        expect(progress).to_have_attribute("data-finished-percent", "100", timeout=90_000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker ---\n{worker.output()}") from None
    expect(progress).to_have_attribute("data-state", BatchState.COMPLETED)
    # The bar as drawn, not only its attribute: the delivered segment fills the track.
    delivered = progress.locator('rect[data-segment="delivered"]')
    expect(delivered).to_have_attribute("width", re.compile(r"^100(\.0+)?%$"))
    drawn, track = delivered.bounding_box(), progress.locator("rect.giftdesk-bar-track").bounding_box()
    assert drawn and track and abs(drawn["width"] - track["width"]) < 1 and drawn["width"] > 100, (drawn, track)
    step("delivered")
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    ledger = Counter(entry.reference for entry in gogift_emulator.ledger)
    assert ledger == Counter(batch.orders.values_list("reference", flat=True)), ledger  # each card once
    assert RECENT[1] not in {entry.recipient_email for entry in gogift_emulator.ledger}
    assert gogift_emulator.faults.injected["http_429"] == 1  # the retry after it bought nothing twice

    # 10. One order's page: its own part of each provider call, collapsed; nobody else's name or email.
    mette = batch.orders.get(recipient__email=SENT["EMP-1001"][1])
    page.locator(f"#content a[href$='{reverse('admin:orders_order_change', args=[mette.pk])}']").first.click()
    arrived(page, "#provider-calls")
    calls = page.locator("#provider-calls details.provider-call")
    assert calls.count() >= 1
    assert calls.evaluate_all("calls => calls.filter((call) => call.open).length") == 0
    html = page.content()
    assert SENT["EMP-1001"][0] in html and SENT["EMP-1001"][1] in html
    others = [(name, email) for name, email, _ in SENT.values() if email != SENT["EMP-1001"][1]] + [RECENT]
    assert not [person for person in others for value in person if value in html], others
    # Not a page that shows nothing: the card travelled with the others, whose lines were hidden.
    basket = calls.filter(has_text=f"this card and {plural(len(SENT) - 1, 'other')}")
    assert basket.filter(has_text="other cards of this call hidden").count() >= 1, page.inner_text("#provider-calls")
    step("order-page")

    # 11. The order list, searched by the spreadsheet's reference: that order alone.
    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}")
    page.fill("#searchbar", "EMP-1002")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r"[?&]q=EMP-1002"))
    found = page.locator("#result_list tbody tr")
    expect(found).to_have_count(1)
    # Django's change list: the column's header is th.column-<name>, its cells .field-<name>.
    expect(page.locator("#result_list thead th.column-spreadsheet_reference")).to_have_count(1)
    expect(found.locator(".field-spreadsheet_reference")).to_have_text("EMP-1002")
    lars = batch.orders.get(recipient__email=SENT["EMP-1002"][1])
    expect(found).to_contain_text(lars.reference)
    step("order-search")

    # 12. Export what the search found, as CSV: the spreadsheet's reference is a column.
    page.click("a#export-orders")  # "Export these orders", above the list
    arrived(page, "#export-csv")
    assert "q=EMP-1002" in page.url, page.url  # the page follows the list's search
    expect(page.locator("#export-count")).to_contain_text("1 order matches")
    expect(page.locator("#export-criteria")).to_contain_text("Search: “EMP-1002”")
    step("export-page")
    exported = downloaded(page, "#export-csv")
    assert exported.filename.endswith(".csv"), exported.filename
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert [line["reference"] for line in lines] == [lars.reference], lines
    spreadsheet_columns = [name for name, value in lines[0].items() if "reference" in name and value == "EMP-1002"]
    assert spreadsheet_columns and "reference" not in spreadsheet_columns, lines[0]
    page_checked(page)
