"""A gift card's code, PIN or claim link is cash (issue 8, finding 1): bought through the Gifty
emulator over real HTTP, and reported by signed Gifty and UGiftMe webhooks, a code is stored
only encrypted. It appears nowhere in the database, nor on the order page, nor in the
events, recorded calls, stored webhooks or exports; the last 4 characters show, and the
balance lookup still decrypts it."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.urls import reverse

from emulators.gifty import signed_webhook as gifty_signed_webhook
from emulators.ugiftme import BOL_CARD
from emulators.ugiftme import signed_webhook as ugiftme_signed_webhook
from orders import dispatch
from orders.exports import csv_chunks, for_export
from orders.batches import batch_create, batch_send
from orders.models import Order, OrderEvent, OrderStatus, ProviderCall
from orders.provider_queries import order_card_details_refresh
from orders.spreadsheet import ValidRow
from providers.clients import client_for
from providers.models import Product, WebhookEvent
from providers.services import account_configure
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD

GIFTY_SECRET = "gifty-webhook-secret-0123456789"
UGIFTME_SECRET = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef"
# What webhooks report of a card, named as providers name them; none of it may be stored.
WEBHOOK_CODE = "WHK7ZQ2MXC4PJ9RB"
CLAIM_LINK = "https://claim.example/c/5f1d0b2e9a7c4e21"
CARD_NUMBER = "6006491286354127"
PIN = "739184"


def database_text() -> str:
    """Every value of every row of every table, as text: what someone with the database file reads."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    values.append(str(value))
    return "\n".join(values)


def delivered_through_gifty(account) -> Order:
    """One card bought from the Gifty emulator by the engine, followed until Gifty delivers it."""
    batch = make_batch(account, ["40"], sku=GIFTY_VARIABLE_CARD)
    batch_send(batch=batch)
    order = batch.orders.get()
    deadline = time.monotonic() + 20
    while order.status != OrderStatus.DELIVERED and time.monotonic() < deadline:
        dispatch.account_pump(account.pk, budget_seconds=2)
        order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED, order.last_error
    return order


def processing_order(account, provider_order_id: str) -> Order:
    order = make_batch(account, ["25"], sku=GIFTY_VARIABLE_CARD).orders.get()
    order.status, order.provider_order_id = OrderStatus.PROCESSING, provider_order_id
    order.save()
    return order


def post_webhook(client, account, headers, body):
    return client.generic("POST", reverse("provider-webhook", args=[account.pk]), body,
                          content_type="application/json",
                          **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
                             if name.lower() != "content-type"})


def gifty_completed_event(order: Order, code: str) -> tuple[dict[str, str], bytes]:
    """A signed external_order.completed event whose gift card carries what a card is worth."""
    external_order = {
        "id": order.provider_order_id, "status": "completed", "currency": "EUR",
        "customer": {"name": "Recipient 0", "email": "r0@example.com", "locale": "en"},
        "amounts": {"line_items": 2500, "total": 2500},
        "gift_cards": [{"id": "gc_q13RLDOQwjdp6EvK5JXxYaBZ", "code": code, "balance": 2500, "currency": "EUR",
                        "claimLink": CLAIM_LINK, "cardNumber": CARD_NUMBER, "pin": PIN}],
        "metadata": {"source": "giftdesk", "external_reference": order.reference},
    }
    return gifty_signed_webhook(secret=GIFTY_SECRET, event_type="external_order.completed", order=external_order,
                                event_id="evt_code_1")


@pytest.fixture
def fast_polls(settings):
    settings.GIFTDESK_POLL_SECONDS = 0.2
    # The Gifty account has a webhook secret, so its lookups are the webhook's fallback: as
    # quick here, where the engine's own lookup must deliver the card.
    settings.GIFTDESK_POLL_WEBHOOK_SECONDS = 0.2


def with_webhook_secret(account, secret: str):
    account_configure(name=account.name, kind=account.kind, environment=account.environment,
                      values={"webhook_secret": secret})
    account.refresh_from_db()
    return account


