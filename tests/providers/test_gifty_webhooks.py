"""Gifty webhooks: registration through the Webhooks API (seed 003) against the emulator over
HTTP, and signed external order events through the real view (assumptions 11 to 13 of
providers/clients/gifty.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.core.cache import cache
from django.urls import reverse

from orders.models import OrderStatus
from providers.clients.base import AccountConfig, CardRequest, PermanentError, SubmitRequest, hmac_sha256_hex
from providers.clients.gifty import GiftyClient
from emulators.gifty import GiftyEmulator, signed_webhook
from emulators.loopback import EmulatorRequest, EmulatorResponse, LoopbackServer
from providers.models import WebhookEvent
from providers.services import account_configure, account_webhook_register
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gifty import GIFTY_TEST_TOKEN, GIFTY_VARIABLE_CARD

SECRET = "gifty-webhook-secret-0123456789"
ENDPOINT = "https://giftdesk.example/webhooks/7/"
CODE = "ABCD2345EFGH6789"
ORDER_ID = "or_rB4kAgGwOzda3MvMxN09q62y"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def held_emulator() -> GiftyEmulator:
    return GiftyEmulator(tokens=[GIFTY_TEST_TOKEN, "other-token"], processing_after=None, complete_after=None)


@pytest.fixture
def held_server(held_emulator):
    with LoopbackServer(held_emulator) as server:
        yield server


def make_client(server, calls=None) -> GiftyClient:
    config = AccountConfig(id=1, name="Gifty test", kind="gifty", environment="production",
                           api_base_url=server.base_url, auth_url="", credentials={"api_token": GIFTY_TEST_TOKEN},
                           settings={"language": "en"})
    return GiftyClient(config, recorder=calls.append if calls is not None else None)


def api(server, method: str, path: str, body: Any = None, *, token: str = GIFTY_TEST_TOKEN, **kwargs):
    headers = {"Accept": "application/json", "Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{server.base_url}{path}", json=body, headers=headers, timeout=5, **kwargs)


def webhook_body(**overrides: Any) -> dict[str, Any]:
    body = {"name": "Synchronization Webhook", "secret": "85801eac-122a-44f6-9b4c-dbc81ff2f4e0",
            "events": ["giftcard.issued", "giftcard.redeemed"], "endpoint": "https://example.com/sync",
            "status": "active", "notifications_enabled": True}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


# --- Registration (client against the emulator, over HTTP) -----------------------------------------


def test_register_webhook_creates_a_subscription_with_our_secret(held_server, held_emulator):
    calls = []
    webhook_id, secret = make_client(held_server, calls).register_webhook(ENDPOINT, SECRET)

    assert secret == SECRET  # Gifty keeps the secret we give; it never returns one.
    [webhook] = held_emulator.webhooks()
    assert webhook.id == webhook_id and webhook_id.startswith("wh_")
    assert webhook.endpoint == ENDPOINT and webhook.secret == SECRET and webhook.is_active
    assert webhook.events == ["external_order.completed", "external_order.cancelled"]
    [create] = [r for r in held_emulator.requests if r.method == "POST"]
    assert create.path == "/v1/webhooks" and create.headers["X-Gifty-Idempotency-Key"]
    assert json.loads(create.body)["secret"] == SECRET
    assert all(SECRET not in call.request_body for call in calls)  # redacted in the event log
    # The webhook object never shows the secret.
    shown = api(held_server, "GET", f"/v1/webhooks/{webhook_id}").json()["data"]
    assert shown["endpoint"] == ENDPOINT and "secret" not in shown


def test_registering_again_replaces_our_older_webhook_for_the_same_address(held_server, held_emulator):
    client = make_client(held_server)
    other = api(held_server, "POST", "/v1/webhooks", webhook_body()).json()["data"]["id"]
    first, _ = client.register_webhook(ENDPOINT, SECRET)
    second, secret = client.register_webhook(ENDPOINT, "the-new-secret-0123456789")

    assert first != second and secret == "the-new-secret-0123456789"
    remaining = {webhook.id: webhook for webhook in held_emulator.webhooks()}
    assert set(remaining) == {other, second}  # another address is left alone
    assert remaining[second].secret == "the-new-secret-0123456789"


def test_a_retried_registration_creates_one_webhook(held_server, held_emulator):
    client = make_client(held_server)
    assert client.register_webhook(ENDPOINT, SECRET) == client.register_webhook(ENDPOINT, SECRET)
    assert len(held_emulator.webhooks()) == 1


@pytest.mark.parametrize("url, secret, text", [
    ("http://giftdesk.example/webhooks/7/", SECRET, "HTTPS"),
    ("/webhooks/7/", SECRET, "HTTPS"),
    (ENDPOINT, "short", "16 to 128"),
    (ENDPOINT, "has spaces in it, 0123456789", "16 to 128"),
])
def test_register_webhook_refuses_what_gifty_would_before_sending(held_server, held_emulator, url, secret, text):
    with pytest.raises(PermanentError, match=text):
        make_client(held_server).register_webhook(url, secret)
    assert held_emulator.requests == []


def test_the_generated_secret_qualifies(emulated_gifty_account, gifty_emulator):
    emulated_gifty_account.refresh_from_db()
    ok, message = account_webhook_register(account=emulated_gifty_account, url=ENDPOINT)
    assert ok, message
    emulated_gifty_account.refresh_from_db()
    [webhook] = gifty_emulator.webhooks()
    assert emulated_gifty_account.webhook_id == webhook.id
    assert emulated_gifty_account.credentials["webhook_secret"] == webhook.secret


# --- The emulator's Webhooks API (seed 003) ---------------------------------------------------------


def test_emulator_webhook_crud(held_server):
    created = api(held_server, "POST", "/v1/webhooks", webhook_body())
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert set(data) == {"id", "name", "endpoint", "is_active", "notifications_enabled", "events", "created_at"}
    webhook = f"/v1/webhooks/{data['id']}"

    update = {"name": "Transactions Monitoring", "status": "inactive", "notifications_enabled": False,
              "endpoint": "https://example.com/transactions/monitor", "events": ["transaction.captured"]}
    updated = api(held_server, "PUT", webhook, update)
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"]["is_active"] is False
    assert api(held_server, "GET", webhook).json()["data"]["events"] == ["transaction.captured"]

    immutable = api(held_server, "PUT", webhook, {**update, "secret": "another-secret-0123456789"})
    assert immutable.status_code == 422 and "cannot be updated" in immutable.json()["message"]

    assert api(held_server, "GET", webhook, token="other-token").status_code == 404  # another token's
    assert api(held_server, "DELETE", webhook).status_code == 204
    assert api(held_server, "GET", webhook).status_code == 404
    assert api(held_server, "DELETE", webhook).status_code == 404
    assert api(held_server, "PATCH", webhook).status_code == 405
    assert api(held_server, "GET", "/v1/webhooks", token="nobody").status_code == 401


@pytest.mark.parametrize("overrides, text", [
    ({"secret": None}, "The secret field is required."),
    ({"secret": "short"}, "16 to 128"),
    ({"endpoint": "http://example.com/sync"}, "HTTPS"),
    ({"endpoint": None}, "The endpoint field is required."),
    ({"events": []}, "at least 1 event"),
    ({"events": ["order.shipped"]}, "The event order.shipped does not exist."),
    ({"status": "paused"}, "active, inactive"),
    ({"name": None}, "The name field is required."),
])
def test_emulator_refuses_invalid_webhooks(held_server, held_emulator, overrides, text):
    response = api(held_server, "POST", "/v1/webhooks", webhook_body(**overrides))
    assert response.status_code == 422 and text in response.json()["message"], response.text
    assert set(response.json()["errors"][0]) == {"id", "status", "type", "title", "detail"}
    assert held_emulator.webhooks() == []


def test_emulator_lists_webhooks_newest_first_with_cursor_pagination(held_server):
    ids = [api(held_server, "POST", "/v1/webhooks", webhook_body(name=f"W{n}")).json()["data"]["id"]
           for n in range(5)]
    api(held_server, "POST", "/v1/webhooks", webhook_body(), token="other-token")

    first = api(held_server, "GET", "/v1/webhooks?limit=2").json()["data"]
    assert [webhook["id"] for webhook in first] == ids[::-1][:2]
    second = api(held_server, "GET", f"/v1/webhooks?limit=2&cursor_before={first[-1]['id']}").json()["data"]
    assert [webhook["id"] for webhook in second] == ids[::-1][2:4]
    assert len(api(held_server, "GET", "/v1/webhooks").json()["data"]) == 5  # only the token's own
    assert api(held_server, "GET", "/v1/webhooks?limit=101").status_code == 422


# --- Inbound events through the real view ----------------------------------------------------------


@pytest.fixture
def account_with_secret(emulated_gifty_account):
    account_configure(name=emulated_gifty_account.name, kind="gifty", environment="production",
                      values={"webhook_secret": SECRET})
    emulated_gifty_account.refresh_from_db()
    return emulated_gifty_account


@pytest.fixture
def processing_order(account_with_secret):
    order = make_batch(account_with_secret, ["25"], sku=GIFTY_VARIABLE_CARD).orders.get()
    order.status, order.provider_order_id = OrderStatus.PROCESSING, ORDER_ID
    order.set_card_code("************" + CODE[-4:])
    order.save()
    return order


def post(client, account, headers, body):
    return client.generic("POST", reverse("provider-webhook", args=[account.pk]), body,
                          content_type="application/json",
                          **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
                             if name != "Content-Type"})


def external_order(reference: str, status: str, *, order_id: str = ORDER_ID, code: str = CODE) -> dict[str, Any]:
    """The external order as seed 003's create answer shows it, in a later status."""
    return {
        "id": order_id, "created_at": "2025-08-29T13:48:56+00:00", "status": status, "currency": "EUR",
        "fulfillment": {"mode": "digital", "status": status},
        "customer": {"name": "Recipient 0", "email": "r0@example.com", "locale": "en"},
        "line_items": [], "amounts": {"line_items": 2500, "total": 2500},
        "gift_cards": [{"id": "gc_q13RLDOQwjdp6EvK5JXxYaBZ", "code": code, "balance": 2500, "currency": "EUR"}],
        "metadata": {"source": "giftdesk", "external_reference": reference},
    }


