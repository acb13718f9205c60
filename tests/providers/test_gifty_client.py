"""The Gifty client against the Gifty emulator, over real HTTP on loopback."""

import json
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from providers.clients.base import (
    AccountConfig,
    AccountError,
    CardRequest,
    CardStatus,
    OutcomeUnknown,
    PermanentError,
    PricingKind,
    StatusRequest,
    SubmitRequest,
    TransientError,
)
from providers.clients.gifty import GiftyClient
from emulators.gifty import GiftyEmulator
from emulators.loopback import LoopbackServer
from tests.fixtures.emulators_gifty import GIFTY_DINNER_PACKAGE, GIFTY_TEST_TOKEN, GIFTY_VARIABLE_CARD

ORDERS = "/v1/external-orders"
CONFIGURATION = "/v1/external-orders/configuration"
PREVIEW = "/v1/external-orders/preview"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def held_emulator() -> GiftyEmulator:
    """Orders stay pending until the test moves them."""
    return GiftyEmulator(tokens=[GIFTY_TEST_TOKEN], restricted_tokens=["cards-only"],
                         processing_after=None, complete_after=None)


@pytest.fixture
def held_server(held_emulator):
    with LoopbackServer(held_emulator) as server:
        yield server


def make_client(server, *, token=GIFTY_TEST_TOKEN, language="en", calls=None, throttle=None) -> GiftyClient:
    config = AccountConfig(
        id=1, name="Gifty test", kind="gifty", environment="production", api_base_url=server.base_url,
        auth_url="", credentials={"api_token": token}, settings={"language": language},
    )
    return GiftyClient(config, recorder=calls.append if calls is not None else None, throttle=throttle)


def card(reference: str = "GD-1", amount: str = "25", **overrides) -> CardRequest:
    values = {
        "order_reference": reference,
        "recipient_name": f"Recipient {reference}",
        "recipient_email": f"{reference.lower()}@example.com",
        "amount": Decimal(amount),
        "currency": "EUR",
        "product_id": GIFTY_VARIABLE_CARD,
        "sku": GIFTY_VARIABLE_CARD,
    }
    return CardRequest(**{**values, **overrides})


def submit_request(the_card: CardRequest | None = None, key: str = "gd-key-1") -> SubmitRequest:
    return SubmitRequest(idempotency_key=key, reference=key, cards=[the_card or card()])


def cards_in_ledger(emulator, reference: str) -> int:
    return sum(1 for entry in emulator.ledger if entry.reference == reference)


def sent(emulator, method: str, path: str) -> list:
    return [request for request in emulator.requests if (request.method, request.path) == (method, path)]