@pytest.fixture
def gifty_account(emulated_gifty_account):
    return with_webhook_secret(emulated_gifty_account, GIFTY_SECRET)


@pytest.fixture
def finance_client(client, db):
    user = User.objects.create_user("fiona", password="unused-in-tests", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    client.force_login(user)
    return client


@pytest.fixture
def cards(client, gifty_account, gifty_emulator, fast_polls):
    """Two Gifty cards: one bought and followed by the engine (the code from Gifty's status
    answer), one completed by a signed webhook (the code, a claim link, a card number, a PIN)."""
    bought = delivered_through_gifty(gifty_account)
    bought_code = gifty_emulator.card_code(bought.provider_order_id)
    reported = processing_order(gifty_account, "or_webhook0000000000000001")
    response = post_webhook(client, gifty_account, *gifty_completed_event(reported, WEBHOOK_CODE))
    assert response.status_code == 200, response.content
    reported.refresh_from_db()
    assert reported.status == OrderStatus.DELIVERED
    return {bought_code: bought, WEBHOOK_CODE: reported}


def test_the_full_codes_are_nowhere_in_the_database_only_their_last_4(cards):
    stored = database_text()

    for code, order in cards.items():
        assert order.reference in stored and order.card_code_encrypted in stored  # the dump reads every row
        assert len(code) == 16 and code not in stored
        order.refresh_from_db()
        assert order.card_code_last4 == code[-4:] and order.card_code_masked == f"••••{code[-4:]}"
    for secret in (CLAIM_LINK, CARD_NUMBER, PIN):
        assert secret not in stored


def test_each_code_is_kept_encrypted_and_decrypts_to_what_the_provider_issued(cards):
    for code, order in cards.items():
        order.refresh_from_db()
        assert order.card_code_encrypted and code not in order.card_code_encrypted
        assert order.card_code() == code


def test_the_events_recorded_calls_and_stored_webhook_hold_no_code(cards):
    bought_code = next(code for code in cards if code != WEBHOOK_CODE)
    calls = list(ProviderCall.objects.all())
    # The status lookup that delivered the card answered its full code: recorded without it.
    assert any('"gift_cards"' in call.response_body for call in calls)
    texts = [call.url + call.request_body + call.response_body + call.error for call in calls]
    texts += list(OrderEvent.objects.values_list("message", flat=True))
    [webhook] = WebhookEvent.objects.all()
    texts += [json.dumps(webhook.payload), webhook.outcome]
    for code in (bought_code, WEBHOOK_CODE, CLAIM_LINK, CARD_NUMBER, PIN):
        assert not any(code in text for text in texts)
    [gift_card] = webhook.payload["data"]["gift_cards"]
    assert gift_card == {"id": "gc_q13RLDOQwjdp6EvK5JXxYaBZ", "code": "[redacted]", "balance": 2500,
                         "currency": "EUR", "claimLink": "[redacted]", "cardNumber": "[redacted]",
                         "pin": "[redacted]"}


@pytest.mark.parametrize("as_finance", [True, False], ids=["finance", "administrator"])
def test_the_order_page_shows_only_the_last_4_of_the_code(cards, finance_client, admin_client, as_finance):
    client = finance_client if as_finance else admin_client
    for code, order in cards.items():
        response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

        assert response.status_code == 200
        page = response.content.decode()
        assert f"••••{code[-4:]}" in page
        assert code not in page and CLAIM_LINK not in page and CARD_NUMBER not in page


def test_the_export_carries_the_masked_code_only(cards):
    # What the admin streams and export_orders writes: one CSV writer.
    exported = "".join(csv_chunks(for_export(Order.objects.filter(pk__in=[o.pk for o in cards.values()]))))

    rows = {row["reference"]: row for row in csv.DictReader(io.StringIO(exported.removeprefix("\ufeff")))}
    for code, order in cards.items():
        assert rows[order.reference]["card_code"] == f"••••{code[-4:]}"
        assert code not in exported


def test_the_balance_lookup_decrypts_the_code_and_asks_gifty_with_it(cards, gifty_emulator):
    bought_code, bought = next((code, order) for code, order in cards.items() if code != WEBHOOK_CODE)
    bought.refresh_from_db()

    message = order_card_details_refresh(order=bought)

    assert message == f"{bought.reference}: card details refreshed."
    assert any(r.method == "GET" and r.path == f"/v1/giftcards/{bought_code}" for r in gifty_emulator.requests)
    bought.refresh_from_db()
    assert bought.provider_details["balance"] == "40.00" and bought.provider_details["is_redeemable"] is True
    assert bought_code not in database_text()


def test_a_recorded_card_lookup_shows_only_the_last_4_of_the_code_in_its_url(cards, gifty_account):
    bought_code = next(code for code in cards if code != WEBHOOK_CODE)
    calls = []

    client_for(gifty_account, recorder=calls.append).card_details(bought_code)

    [call] = calls
    assert call.url.endswith(f"/v1/giftcards/****{bought_code[-4:]}") and call.status == 200
    assert bought_code not in call.url + call.response_body and '"balance": 4000' in call.response_body


def test_a_code_gifty_showed_only_in_part_is_not_looked_up_and_not_echoed(gifty_account):
    order = processing_order(gifty_account, "or_partial")
    order.set_card_code("************Q25Y")
    order.save()

    message = order_card_details_refresh(order=order)

    assert "only showed part" in message and "Q25Y" in message and "*" * 12 not in message


# --- UGiftMe: a signed webhook whose order carries a claim link, a card number, a PIN -------------


@pytest.fixture
def ugiftme_account(emulated_ugiftme_account):
    return with_webhook_secret(emulated_ugiftme_account, UGIFTME_SECRET)


def test_a_ugiftme_webhook_keeps_the_orders_state_and_none_of_its_card(client, ugiftme_account):
    product = Product.objects.get(account=ugiftme_account, provider_product_id=BOL_CARD)
    row = ValidRow(row=2, name="Recipient 0", email="r0@example.com", phone="", reference="E0000", message="",
                   amount=product.min_amount or product.denomination_amounts[0], currency=product.currency,
                   product=product, send_on=None)
    order = batch_create(account=ugiftme_account, rows=[row], source_filename="test.csv").orders.get()
    order.status, order.provider_order_id = OrderStatus.PROCESSING, "66b2000000000000000000aa"
    order.save()
    card = {"code": WEBHOOK_CODE, "claimLink": CLAIM_LINK, "cardNumber": CARD_NUMBER, "pin": PIN,
            "redeemUrl": CLAIM_LINK + "/redeem"}
    data = {"order": {"id": order.provider_order_id, "reference": order.reference, "status": "completed",
                      "productId": BOL_CARD, "amount": 50, "currency": "EUR",
                      "recipient": {"name": "Recipient 0", "email": "r0@example.com"}, **card, "giftCard": card}}
    headers, body = ugiftme_signed_webhook(secret=UGIFTME_SECRET, event_type="order.succeeded", data=data,
                                           event_id="evt_000000000042")

    response = post_webhook(client, ugiftme_account, headers, body)

    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert order.status == OrderStatus.DELIVERED
    stored = WebhookEvent.objects.get(event_id="evt_000000000042").payload
    assert (stored["type"], stored["data"]["order"]["reference"], stored["data"]["order"]["status"]) == (
        "order.succeeded", order.reference, "completed")
    assert stored["data"]["order"]["claimLink"] == stored["data"]["order"]["giftCard"]["pin"] == "[redacted]"
    assert stored["data"]["order"]["recipient"] == {"name": "[redacted]", "email": "[redacted]"}
    everything = database_text()
    assert order.reference in everything and "evt_000000000042" in everything
    for secret in (WEBHOOK_CODE, CLAIM_LINK, CARD_NUMBER, PIN):
        assert secret not in everything
