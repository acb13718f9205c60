"""Inbound webhooks: GoGift's signed deliveries (seed 001), replay protection, refusals."""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from orders.models import OrderStatus
from emulators.gogift import signed_webhook
from providers.models import WebhookEvent
from providers.services import account_configure
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID

SECRET = base64.b64encode(b"gogift-webhook-secret-0123456789").decode()


def now_text(offset_seconds: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def account_with_secret(emulated_gogift_account):
    account_configure(name=emulated_gogift_account.name, kind="gogift", environment="sandbox",
                      values={"webhook_secret": SECRET})
    emulated_gogift_account.refresh_from_db()
    return emulated_gogift_account


@pytest.fixture
def processing_order(account_with_secret):
    batch = make_batch(account_with_secret, ["100"])
    order = batch.orders.get()
    order.status, order.provider_order_id = OrderStatus.PROCESSING, "330000000000000077"
    order.save()
    return order


def post(client, account, headers, body):
    return client.generic("POST", reverse("provider-webhook", args=[account.pk]), body,
                          content_type="application/json",
                          **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
                             if name != "Content-Type"})


def delivery(order, *, request_id="req-1", sent_at=None, secret=SECRET, client_id=GOGIFT_TEST_CLIENT_ID):
    content = [{"productId": "256314825926729728", "orderId": int(order.provider_order_id), "deliveryId": 9,
                "amountInDecimal": 100, "currencyCode": "DKK", "expiresAt": "2029-11-21T00:00:00Z",
                "giftcardUri": "https://gogift.example/card/secret", "pin": "1234"}]
    return signed_webhook(secret=secret, client_id=client_id, content=content, request_id=request_id,
                          sent_at=sent_at or now_text())


def test_a_signed_delivery_marks_the_order_delivered(client, account_with_secret, processing_order):
    response = post(client, account_with_secret, *delivery(processing_order))

    assert response.status_code == 200, response.content
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.DELIVERED
    assert processing_order.provider_details["expiresAt"] == "2029-11-21T00:00:00Z"
    event = WebhookEvent.objects.get()
    assert event.event_id == "req-1" and event.outcome == "1 order updated"
    assert event.payload["content"][0]["pin"] == "[redacted]"  # never stored
    assert event.payload["content"][0]["giftcardUri"] == "[redacted]"


def test_a_replayed_delivery_changes_nothing(client, account_with_secret, processing_order):
    headers, body = delivery(processing_order)
    post(client, account_with_secret, headers, body)
    processing_order.__class__.objects.filter(pk=processing_order.pk).update(status=OrderStatus.PROCESSING)

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 200 and b"nothing changed" in response.content
    assert WebhookEvent.objects.count() == 1
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


@pytest.mark.parametrize("tamper, status", [
    ("body", 401), ("signature", 401), ("missing_signature", 401), ("old", 400), ("future", 400),
    # A signed header missing: nothing can be verified, answered as a bad signature (issue 8).
    ("client", 401), ("secret", 401), ("missing_request_id", 401),
])
def test_a_bad_delivery_is_refused_and_changes_nothing(client, account_with_secret, processing_order, tamper, status):
    headers, body = delivery(
        processing_order,
        sent_at=now_text(-120) if tamper == "old" else now_text(120) if tamper == "future" else None,
        secret=base64.b64encode(b"another-secret").decode() if tamper == "secret" else SECRET,
        client_id="someone-else" if tamper == "client" else GOGIFT_TEST_CLIENT_ID,
    )
    if tamper == "body":
        body = body.replace(b'"amountInDecimal": 100', b'"amountInDecimal": 900')
    if tamper == "signature":
        headers["Signature"] = headers["Signature"].replace('signature="', 'signature="x')
    if tamper == "missing_signature":
        del headers["Signature"]
    if tamper == "missing_request_id":
        del headers["X-Request-ID"]

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == status, response.content
    assert not WebhookEvent.objects.exists()
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


def test_the_previous_secret_still_verifies_after_a_rotation(client, account_with_secret, processing_order):
    account_configure(name=account_with_secret.name, kind="gogift", environment="sandbox",
                      values={"webhook_secret": base64.b64encode(b"the-new-secret").decode()})
    response = post(client, account_with_secret, *delivery(processing_order))
    assert response.status_code == 200


def test_a_webhook_only_accepts_post(client, account_with_secret):
    assert client.get(reverse("provider-webhook", args=[account_with_secret.pk])).status_code == 405


def test_an_account_without_a_webhook_secret_refuses_everything(client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    order = batch.orders.get()
    order.provider_order_id = "1"
    response = post(client, emulated_gogift_account, *delivery(order))
    assert response.status_code == 401 and not WebhookEvent.objects.exists()


def test_a_late_delivery_never_undoes_a_failure(client, account_with_secret, processing_order):
    processing_order.__class__.objects.filter(pk=processing_order.pk).update(status=OrderStatus.FAILED)
    response = post(client, account_with_secret, *delivery(processing_order))
    assert response.status_code == 200 and b"0 orders updated" in response.content
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.FAILED
