"""The GoGift client against the GoGift emulator, over real HTTP on loopback."""

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
    SubmitRequest,
    TransientError,
)
from providers.clients.gogift import GoGiftClient
from tests.fixtures.data import GLOBAL_GIFT_CARD_ID, GLOBAL_GIFT_CARD_SKU
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID, GOGIFT_TEST_CLIENT_SECRET

BUYER = {
    "buyer_account_id": "328685355341950976",
    "buyer_name": "Acme A/S",
    "buyer_email": "finance@acme.example",
    "buyer_phone": "+4500000000",
    "buyer_address_line1": "Street 1",
    "buyer_city": "City",
    "buyer_post_code": "0000",
}


@pytest.fixture(autouse=True)
def fresh_token_cache():
    cache.clear()
    yield
    cache.clear()


def make_client(server, *, secret=GOGIFT_TEST_CLIENT_SECRET, environment="sandbox", calls=None, **settings):
    config = AccountConfig(
        id=1,
        name="GoGift test",
        kind="gogift",
        environment=environment,
        api_base_url=server.base_url,
        auth_url=f"{server.base_url}/connect/token",
        credentials={"client_id": GOGIFT_TEST_CLIENT_ID, "client_secret": secret},
        settings={**BUYER, **settings},
    )
    return GoGiftClient(config, recorder=calls.append if calls is not None else None)


def card(reference: str, amount: str = "100", email: str | None = None, **overrides) -> CardRequest:
    values = {
        "order_reference": reference,
        "recipient_name": f"Recipient {reference}",
        "recipient_email": email or f"{reference.lower()}@example.com",
        "amount": Decimal(amount),
        "currency": "DKK",
        "product_id": GLOBAL_GIFT_CARD_ID,
        "sku": GLOBAL_GIFT_CARD_SKU,
    }
    return CardRequest(**{**values, **overrides})


def submit_request(cards, key="gd-test-key", provider_reference="", remembered=None) -> SubmitRequest:
    remembered = remembered if remembered is not None else []
    return SubmitRequest(
        idempotency_key=key,
        reference=key,
        cards=cards,
        provider_reference=provider_reference,
        remember_reference=remembered.append,
    )


def cards_in_ledger(emulator, reference: str) -> int:
    return sum(1 for entry in emulator.ledger if entry.reference == reference)


# --- Happy path ------------------------------------------------------------------------------


def test_a_multi_line_basket_buys_each_card_once(gogift_server, gogift_emulator):
    client = make_client(gogift_server)
    remembered = []
    result = client.submit(submit_request([card("GD-1"), card("GD-2", "250"), card("GD-3", "5000")],
                                          remembered=remembered))

    assert [c.status for c in result.cards] == [CardStatus.DELIVERED] * 3
    assert len({c.provider_order_id for c in result.cards}) == 1
    assert result.provider_reference == remembered[0]
    assert [cards_in_ledger(gogift_emulator, ref) for ref in ("GD-1", "GD-2", "GD-3")] == [1, 1, 1]
    assert [entry.amount for entry in gogift_emulator.ledger] == [Decimal("100"), Decimal("250"), Decimal("5000")]
    assert result.cards[1].cost == Decimal("250.00") and result.cards[1].cost_currency == "DKK"


def test_the_basket_id_is_remembered_before_the_update_is_sent(gogift_server, gogift_emulator):
    client = make_client(gogift_server)
    seen_when_remembered = []
    request = submit_request([card("GD-1")])
    request.remember_reference = lambda ref: seen_when_remembered.append(
        [r.method for r in gogift_emulator.requests if not r.path.endswith("/token")]
    )
    client.submit(request)
    assert seen_when_remembered == [["POST"]]  # only the basket creation had been sent


def test_update_and_finalize_carry_idempotency_keys_and_json_headers(gogift_server, gogift_emulator):
    make_client(gogift_server).submit(submit_request([card("GD-1")], key="gd-abc"))
    by_path = {(r.method, r.path): r for r in gogift_emulator.requests}
    assert by_path[("PUT", "/baskets")].headers["Idempotency-Key"] == "gd-abc-update"
    assert by_path[("POST", "/baskets/finalize")].headers["Idempotency-Key"] == "gd-abc-finalize"
    for request in by_path.values():
        if request.path != "/connect/token":
            assert request.headers["Accept"] == "application/json"
            assert request.headers["Authorization"].startswith("Bearer ")


