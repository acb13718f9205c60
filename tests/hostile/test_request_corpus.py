"""The hostile requests of the corpus: a forged import confirmation, webhooks that are
forged, malformed or huge, and admin POSTs without a CSRF token. Each is answered with
what the caller must know, changes nothing, buys nothing and gives nothing secret back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import tempfile
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from emulators.gogift import signed_webhook as gogift_signed_webhook
from orders.models import Batch, Order, OrderEvent, OrderStatus
from providers.clients.base import hmac_sha256_hex
from providers.models import ProviderAccount, WebhookEvent
from tests.fixtures.data import make_batch
from tests.fixtures.hostile import HOSTILE_CLIENT_ID, HOSTILE_WEBHOOK_SECRET
from tests.hostile.checks import assert_nothing_created, assert_nothing_secret, page_text
from tests.hostile.corpus import HOSTILE_NAME
from tests.hostile.upload import CONFIRM_URL, IMPORT_URL, multipart, upload

GIFTY_WEBHOOK_SECRET = "gifty-hostile-webhook-Xc93Lm2"
GIFTY_TOKEN = "gifty-hostile-token-Pw71"
VALID_CSV = b"name,email,amount\nAna Hansen,ana@example.com,100\n"


def webhook_url(account_id: int) -> str:
    return reverse("provider-webhook", args=[account_id])


def post_webhook(client, account_id: int, headers: dict[str, str], body: bytes):
    return client.generic("POST", webhook_url(account_id), body, content_type="application/json",
                          headers={name: value for name, value in headers.items() if name != "Content-Type"})


def gogift_signed(body: bytes, request_id: str | None = None) -> dict[str, str]:
    """GoGift's signature headers (seed 001) for any body, valid for the hostile account."""
    sent_at = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    request_id = request_id or uuid.uuid4().hex
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = f"POST{sent_at}{HOSTILE_CLIENT_ID}{request_id}{digest}".encode()
    signature = base64.b64encode(hmac.new(base64.b64decode(HOSTILE_WEBHOOK_SECRET), token,
                                          hashlib.sha256).digest()).decode()
    return {"Signature": f'keyId="{HOSTILE_CLIENT_ID}",algorithm="hmac-sha256",signature="{signature}"',
            "X-Request-Datetime": sent_at, "X-Client-ID": HOSTILE_CLIENT_ID, "X-Request-ID": request_id}


@pytest.fixture
def gifty_account(db) -> ProviderAccount:
    account = ProviderAccount.objects.create(name="Gifty hostile", kind="gifty", environment="production",
                                             settings={"language": "en"})
    account.set_credentials({"api_token": GIFTY_TOKEN, "webhook_secret": GIFTY_WEBHOOK_SECRET})
    account.save()
    return account


@pytest.fixture
def secrets(hostile_secrets) -> list[str]:
    return [*hostile_secrets, GIFTY_WEBHOOK_SECRET, GIFTY_TOKEN]


def assert_no_webhook_effect() -> None:
    """Nothing applied: no accepted event stored, no order touched."""
    assert not WebhookEvent.objects.exclude(event_type="rejected").exists()
    assert not OrderEvent.objects.exists()


# --- The import confirmation (finding 9) ---------------------------------------------------


@pytest.fixture
def planted_file() -> Path:
    """A valid recipient list GiftDesk never received, where the confirm step used to look."""
    path = Path(tempfile.gettempdir()) / f"planted-{uuid.uuid4().hex}.csv"
    path.write_bytes(VALID_CSV)
    yield path
    path.unlink(missing_ok=True)


def forged_confirmation(account, **fields) -> dict[str, str]:
    product = account.products.get()
    return {"import_file_name": "", "original_file_name": "x.csv", "format": "0", "resource": "0",
            "account": str(account.pk), "default_product": str(product.pk), "message": "", **fields}


@pytest.mark.parametrize("name_of", [lambda path: f"../../..{path}", lambda path: path.name],
                         ids=["traversal", "bare-name"])
def test_a_confirmation_naming_a_file_that_was_never_uploaded_creates_nothing(
        name_of, sender, hostile_account, hostile_emulator, planted_file, secrets):
    response = sender.post(CONFIRM_URL, forged_confirmation(hostile_account, import_file_name=name_of(planted_file)),
                           follow=True)

    text = page_text(response)
    assert_nothing_created(hostile_emulator)
    assert planted_file.exists(), "the confirm step deleted a file it never issued"
    assert response.status_code in (200, 400, 403)
    assert "upload the file again" in text.lower()
    assert_nothing_secret(text, secrets)


