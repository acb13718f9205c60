"""After a form error the upload form keeps the file for the next try, server-side and by a
ticket only its uploader can use, and keeps listing the importer's fields (issue 10, finding 8)."""

import os
import re
import secrets
import time

from types import SimpleNamespace

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile

from orders import uploads
from orders.models import Batch
from providers.models import Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU
from tests.fixtures.uploads import stored
from tests.orders.test_admin import EXAMPLE, IMPORT_URL, confirm

OLD_EXCEL = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600
FIELDS_LINE = "This importer will import the following fields"


@pytest.fixture
def staff(admin_client, upload_dir):  # upload_dir, other_staff: tests/fixtures/uploads.py
    return admin_client


def post(client, to_account, *, content: bytes | None = EXAMPLE.read_bytes(), name="recipients.csv", **fields):
    """The upload form as a browser submits it: a file only when one is chosen."""
    data = {"format": "0", "resource": "0", "account": to_account.pk if to_account else "",
            "default_product": Product.objects.get(sku=GLOBAL_GIFT_CARD_SKU).pk, "message": "Thank you!"}
    data.update(fields)
    if content is not None:
        data["import_file"] = SimpleUploadedFile(name, content)
    return client.post(IMPORT_URL, data)


def kept_ticket(response) -> str:
    match = re.search(r'<input type="hidden" name="kept_upload" value="([^"]+)"', response.content.decode())
    assert match, "the page carries no kept file"
    return match.group(1)


def foreign_product():
    other = ProviderAccount.objects.create(name="Other", kind="gogift")
    return Product.objects.create(account=other, provider_product_id="1", sku="X", title="Foreign",
                                  currency="DKK", pricing="fixed", denominations=["100"])


@pytest.mark.parametrize("error,fix", [
    pytest.param(lambda account: {"account": ""}, lambda account: {}, id="no account chosen"),
    pytest.param(lambda account: {"scheduled_for": "2000-01-01T10:00"}, lambda account: {"scheduled_for": ""},
                 id="send at in the past"),
    pytest.param(lambda account: {"default_product": foreign_product().pk}, lambda account: {},
                 id="a product of another account"),
])
def test_after_a_form_error_the_file_is_kept_and_the_next_submit_without_a_file_uses_it(
        staff, emulated_gogift_account, upload_dir, error, fix):
    account = emulated_gogift_account
    first = post(staff, account, **error(account))

    html = first.content.decode()
    assert 'class="errorlist' in html and 'id="confirm-import"' not in html
    assert "Kept from your last try: <strong>recipients.csv</strong> (1007 bytes)" in html
    assert 'id="kept-upload"' in html and "Choose another file to replace it." in html
    assert re.search(r'<input type="file" name="import_file"(?![^>]*required)', html)  # no new file needed
    assert FIELDS_LINE in html and "<code>name (or first_name + last_name), email, amount," in html
    assert len(stored(upload_dir)) == 1 and not Batch.objects.exists()

    second = post(staff, account, content=None, kept_upload=kept_ticket(first), **fix(account))

    assert 'id="confirm-import"' in second.content.decode()
    assert "10 valid rows will become orders" in second.content.decode()
    confirm(staff, second)
    batch = Batch.objects.get()
    assert batch.source_filename == "recipients.csv" and batch.orders.count() == 10
    assert stored(upload_dir) == []


def test_a_file_without_amounts_is_kept_until_a_default_amount_is_given(staff, emulated_gogift_account):
    first = post(staff, emulated_gogift_account, content=b"name,email\nAna,ana@example.com\n", name="no-amounts.csv")
    assert "The file cannot be imported" in first.content.decode()
    assert "Kept from your last try: <strong>no-amounts.csv</strong>" in first.content.decode()

    second = post(staff, emulated_gogift_account, content=None, kept_upload=kept_ticket(first), default_amount="100")

    assert "1 valid row will become an order" in second.content.decode()


def test_a_form_error_twice_keeps_the_file_again(staff, emulated_gogift_account, upload_dir):
    first = post(staff, None)
    second = post(staff, None, content=None, kept_upload=kept_ticket(first))
    assert "Kept from your last try: <strong>recipients.csv</strong>" in second.content.decode()
    assert len(stored(upload_dir)) == 1  # The first copy went when the second was kept.

    third = post(staff, emulated_gogift_account, content=None, kept_upload=kept_ticket(second))
    assert 'id="confirm-import"' in third.content.decode()


def test_a_kept_file_is_not_read_again_on_the_next_form_error(staff, emulated_gogift_account, upload_dir,
                                                              settings):
    first = post(staff, None)
    # From now on, reading this 12-row file would refuse it: the kept file was read fine when it
    # was kept, and another form error offers it again without reading it (an XLSX would go
    # through the bounded child process each time).
    settings.GIFTDESK_IMPORT_MAX_ROWS = 1

    second = post(staff, None, content=None, kept_upload=kept_ticket(first))

    html = second.content.decode()
    assert "Kept from your last try: <strong>recipients.csv</strong> (1007 bytes)" in html
    assert "rows of recipients" not in html and "This field is required." in html  # only the account's error
    assert len(stored(upload_dir)) == 1


def test_a_new_file_is_read_at_once_on_a_form_error(staff, emulated_gogift_account, upload_dir, settings):
    settings.GIFTDESK_IMPORT_MAX_ROWS = 1

    response = post(staff, None)

    html = response.content.decode()
    assert "The file has more than 1 rows of recipients; the limit is 1." in html
    assert 'id="kept-upload"' not in html and stored(upload_dir) == []