def event(order, kind="completed", *, event_id="evt_1", secret=SECRET, **kwargs):
    return signed_webhook(secret=secret, event_type=f"external_order.{kind}",
                          order=external_order(order.reference, kind, **kwargs), event_id=event_id)


def test_a_completed_event_marks_the_order_delivered(client, account_with_secret, processing_order):
    response = post(client, account_with_secret, *event(processing_order))

    assert response.status_code == 200, response.content
    assert response.content == b"1 order updated"
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.DELIVERED
    assert processing_order.provider_details == {
        "gift_card_id": "gc_q13RLDOQwjdp6EvK5JXxYaBZ", "currency": "EUR", "balance": "25.00",
    }
    assert processing_order.card_code() == CODE  # the code is the card's id, never a detail
    assert processing_order.card_code_masked == "••••" + CODE[-4:] and CODE not in processing_order.card_code_encrypted
    stored = WebhookEvent.objects.get()
    assert stored.event_id == "evt_1" and stored.event_type == "external_order.completed"
    assert stored.payload["data"]["gift_cards"][0]["code"] == "[redacted]"  # never stored from the payload


def test_a_cancelled_event_fails_the_order_with_the_reason(client, account_with_secret, processing_order):
    response = post(client, account_with_secret, *event(processing_order, "cancelled"))

    assert response.status_code == 200 and response.content == b"1 order updated"
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.FAILED
    assert processing_order.last_error == (
        f"Gifty cancelled the order {ORDER_ID}. Ask Gifty why before sending this card again.")