def test_a_confirmation_of_another_users_upload_creates_nothing(client, sender_user, hostile_account,
                                                               hostile_emulator, secrets):
    client.force_login(sender_user)
    preview = upload(client, hostile_account, "theirs.csv", VALID_CSV)
    assert preview.status_code == 200 and 'id="confirm-import"' in preview.content.decode()
    carried = {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}
    intruder = get_user_model().objects.create_user("ivo.intruder", is_staff=True)
    intruder.groups.add(Group.objects.get(name="Senders"))
    other = Client()
    other.force_login(intruder)

    response = other.post(CONFIRM_URL, carried, follow=True)

    text = page_text(response)
    assert_nothing_created(hostile_emulator)
    assert "upload the file again" in text.lower()
    assert_nothing_secret(text, secrets)


def test_a_confirmation_cannot_be_replayed(sender, hostile_account, hostile_emulator, secrets):
    preview = upload(sender, hostile_account, "once.csv", VALID_CSV)
    carried = {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}
    first = sender.post(CONFIRM_URL, carried)
    assert first.status_code == 302 and Batch.objects.count() == 1

    again = sender.post(CONFIRM_URL, carried, follow=True)

    text = page_text(again)
    assert "upload the file again" in text.lower()
    assert Batch.objects.count() == 1 and Order.objects.count() == 1
    assert hostile_emulator.ledger == []
    assert_nothing_secret(text, secrets)


@pytest.mark.parametrize("original_name", [HOSTILE_NAME + "x" * 10_000 + ".csv", "r" * 250 + ".csv"],
                         ids=["10000-chars-with-markup", "250-chars"])
def test_a_confirmation_with_a_forged_file_name_stores_a_name_that_fits(original_name, sender, hostile_account):
    preview = upload(sender, hostile_account, "recipients.csv", VALID_CSV)
    carried = {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}

    response = sender.post(CONFIRM_URL, {**carried, "original_file_name": original_name})

    assert response.status_code == 302  # the upload itself is genuine
    batch = Batch.objects.get()
    assert len(batch.source_filename) <= 255 and len(batch.name) <= 200  # PostgreSQL refuses longer
    page = sender.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    assert "<script>alert(" not in page


def test_a_confirmation_with_a_nul_in_the_file_name_is_refused(sender, hostile_account, hostile_emulator, secrets):
    preview = upload(sender, hostile_account, "recipients.csv", VALID_CSV)
    carried = {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}

    response = sender.post(CONFIRM_URL, {**carried, "original_file_name": "recipients\x00.csv"}, follow=True)

    text = page_text(response)
    assert "Null characters are not allowed" in text  # PostgreSQL could not store it
    assert_nothing_created(hostile_emulator)
    assert_nothing_secret(text, secrets)


# --- Webhooks (finding 11) ------------------------------------------------------------------


def test_a_webhook_with_a_bad_signature_is_refused(client, hostile_account, secrets):
    headers, body = gogift_signed_webhook(secret=base64.b64encode(b"not-our-secret").decode(),
                                          client_id=HOSTILE_CLIENT_ID, content=[{"orderId": 1}],
                                          request_id="forged-1", sent_at=timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"))
    response = post_webhook(client, hostile_account.pk, headers, body)

    assert response.status_code == 401
    assert_no_webhook_effect()
    assert not WebhookEvent.objects.exists()
    assert_nothing_secret(response.content.decode(), secrets)


def test_a_webhook_without_a_signature_is_refused(client, gifty_account, secrets):
    response = post_webhook(client, gifty_account.pk, {}, b'{"id": "evt_1", "type": "order.completed"}')

    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()
    assert_nothing_secret(response.content.decode(), secrets)


def test_a_webhook_for_an_unknown_account_is_answered_like_a_bad_signature(client, gifty_account, secrets):
    body = b'{"id": "evt_1", "type": "order.completed", "data": {"id": "or_1"}}'
    headers = {"X-Gifty-Signature": hmac_sha256_hex("wrong-secret", body)}
    bad_signature = post_webhook(client, gifty_account.pk, headers, body)

    unknown = post_webhook(client, gifty_account.pk + 1000, headers, body)

    assert (unknown.status_code, unknown.content) == (bad_signature.status_code, bad_signature.content)
    assert unknown.status_code == 401
    assert not WebhookEvent.objects.exists()
    assert_nothing_secret(unknown.content.decode(), secrets)


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"content": [1]}', b'{"content": "everything"}', b"not json"],
                         ids=["array", "content-of-numbers", "content-a-string", "not-json"])
