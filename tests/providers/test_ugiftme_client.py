"""The UGiftMe client against the UGiftMe emulator, over real HTTP on loopback."""

from __future__ import annotations

import json
from decimal import Decimal
from email.utils import formatdate

import pytest

from providers.clients import client_class
from providers.clients.base import (
    AccountConfig,
    AccountError,
    Balance,
    CardRequest,
    CardStatus,
    OutcomeUnknown,
    PermanentError,
    PricingKind,
    StatusRequest,
    SubmitRequest,
    TransientError,
)
from providers.clients.base import rate_limit_wait
from providers.clients.ugiftme import UGiftMeClient
from emulators.ugiftme import BOL_CARD, EXPERIENCE_CARD, MAGASIN_CARD, UNIVERSAL_CARD
from tests.fixtures.emulators_ugiftme import UGIFTME_TEST_API_KEY


def make_client(server, *, api_key=UGIFTME_TEST_API_KEY, calls=None, environment="sandbox") -> UGiftMeClient:
    config = AccountConfig(
        id=1, name="UGiftMe test", kind="ugiftme", environment=environment,
        api_base_url=server.base_url, auth_url="", credentials={"api_key": api_key}, settings={},
    )
    return UGiftMeClient(config, recorder=calls.append if calls is not None else None)


def card(reference: str, amount: str = "50", **overrides) -> CardRequest:
    values = {
        "order_reference": reference,
        "recipient_name": f"Recipient {reference}",
        "recipient_email": f"{reference.lower()}@example.com",
        "amount": Decimal(amount),
        "currency": "EUR",
        "product_id": BOL_CARD,
        "sku": "",
        "message": "Thank you!",
    }
    return CardRequest(**{**values, **overrides})


def submit_request(cards, key="gd-test-key", provider_reference="", remembered=None) -> SubmitRequest:
    remembered = remembered if remembered is not None else []
    return SubmitRequest(idempotency_key=key, reference=key, cards=cards,
                         provider_reference=provider_reference, remember_reference=remembered.append)


def poll_until_final(client, result, cards, key="gd-test-key"):
    for _ in range(10):
        if all(c.status != CardStatus.PROCESSING for c in result.cards):
            return result
        result = client.fetch_status(StatusRequest(result.provider_reference, cards, key))
    raise AssertionError("still processing after 10 polls")


def order_posts(emulator):
    return [r for r in emulator.requests if r.method == "POST"]


@pytest.fixture
def sync_mode(ugiftme_emulator):
    ugiftme_emulator.async_orders = False


# --- Class attributes and registry --------------------------------------------------------------


def test_the_registry_finds_the_client_with_what_the_engine_needs_to_know():
    client = client_class("ugiftme")
    assert client is UGiftMeClient
    assert client.credential_keys == ("api_key",)
    assert client.documented_urls["production"] == ("https://api.ugift.me/api/v1/business", "")
    assert client.documented_urls["sandbox"] == ("https://api-stage.ugift.me/api/v1/business", "")
    assert (client.max_cards_per_submission, client.submission_group, client.supports_status) == (
        100, ("currency",), True)
    assert client.required_settings == {}


# --- Async orders (202 + order request) --------------------------------------------------------


def test_an_async_order_is_processing_under_its_order_request_id_remembered_before_returning(
    ugiftme_server, ugiftme_emulator
):
    remembered = []
    result = make_client(ugiftme_server).submit(submit_request([card("GD-1")], remembered=remembered))
    assert [c.status for c in result.cards] == [CardStatus.PROCESSING]
    order_request_id = remembered[0]
    assert result.provider_reference == order_request_id
    assert order_posts(ugiftme_emulator)[0].path == "/orders"