def test_a_new_file_replaces_the_kept_one(staff, emulated_gogift_account, upload_dir):
    first = post(staff, None)
    [kept] = stored(upload_dir)

    second = post(staff, emulated_gogift_account, content=b"name,email,amount\nAna,ana@example.com,100\n",
                  name="other.csv", kept_upload=kept_ticket(first))

    assert "1 valid row will become an order" in second.content.decode()
    assert kept not in stored(upload_dir) and len(stored(upload_dir)) == 1  # Only the new file's preview.


def test_an_unreadable_file_is_not_kept_and_its_error_shows_with_the_others(staff, emulated_gogift_account,
                                                                             upload_dir):
    response = post(staff, None, content=OLD_EXCEL, name="old.xls")

    html = response.content.decode()
    assert "Save the spreadsheet as CSV" in html and "This field is required." in html
    assert 'id="kept-upload"' not in html and 'name="kept_upload" value=' not in html
    assert stored(upload_dir) == []


def test_a_file_over_the_size_limit_is_not_kept(staff, emulated_gogift_account, upload_dir, settings):
    settings.GIFTDESK_IMPORT_MAX_BYTES = 1024
    response = post(staff, None, content=b"name,email,amount\n" + b"x" * 2000)
    assert "the limit is 1 KB" in response.content.decode() and 'id="kept-upload"' not in response.content.decode()
    assert stored(upload_dir) == []


def test_the_field_list_stays_on_the_page_after_an_unreadable_file(staff, emulated_gogift_account):
    # import-export lists the fields only on some branches: an unreadable file left it blank.
    response = post(staff, emulated_gogift_account, content=OLD_EXCEL, name="old.xls")
    html = response.content.decode()
    assert "Save the spreadsheet as CSV" in html
    assert FIELDS_LINE in html and "<code>name (or first_name + last_name), email, amount," in html


# --- The ticket reads only its uploader's own file ----------------------------------------

def test_another_users_ticket_is_refused_and_the_file_stays_for_its_uploader(
        staff, other_staff, emulated_gogift_account, upload_dir):
    ticket = kept_ticket(post(staff, None))
    kept = stored(upload_dir)

    response = post(other_staff, emulated_gogift_account, content=None, kept_upload=ticket)

    assert uploads.KEPT_NOT_YOURS in response.content.decode()
    assert 'id="confirm-import"' not in response.content.decode() and stored(upload_dir) == kept
    assert 'id="confirm-import"' in post(staff, emulated_gogift_account, content=None,
                                         kept_upload=ticket).content.decode()


@pytest.mark.parametrize("forge", [
    pytest.param(lambda ticket, token, user: uploads.kept_upload_ticket("../../etc/passwd", user_id=user,
                                                                        name="x.csv"), id="a signed path"),
    pytest.param(lambda ticket, token, user: "../../etc/passwd", id="a bare path"),
    pytest.param(lambda ticket, token, user: token, id="the bare token, unsigned"),
    pytest.param(lambda ticket, token, user: ticket[:-1] + ("A" if ticket[-1] != "A" else "B"), id="altered ticket"),
    pytest.param(lambda ticket, token, user: uploads.upload_ticket(token, user_id=user), id="a confirm ticket"),
    pytest.param(lambda ticket, token, user: uploads.kept_upload_ticket(secrets.token_urlsafe(24), user_id=user,
                                                                        name="x.csv"), id="a made-up token"),
])
def test_a_forged_ticket_reads_no_file(staff, emulated_gogift_account, upload_dir, forge):
    user = int(staff.session["_auth_user_id"])  # signed for the uploader: only the forgery is wrong
    ticket = kept_ticket(post(staff, None))
    [token] = stored(upload_dir)

    response = post(staff, emulated_gogift_account, content=None, kept_upload=forge(ticket, token, user))

    html = response.content.decode()
    assert 'id="confirm-import"' not in html and "Choose the file again." in html
    assert stored(upload_dir) == [token]


def test_an_expired_ticket_is_refused(staff, emulated_gogift_account, upload_dir, monkeypatch):
    ticket = kept_ticket(post(staff, None))
    later_by(monkeypatch, hours=24, minutes=1)  # the default GIFTDESK_UPLOAD_MAX_AGE_HOURS, and a minute

    response = post(staff, emulated_gogift_account, content=None, kept_upload=ticket)

    html = response.content.decode()
    assert ("The file kept from your last try is older than 24 hours and has been deleted. "
            "Choose the file again.") in html
    assert 'id="confirm-import"' not in html and not Batch.objects.exists()


def test_a_ticket_within_the_age_limit_is_still_good(staff, emulated_gogift_account, upload_dir, monkeypatch):
    ticket = kept_ticket(post(staff, None))
    later_by(monkeypatch, hours=23, minutes=59)

    response = post(staff, emulated_gogift_account, content=None, kept_upload=ticket)

    assert 'id="confirm-import"' in response.content.decode()


def later_by(monkeypatch, *, hours: int, minutes: int) -> None:
    """Move the clock that django.core.signing reads (only that one) forward."""
    now = time.time() + hours * 3600 + minutes * 60
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: now))


def test_a_swept_file_is_refused_saying_to_choose_it_again(staff, emulated_gogift_account, upload_dir, settings):
    ticket = kept_ticket(post(staff, None))
    [token] = stored(upload_dir)
    day_ago = time.time() - 25 * 3600
    os.utime(upload_dir / token, (day_ago, day_ago))
    assert uploads.uploads_sweep() == 1  # The kept file is swept like any preview's.

    response = post(staff, emulated_gogift_account, content=None, kept_upload=ticket)

    assert uploads.KEPT_GONE in response.content.decode()