def test_a_signed_gogift_webhook_of_an_odd_shape_gets_400(body, client, hostile_account, secrets):
    response = post_webhook(client, hostile_account.pk, gogift_signed(body), body)

    assert response.status_code == 400
    assert_no_webhook_effect()
    assert_nothing_secret(response.content.decode(), secrets)


def test_a_signed_gifty_webhook_with_gift_cards_a_number_gets_400(client, gifty_account, secrets):
    event = {"id": "evt_odd", "type": "external_order.completed",
             "data": {"id": "or_1", "status": "completed", "gift_cards": 5}}
    body = json.dumps(event).encode()
    response = post_webhook(client, gifty_account.pk, {"X-Gifty-Signature": hmac_sha256_hex(GIFTY_WEBHOOK_SECRET, body)},
                            body)

    assert response.status_code == 400
    assert_no_webhook_effect()
    assert_nothing_secret(response.content.decode(), secrets)


def test_a_webhook_body_over_1_mb_gets_413_even_when_signed(client, gifty_account, secrets):
    event = {"id": "evt_big", "type": "external_order.completed", "data": {"id": "or_1", "padding": "x" * (1024 * 1024)}}
    body = json.dumps(event).encode()
    response = post_webhook(client, gifty_account.pk, {"X-Gifty-Signature": hmac_sha256_hex(GIFTY_WEBHOOK_SECRET, body)},
                            body)

    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()
    assert_nothing_secret(response.content.decode(), secrets)


def test_a_webhook_cannot_be_fetched(client, gifty_account):
    assert client.get(webhook_url(gifty_account.pk)).status_code == 405
    assert not WebhookEvent.objects.exists()


# --- POSTs without a CSRF token -------------------------------------------------------------


@pytest.fixture
def csrf_client(sender_user) -> Client:
    """A signed-in Sender whose browser was tricked into posting from another site."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(sender_user)
    return client


def assert_csrf_refused(response, secrets: list[str]) -> None:
    assert response.status_code == 403
    text = page_text(response)
    assert "CSRF verification failed" in text
    assert_nothing_secret(text, secrets)


def test_an_upload_without_a_csrf_token_is_refused(csrf_client, hostile_account, hostile_emulator, secrets):
    product = hostile_account.products.get()
    body, content_type = multipart({"format": "0", "resource": "0", "account": str(hostile_account.pk),
                                    "default_product": str(product.pk)}, "import_file", "r.csv", VALID_CSV)
    response = csrf_client.post(IMPORT_URL, data=body, content_type=content_type)

    assert_csrf_refused(response, secrets)
    assert_nothing_created(hostile_emulator)
    assert_nothing_secret(response.content.decode(), secrets)


def test_a_confirmation_without_a_csrf_token_is_refused(client, csrf_client, sender_user, hostile_account,
                                                       hostile_emulator, secrets):
    client.force_login(sender_user)
    preview = upload(client, hostile_account, "r.csv", VALID_CSV)
    carried = {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}

    response = csrf_client.post(CONFIRM_URL, carried)

    assert_csrf_refused(response, secrets)
    assert_nothing_created(hostile_emulator)
    assert_nothing_secret(response.content.decode(), secrets)


@pytest.mark.parametrize("button", ["send", "cancel"])
def test_a_batch_button_without_a_csrf_token_is_refused(button, csrf_client, sender_user, hostile_account,
                                                       hostile_emulator, secrets):
    batch = make_batch(hostile_account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(created_by=sender_user)

    response = csrf_client.post(reverse(f"admin:orders_batch_{button}", args=[batch.pk]))

    assert_csrf_refused(response, secrets)
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    assert hostile_emulator.ledger == []


def test_a_list_action_without_a_csrf_token_is_refused(csrf_client, sender_user, hostile_account, hostile_emulator,
                                                      secrets):
    batch = make_batch(hostile_account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(created_by=sender_user)

    response = csrf_client.post(reverse("admin:orders_batch_changelist"),
                                {"action": "send_batches", "_selected_action": [batch.pk]})

    assert_csrf_refused(response, secrets)
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.PENDING}
    assert hostile_emulator.ledger == []


def test_a_sign_in_without_a_csrf_token_is_refused(db, secrets):
    response = Client(enforce_csrf_checks=True).post(reverse("admin:login"),
                                                     {"username": "someone", "password": "guess"})
    assert_csrf_refused(response, secrets)