def test_fetch_status_follows_an_order_request_until_the_card_is_delivered(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    cards = [card("GD-1", "25")]
    first = client.submit(submit_request(cards))
    polled = client.fetch_status(StatusRequest(first.provider_reference, cards, "gd-test-key"))
    assert polled.cards[0].status == CardStatus.PROCESSING  # queued -> processing
    final = client.fetch_status(StatusRequest(first.provider_reference, cards, "gd-test-key"))
    [delivered] = final.cards
    assert delivered.status == CardStatus.DELIVERED
    assert delivered.provider_order_id == ugiftme_emulator.ledger[0].card_id
    assert (delivered.cost, delivered.cost_currency) == (Decimal("25"), "EUR")


def test_several_cards_go_in_one_bulk_request_and_each_is_bought_once(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    cards = [card("GD-1"), card("GD-2", "100"), card("GD-3", "25")]
    result = poll_until_final(client, client.submit(submit_request(cards)), cards)
    assert [c.status for c in result.cards] == [CardStatus.DELIVERED] * 3
    [post] = order_posts(ugiftme_emulator)
    assert post.path == "/orders/bulk" and len(json.loads(post.body)["orders"]) == 3
    assert [ugiftme_emulator.cards_for(ref) for ref in ("GD-1", "GD-2", "GD-3")] == [1, 1, 1]
    assert {c.order_reference: c.cost for c in result.cards} == {
        "GD-1": Decimal("50"), "GD-2": Decimal("100"), "GD-3": Decimal("25")}


def test_orders_carry_the_documented_body_and_headers(ugiftme_server, ugiftme_emulator):
    make_client(ugiftme_server).submit(submit_request([card("GD-1", recipient_name="Ada")], key="gd-abc"))
    [post] = order_posts(ugiftme_emulator)
    assert json.loads(post.body) == {
        "productId": BOL_CARD, "amount": 50, "currency": "EUR",
        "recipient": {"name": "Ada", "email": "gd-1@example.com"}, "message": "Thank you!", "reference": "GD-1"}
    assert post.headers["Idempotency-Key"] == "gd-abc"
    assert post.headers["X-API-Key"] == UGIFTME_TEST_API_KEY and post.headers["Accept"] == "application/json"


def test_the_same_cards_in_another_order_give_a_byte_identical_body(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    client.submit(submit_request([card("GD-1"), card("GD-2", "25.50", product_id=UNIVERSAL_CARD)], key="k1"))
    client.submit(submit_request([card("GD-2", "25.50", product_id=UNIVERSAL_CARD), card("GD-1")], key="k1"))
    first, second = order_posts(ugiftme_emulator)
    assert first.body == second.body  # so UGiftMe replays instead of answering 400
    assert json.loads(first.body)["orders"][1]["amount"] == 25.5


def test_a_failed_order_request_fails_its_card_with_the_providers_error(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    cards = [card("GD-1", "55")]  # Bol.com sells 25, 50 and 100 only
    [failed] = poll_until_final(client, client.submit(submit_request(cards)), cards).cards
    assert failed.status == CardStatus.FAILED
    assert "55 EUR is not available for Bol.com Gift Card: choose one of 25, 50, 100 EUR" in failed.error
    assert ugiftme_emulator.ledger == []


def test_one_bad_card_of_a_bulk_request_fails_alone(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    cards = [card("GD-1"), card("GD-2", product_id="66a1f0c2b5e4d3a2f1e0ffff"), card("GD-3", "100")]
    result = poll_until_final(client, client.submit(submit_request(cards)), cards)
    statuses = {c.order_reference: c.status for c in result.cards}
    assert statuses == {"GD-1": CardStatus.DELIVERED, "GD-2": CardStatus.FAILED, "GD-3": CardStatus.DELIVERED}
    assert "does not exist" in next(c.error for c in result.cards if c.order_reference == "GD-2")


def test_a_retry_with_a_remembered_order_request_polls_instead_of_ordering_again(ugiftme_server, ugiftme_emulator):
    client = make_client(ugiftme_server)
    remembered = []
    client.submit(submit_request([card("GD-1")], remembered=remembered))
    retried = client.submit(submit_request([card("GD-1")], provider_reference=remembered[0]))
    assert retried.provider_reference == remembered[0]
    assert len(order_posts(ugiftme_emulator)) == 1
    assert retried.cards[0].status == CardStatus.PROCESSING


def test_an_unknown_order_request_is_a_permanent_error_that_says_what_to_check(ugiftme_server):
    with pytest.raises(PermanentError) as error:
        make_client(ugiftme_server).fetch_status(StatusRequest("66b2ffffffffffffffffffff", [card("GD-1")]))
    assert error.value.status_code == 404 and "order history" in error.value.message


def test_a_card_dated_later_is_refused_before_anything_is_sent(ugiftme_server, ugiftme_emulator):
    """UGiftMe documents no delivery date: a dated card would be emailed at once, early."""
    from datetime import date, timedelta

    later = date.today() + timedelta(days=3)
    with pytest.raises(PermanentError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1"), card("GD-2", send_on=later)]))
    assert f"not on {later.isoformat()}" in error.value.message
    assert order_posts(ugiftme_emulator) == [] and ugiftme_emulator.ledger == []
    # Dated today: nothing to wait for, it goes.
    make_client(ugiftme_server).submit(submit_request([card("GD-3", send_on=date.today())], key="gd-today"))
    assert len(order_posts(ugiftme_emulator)) == 1


# --- Sync orders (201) ----------------------------------------------------------------------------


def test_a_sync_order_is_delivered_at_once_with_its_order_id_and_cost(ugiftme_server, ugiftme_emulator, sync_mode):
    result = make_client(ugiftme_server).submit(
        submit_request([card("GD-1", "500", currency="DKK", product_id=MAGASIN_CARD)]))
    [delivered] = result.cards
    assert delivered.status == CardStatus.DELIVERED
    assert delivered.provider_order_id == ugiftme_emulator.ledger[0].card_id
    assert result.provider_reference == f"order:{delivered.provider_order_id}"  # found again by a lookup
    assert (delivered.cost, delivered.cost_currency) == (Decimal("67.02"), "EUR")


def test_a_sync_bulk_request_delivers_every_card(ugiftme_server, ugiftme_emulator, sync_mode):
    result = make_client(ugiftme_server).submit(submit_request([card("GD-1"), card("GD-2", "100")]))
    assert [c.status for c in result.cards] == [CardStatus.DELIVERED] * 2
    assert len({c.provider_order_id for c in result.cards}) == 2


def test_a_pending_sync_order_is_followed_by_order_lookup(ugiftme_server, ugiftme_emulator, sync_mode):
    ugiftme_emulator.sync_order_status = "pending"
    client = make_client(ugiftme_server)
    remembered = []
    cards = [card("GD-1")]
    first = client.submit(submit_request(cards, remembered=remembered))
    order_id = ugiftme_emulator.ledger[0].card_id
    assert first.cards[0].status == CardStatus.PROCESSING
    assert first.provider_reference == remembered[0] == f"order:{order_id}"
    final = poll_until_final(client, first, cards)
    assert final.cards[0].status == CardStatus.DELIVERED and final.cards[0].provider_order_id == order_id
    assert ("GET", f"/orders/{order_id}") in [(r.method, r.path) for r in ugiftme_emulator.requests]


def test_a_sync_order_the_catalog_refuses_is_a_permanent_error_with_the_reason(
    ugiftme_server, ugiftme_emulator, sync_mode
):
    with pytest.raises(PermanentError) as error:
        make_client(ugiftme_server).submit(
            submit_request([card("GD-1", "3000", currency="DKK", product_id=EXPERIENCE_CARD)]))
    assert "Invalid order" in error.value.message and "100 to 2500 DKK" in error.value.message
    assert ugiftme_emulator.ledger == []


# --- Lost answers and idempotent replay --------------------------------------------------------


def test_a_dropped_answer_then_a_retry_with_the_same_key_buys_each_card_once(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.faults.add("drop_after_commit", path="/orders/bulk")
    client = make_client(ugiftme_server)
    cards = [card("GD-1"), card("GD-2", "100")]
    with pytest.raises(OutcomeUnknown):
        client.submit(submit_request(cards, key="gd-same"))

    remembered = []
    result = client.submit(submit_request(cards, key="gd-same", remembered=remembered))
    result = poll_until_final(client, result, cards, key="gd-same")

    assert [c.status for c in result.cards] == [CardStatus.DELIVERED] * 2
    assert result.provider_reference == remembered[0]
    assert ugiftme_emulator.cards_for("GD-1") == 1 and ugiftme_emulator.cards_for("GD-2") == 1


def test_a_dropped_sync_answer_then_a_retry_returns_the_same_order(ugiftme_server, ugiftme_emulator, sync_mode):
    ugiftme_emulator.faults.add("drop_after_commit", path="/orders")
    client = make_client(ugiftme_server)
    with pytest.raises(OutcomeUnknown):
        client.submit(submit_request([card("GD-1")], key="gd-same"))
    result = client.submit(submit_request([card("GD-1")], key="gd-same"))
    assert result.cards[0].status == CardStatus.DELIVERED
    assert ugiftme_emulator.cards_for("GD-1") == 1


def test_a_timeout_after_the_order_was_accepted_is_an_unknown_outcome(ugiftme_server, ugiftme_emulator, settings):
    settings.GIFTDESK_HTTP_READ_TIMEOUT = 0.3
    ugiftme_emulator.faults.add("timeout_after_commit", path="/orders", delay=1.0)
    with pytest.raises(OutcomeUnknown) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1")]))
    assert "same idempotency key" in error.value.message


def test_a_connection_dropped_before_the_order_buys_nothing(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.faults.add("drop_before", path="/orders")
    with pytest.raises((TransientError, OutcomeUnknown)):
        make_client(ugiftme_server).submit(submit_request([card("GD-1")]))
    assert ugiftme_emulator.ledger == []


def test_a_connection_refused_is_transient():
    class Nowhere:
        base_url = "http://127.0.0.1:9"  # discard port: nothing listens

    with pytest.raises(TransientError):
        make_client(Nowhere()).verify()


def test_reusing_a_key_with_other_cards_is_a_permanent_error_that_bought_nothing_new(
    ugiftme_server, ugiftme_emulator
):
    client = make_client(ugiftme_server)
    client.submit(submit_request([card("GD-1")], key="gd-same"))
    with pytest.raises(PermanentError) as error:
        client.submit(submit_request([card("GD-1", "100")], key="gd-same"))
    assert error.value.status_code == 400
    assert "This retry bought nothing" in error.value.message and "order history" in error.value.message
    assert ugiftme_emulator.wallet_balance == Decimal("9950.00")  # only the first request was paid


# --- Refusals ----------------------------------------------------------------------------------


def test_a_malformed_order_is_a_permanent_error_with_the_providers_words(ugiftme_server, ugiftme_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1", recipient_email="nope")]))
    assert error.value.message.startswith("UGiftMe refused the request: Validation failed: ")
    assert "recipient.email 'nope'" in error.value.message


def test_a_missing_api_key_is_an_account_error_that_says_to_enter_it(ugiftme_server):
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server, api_key="").verify()
    assert error.value.status_code == 401 and "Enter the account's API key" in error.value.message


def test_a_wrong_api_key_is_an_account_error_that_says_what_to_check(ugiftme_server):
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server, api_key="ugm_wrong").submit(submit_request([card("GD-1")]))
    assert "Invalid API key" in error.value.message and "No API key matches" in error.value.message
    assert "sandbox and production keys differ" in error.value.message


def test_a_revoked_api_key_is_an_account_error_naming_the_reason(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.keys[UGIFTME_TEST_API_KEY].revoked = True
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server).verify()
    assert "revoked" in error.value.message


def test_insufficient_funds_is_an_account_error_with_both_amounts_and_the_currency(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.wallet_balance = Decimal("12.00")
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1", "50")]))
    assert error.value.message == ("UGiftMe wallet has 12.00 EUR, this order needs 50.00 EUR: "
                                   "top up the wallet, then resume sending.")
    assert error.value.status_code == 402 and ugiftme_emulator.ledger == []


def test_the_insufficient_funds_fault_is_an_account_error_too(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.faults.add("insufficient_funds")
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1"), card("GD-2", "100")]))
    assert "this order needs 150.00 EUR" in error.value.message


def test_an_ip_outside_the_allow_list_is_an_account_error_that_says_to_add_it(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.keys[UGIFTME_TEST_API_KEY].ip_allow_list = ("203.0.113.7",)
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1")]))
    assert "127.0.0.1" in error.value.message and "IP allow list" in error.value.message


def test_an_incomplete_business_is_an_account_error_that_says_to_complete_it(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.business_complete = False
    with pytest.raises(AccountError) as error:
        make_client(ugiftme_server).verify()
    assert "Complete the business profile" in error.value.message


@pytest.mark.parametrize("kind", ["http_500", "http_503"])
def test_server_errors_are_transient_and_buy_nothing(ugiftme_server, ugiftme_emulator, kind):
    ugiftme_emulator.faults.add(kind, path="/orders")
    with pytest.raises(TransientError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1")]))
    assert "will be retried" in error.value.message and ugiftme_emulator.ledger == []


def test_an_html_gateway_page_is_transient(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.faults.add("html", path="/orders")
    with pytest.raises(TransientError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1")]))
    assert "HTML error page" in error.value.message


def test_a_429_is_transient_and_waits_as_long_as_retry_after_says(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.faults.add("http_429", path="/orders", retry_after=7)
    with pytest.raises(TransientError) as error:
        make_client(ugiftme_server).submit(submit_request([card("GD-1")]))
    assert error.value.retry_after == 7 and "rate limit" in error.value.message


def test_a_429_with_only_an_epoch_reset_header_waits_until_that_time(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.rate_limit_headers = "reset-epoch"
    ugiftme_emulator.faults.add("http_429", retry_after=30)
    with pytest.raises(TransientError) as error:
        make_client(ugiftme_server).verify()
    assert 28 <= error.value.retry_after <= 31


def test_a_429_with_only_a_seconds_reset_header_waits_those_seconds(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.rate_limit_headers = "reset-seconds"
    ugiftme_emulator.faults.add("http_429", retry_after=30)
    with pytest.raises(TransientError) as error:
        make_client(ugiftme_server).verify()
    assert error.value.retry_after == 30


NOW = 1_700_000_000.0


@pytest.mark.parametrize("headers, wait", [
    ({"Retry-After": "7"}, 7),
    ({"Retry-After": formatdate(NOW + 20, usegmt=True)}, 20),
    ({"X-RateLimit-Reset": "30"}, 30),  # seconds to wait
    ({"X-RateLimit-Reset": str(int(NOW) + 45)}, 45),  # a Unix time
    ({"X-RateLimit-Reset": str(int(NOW + 60) * 1000)}, 60),  # a Unix time in milliseconds
    ({"RateLimit-Reset": "12", "X-RateLimit-Reset": str(int(NOW) + 99)}, 12),
    ({}, None),
])
def test_rate_limit_headers_are_read_as_seconds_dates_or_unix_times(headers, wait):
    assert rate_limit_wait(headers, now=NOW) == wait


# --- Catalog, wallet, verify -------------------------------------------------------------------


def test_the_catalog_has_fixed_and_ranged_products_in_eur_and_dkk(ugiftme_server):
    products = {p.provider_product_id: p for p in make_client(ugiftme_server).list_products()}
    bol = products[BOL_CARD]
    assert (bol.pricing, bol.denominations, bol.currency) == (
        PricingKind.FIXED, (Decimal("25"), Decimal("50"), Decimal("100")), "EUR")
    experience = products[EXPERIENCE_CARD]
    assert (experience.pricing, experience.min_amount, experience.max_amount, experience.step) == (
        PricingKind.RANGE, Decimal("100"), Decimal("2500"), None)
    assert experience.currency == "DKK" and experience.title == "Nordic Experience Card"
    assert all(p.sku == "" and p.delivery_methods == ("Email",) for p in products.values())
    assert len(products) == 4


def test_balance_reads_the_wallet(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.wallet_balance = Decimal("1234.56")
    assert make_client(ugiftme_server).balance() == Balance(Decimal("1234.56"), "EUR")


def test_verify_calls_auth_and_names_the_business(ugiftme_server, ugiftme_emulator):
    result = make_client(ugiftme_server).verify()
    assert result.ok and result.message == "Connected to UGiftMe (sandbox) as GiftDesk Test BV."
    assert [(r.method, r.path) for r in ugiftme_emulator.requests] == [("GET", "/auth")]


def test_every_call_is_recorded_without_the_api_key(ugiftme_server):
    calls = []
    client = make_client(ugiftme_server, calls=calls)
    client.verify()
    client.submit(submit_request([card("GD-1")]))
    assert [(c.method, c.status) for c in calls] == [("GET", 200), ("POST", 202)]
    assert all(UGIFTME_TEST_API_KEY not in c.request_body + c.response_body + c.url for c in calls)


def test_an_account_configured_by_the_service_syncs_its_catalog_and_checks_out(emulated_ugiftme_account):
    from providers.services import account_check

    assert emulated_ugiftme_account.products.filter(is_active=True).count() == 4
    assert account_check(account=emulated_ugiftme_account).ok
