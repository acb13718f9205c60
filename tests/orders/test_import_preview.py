"""The import preview (issue 10, findings 6 and 12): counts at the top, the same file uploaded
twice, leaving out recent recipients, rows with warnings shown apart, plural messages."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from orders.batch_review import batch_review
from orders.models import Batch, BatchState, OrderStatus
from orders.spreadsheet import ImportContext
from tests.fixtures.data import GLOBAL_GIFT_CARD_ID
from tests.orders.test_admin import EXAMPLE, confirm, upload
from tests.orders.test_approval_screen import batch_of

CONFIRM_URL = reverse("admin:orders_batch_process_import")


@pytest.fixture
def staff(admin_client, settings, tmp_path):
    settings.GIFTDESK_UPLOAD_DIR = tmp_path / "uploads"
    return admin_client


def csv_of(*rows: tuple[str, str, str]) -> bytes:
    return ("name,email,amount\n" + "".join(f"{name},{email},{amount}\n" for name, email, amount in rows)).encode()


def confirm_choosing(client, preview, *, leave_out: bool):
    data = {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}
    if leave_out:
        data["leave_out_recent"] = "on"
    return client.post(CONFIRM_URL, data, follow=True)


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id (tags dropped, spaces collapsed)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"#{element_id} is not on the page"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(2)).split())


def test_the_counts_stand_at_the_top_above_the_confirm_button(staff, emulated_gogift_account):
    html = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()).content.decode()

    assert text_of(html, "preview-counts") == "10 valid · 2 invalid · 0 with warnings"
    assert html.index('id="preview-counts"') < html.index('id="confirm-import"')
    assert 'id="same-file-notice"' not in html


def test_rows_with_warnings_are_counted_and_marked_apart_from_plain_valid_rows(staff, emulated_gogift_account):
    content = csv_of(("Ana", "ana@example.com", "100"), ("Ana again", "ana@example.com", "200"),
                     ("Bo", "bo@example.com", "100"))
    html = upload(staff, emulated_gogift_account, content).content.decode()

    assert text_of(html, "preview-counts") == "3 valid · 0 invalid · 2 with warnings"
    rows = re.findall(r'<tr class="([^"]*)"><td>(\d+)</td>', html)
    assert rows == [("new giftdesk-row-warning", "2"), ("new giftdesk-row-warning", "3"), ("new", "4")]


def test_the_same_file_again_names_the_earlier_batch_at_the_top_and_offers_to_leave_out_its_recipients(
        staff, emulated_gogift_account, admin_user):
    confirm(staff, upload(staff, emulated_gogift_account, EXAMPLE.read_bytes(), batch_name="Christmas 2026"))
    first = Batch.objects.get()

    preview = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes())
    html = preview.content.decode()

    notice = text_of(html, "same-file-notice")
    assert "This file was uploaded before." in notice
    assert f"“Christmas 2026” on {emulated_gogift_account.name}" in notice
    assert f"created {timezone.localtime(first.created_at):%Y-%m-%d %H:%M} by {admin_user.username}" in notice
    assert "now Pending (not sent)" in notice and "earlier batch" not in notice
    assert f'href="{reverse("admin:orders_batch_change", args=[first.pk])}"' in html
    assert html.index('id="same-file-notice"') < html.index('id="confirm-import"')
    assert text_of(html, "preview-counts") == "10 valid · 2 invalid · 10 with warnings"
    checkbox = re.search(r'<input[^>]*id="id_leave_out_recent"[^>]*>', html).group(0)
    assert 'name="leave_out_recent"' in checkbox and "checked" in checkbox  # The same file: ticked.
    assert ("Leave out the 10 recipients who got or are due to get a card in the last 30 days "
            "(11,000.00 DKK of the total)") in html
    assert html.count("giftdesk-row-warning") == 10


def test_the_notice_names_the_most_recent_batch_and_how_many_earlier_whatever_their_state(
        staff, emulated_gogift_account):
    for name in ("First", "Second", "Third"):
        confirm(staff, upload(staff, emulated_gogift_account, EXAMPLE.read_bytes(), batch_name=name))
    Batch.objects.filter(name="Third").update(state=BatchState.CANCELLED)
    Batch.objects.filter(name="First").update(created_at=timezone.now() - timedelta(days=2))

    notice = text_of(upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()).content.decode(),
                     "same-file-notice")

    assert "“Third”" in notice and "now Cancelled, and 2 earlier batches." in notice


def test_a_different_file_is_not_named_and_its_recent_recipients_are_offered_unticked(
        staff, emulated_gogift_account):
    confirm(staff, upload(staff, emulated_gogift_account, csv_of(("Ana", "ana@example.com", "100"))))

    html = upload(staff, emulated_gogift_account, csv_of(("Ana", "ana@example.com", "100"),
                                                          ("Bo", "bo@example.com", "100"))).content.decode()

    assert 'id="same-file-notice"' not in html
    checkbox = re.search(r'<input[^>]*id="id_leave_out_recent"[^>]*>', html).group(0)
    assert "checked" not in checkbox
    assert ("Leave out the recipient who got or is due to get a card in the last 30 days "
            "(100.00 DKK of the total)") in html


def test_no_recent_recipient_no_leave_out_choice(staff, emulated_gogift_account):
    html = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()).content.decode()
    assert "leave_out_recent" not in html


def test_leaving_out_recent_recipients_creates_the_others_and_does_not_count_them_invalid(
        staff, emulated_gogift_account):
    confirm(staff, upload(staff, emulated_gogift_account, csv_of(("Ana", "ana@example.com", "100"),
                                                                  ("Bo", "bo@example.com", "100"))))
    preview = upload(staff, emulated_gogift_account, csv_of(
        ("Ana", "ana@example.com", "100"), ("Cy", "cy@example.com", "100"), ("Bo", "bo@example.com", "200"),
        ("Bad", "not-an-email", "100")), name="second.csv")

    response = confirm_choosing(staff, preview, leave_out=True)

    batch = Batch.objects.get(source_filename="second.csv")
    assert list(batch.orders.values_list("recipient__email", flat=True)) == ["cy@example.com"]
    assert batch.rejected_row_count == 1 and [row["row"] for row in batch.rejected_rows] == [5]
    message = response.content.decode()
    assert "created with 1 order. 1 invalid row left out. 2 recent recipients left out as chosen (rows 2, 4)." in message
    audit = AuditEntry.objects.filter(action=AuditAction.UPLOAD).order_by("-pk").first()
    assert "2 recent recipients left out as chosen (rows 2, 4)" in audit.summary


def test_keeping_recent_recipients_creates_every_valid_row(staff, emulated_gogift_account):
    confirm(staff, upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
    preview = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes())

    response = confirm_choosing(staff, preview, leave_out=False)  # The ticked box, unticked.

    assert Batch.objects.count() == 2 and Batch.objects.order_by("-pk").first().orders.count() == 10
    assert "created with 10 orders. 2 invalid rows left out. Check it" in response.content.decode()


def test_leaving_out_every_valid_row_creates_nothing_and_says_why(staff, emulated_gogift_account):
    confirm(staff, upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
    preview = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes())

    response = confirm_choosing(staff, preview, leave_out=True)

    assert Batch.objects.count() == 1
    assert "Every valid row is a recent recipient, and you chose to leave them out" in response.content.decode()


def test_one_row_reads_in_the_singular(staff, emulated_gogift_account):
    preview = upload(staff, emulated_gogift_account, csv_of(("Ana", "ana@example.com", "100"),
                                                             ("Bad", "bad", "100")))
    assert "1 valid row will become an order." in preview.content.decode()
    assert "1 invalid row will be left out" in preview.content.decode()

    response = confirm_choosing(staff, preview, leave_out=False)

    message = response.content.decode()
    assert "created with 1 order. 1 invalid row left out." in message and "1 orders" not in message


# --- One definition of a recent recipient: the preview and the approval screen ----------------

def test_a_card_still_pending_counts_as_recent_on_the_preview_and_on_the_approval_screen(
        emulated_gogift_account, admin_user):
    # The same list twice, the first batch never sent: the case to catch. A cancelled card does not count.
    lines = [(GLOBAL_GIFT_CARD_ID, "100"), (GLOBAL_GIFT_CARD_ID, "200")]
    first = batch_of(emulated_gogift_account, lines, uploader=admin_user)
    first.orders.filter(recipient__email="r1@example.com").update(status=OrderStatus.CANCELLED)
    context = ImportContext.for_account(emulated_gogift_account)

    second = batch_of(emulated_gogift_account, lines, uploader=admin_user)
    review = batch_review(second)

    assert context.recent_recipient_emails == {"r0@example.com"}
    # The second batch's own orders are not "another card".
    assert [(card.email, card.batch_id, card.status) for card in review.recent_cards] == [
        ("r0@example.com", first.pk, OrderStatus.PENDING)]
    assert review.recent_recipient_count == 1