def test_the_catalog_is_read_from_every_page_with_fixed_and_ranged_prices(gogift_server, monkeypatch):
    monkeypatch.setattr("providers.clients.gogift.PRODUCTS_PER_PAGE", 2)
    products = make_client(gogift_server).list_products()
    by_sku = {p.sku: p for p in products}
    global_card = by_sku[GLOBAL_GIFT_CARD_SKU]
    assert global_card.pricing == PricingKind.RANGE
    assert (global_card.min_amount, global_card.max_amount, global_card.step) == (
        Decimal("50"), Decimal("5000"), Decimal("10"))
    fixed = [p for p in products if p.pricing == PricingKind.FIXED]
    assert fixed and all(len(p.denominations) == 1 for p in fixed)
    assert all("Email" in p.delivery_methods for p in products)
    # Every product with email delivery, from all pages (the emulator has more than 2 pages of 2).
    assert len({p.provider_product_id for p in products}) >= 3


def test_verify_reports_connected(gogift_server):
    result = make_client(gogift_server).verify()
    assert result.ok and result.message.startswith("Connected")


def test_every_call_is_recorded_with_secrets_redacted(gogift_server):
    calls = []
    make_client(gogift_server, calls=calls).submit(submit_request([card("GD-1")]))
    assert [c.method for c in calls] == ["POST", "POST", "PUT", "POST"]
    token_call = calls[0]
    assert GOGIFT_TEST_CLIENT_SECRET not in token_call.request_body
    assert "[redacted]" in token_call.request_body and "[redacted]" in token_call.response_body
    assert all(c.status == 200 and c.duration_ms >= 0 for c in calls)


# --- Tokens -----------------------------------------------------------------------------------


def test_the_token_is_cached_between_calls(gogift_server, gogift_emulator):
    client = make_client(gogift_server)
    client.submit(submit_request([card("GD-1")], key="k1"))
    client.submit(submit_request([card("GD-2")], key="k2"))
    assert sum(r.path == "/connect/token" for r in gogift_emulator.requests) == 1


def test_an_expired_token_is_renewed_once_on_401(gogift_server, gogift_emulator):
    client = make_client(gogift_server)
    client.verify()
    gogift_emulator.expire_all_tokens()
    result = client.submit(submit_request([card("GD-1")]))
    assert result.cards[0].status == CardStatus.DELIVERED
    assert sum(r.path == "/connect/token" for r in gogift_emulator.requests) == 2


def test_bad_credentials_are_an_account_error_that_says_what_to_check(gogift_server):
    with pytest.raises(AccountError) as error:
        make_client(gogift_server, secret="wrong").submit(submit_request([card("GD-1")]))
    assert "invalid_client" in error.value.message
    assert "sandbox and production credentials are separate" in error.value.message


# --- Refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("amount, words", [("55", "55"), ("40", "40"), ("5010", "5010")])
def test_a_value_outside_the_rules_is_refused_for_good(gogift_server, gogift_emulator, amount, words):
    with pytest.raises(PermanentError) as error:
        make_client(gogift_server).submit(submit_request([card("GD-1", amount)]))
    assert words in error.value.message and "giftcardValue" in error.value.message
    assert gogift_emulator.ledger == []