def test_a_replayed_event_changes_nothing(client, account_with_secret, processing_order):
    headers, body = event(processing_order)
    post(client, account_with_secret, headers, body)
    processing_order.__class__.objects.filter(pk=processing_order.pk).update(status=OrderStatus.PROCESSING)

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 200 and b"nothing changed" in response.content
    assert WebhookEvent.objects.count() == 1
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


@pytest.mark.parametrize("tamper", ["body", "signature", "missing_signature", "empty_signature", "secret"])
def test_a_badly_signed_event_is_refused_with_401_and_changes_nothing(
    client, account_with_secret, processing_order, tamper
):
    headers, body = event(processing_order, secret="someone-elses-secret-0123" if tamper == "secret" else SECRET)
    if tamper == "body":
        body = body.replace(b'"balance":2500', b'"balance":9900')
    if tamper == "signature":
        headers["X-Gifty-Signature"] = "0" * 64
    if tamper == "missing_signature":
        del headers["X-Gifty-Signature"]
    if tamper == "empty_signature":
        headers["X-Gifty-Signature"] = ""

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 401, response.content
    assert not WebhookEvent.objects.exists()
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1, 2]",
    json.dumps({"type": "external_order.completed", "data": {"id": ORDER_ID}}).encode(),  # no event id
    json.dumps({"id": "evt_2", "data": {"id": ORDER_ID}}).encode(),  # no type
    json.dumps({"id": "evt_3", "type": "external_order.completed"}).encode(),  # no order
    json.dumps({"id": "evt_4", "type": "external_order.cancelled", "data": {"status": "cancelled"}}).encode(),
])
def test_a_malformed_event_is_refused_with_400_and_changes_nothing(client, account_with_secret, processing_order,
                                                                   body):
    headers = {"X-Gifty-Signature": hmac_sha256_hex(SECRET, body)}  # signed: only the body is wrong

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 400, response.content
    assert not WebhookEvent.objects.exists()
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


def test_the_previous_secret_still_verifies_after_a_rotation(client, account_with_secret, processing_order):
    account_configure(name=account_with_secret.name, kind="gifty", environment="production",
                      values={"webhook_secret": "the-new-secret-0123456789"})
    assert post(client, account_with_secret, *event(processing_order, event_id="evt_old")).status_code == 200
    processing_order.__class__.objects.filter(pk=processing_order.pk).update(status=OrderStatus.PROCESSING)
    new = event(processing_order, event_id="evt_new", secret="the-new-secret-0123456789")
    assert post(client, account_with_secret, *new).status_code == 200
    assert WebhookEvent.objects.count() == 2


