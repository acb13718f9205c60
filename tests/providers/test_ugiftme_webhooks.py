"""UGiftMe webhooks (seed 004, "Webhooks (B2B)"): subscriptions at the emulator over HTTP,
and signed deliveries through the real view (Django's test client)."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
import requests
from django.urls import reverse

from orders.models import Order, OrderStatus
from providers.clients import client_for
from providers.clients.base import (
    AccountConfig,
    CardRequest,
    CardStatus,
    PermanentError,
    StatusRequest,
    SubmitRequest,
)
from providers.clients.ugiftme import ORDER_EVENTS, UGiftMeClient
from emulators.loopback import EmulatorRequest, EmulatorResponse, LoopbackServer
from emulators.ugiftme import BOL_CARD, ApiKey, UGiftMeEmulator, signed_webhook
from emulators.webhooks import hex_signature
from providers.models import Product, WebhookEvent
from providers.services import account_configure, account_webhook_register
from tests.fixtures.emulators_ugiftme import UGIFTME_TEST_API_KEY

SECRET = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef"
VALID_EVENTS = ["order.queued", "order.processing", "order.succeeded", "order.failed",
                "product.updated", "wallet.updated"]


# --- Helpers -------------------------------------------------------------------------------------


def make_client(server) -> UGiftMeClient:
    config = AccountConfig(
        id=1, name="UGiftMe test", kind="ugiftme", environment="sandbox", api_base_url=server.base_url,
        auth_url="", credentials={"api_key": UGIFTME_TEST_API_KEY}, settings={},
    )
    return UGiftMeClient(config)


def api(server, method, path, body=None, key=UGIFTME_TEST_API_KEY):
    return requests.request(method, f"{server.base_url}{path}", json=body, headers={"X-API-Key": key},
                            timeout=5)


class Receiver:
    """A webhook URL on loopback that keeps what it is sent and answers 200."""

    def __init__(self) -> None:
        self.received: list[EmulatorRequest] = []
        self.arrived = threading.Event()

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        self.received.append(request)
        self.arrived.set()
        return EmulatorResponse(200, b"ok")


@pytest.fixture
def receiver():
    app = Receiver()
    with LoopbackServer(app) as server:
        app.url = f"{server.base_url}/hooks/ugiftme"
        yield app


@pytest.fixture
def account_with_secret(emulated_ugiftme_account):
    account_configure(name=emulated_ugiftme_account.name, kind="ugiftme", environment="sandbox",
                      values={"webhook_secret": SECRET})
    emulated_ugiftme_account.refresh_from_db()
    return emulated_ugiftme_account


def make_order(account, *, status=OrderStatus.PROCESSING, provider_order_id="66b2000000000000000000aa") -> Order:
    from orders.spreadsheet import ValidRow
    from orders.batches import batch_create

    product = Product.objects.get(account=account, provider_product_id=BOL_CARD)
    row = ValidRow(row=2, name="Recipient 0", email="r0@example.com", phone="", reference="E0000",
                   message="Thank you!", amount=Decimal("50"), currency=product.currency, product=product,
                   send_on=None)
    order = batch_create(account=account, rows=[row], source_filename="test.csv").orders.get()
    order.status, order.provider_order_id = status, provider_order_id
    order.save()
    return order


@pytest.fixture
def processing_order(account_with_secret):
    return make_order(account_with_secret)


def order_data(order, *, status="completed", **extra):
    return {"order": {"id": order.provider_order_id, "reference": order.reference, "status": status,
                      "productId": BOL_CARD, "amount": 50, "currency": "EUR",
                      "recipient": {"name": "Recipient 0", "email": "r0@example.com"},
                      "message": "Thank you!", **extra}}


def event(order, event_type="order.succeeded", *, event_id="evt_000000000001", secret=SECRET, data=None, **extra):
    if data is None:
        status = {"order.succeeded": "completed", "order.failed": "failed"}.get(event_type, "processing")
        data = order_data(order, status=status, **extra)
    return signed_webhook(secret=secret, event_type=event_type, data=data, event_id=event_id)


def post(client, account, headers, body):
    return client.generic("POST", reverse("provider-webhook", args=[account.pk]), body,
                          content_type="application/json",
                          **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
                             if name.lower() != "content-type"})


def status_of(order) -> str:
    order.refresh_from_db()
    return order.status


# --- Subscriptions at the emulator ------------------------------------------------------------------


def test_register_webhook_creates_a_subscription_for_order_events_and_returns_ugiftmes_secret(
        ugiftme_server, ugiftme_emulator):
    webhook_id, secret = make_client(ugiftme_server).register_webhook("https://giftdesk.example/webhooks/7/",
                                                                      "ignored-for-ugiftme")

    assert secret.startswith("whsec_") and secret != "ignored-for-ugiftme"
    [sent] = [r for r in ugiftme_emulator.requests if r.method == "POST"]
    assert sent.path == "/webhooks"
    assert sent.json()["events"] == list(ORDER_EVENTS) and sent.headers["X-API-Key"] == UGIFTME_TEST_API_KEY
    listed = api(ugiftme_server, "GET", "/webhooks").json()["webhooks"]
    assert [(hook["_id"], hook["url"], hook["events"], hook["isActive"]) for hook in listed] == [
        (webhook_id, "https://giftdesk.example/webhooks/7/", list(ORDER_EVENTS), True)]
    assert "secret" not in json.dumps(listed)  # seed 004: secrets are never returned again


def test_registering_the_same_url_again_replaces_the_old_subscription(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    api(ugiftme_server, "POST", "/webhooks", {"url": "https://elsewhere.example/hook", "events": ["wallet.updated"]})
    first, first_secret = client.register_webhook("https://giftdesk.example/webhooks/7/", "")
    second, second_secret = client.register_webhook("https://giftdesk.example/webhooks/7/", "")

    assert first != second and first_secret != second_secret
    urls = {hook["_id"]: hook["url"] for hook in ugiftme_emulator.subscriptions()}
    assert first not in urls and urls[second] == "https://giftdesk.example/webhooks/7/"
    assert "https://elsewhere.example/hook" in urls.values()  # other URLs are left alone


def test_the_service_stores_ugiftmes_secret_and_the_webhook_id(emulated_ugiftme_account, ugiftme_emulator):
    ok, message = account_webhook_register(account=emulated_ugiftme_account,
                                           url="https://giftdesk.example/webhooks/1/")

    assert ok, message
    emulated_ugiftme_account.refresh_from_db()
    [hook] = ugiftme_emulator.subscriptions()
    assert emulated_ugiftme_account.webhook_id == hook["_id"]
    assert emulated_ugiftme_account.credentials["webhook_secret"].startswith("whsec_")


def test_a_refused_registration_says_why(ugiftme_server):
    with pytest.raises(PermanentError, match="HTTPS"):
        make_client(ugiftme_server).register_webhook("http://giftdesk.example/webhooks/1/", "")


def test_invalid_events_are_refused_with_the_valid_ones(ugiftme_server):
    for events in (["order.shipped"], [], "order.succeeded", None):
        response = api(ugiftme_server, "POST", "/webhooks", {"url": "https://a.example/h", "events": events})
        assert response.status_code == 400, events
        assert response.json()["validEvents"] == VALID_EVENTS and response.json()["error"]


def test_a_subscription_is_updated_paused_and_deleted(ugiftme_server, ugiftme_emulator):
    created = api(ugiftme_server, "POST", "/webhooks",
                  {"url": "https://hooks.example.com/ugiftme", "events": ["order.succeeded"], "description": "x"})
    assert created.status_code == 201 and created.json()["webhook"]["secret"]
    webhook_id = created.json()["webhook"]["_id"]

    assert api(ugiftme_server, "PATCH", f"/webhooks/{webhook_id}", {}).status_code == 400
    assert api(ugiftme_server, "PATCH", f"/webhooks/{webhook_id}", {"events": []}).json()["validEvents"]
    updated = api(ugiftme_server, "PATCH", f"/webhooks/{webhook_id}", {
        "url": "https://hooks.example.com/ugiftme/v2", "events": ["order.succeeded", "wallet.updated"],
        "isActive": False})
    assert updated.status_code == 200 and updated.json()["message"] == "Webhook updated successfully"
    hook = updated.json()["webhook"]
    assert (hook["_id"], hook["url"], hook["events"], hook["isActive"]) == (
        webhook_id, "https://hooks.example.com/ugiftme/v2", ["order.succeeded", "wallet.updated"], False)
    assert "secret" not in hook

    assert api(ugiftme_server, "DELETE", f"/webhooks/{webhook_id}").status_code == 200
    assert api(ugiftme_server, "DELETE", f"/webhooks/{webhook_id}").status_code == 404
    assert api(ugiftme_server, "PATCH", f"/webhooks/{webhook_id}", {"isActive": True}).status_code == 404
    assert ugiftme_emulator.subscriptions() == []


def test_subscriptions_belong_to_their_api_key(ugiftme_emulator):
    ugiftme_emulator.keys["ugm_other"] = ApiKey("ugm_other")
    with LoopbackServer(ugiftme_emulator) as server:
        created = api(server, "POST", "/webhooks", {"url": "https://a.example/h", "events": ["order.failed"]})
        webhook_id = created.json()["webhook"]["_id"]
        assert api(server, "GET", "/webhooks", key="ugm_other").json() == {"webhooks": []}
        assert api(server, "DELETE", f"/webhooks/{webhook_id}", key="ugm_other").status_code == 404
        assert api(server, "GET", "/webhooks", key="").status_code == 401


# --- Deliveries through the real view -------------------------------------------------------------


def test_a_signed_success_event_marks_a_processing_order_delivered(client, account_with_secret, processing_order):
    response = post(client, account_with_secret, *event(processing_order))

    assert response.status_code == 200, response.content
    assert status_of(processing_order) == OrderStatus.DELIVERED
    stored = WebhookEvent.objects.get()
    assert (stored.event_id, stored.event_type, stored.outcome) == (
        "evt_000000000001", "order.succeeded", "1 order updated")


def test_a_failure_event_fails_the_order_with_its_reason(client, account_with_secret, processing_order):
    headers, body = event(processing_order, "order.failed", error="Invalid order",
                          failureReason="Bol.com Gift Card is out of stock")

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 200, response.content
    processing_order.refresh_from_db()
    assert processing_order.status == OrderStatus.FAILED
    assert "Bol.com Gift Card is out of stock" in processing_order.last_error
    assert "Thank you!" not in processing_order.last_error  # the greeting is no reason


def test_an_event_naming_only_ugiftmes_order_id_is_applied(client, account_with_secret, processing_order):
    data = order_data(processing_order)
    data["order"]["reference"] = None
    response = post(client, account_with_secret, *event(processing_order, data=data))
    assert response.status_code == 200 and status_of(processing_order) == OrderStatus.DELIVERED


def test_a_replayed_event_changes_nothing(client, account_with_secret, processing_order):
    headers, body = event(processing_order)
    post(client, account_with_secret, headers, body)
    Order.objects.filter(pk=processing_order.pk).update(status=OrderStatus.PROCESSING)

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 200 and b"nothing changed" in response.content
    assert WebhookEvent.objects.count() == 1
    assert status_of(processing_order) == OrderStatus.PROCESSING


@pytest.mark.parametrize("tamper", ["body", "signature", "missing_signature", "secret", "empty_signature"])
def test_a_bad_or_missing_signature_is_refused_with_401_and_changes_nothing(
        client, account_with_secret, processing_order, tamper):
    headers, body = event(processing_order, secret="whsec_someone_else" if tamper == "secret" else SECRET)
    if tamper == "body":
        body = body.replace(b'"order.succeeded"', b'"order.failed"')
    if tamper == "signature":
        headers["X-Webhook-Signature"] = "0" + headers["X-Webhook-Signature"][1:] if not headers[
            "X-Webhook-Signature"].startswith("0") else "1" + headers["X-Webhook-Signature"][1:]
    if tamper == "missing_signature":
        del headers["X-Webhook-Signature"]
    if tamper == "empty_signature":
        headers["X-Webhook-Signature"] = ""

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 401, response.content
    assert not WebhookEvent.objects.exists()
    assert status_of(processing_order) == OrderStatus.PROCESSING


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'"text"', b'{"type": "order.succeeded", "data": {}}',
    b'{"id": "evt_1", "data": {"order": {"id": "1"}}}', b'{"id": "", "type": "order.succeeded"}',
    b'{"id": "evt_1", "type": "order.succeeded"}', b'{"id": "evt_1", "type": "order.failed", "data": {"order": 7}}',
    b"\xff\xfe",
])
def test_a_malformed_body_is_refused_with_400_and_changes_nothing(client, account_with_secret, processing_order, body):
    headers = {"X-Webhook-Signature": hex_signature(SECRET, body)}

    response = post(client, account_with_secret, headers, body)

    assert response.status_code == 400, response.content
    assert not WebhookEvent.objects.exists()
    assert status_of(processing_order) == OrderStatus.PROCESSING


def test_the_previous_secret_still_verifies_after_a_rotation(client, account_with_secret, processing_order):
    account_configure(name=account_with_secret.name, kind="ugiftme", environment="sandbox",
                      values={"webhook_secret": "whsec_the_new_one"})

    old = post(client, account_with_secret, *event(processing_order, event_id="evt_old"))
    assert old.status_code == 200, old.content
    second = make_order(account_with_secret, provider_order_id="66b2000000000000000000bb")
    Order.objects.filter(pk=second.pk).update(reference="GD-SECOND")
    second.refresh_from_db()
    new = post(client, account_with_secret, *event(second, event_id="evt_new", secret="whsec_the_new_one"))
    assert new.status_code == 200, new.content
    assert status_of(processing_order) == status_of(second) == OrderStatus.DELIVERED


def test_an_event_naming_no_order_of_ours_changes_nothing(client, account_with_secret, processing_order):
    data = order_data(processing_order)
    data["order"].update(reference="NOT-OURS-1", id="66b20000000000000000ffff")

    response = post(client, account_with_secret, *event(processing_order, data=data))

    assert response.status_code == 200 and b"0 orders updated" in response.content
    assert status_of(processing_order) == OrderStatus.PROCESSING


@pytest.mark.parametrize("event_type, data", [
    ("order.queued", None), ("order.processing", None),
    ("wallet.updated", {"wallet": {"balance": 9950, "currency": "EUR"}}),
    ("product.updated", {"product": {"id": BOL_CARD, "name": "Bol.com Gift Card"}}),
])
def test_events_that_are_not_final_are_accepted_and_change_nothing(
        client, account_with_secret, processing_order, event_type, data):
    response = post(client, account_with_secret, *event(processing_order, event_type, data=data))

    assert response.status_code == 200 and b"0 orders updated" in response.content
    assert WebhookEvent.objects.get().event_type == event_type
    assert status_of(processing_order) == OrderStatus.PROCESSING


def test_a_sending_order_is_not_taken_from_its_worker_by_a_processing_event(client, account_with_secret):
    order = make_order(account_with_secret, status=OrderStatus.SENDING)
    response = post(client, account_with_secret, *event(order, "order.processing"))
    assert response.status_code == 200 and status_of(order) == OrderStatus.SENDING


def test_a_late_success_never_undoes_a_failure(client, account_with_secret, processing_order):
    Order.objects.filter(pk=processing_order.pk).update(status=OrderStatus.FAILED)
    response = post(client, account_with_secret, *event(processing_order))
    assert response.status_code == 200 and status_of(processing_order) == OrderStatus.FAILED


# --- The emulator's own deliveries, end to end ---------------------------------------------------------


def card(order) -> CardRequest:
    return CardRequest(order_reference=order.reference, recipient_name="Recipient 0",
                       recipient_email="r0@example.com", amount=Decimal("50"), currency="EUR",
                       product_id=BOL_CARD, sku="", message="Thank you!")


def test_the_emulators_deliveries_verify_and_deliver_the_order(
        client, emulated_ugiftme_account, ugiftme_emulator, receiver):
    ok, message = account_webhook_register(account=emulated_ugiftme_account, url=receiver.url)
    assert ok, message
    emulated_ugiftme_account.refresh_from_db()
    order = make_order(emulated_ugiftme_account, provider_order_id="")
    ugiftme = client_for(emulated_ugiftme_account)
    result = ugiftme.submit(SubmitRequest(idempotency_key="wh-key", reference="wh-key", cards=[card(order)]))
    for _ in range(5):
        result = ugiftme.fetch_status(StatusRequest(result.provider_reference, [card(order)], "wh-key"))
        if result.cards[0].status != CardStatus.PROCESSING:
            break
    assert result.cards[0].status == CardStatus.DELIVERED

    sent = ugiftme_emulator.deliver_webhooks()

    # Subscribed to order.* only: no wallet.updated.
    assert [d.event["type"] for d in sent] == ["order.queued", "order.processing", "order.succeeded"]
    assert all(d.status == 200 for d in sent) and len(receiver.received) == 3
    for received in receiver.received:  # replayed into the real view, exactly as received
        response = post(client, emulated_ugiftme_account, dict(received.headers), received.body)
        assert response.status_code == 200, response.content
    assert status_of(order) == OrderStatus.DELIVERED
    assert WebhookEvent.objects.count() == 3


def test_an_order_refused_while_processing_is_delivered_as_order_failed(
        client, emulated_ugiftme_account, ugiftme_emulator, receiver):
    account_webhook_register(account=emulated_ugiftme_account, url=receiver.url)
    emulated_ugiftme_account.refresh_from_db()
    order = make_order(emulated_ugiftme_account, provider_order_id="")
    ugiftme = client_for(emulated_ugiftme_account)
    bad = CardRequest(**{**card(order).__dict__, "amount": Decimal("30")})  # not a Bol.com denomination
    result = ugiftme.submit(SubmitRequest(idempotency_key="wh-bad", reference="wh-bad", cards=[bad]))
    ugiftme.fetch_status(StatusRequest(result.provider_reference, [bad], "wh-bad"))

    failed = [d for d in ugiftme_emulator.deliver_webhooks() if d.event["type"] == "order.failed"]

    assert len(failed) == 1
    response = post(client, emulated_ugiftme_account, failed[0].headers, failed[0].body)
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED and "choose one of 25, 50, 100 EUR" in order.last_error


def test_the_demo_emulator_delivers_by_itself_and_only_to_active_subscriptions(receiver):
    emulator = UGiftMeEmulator(api_keys=[UGIFTME_TEST_API_KEY], auto_deliver_webhooks=True)
    with LoopbackServer(emulator) as server:
        paused = api(server, "POST", "/webhooks", {"url": receiver.url + "/paused", "events": ["wallet.updated"],
                                                   "isActive": False})
        assert paused.status_code == 201
        created = api(server, "POST", "/webhooks", {"url": receiver.url, "events": ["wallet.updated"]})
        secret = created.json()["webhook"]["secret"]
        order = {"productId": BOL_CARD, "amount": 50, "currency": "EUR",
                 "recipient": {"name": "A", "email": "a@example.com"}, "reference": "GD-AUTO-1"}
        assert api(server, "POST", "/orders", order).status_code == 202
        # Queued while the order was answered: one event, for the active subscription only.
        assert [delivery.url for delivery in emulator.webhook_deliveries] == [receiver.url]

        assert receiver.arrived.wait(5)
    [received] = receiver.received
    assert received.path == "/hooks/ugiftme"
    assert received.headers["X-Webhook-Signature"] == hex_signature(secret, received.body)
    payload = json.loads(received.body)
    assert payload["type"] == "wallet.updated" and payload["id"].startswith("evt_")
    assert payload["data"]["wallet"] == {"balance": 9950, "currency": "EUR"}
