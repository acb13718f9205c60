"""Inbound webhooks as an attacker or a confused provider sends them (issue 8, finding 11):
validly signed bodies of unexpected shapes, oversize bodies, unknown account ids, and the
stored events' protection in the admin. Real view, real clients, real signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.urls import reverse

from emulators.ugiftme import BOL_CARD
from emulators.webhooks import hex_signature
from orders.batches import batch_create
from orders.spreadsheet import ValidRow
from orders.models import OrderStatus
from providers.clients.ugiftme import WEBHOOK_SIGNATURE_HEADER
from providers.models import Product, ProviderAccount, WebhookEvent
from providers.services import account_configure
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID

GOGIFT_SECRET = base64.b64encode(b"gogift-webhook-secret-0123456789").decode()
HEX_SECRET = "webhook-secret-0123456789abcdef"
MAX_BODY_BYTES = 1024 * 1024  # the cap: 1 MB


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


# --- Signing any body, as each provider signs -------------------------------------------------------


def gogift_headers(body: bytes, request_id: str = "req-hostile") -> dict[str, str]:
    """Seed 001's signature over a body of our choosing (the emulator's helper builds its own body)."""
    sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = f"POST{sent_at}{GOGIFT_TEST_CLIENT_ID}{request_id}{digest}".encode()
    signature = base64.b64encode(hmac.new(base64.b64decode(GOGIFT_SECRET), token, hashlib.sha256).digest()).decode()
    return {"Signature": f'keyId="{GOGIFT_TEST_CLIENT_ID}",algorithm="hmac-sha256",signature="{signature}"',
            "X-Request-Datetime": sent_at, "X-Client-ID": GOGIFT_TEST_CLIENT_ID, "X-Request-ID": request_id}


SIGNERS = {
    "gogift": gogift_headers,
    "gifty": lambda body: {"X-Gifty-Signature": hex_signature(HEX_SECRET, body)},
    "ugiftme": lambda body: {WEBHOOK_SIGNATURE_HEADER: hex_signature(HEX_SECRET, body)},
}


def post(client, account_id: int, headers: dict[str, str], body: bytes, **extra):
    return client.generic("POST", reverse("provider-webhook", args=[account_id]), body,
                          content_type="application/json",
                          **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
                          **extra)


@pytest.fixture
def gogift(emulated_gogift_account):
    account_configure(name=emulated_gogift_account.name, kind="gogift", environment="sandbox",
                      values={"webhook_secret": GOGIFT_SECRET})
    return emulated_gogift_account, make_batch(emulated_gogift_account, ["100"]).orders.get()


@pytest.fixture
def gifty(emulated_gifty_account):
    account_configure(name=emulated_gifty_account.name, kind="gifty", environment="production",
                      values={"webhook_secret": HEX_SECRET})
    return emulated_gifty_account, make_batch(emulated_gifty_account, ["25"], sku=GIFTY_VARIABLE_CARD).orders.get()


@pytest.fixture
def ugiftme(emulated_ugiftme_account):
    account_configure(name=emulated_ugiftme_account.name, kind="ugiftme", environment="sandbox",
                      values={"webhook_secret": HEX_SECRET})
    product = Product.objects.get(account=emulated_ugiftme_account, provider_product_id=BOL_CARD)
    row = ValidRow(row=2, name="Recipient 0", email="r0@example.com", phone="", reference="E0000", message="",
                   amount=Decimal("50"), currency=product.currency, product=product, send_on=None)
    return emulated_ugiftme_account, batch_create(account=emulated_ugiftme_account, rows=[row]).orders.get()


@pytest.fixture(params=["gogift", "gifty", "ugiftme"])
def provider(db, request):
    """(kind, account, one of its orders, processing under provider order id "or-1")."""
    account, order = request.getfixturevalue(request.param)
    order.status, order.provider_order_id = OrderStatus.PROCESSING, "or-1"
    order.save()
    return request.param, account, order


def gifty_event(data) -> dict:
    return {"id": "evt_hostile", "type": "external_order.completed", "data": data}


def ugiftme_event(data) -> dict:
    return {"id": "evt_hostile", "type": "order.succeeded", "data": data}


# Signed, so they pass the signature check, and shaped like nothing the provider documents.
SHAPES_ANY = [[1, 2], "text", 5, None, True, {}]
SHAPES = {
    "gogift": [*SHAPES_ANY, {"content": [1]}, {"content": 5}, {"content": "x"}, {"content": {"orderId": 1}},
               {"content": [None]}, {"content": [[1]]}, {"content": [{"orderId": {"a": 1}}]},
               {"content": [{"orderId": [1]}]}],
    "gifty": [*SHAPES_ANY, gifty_event([1]), gifty_event(5), gifty_event({"id": "or-1", "gift_cards": 5}),
              gifty_event({"id": "or-1", "gift_cards": [1]}), gifty_event({"id": "or-1", "gift_cards": "x"}),
              gifty_event({"id": "or-1", "gift_cards": [{"code": ["A"], "balance": {}}]}),
              gifty_event({"id": {"a": 1}}), gifty_event({"id": [1]}), gifty_event({"id": "or-1", "metadata": [1]}),
              {"id": [1], "type": "external_order.completed", "data": {"id": "or-1"}},
              {"id": "evt_hostile", "type": ["x"], "data": {"id": "or-1"}}],
    "ugiftme": [*SHAPES_ANY, ugiftme_event(5), ugiftme_event([1]), ugiftme_event({"order": 5}),
                ugiftme_event({"order": [1]}), ugiftme_event({"order": {"id": {"a": 1}}}),
                ugiftme_event({"order": {"id": [1], "reference": {"a": 1}}}),
                {"id": {"a": 1}, "type": "order.succeeded", "data": {"order": {"id": "or-1"}}}],
}
CASES = [(kind, index) for kind, shapes in SHAPES.items() for index in range(len(shapes))]


@pytest.mark.parametrize("kind, index", CASES, ids=[f"{kind}-{json.dumps(SHAPES[kind][index])[:60]}"
                                                    for kind, index in CASES])
def test_a_signed_body_of_an_unexpected_shape_is_refused_with_400_and_changes_nothing(
    db, client, request, caplog, kind, index
):
    account, order = request.getfixturevalue(kind)
    order.status, order.provider_order_id = OrderStatus.PROCESSING, "or-1"
    order.save()
    body = json.dumps(SHAPES[kind][index]).encode()

    with caplog.at_level(logging.WARNING, logger="orders.webhooks"):
        response = post(client, account.pk, SIGNERS[kind](body), body)

    assert response.status_code == 400, response.content
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING and order.provider_details == {}
    assert not WebhookEvent.objects.exists()
    # Why, in the log: the reason, and a digest that matches up the provider's retries.
    [line] = [record.getMessage() for record in caplog.records if "refused with 400" in record.getMessage()]
    assert f"Webhook for {account} refused with 400: " in line and "sha256 " in line


def test_a_body_over_the_cap_is_refused_with_413_without_being_read(client, provider):
    kind, account, order = provider

    class Unreadable(io.RawIOBase):
        read_calls = 0

        def read(self, *args):
            Unreadable.read_calls += 1
            raise AssertionError("an oversize body must not be read")

    response = post(client, account.pk, SIGNERS[kind](b"{}"), b"", CONTENT_LENGTH=str(MAX_BODY_BYTES + 1),
                    **{"wsgi.input": Unreadable()})

    assert response.status_code == 413 and Unreadable.read_calls == 0
    assert not WebhookEvent.objects.exists()


def test_a_body_just_under_the_cap_is_still_checked(client, provider):
    kind, account, order = provider
    body = json.dumps({"padding": "x" * (MAX_BODY_BYTES - 100)}).encode()
    assert len(body) <= MAX_BODY_BYTES

    response = post(client, account.pk, SIGNERS[kind](body), body)

    assert response.status_code not in (413, 500)


def test_an_unknown_account_is_answered_exactly_as_a_bad_signature(client, provider):
    kind, account, order = provider
    body = json.dumps({"id": "evt_1", "type": "external_order.completed", "content": []}).encode()
    headers = SIGNERS[kind](body)
    forged = {name: ("0" * 64 if "signature" in name.lower() else value) for name, value in headers.items()}
    unknown_id = ProviderAccount.objects.order_by("-pk").first().pk + 1000

    bad_signature = post(client, account.pk, forged, body)
    unsigned = post(client, account.pk, {}, body)
    unknown = post(client, unknown_id, headers, body)

    assert bad_signature.status_code == 401
    for response in (unsigned, unknown):
        assert (response.status_code, response.content, response["Content-Type"]) == (
            bad_signature.status_code, bad_signature.content, bad_signature["Content-Type"])
    assert not WebhookEvent.objects.exists()


def test_an_account_without_a_secret_or_without_webhooks_looks_unknown_too(client, gogift, giftronaut_account_id):
    account, order = gogift
    body = b"{}"
    account.set_credentials({**account.credentials, "webhook_secret": ""})
    account.save()
    unknown_id = ProviderAccount.objects.order_by("-pk").first().pk + 1000

    no_secret = post(client, account.pk, gogift_headers(body), body)
    no_webhooks = post(client, giftronaut_account_id, {"X-Signature": "0" * 64}, body)
    unknown = post(client, unknown_id, gogift_headers(body), body)

    assert no_secret.status_code == no_webhooks.status_code == unknown.status_code == 401
    assert no_secret.content == no_webhooks.content == unknown.content


@pytest.fixture
def giftronaut_account_id(db):
    account = ProviderAccount.objects.create(name="Giftronaut (no webhooks)", kind="giftronaut",
                                             environment="sandbox")
    account.set_credentials({"client_id": "id", "client_secret": "secret", "webhook_secret": HEX_SECRET})
    account.save()
    return account.pk


def test_a_stored_webhook_event_cannot_be_deleted_even_by_a_superuser(client, gifty):
    account, order = gifty
    event = WebhookEvent.objects.create(account=account, event_id="evt_kept", event_type="external_order.completed")
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)

    page = client.get(reverse("admin:providers_webhookevent_delete", args=[event.pk]))
    forged = client.post(reverse("admin:providers_webhookevent_delete", args=[event.pk]), {"post": "yes"})
    bulk = client.post(reverse("admin:providers_webhookevent_changelist"),
                       {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})

    assert page.status_code == 403 and forged.status_code == 403
    assert bulk.status_code in (200, 302)
    assert WebhookEvent.objects.filter(pk=event.pk).exists()
    changelist = client.get(reverse("admin:providers_webhookevent_changelist")).content.decode()
    assert "delete_selected" not in changelist