def test_gifty_s_own_header_name_is_accepted_too(client, account_with_secret, processing_order):
    headers, body = signed_webhook(secret=SECRET, event_type="external_order.completed",
                                   order=external_order(processing_order.reference, "completed"),
                                   header="X-Gifty-Webhook-Signature")
    assert post(client, account_with_secret, headers, body).status_code == 200
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.DELIVERED


@pytest.mark.parametrize("reference, order_id", [("ORD-123456789", "or_someone_else"), ("", "or_someone_else")])
def test_an_event_naming_no_order_of_ours_changes_nothing(client, account_with_secret, processing_order,
                                                          reference, order_id):
    headers, body = signed_webhook(secret=SECRET, event_type="external_order.completed",
                                   order=external_order(reference, "completed", order_id=order_id))

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 200 and response.content == b"0 orders updated"
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


def test_an_event_without_our_reference_finds_the_order_by_gifty_s_id(client, account_with_secret,
                                                                       processing_order):
    headers, body = signed_webhook(secret=SECRET, event_type="external_order.completed",
                                   order=external_order("", "completed"))
    assert post(client, account_with_secret, headers, body).content == b"1 order updated"


@pytest.mark.parametrize("event_type", ["external_order.processing", "giftcard.issued"])
def test_other_events_are_recorded_and_change_nothing(client, account_with_secret, processing_order, event_type):
    headers, body = signed_webhook(secret=SECRET, event_type=event_type,
                                   order=external_order(processing_order.reference, "processing"))

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 200 and response.content == b"0 orders updated"
    assert WebhookEvent.objects.get().event_type == event_type
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.PROCESSING


def test_a_late_completion_never_undoes_a_failure(client, account_with_secret, processing_order):
    processing_order.__class__.objects.filter(pk=processing_order.pk).update(status=OrderStatus.FAILED)
    assert post(client, account_with_secret, *event(processing_order)).content == b"0 orders updated"
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.FAILED


# --- The whole way: the emulator posts the event it signed, the view applies it -----------------------


class Receiver:
    """A stand-in for GiftDesk's public address: keeps what the emulator posts."""

    def __init__(self) -> None:
        self.received: list[EmulatorRequest] = []

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        self.received.append(request)
        return EmulatorResponse(200, b"ok")


def test_the_emulator_delivers_a_signed_event_the_view_accepts(client, account_with_secret, gifty_emulator,
                                                               gifty_server):
    gifty_emulator.complete_after = gifty_emulator.processing_after = None
    order = make_batch(account_with_secret, ["25"], sku=GIFTY_VARIABLE_CARD).orders.get()
    gifty = make_client(gifty_server)
    card = CardRequest(order_reference=order.reference, recipient_name="Recipient 0",
                       recipient_email="r0@example.com", amount=Decimal("25"), currency="EUR",
                       product_id=GIFTY_VARIABLE_CARD, sku=GIFTY_VARIABLE_CARD)
    result = gifty.submit(SubmitRequest(idempotency_key="key-webhook-1", reference="sub-1", cards=[card]))
    order_id = result.provider_reference
    order.status, order.provider_order_id = OrderStatus.PROCESSING, order_id
    order.save()
    webhook_id, secret = gifty.register_webhook(ENDPOINT, SECRET)

    with LoopbackServer(Receiver()) as receiver_server:
        receiver = receiver_server.app
        gifty_emulator.webhook_https_only = False  # the receiver is plain HTTP on loopback
        update = {"name": "GiftDesk order updates", "endpoint": receiver_server.base_url + "/hook",
                  "events": ["external_order.completed", "external_order.cancelled"], "status": "active",
                  "notifications_enabled": True}
        assert api(gifty_server, "PUT", f"/v1/webhooks/{webhook_id}", update).status_code == 200
        assert gifty_emulator.deliver_order_event(order_id) == []  # still pending: no event
        gifty_emulator.set_order_status(order_id, "completed")
        assert gifty_emulator.deliver_order_event(order_id) == [(receiver_server.base_url + "/hook", 200)]
        assert gifty_emulator.deliver_order_event(order_id)  # Gifty may deliver twice

    first, again = receiver.received
    assert first.body == again.body and first.path == "/hook"
    headers = {name: value for name, value in first.headers.items() if name.lower().startswith("x-gifty")}
    assert post(client, account_with_secret, headers, first.body).content == b"1 order updated"
    assert b"nothing changed" in post(client, account_with_secret, headers, again.body).content
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED
    assert order.card_code() == gifty_emulator.card_code(order_id)
    assert WebhookEvent.objects.get().event_id.startswith("evt_")