def wait_for_status(client, result, want: CardStatus, cards, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        status = client.fetch_status(StatusRequest(result.provider_reference, cards))
        if status.cards[0].status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


# --- Class attributes --------------------------------------------------------------------------


def test_the_client_declares_one_card_per_order_a_bearer_token_and_status_lookups():
    assert GiftyClient.credential_keys == ("api_token",)
    assert GiftyClient.documented_urls == {"sandbox": ("https://api.gifty.nl", ""),
                                           "production": ("https://api.gifty.nl", "")}
    assert GiftyClient.max_cards_per_submission == 1 and GiftyClient.submission_group == ("currency",)
    assert GiftyClient.supports_status is True and GiftyClient.required_settings == {}


# --- Happy path --------------------------------------------------------------------------------


def test_a_card_becomes_one_pending_digital_order_for_the_recipient(held_server, held_emulator):
    result = make_client(held_server).submit(submit_request(card("GD-1", "25.50")))

    [only] = result.cards
    assert only.status == CardStatus.PROCESSING and result.provider_reference.startswith("or_")
    assert only.provider_order_id == result.provider_reference
    assert cards_in_ledger(held_emulator, "GD-1") == 1
    body = json.loads(sent(held_emulator, "POST", ORDERS)[0].body)
    assert body["fulfillment"] == {"mode": "digital"}
    assert body["line_items"] == [{"product_id": GIFTY_VARIABLE_CARD, "configuration": {"amount": 2550},
                                   "quantity": 1}]
    assert body["customer"] == {"name": "Recipient GD-1", "email": "gd-1@example.com", "locale": "en"}
    assert body["metadata"] == {"source": "giftdesk", "external_reference": "GD-1"}


def test_the_order_accepts_the_consent_versions_of_the_configuration(held_server, held_emulator):
    make_client(held_server).submit(submit_request())
    body = json.loads(sent(held_emulator, "POST", ORDERS)[0].body)
    assert body["consent"] == {"consumer_terms": {"accepted": True, "version": "2024-11-23"},
                               "privacy_policy": {"accepted": True, "version": "2025-03-20"}}


def test_create_carries_the_submission_key_in_both_documented_idempotency_headers(held_server, held_emulator):
    make_client(held_server).submit(submit_request(key="gd-abc"))
    headers = sent(held_emulator, "POST", ORDERS)[0].headers
    assert headers["Idempotency-Key"] == "gd-abc" and headers["X-Gifty-Idempotency-Key"] == "gd-abc"


def test_every_request_carries_the_token_json_and_the_account_language(held_server, held_emulator):
    make_client(held_server, language="nl").submit(submit_request())
    assert len(held_emulator.requests) == 2  # configuration, then the order
    for request in held_emulator.requests:
        assert request.headers["Authorization"] == f"Bearer {GIFTY_TEST_TOKEN}"
        assert request.headers["Accept"] == "application/json" and request.headers["Accept-Language"] == "nl"


def test_the_message_is_sent_as_a_personalised_message(held_server, held_emulator):
    make_client(held_server).submit(submit_request(card(message="Thank you, Ada!")))
    [line] = json.loads(sent(held_emulator, "POST", ORDERS)[0].body)["line_items"]
    assert line["customisations"] == [{"type": "personalised_message", "value": "Thank you, Ada!"}]


def test_the_cost_is_the_orders_total_with_fees(held_server):
    result = make_client(held_server).submit(submit_request(card(amount="25", message="Thanks")))
    assert (result.cards[0].cost, result.cards[0].cost_currency) == (Decimal("25.96"), "EUR")


def test_a_package_is_ordered_at_its_fixed_price(held_server, held_emulator):
    make_client(held_server).submit(submit_request(card(amount="75", product_id=GIFTY_DINNER_PACKAGE)))
    assert held_emulator.ledger[0].amount == Decimal("75.00")


def test_a_completed_order_is_delivered_with_its_card_code_and_details(held_server, held_emulator):
    client = make_client(held_server)
    result = client.submit(submit_request(card(amount="40")))
    held_emulator.set_order_status(result.provider_reference, "completed")

    [delivered] = client.fetch_status(StatusRequest(result.provider_reference, [card(amount="40")])).cards

    assert delivered.status == CardStatus.DELIVERED and delivered.error == ""
    assert delivered.provider_card_id == held_emulator.card_code(result.provider_reference)
    assert delivered.details["balance"] == "40.00" and delivered.details["currency"] == "EUR"
    assert delivered.details["gift_card_id"].startswith("gc_")
    json.dumps(delivered.details)  # stored as JSON on the order


def test_a_pending_order_keeps_the_masked_code_gifty_shows(held_server):
    result = make_client(held_server).submit(submit_request())
    assert result.cards[0].provider_card_id.startswith("************")


def test_status_follows_the_order_from_pending_to_delivered(gifty_server, gifty_emulator):
    client = make_client(gifty_server)
    result = client.submit(submit_request())
    assert result.cards[0].status == CardStatus.PROCESSING
    final = wait_for_status(client, result, CardStatus.DELIVERED, [card()])
    assert final.cards[0].status == CardStatus.DELIVERED
    assert cards_in_ledger(gifty_emulator, "GD-1") == 1


def test_a_processing_order_is_still_processing(held_server, held_emulator):
    client = make_client(held_server)
    result = client.submit(submit_request())
    held_emulator.set_order_status(result.provider_reference, "processing")
    assert client.fetch_status(StatusRequest(result.provider_reference, [card()])).cards[0].status == (
        CardStatus.PROCESSING)


def test_a_cancelled_order_fails_the_card_saying_gifty_cancelled_it(held_server, held_emulator):
    client = make_client(held_server)
    result = client.submit(submit_request())
    held_emulator.set_order_status(result.provider_reference, "cancelled")
    [failed] = client.fetch_status(StatusRequest(result.provider_reference, [card()])).cards
    assert failed.status == CardStatus.FAILED
    assert failed.error.startswith("Gifty cancelled the order") and result.provider_reference in failed.error


def test_an_order_completed_at_once_is_delivered_by_submit():
    emulator = GiftyEmulator(tokens=[GIFTY_TEST_TOKEN], processing_after=0, complete_after=0)
    with LoopbackServer(emulator) as server:
        result = make_client(server).submit(submit_request())
    assert result.cards[0].status == CardStatus.DELIVERED
    assert result.cards[0].provider_card_id == emulator.ledger[0].extra["code"]


def test_the_throttle_is_called_before_every_request(held_server, held_emulator):
    calls = []
    make_client(held_server, throttle=lambda: calls.append(len(held_emulator.requests))).submit(submit_request())
    assert calls == [0, 1]


def test_every_call_is_recorded_without_the_token(held_server):
    calls = []
    make_client(held_server, calls=calls).submit(submit_request())
    assert [(c.method, c.url.rsplit("/v1", 1)[1], c.status) for c in calls] == [
        ("GET", "/external-orders/configuration", 200), ("POST", "/external-orders", 201)]
    assert all(GIFTY_TEST_TOKEN not in c.request_body + c.response_body for c in calls)


# --- Catalog, configuration, verify ---------------------------------------------------------------


def test_the_catalog_has_range_and_fixed_products_in_exact_euros(held_server):
    products = {p.provider_product_id: p for p in make_client(held_server).list_products()}
    variable = products[GIFTY_VARIABLE_CARD]
    assert variable.pricing == PricingKind.RANGE and variable.currency == "EUR"
    assert (variable.min_amount, variable.max_amount, variable.step) == (Decimal("5.00"), Decimal("500.00"), None)
    package = products[GIFTY_DINNER_PACKAGE]
    assert package.pricing == PricingKind.FIXED and package.denominations == (Decimal("75.00"),)
    assert "digital" in package.delivery_methods and package.sku == GIFTY_DINNER_PACKAGE


def test_the_catalog_leaves_out_products_that_cannot_be_emailed(held_server):
    ids = {p.provider_product_id for p in make_client(held_server).list_products()}
    assert "gc_co_gift_box" not in ids and len(ids) == 3


def test_each_product_keeps_the_consent_versions_of_the_configuration(held_server):
    product = make_client(held_server).list_products()[0]
    assert product.raw["consent_versions"] == {"consumer_terms": "2024-11-23", "privacy_policy": "2025-03-20"}


def test_verify_reports_connected_with_the_number_of_products(held_server):
    result = make_client(held_server).verify()
    assert result.ok and result.message == "Connected: 3 products with email delivery."


def test_the_configuration_is_fetched_once_for_many_orders(held_server, held_emulator):
    client = make_client(held_server)
    client.submit(submit_request(card("GD-1"), key="gd-1"))
    make_client(held_server).submit(submit_request(card("GD-2"), key="gd-2"))  # a new client, same account
    assert len(sent(held_emulator, "GET", CONFIGURATION)) == 1


def test_an_hour_old_configuration_is_used_while_gifty_cannot_refresh_it(held_server, held_emulator, monkeypatch):
    make_client(held_server).verify()
    monkeypatch.setattr("providers.clients.gifty.CONFIGURATION_TTL_SECONDS", 0)
    held_emulator.faults.add("http_503", path=CONFIGURATION)
    result = make_client(held_server).submit(submit_request())
    assert result.cards[0].status == CardStatus.PROCESSING


def test_new_consent_versions_are_fetched_and_the_order_sent_once(held_server, held_emulator):
    make_client(held_server).verify()  # caches the configuration
    held_emulator.consent["consumer_terms"]["version"] = "2026-02-01"

    result = make_client(held_server).submit(submit_request())

    assert result.cards[0].status == CardStatus.PROCESSING and cards_in_ledger(held_emulator, "GD-1") == 1
    last = json.loads(sent(held_emulator, "POST", ORDERS)[-1].body)
    assert last["consent"]["consumer_terms"]["version"] == "2026-02-01"


def test_a_product_gifty_no_longer_offers_is_refused_before_ordering(held_server, held_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(held_server).submit(submit_request(card(product_id="gc_co_gone")))
    assert "no longer offers product gc_co_gone" in error.value.message and "Sync the catalog" in error.value.message
    assert sent(held_emulator, "POST", ORDERS) == []


# --- Quote ------------------------------------------------------------------------------------------


def test_quote_shows_the_cards_value_fees_and_total(held_server):
    cards = [card(f"GD-{i}", "25" if i < 3 else "50", message="Thanks") for i in range(6)]
    quote = make_client(held_server).quote(cards)
    assert (quote.currency, quote.subtotal, quote.fees, quote.total) == (
        "EUR", Decimal("225.00"), Decimal("5.76"), Decimal("230.76"))
    assert quote.lines == ("Customisations: 4.74 EUR", "Tax: 1.02 EUR")


def test_quote_previews_each_kind_of_card_once_and_buys_nothing(held_server, held_emulator):
    make_client(held_server).quote([card(f"GD-{i}", "25" if i % 2 else "50") for i in range(6)])
    assert len(sent(held_emulator, "POST", PREVIEW)) == 2 and held_emulator.ledger == []


def test_quote_shows_a_service_fee_as_its_own_line(held_server, held_emulator):
    held_emulator.service_fee = 150
    quote = make_client(held_server).quote([card(), card("GD-2")])
    assert quote.fees == Decimal("3.00") and quote.lines == ("Service fee: 3.00 EUR",)


# --- Amounts ---------------------------------------------------------------------------------------


def test_an_amount_with_sub_cent_precision_is_refused_before_sending(held_server, held_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(held_server).submit(submit_request(card(amount="12.345")))
    assert "12.345 EUR" in error.value.message and "whole cents" in error.value.message
    assert sent(held_emulator, "POST", ORDERS) == []


@pytest.mark.parametrize("amount, cents", [("12.34", 1234), ("5", 500), ("499.99", 49999), ("0.10E+2", 1000)])
def test_amounts_are_sent_as_exact_cents(held_server, held_emulator, amount, cents):
    make_client(held_server).submit(submit_request(card(amount=amount)))
    assert json.loads(sent(held_emulator, "POST", ORDERS)[0].body)["line_items"][0]["configuration"] == {
        "amount": cents}


def test_a_card_in_another_currency_is_refused_before_sending(held_server, held_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(held_server).submit(submit_request(card(currency="DKK")))
    assert "sold in EUR, not DKK" in error.value.message
    assert sent(held_emulator, "POST", ORDERS) == []


def test_a_card_to_send_later_is_refused_rather_than_emailed_now(held_server, held_emulator):
    later = date.today() + timedelta(days=3)
    with pytest.raises(PermanentError) as error:
        make_client(held_server).submit(submit_request(card(send_on=later)))
    assert "cannot schedule" in error.value.message and later.isoformat() in error.value.message
    assert held_emulator.ledger == []


# --- Refusals ------------------------------------------------------------------------------------


def test_a_wrong_token_blocks_the_account_saying_how_to_fix_it(held_server):
    with pytest.raises(AccountError) as error:
        make_client(held_server, token="revoked").submit(submit_request())
    assert error.value.message.startswith(
        "Gifty refused the API token: create a new token in the Gifty dashboard (Developers) "
        "and enter it on the account")
    assert error.value.status_code == 401


def test_a_missing_token_blocks_the_account_without_calling(held_server, held_emulator):
    with pytest.raises(AccountError):
        make_client(held_server, token="").verify()
    assert held_emulator.requests == []


def test_a_token_without_access_to_orders_blocks_the_account(held_server):
    with pytest.raises(AccountError) as error:
        make_client(held_server, token="cards-only").verify()
    assert "This action is unauthorized." in error.value.message and "permissions" in error.value.message
    assert error.value.status_code == 403


def test_insufficient_funds_blocks_the_account_with_the_amounts(held_server, held_emulator):
    held_emulator.faults.add("insufficient_funds")
    with pytest.raises(AccountError) as error:
        make_client(held_server).submit(submit_request(card(amount="150")))
    assert "€ 150,00" in error.value.message and "top up" in error.value.message
    assert held_emulator.ledger == []


def test_an_amount_gifty_refuses_fails_with_giftys_reason(held_server, held_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(held_server).submit(submit_request(card(amount="600")))
    assert error.value.message == (
        "Gifty refused the order: The line_items.0.configuration.amount must be between € 5,00 and € 500,00.")
    assert error.value.status_code == 422 and held_emulator.ledger == []


def test_gifty_reasons_come_in_the_account_language(held_server):
    with pytest.raises(PermanentError) as error:
        make_client(held_server, language="nl").submit(submit_request(card(amount="600")))
    assert "moet tussen € 5,00 en € 500,00 liggen" in error.value.message


def test_the_reason_lists_details_the_message_does_not_already_say(held_server):
    bad = card(amount="600", recipient_email="not-an-email")
    with pytest.raises(PermanentError) as error:
        make_client(held_server).submit(submit_request(bad))
    assert error.value.message == (
        "Gifty refused the order: The customer.email must be a valid email address. (and 1 more error); "
        "The line_items.0.configuration.amount must be between € 5,00 and € 500,00.")


def test_an_unknown_order_on_lookup_is_a_permanent_error_saying_where_to_check(held_server):
    with pytest.raises(PermanentError) as error:
        make_client(held_server).fetch_status(StatusRequest("or_missing", [card()]))
    assert error.value.status_code == 404 and "or_missing" in error.value.message


def test_the_rate_limit_is_transient_and_carries_retry_after(held_server, held_emulator):
    held_emulator.rate_limit = 1
    client = make_client(held_server)
    client.verify()
    with pytest.raises(TransientError) as error:
        client.submit(submit_request())
    assert error.value.status_code == 429 and 58 <= error.value.retry_after <= 60
    assert "120 requests per minute" in error.value.message


def test_a_429_fault_carries_its_retry_after(held_server, held_emulator):
    held_emulator.faults.add("http_429", retry_after=7)
    with pytest.raises(TransientError) as error:
        make_client(held_server).verify()
    assert error.value.retry_after == 7


@pytest.mark.parametrize("kind", ["http_500", "http_503", "html"])
def test_server_failures_on_create_are_transient_and_buy_nothing(held_server, held_emulator, kind):
    held_emulator.faults.add(kind, method="POST", path=ORDERS)
    with pytest.raises(TransientError):
        make_client(held_server).submit(submit_request())
    assert held_emulator.ledger == []


def test_a_masked_code_is_not_looked_up(held_server, held_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(held_server).card_details("************Q25Y")
    assert "Gifty dashboard" in error.value.message and held_emulator.requests == []


def test_more_than_one_card_in_one_request_is_refused():
    client = GiftyClient(AccountConfig(1, "x", "gifty", "production", "http://127.0.0.1:9", "",
                                       {"api_token": "t"}, {}))
    with pytest.raises(PermanentError):
        client.submit(SubmitRequest("gd-k", "gd-k", [card("GD-1"), card("GD-2")]))


# --- Card details ----------------------------------------------------------------------------------


def test_card_details_show_balance_redeemability_and_expiry(held_server, held_emulator):
    client = make_client(held_server)
    result = client.submit(submit_request(card(amount="40")))
    held_emulator.set_order_status(result.provider_reference, "completed")
    code = held_emulator.card_code(result.provider_reference)
    spaced = f"{code[:4]}-{code[4:8]} {code[8:]}"  # as a person might paste it
    found = client.card_details(spaced)
    assert found["balance"] == Decimal("40.00") and found["currency"] == "EUR"
    assert found["is_redeemable"] is True and found["expires_at"].endswith("+00:00")
    assert sent(held_emulator, "GET", f"/v1/giftcards/{code}")


# --- Lost answers ------------------------------------------------------------------------------------


def test_a_connection_refused_before_sending_is_transient():
    class Nowhere:
        base_url = "http://127.0.0.1:9"  # discard port: nothing listens

    with pytest.raises(TransientError):
        make_client(Nowhere()).verify()


def test_a_dropped_create_answer_is_an_unknown_outcome(held_server, held_emulator):
    held_emulator.faults.add("drop_after_commit", method="POST", path=ORDERS)
    with pytest.raises(OutcomeUnknown):
        make_client(held_server).submit(submit_request())
    assert cards_in_ledger(held_emulator, "GD-1") == 1


def test_retrying_after_a_dropped_answer_with_the_same_key_buys_nothing_twice(held_server, held_emulator):
    held_emulator.faults.add("drop_after_commit", method="POST", path=ORDERS)
    client = make_client(held_server)
    with pytest.raises(OutcomeUnknown):
        client.submit(submit_request(key="gd-same"))

    result = make_client(held_server).submit(submit_request(key="gd-same"))

    assert result.provider_reference == held_emulator.ledger[0].order_id
    assert cards_in_ledger(held_emulator, "GD-1") == 1


def test_a_timeout_after_the_order_was_placed_is_an_unknown_outcome(held_server, held_emulator, settings):
    settings.GIFTDESK_HTTP_READ_TIMEOUT = 0.3
    held_emulator.faults.add("timeout_after_commit", method="POST", path=ORDERS, delay=1.0)
    with pytest.raises(OutcomeUnknown):
        make_client(held_server).submit(submit_request())
    assert cards_in_ledger(held_emulator, "GD-1") == 1


def test_a_key_already_used_for_another_card_is_refused_and_buys_nothing_for_it(held_server, held_emulator):
    client = make_client(held_server)
    client.submit(submit_request(card("GD-1"), key="gd-reused"))
    with pytest.raises(PermanentError) as error:
        client.submit(submit_request(card("GD-2"), key="gd-reused"))
    assert "already used for another order" in error.value.message
    assert cards_in_ledger(held_emulator, "GD-2") == 0
