"""The confirm step accepts only a ticket for the user's own upload; uploads do not outlive
their use (issue 8, findings 9 and 10)."""

import os
import secrets
import stat
import tempfile
import time
from pathlib import Path

import pytest
from django.urls import reverse

from orders import tasks, uploads
from orders.models import Batch
from tests.fixtures.uploads import stored
from tests.orders.test_kept_upload import later_by
from tests.orders.test_admin import EXAMPLE, upload

CONFIRM_URL = reverse("admin:orders_batch_process_import")


@pytest.fixture
def staff(admin_client, upload_dir):  # upload_dir, other_staff: tests/fixtures/uploads.py
    return admin_client


def confirm_data(preview) -> dict:
    form = preview.context["confirm_form"]
    return {name: ("" if value is None else value) for name, value in form.initial.items()}


def assert_refused(response, message: str) -> None:
    """Back at the upload form with the reason, and no batch."""
    assert response.redirect_chain[-1][0] == reverse("admin:orders_batch_import")
    assert message in response.content.decode()
    assert not Batch.objects.exists()


# --- Finding 9: the confirm step trusts no file name from the browser ------------------------

def test_a_path_in_the_confirm_form_is_refused_and_the_file_it_names_is_left_alone(
        staff, emulated_gogift_account):
    # What the probe did: a file in the system's temporary directory, never uploaded.
    target = Path(tempfile.gettempdir()) / f"giftdesk-probe-{secrets.token_hex(8)}.csv"
    target.write_bytes(EXAMPLE.read_bytes())
    try:
        data = confirm_data(upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
        data["import_file_name"] = f"../../{target.parent.name}/{target.name}"

        response = staff.post(CONFIRM_URL, data, follow=True)

        assert_refused(response, uploads.NOT_YOURS)
        assert target.read_bytes() == EXAMPLE.read_bytes()
    finally:
        target.unlink(missing_ok=True)


def test_another_users_upload_cannot_be_confirmed_and_stays_for_its_uploader(
        staff, other_staff, emulated_gogift_account, upload_dir):
    data = confirm_data(upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
    kept = stored(upload_dir)

    response = other_staff.post(CONFIRM_URL, data, follow=True)

    assert_refused(response, uploads.NOT_YOURS)
    assert stored(upload_dir) == kept and len(kept) == 1
    staff.post(CONFIRM_URL, data)  # The uploader still can.
    assert Batch.objects.count() == 1 and stored(upload_dir) == []


@pytest.mark.parametrize("forge", [
    pytest.param(lambda ticket, token: secrets.token_urlsafe(24), id="made-up token"),
    pytest.param(lambda ticket, token: token, id="the bare token, unsigned"),
    pytest.param(lambda ticket, token: ticket[:-1] + ("A" if ticket[-1] != "A" else "B"), id="altered ticket"),
    pytest.param(lambda ticket, token: uploads.upload_ticket(token, user_id=-1), id="ticket of another user id"),
    pytest.param(lambda ticket, token: "", id="empty"),
])
def test_a_forged_ticket_is_refused_and_nothing_is_read_or_deleted(
        staff, emulated_gogift_account, upload_dir, forge):
    data = confirm_data(upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
    [token] = stored(upload_dir)
    data["import_file_name"] = forge(data["import_file_name"], token)

    response = staff.post(CONFIRM_URL, data, follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:orders_batch_import")
    assert not Batch.objects.exists() and stored(upload_dir) == [token]


def test_an_expired_preview_is_refused_saying_to_upload_again(staff, emulated_gogift_account, monkeypatch):
    data = confirm_data(upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
    later_by(monkeypatch, hours=24, minutes=1)  # the default GIFTDESK_UPLOAD_MAX_AGE_HOURS, and a minute

    response = staff.post(CONFIRM_URL, data, follow=True)

    assert_refused(response, "This preview is older than 24 hours and its file has been deleted, so nothing "
                             "was imported. Upload the file again.")


def test_confirming_twice_creates_one_batch_and_says_why_not_the_second(staff, emulated_gogift_account):
    data = confirm_data(upload(staff, emulated_gogift_account, EXAMPLE.read_bytes()))
    staff.post(CONFIRM_URL, data)

    response = staff.post(CONFIRM_URL, data, follow=True)

    assert Batch.objects.count() == 1
    assert "already imported or has expired" in response.content.decode()


# --- Finding 10: uploads live in GiftDesk's own directory and do not outlive their use -----

def test_a_preview_keeps_its_file_privately_in_the_upload_directory_until_confirmed(
        staff, emulated_gogift_account, upload_dir):
    old_umask = os.umask(0o022)  # A usual umask: without care, the directory would be 0755.
    try:
        preview = upload(staff, emulated_gogift_account, EXAMPLE.read_bytes())
    finally:
        os.umask(old_umask)
    [token] = stored(upload_dir)

    assert stat.S_IMODE(upload_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((upload_dir / token).stat().st_mode) == 0o600
    assert (upload_dir / token).read_bytes() == EXAMPLE.read_bytes()
    assert token not in preview.content.decode()  # The page carries a signed ticket, not the name.

    staff.post(CONFIRM_URL, confirm_data(preview))

    assert Batch.objects.count() == 1 and stored(upload_dir) == []


def test_an_existing_upload_directory_is_made_private(staff, emulated_gogift_account, upload_dir):
    upload_dir.mkdir(mode=0o755)
    upload_dir.chmod(0o755)
    upload(staff, emulated_gogift_account, EXAMPLE.read_bytes())
    assert stat.S_IMODE(upload_dir.stat().st_mode) == 0o700


@pytest.mark.parametrize("content,name", [
    # A file without amounts is kept instead (a default amount fixes it: tests/orders/test_kept_upload.py);
    # one without an email column needs a new file.
    pytest.param(b"name,amount\nAna,100\n", "no-emails.csv", id="file refused"),
    pytest.param(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "old.xls", id="unreadable file"),
    pytest.param(b"name,email,amount\nAna,not-an-email,100\n", "all-invalid.csv", id="no valid row"),
])
def test_an_upload_that_cannot_be_confirmed_is_deleted_at_once(
        staff, emulated_gogift_account, upload_dir, content, name):
    response = upload(staff, emulated_gogift_account, content, name=name)

    assert "confirm-import" not in response.content.decode()
    assert upload_dir.is_dir() and stored(upload_dir) == []  # Stored there, then removed.


def test_the_minute_sweep_deletes_uploads_older_than_the_max_age_and_keeps_newer(db, upload_dir, settings):
    settings.GIFTDESK_UPLOAD_MAX_AGE_HOURS = 24
    fresh, stale = uploads.UploadStorage(read_mode="rb"), uploads.UploadStorage(read_mode="rb")
    fresh.save(b"name,email,amount\n")
    stale.save(b"name,email,amount\n")
    day_and_a_minute_ago = time.time() - 24 * 3600 - 60
    os.utime(upload_dir / stale.name, (day_and_a_minute_ago, day_and_a_minute_ago))
    foreign = upload_dir / "not-ours.txt"  # Not an upload's name: never touched.
    foreign.write_text("x")
    os.utime(foreign, (day_and_a_minute_ago, day_and_a_minute_ago))

    report = tasks.sweep()

    assert stored(upload_dir) == sorted([fresh.name, "not-ours.txt"])
    assert "1 expired upload deleted" in report


def test_the_sweep_on_a_machine_without_uploads_creates_nothing(db, upload_dir):
    assert uploads.uploads_sweep() == 0 and not upload_dir.exists()