def test_a_sku_that_does_not_match_the_product_is_refused(gogift_server, gogift_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(gogift_server).submit(submit_request([card("GD-1", sku="FF79DB80")]))
    assert "stockKeepingUnit" in error.value.message
    assert gogift_emulator.ledger == []


def test_a_production_product_on_the_sandbox_is_refused_naming_the_environment(gogift_server):
    with pytest.raises(PermanentError) as error:
        make_client(gogift_server).submit(
            submit_request([card("GD-1", product_id="256472009205907456", sku="FF79DB80")])
        )
    assert "environment" in error.value.message


def test_a_missing_recipient_email_is_refused(gogift_server, gogift_emulator):
    with pytest.raises(PermanentError) as error:
        make_client(gogift_server).submit(submit_request([card("GD-1", recipient_email="")]))
    assert "recipientEmail" in error.value.message
    assert gogift_emulator.ledger == []


def test_an_html_page_instead_of_json_is_a_clear_permanent_error(gogift_server, gogift_emulator):
    client = make_client(gogift_server)
    client.session.headers["Accept"] = "text/html"  # What a misconfigured proxy would do.
    with pytest.raises(PermanentError) as error:
        client.verify()
    assert "HTML" in error.value.message and "Accept: application/json" in error.value.message


def test_an_html_gateway_error_page_is_transient(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("html", path="/baskets")
    with pytest.raises(TransientError) as error:
        make_client(gogift_server).submit(submit_request([card("GD-1")]))
    assert "HTML error page" in error.value.message


@pytest.mark.parametrize("kind", ["http_500", "http_503"])
def test_server_errors_are_transient(gogift_server, gogift_emulator, kind):
    gogift_emulator.faults.add(kind, path="/baskets")
    with pytest.raises(TransientError):
        make_client(gogift_server).submit(submit_request([card("GD-1")]))
    assert gogift_emulator.ledger == []


def test_a_429_is_transient_and_carries_retry_after(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("http_429", path="/baskets", retry_after=7)
    with pytest.raises(TransientError) as error:
        make_client(gogift_server).submit(submit_request([card("GD-1")]))
    assert error.value.retry_after == 7


def test_insufficient_funds_is_an_account_error_with_the_amounts(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("insufficient_funds", path="/baskets/finalize")
    with pytest.raises(AccountError) as error:
        make_client(gogift_server).submit(submit_request([card("GD-1", "1500")]))
    assert "1500" in error.value.message
    assert gogift_emulator.ledger == []


def test_production_requires_a_reference_and_the_client_always_sends_one(
    gogift_production_server, gogift_production_emulator
):
    client = make_client(gogift_production_server, environment="production")
    result = client.submit(submit_request(
        [card("GD-1", product_id="256472009205907456", sku="FF79DB80")], key="gd-ref"))
    assert result.cards[0].status == CardStatus.DELIVERED
    assert gogift_production_emulator.ledger[0].extra["basket_reference"] == "gd-ref"


# --- Lost answers ------------------------------------------------------------------------------


def test_a_connection_refused_before_sending_is_transient():
    class Nowhere:
        base_url = "http://127.0.0.1:9"  # discard port: nothing listens

    with pytest.raises(TransientError):
        make_client(Nowhere()).verify()


def test_a_dropped_finalize_answer_is_an_unknown_outcome(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("drop_after_commit", path="/baskets/finalize")
    with pytest.raises(OutcomeUnknown):
        make_client(gogift_server).submit(submit_request([card("GD-1")]))
    assert cards_in_ledger(gogift_emulator, "GD-1") == 1  # GoGift did place the order


def test_retrying_after_a_dropped_finalize_answer_replays_instead_of_buying_again(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("drop_after_commit", path="/baskets/finalize")
    client = make_client(gogift_server)
    remembered = []
    with pytest.raises(OutcomeUnknown):
        client.submit(submit_request([card("GD-1"), card("GD-2")], key="gd-same", remembered=remembered))

    result = client.submit(submit_request([card("GD-1"), card("GD-2")], key="gd-same",
                                          provider_reference=remembered[0]))

    assert [c.status for c in result.cards] == [CardStatus.DELIVERED] * 2
    assert cards_in_ledger(gogift_emulator, "GD-1") == 1
    assert cards_in_ledger(gogift_emulator, "GD-2") == 1


def test_a_timeout_after_the_order_was_placed_is_an_unknown_outcome(gogift_server, gogift_emulator, settings):
    settings.GIFTDESK_HTTP_READ_TIMEOUT = 0.5
    gogift_emulator.faults.add("timeout_after_commit", path="/baskets/finalize", delay=1.5)
    with pytest.raises(OutcomeUnknown):
        make_client(gogift_server).submit(submit_request([card("GD-1")]))
    assert cards_in_ledger(gogift_emulator, "GD-1") == 1


def test_a_connection_dropped_before_the_update_is_transient_and_buys_nothing(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("drop_before", method="PUT", path="/baskets")
    with pytest.raises((TransientError, OutcomeUnknown)):
        make_client(gogift_server).submit(submit_request([card("GD-1")]))
    assert gogift_emulator.ledger == []
