"""The Giftronaut client against the Giftronaut emulator, over real HTTP on loopback."""

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
from django.core.cache import cache

from providers.clients import tokens
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
from providers.clients.giftronaut import GiftronautClient
from emulators.giftronaut import GiftronautEmulator
from emulators.loopback import LoopbackServer
from tests.fixtures.emulators_giftronaut import GIFTRONAUT_TEST_CLIENT_ID, GIFTRONAUT_TEST_CLIENT_SECRET

ORDER_PATH = "/api/v1/orders/branded-card"
TOKEN_PATH = "/oauth2/token"


@pytest.fixture(autouse=True)
def fresh_token_cache():
    cache.clear()
    yield
    cache.clear()


def make_client(server, *, secret=GIFTRONAUT_TEST_CLIENT_SECRET, auth_url=None, calls=None, **settings):
    config = AccountConfig(
        id=1,
        name="Giftronaut test",
        kind="giftronaut",
        environment="sandbox",
        api_base_url=server.base_url,
        auth_url=f"{server.base_url}{TOKEN_PATH}" if auth_url is None else auth_url,
        credentials={"client_id": GIFTRONAUT_TEST_CLIENT_ID, "client_secret": secret},
        settings={"sender_name": "Acme Corp", **settings},
    )
    return GiftronautClient(config, recorder=calls.append if calls is not None else None)


def card(reference: str, amount: str = "50", email: str | None = None, **overrides) -> CardRequest:
    values = {
        "order_reference": reference,
        "recipient_name": "Alice Kim",
        "recipient_email": email or f"{reference.lower()}@example.com",
        "amount": Decimal(amount),
        "currency": "USD",
        "product_id": "GC-AMAZON-USD",
        "sku": "GC-AMAZON-USD",
        "message": "Thank you for your hard work this quarter.",
    }
    return CardRequest(**{**values, **overrides})


def submit_request(cards, key="gd-test-key", remembered=None, **options) -> SubmitRequest:
    remembered = remembered if remembered is not None else []
    return SubmitRequest(idempotency_key=key, reference=key, cards=cards,
                         remember_reference=remembered.append, **options)


def sent_orders(emulator) -> list[dict]:
    return [json.loads(r.body) for r in emulator.requests if (r.method, r.path) == ("POST", ORDER_PATH)]


def cards_in_ledger(emulator, email: str) -> int:
    return len(emulator.cards_for(email))


def token_requests(emulator) -> int:
    return sum(r.path == TOKEN_PATH for r in emulator.requests)


# --- Class attributes and URLs ---------------------------------------------------------------


def test_the_token_url_is_the_documented_base_plus_oauth2_token_when_no_url_is_set():
    config = AccountConfig(id=1, name="x", kind="giftronaut", environment="production", api_base_url="",
                           auth_url="", credentials={}, settings={})
    client = GiftronautClient(config)
    assert client.api_url == "https://api.giftronaut.com"
    assert client.token_url == "https://api.giftronaut.com/oauth2/token"


def test_a_blank_auth_url_sends_the_token_request_to_the_api_base(giftronaut_server, giftronaut_emulator):
    make_client(giftronaut_server, auth_url="").verify()
    token_call = next(r for r in giftronaut_emulator.requests if r.path == TOKEN_PATH)
    form = dict(pair.split("=", 1) for pair in token_call.body.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "orders.read+orders.write+catalog.read"


def test_the_engine_groups_cards_by_product_message_and_send_date_and_polls_for_status():
    assert GiftronautClient.submission_group == ("product", "message", "send_on")
    assert GiftronautClient.supports_status is True
    assert GiftronautClient.credential_keys == ("client_id", "client_secret")
    assert set(GiftronautClient.required_settings) == {"sender_name"}


# --- Happy path ------------------------------------------------------------------------------


def test_one_order_carries_every_card_and_each_is_bought_once(giftronaut_server, giftronaut_emulator):
    remembered = []
    result = make_client(giftronaut_server).submit(submit_request(
        [card("GD-1"), card("GD-2", "25"), card("GD-3", "100")], remembered=remembered))

    assert [c.status for c in result.cards] == [CardStatus.PROCESSING] * 3
    assert result.provider_reference.startswith("OT-") and remembered == [result.provider_reference]
    assert {c.provider_order_id for c in result.cards} == {result.provider_reference}
    assert len(sent_orders(giftronaut_emulator)) == 1
    assert [cards_in_ledger(giftronaut_emulator, f"gd-{n}@example.com") for n in (1, 2, 3)] == [1, 1, 1]
    assert [(c.cost, c.cost_currency) for c in result.cards] == [
        (Decimal("50.00"), "USD"), (Decimal("25.00"), "USD"), (Decimal("100.00"), "USD")]


def test_the_order_body_follows_the_quickstart(giftronaut_server, giftronaut_emulator):
    make_client(giftronaut_server).submit(submit_request([card("GD-1"), card("GD-2", "25")]))
    [body] = sent_orders(giftronaut_emulator)
    assert body == {
        "productId": "GC-AMAZON-USD",
        "recipients": [
            {"firstName": "Alice", "lastName": "Kim", "email": "gd-1@example.com", "amount": 50},
            {"firstName": "Alice", "lastName": "Kim", "email": "gd-2@example.com", "amount": 25},
        ],
        "emailSetting": {"senderName": "Acme Corp", "subject": "You have received a gift card!",
                         "message": "Thank you for your hard work this quarter."},
        "sendTiming": {"type": "IMMEDIATE"},
    }


def test_the_order_carries_the_idempotency_key_and_a_bearer_token(giftronaut_server, giftronaut_emulator):
    make_client(giftronaut_server).submit(submit_request([card("GD-1")], key="gd-abc"))
    order_call = next(r for r in giftronaut_emulator.requests if r.path == ORDER_PATH)
    assert order_call.headers["X-Idempotency-Key"] == "gd-abc"
    assert order_call.headers["Authorization"].startswith("Bearer ")
    assert order_call.headers["Accept"] == "application/json"


@pytest.mark.parametrize("name, first, last", [
    ("Mary Ann Lee", "Mary Ann", "Lee"),
    ("Cher", "Cher", ""),
    ("  Bob   Lee  ", "Bob", "Lee"),
])
def test_the_last_word_of_the_name_is_the_last_name(giftronaut_server, giftronaut_emulator, name, first, last):
    make_client(giftronaut_server).submit(submit_request([card("GD-1", recipient_name=name)]))
    [recipient] = sent_orders(giftronaut_emulator)[0]["recipients"]
    assert (recipient["firstName"], recipient["lastName"]) == (first, last)


def test_the_batchs_sender_name_wins_over_the_accounts(giftronaut_server, giftronaut_emulator):
    make_client(giftronaut_server).submit(submit_request([card("GD-1")], sender_name="HR team"))
    assert sent_orders(giftronaut_emulator)[0]["emailSetting"]["senderName"] == "HR team"


def test_the_accounts_email_subject_is_used(giftronaut_server, giftronaut_emulator):
    make_client(giftronaut_server, email_subject="A gift from Acme").submit(submit_request([card("GD-1")]))
    assert sent_orders(giftronaut_emulator)[0]["emailSetting"]["subject"] == "A gift from Acme"


def test_without_any_sender_name_the_account_is_refused_and_nothing_is_sent(giftronaut_server, giftronaut_emulator):
    with pytest.raises(AccountError) as error:
        make_client(giftronaut_server, sender_name="").submit(submit_request([card("GD-1")]))
    assert "sender name" in error.value.message and "sender_name" in error.value.message
    assert sent_orders(giftronaut_emulator) == []


def test_a_scheduled_batch_is_sent_with_a_scheduled_time_in_utc(giftronaut_server, giftronaut_emulator):
    send_at = datetime(2031, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    make_client(giftronaut_server).submit(submit_request([card("GD-1")], send_at=send_at))
    assert sent_orders(giftronaut_emulator)[0]["sendTiming"] == {
        "type": "SCHEDULED", "scheduledAt": "2031-05-01T07:30:00Z"}


def test_cards_with_a_send_date_are_scheduled_for_that_morning(giftronaut_server, giftronaut_emulator):
    make_client(giftronaut_server).submit(submit_request([card("GD-1", send_on=date(2031, 5, 1))]))
    assert sent_orders(giftronaut_emulator)[0]["sendTiming"] == {
        "type": "SCHEDULED", "scheduledAt": "2031-05-01T09:00:00Z"}


def test_cards_of_different_products_are_refused_before_anything_is_sent(giftronaut_server, giftronaut_emulator):
    cards = [card("GD-1"), card("GD-2", "20", product_id="GC-ZALANDO-EUR", sku="GC-ZALANDO-EUR", currency="EUR")]
    with pytest.raises(PermanentError):
        make_client(giftronaut_server).submit(submit_request(cards))
    assert giftronaut_emulator.requests == []


def test_every_call_is_recorded_with_secrets_redacted(giftronaut_server):
    calls = []
    make_client(giftronaut_server, calls=calls).submit(submit_request([card("GD-1")]))
    assert [(c.method, c.url.rsplit("/", 1)[-1]) for c in calls] == [("POST", "token"), ("POST", "branded-card")]
    assert GIFTRONAUT_TEST_CLIENT_SECRET not in calls[0].request_body
    assert "[redacted]" in calls[0].request_body and "[redacted]" in calls[0].response_body
    assert [c.status for c in calls] == [200, 201]


# --- Catalog and verify ------------------------------------------------------------------------


def test_the_catalog_has_fixed_denominations_and_ranges(giftronaut_server):
    products = {p.provider_product_id: p for p in make_client(giftronaut_server).list_products()}
    amazon, starbucks = products["GC-AMAZON-USD"], products["GC-STARBUCKS-USD"]
    assert amazon.pricing == PricingKind.FIXED and amazon.currency == "USD"
    assert amazon.denominations == (Decimal(10), Decimal(25), Decimal(50), Decimal(100))
    assert starbucks.pricing == PricingKind.RANGE
    assert (starbucks.min_amount, starbucks.max_amount, starbucks.step) == (Decimal(5), Decimal(500), None)
    assert amazon.title == "Amazon" and amazon.sku == "GC-AMAZON-USD" and amazon.delivery_methods == ("Email",)


def test_a_ranged_card_with_a_step_keeps_it(giftronaut_server):
    products = {p.provider_product_id: p for p in make_client(giftronaut_server).list_products()}
    magasin = products["GC-MAGASIN-DKK"]
    assert (magasin.currency, magasin.min_amount, magasin.max_amount, magasin.step) == (
        "DKK", Decimal(100), Decimal(5000), Decimal(50))
    assert products["GC-ZALANDO-EUR"].pricing == PricingKind.FIXED


def test_verify_reports_connected_with_the_catalog_size(giftronaut_server):
    result = make_client(giftronaut_server).verify()
    assert result.ok and result.message == "Connected: 4 branded cards in the catalog."


# --- Status --------------------------------------------------------------------------------------


def status_request(result, cards) -> StatusRequest:
    return StatusRequest(provider_reference=result.provider_reference, cards=cards)


def test_status_moves_from_processing_to_delivered_as_the_order_completes(giftronaut_server):
    client = make_client(giftronaut_server)
    cards = [card("GD-1"), card("GD-2", "25")]
    result = client.submit(submit_request(cards))
    first = client.fetch_status(status_request(result, cards))  # IN_PROGRESS
    second = client.fetch_status(status_request(result, cards))  # COMPLETE
    assert [c.status for c in first.cards] == [CardStatus.PROCESSING] * 2
    assert [c.status for c in second.cards] == [CardStatus.DELIVERED] * 2
    assert second.provider_reference == result.provider_reference
    assert {c.provider_order_id for c in second.cards} == {result.provider_reference}


def test_a_bounced_email_fails_its_card_with_the_reason_and_the_others_are_delivered(
    giftronaut_server, giftronaut_emulator
):
    client = make_client(giftronaut_server)
    cards = [card("GD-1"), card("GD-2", email="bounce.me@example.com"), card("GD-3")]
    result = client.submit(submit_request(cards))
    giftronaut_emulator.advance(result.provider_reference, 2)
    done = client.fetch_status(status_request(result, cards)).cards
    assert [c.status for c in done] == [CardStatus.DELIVERED, CardStatus.FAILED, CardStatus.DELIVERED]
    assert "bounce.me@example.com" in done[1].error and "Mailbox does not exist" in done[1].error
    assert "send a new card" in done[1].error


def test_cards_are_matched_to_recipients_by_email_and_amount(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    cards = [card("GD-1", "25", email="same@example.com"), card("GD-2", "100", email="same@example.com")]
    result = client.submit(submit_request(cards))
    giftronaut_emulator.advance(result.provider_reference, 2)
    still_in_flight = [cards[1]]
    [only] = client.fetch_status(status_request(result, still_in_flight)).cards
    assert (only.order_reference, only.status) == ("GD-2", CardStatus.DELIVERED)


def test_a_status_lookup_of_some_cards_reports_each_ones_cost(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    cards = [card("GD-1", "25"), card("GD-2", "100")]
    result = client.submit(submit_request(cards))
    giftronaut_emulator.advance(result.provider_reference, 2)
    [only] = client.fetch_status(status_request(result, [cards[1]])).cards
    assert (only.cost, only.cost_currency) == (Decimal("100.00"), "USD")


def test_a_card_missing_from_the_order_fails_with_a_check_before_resending(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    result = client.submit(submit_request([card("GD-1")]))
    giftronaut_emulator.advance(result.provider_reference, 2)
    [stray] = client.fetch_status(status_request(result, [card("GD-9", email="nobody@example.com")])).cards
    assert stray.status == CardStatus.FAILED and "before resending" in stray.error


def test_a_status_lookup_of_an_unknown_order_is_permanent(giftronaut_server):
    with pytest.raises(PermanentError) as error:
        make_client(giftronaut_server).fetch_status(StatusRequest("OT-20240315-FFFF", [card("GD-1")]))
    assert "OT-20240315-FFFF" in error.value.message and "Giftronaut portal" in error.value.message


def test_a_scheduled_order_stays_processing_until_its_time(giftronaut_server):
    client = make_client(giftronaut_server)
    cards = [card("GD-1")]
    result = client.submit(submit_request(cards, send_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    for _ in range(3):
        assert client.fetch_status(status_request(result, cards)).cards[0].status == CardStatus.PROCESSING


# --- Tokens ---------------------------------------------------------------------------------------


def test_the_token_is_cached_between_calls(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    client.submit(submit_request([card("GD-1")], key="k1"))
    client.submit(submit_request([card("GD-2")], key="k2"))
    assert token_requests(giftronaut_emulator) == 1


def test_an_expired_token_is_renewed_once_on_401(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    client.verify()
    giftronaut_emulator.expire_all_tokens()
    result = client.submit(submit_request([card("GD-1")]))
    assert result.cards[0].status == CardStatus.PROCESSING
    assert token_requests(giftronaut_emulator) == 2


def test_a_token_refused_even_when_fresh_is_an_account_error():
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                                  token_lifetime=0)
    with LoopbackServer(emulator) as server, pytest.raises(AccountError) as error:
        make_client(server).submit(submit_request([card("GD-1")]))
    assert "refused the access token twice" in error.value.message
    assert token_requests(emulator) == 2 and emulator.ledger == []


def test_bad_credentials_are_an_account_error_that_says_what_to_check(giftronaut_server):
    with pytest.raises(AccountError) as error:
        make_client(giftronaut_server, secret="wrong").submit(submit_request([card("GD-1")]))
    assert "invalid_client" in error.value.message
    assert "developer portal" in error.value.message and "sandbox app" in error.value.message


def test_an_app_without_the_needed_scopes_is_an_account_error_naming_them():
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                                  app_scopes={GIFTRONAUT_TEST_CLIENT_ID: {"catalog.read"}})
    with LoopbackServer(emulator) as server, pytest.raises(AccountError) as error:
        make_client(server).verify()
    assert "orders.read orders.write catalog.read" in error.value.message and "scopes" in error.value.message


def test_a_403_is_an_account_error_that_names_the_scopes(giftronaut_server):
    client = make_client(giftronaut_server)
    narrow = requests.post(f"{giftronaut_server.base_url}{TOKEN_PATH}", timeout=5, data={
        "grant_type": "client_credentials", "client_id": GIFTRONAUT_TEST_CLIENT_ID,
        "client_secret": GIFTRONAUT_TEST_CLIENT_SECRET, "scope": "catalog.read"}).json()["access_token"]
    tokens.store_token(client.token_key, narrow, 3600)  # a token issued before the app lost a scope
    with pytest.raises(AccountError) as error:
        client.submit(submit_request([card("GD-1")]))
    assert error.value.status_code == 403 and "insufficient_scope" in error.value.message


# --- Refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["30", "10.50", "1000"])
def test_an_amount_that_is_not_a_denomination_is_refused_for_good(giftronaut_server, giftronaut_emulator, amount):
    with pytest.raises(PermanentError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1"), card("GD-2", amount)]))
    assert error.value.status_code == 422 and "10, 25, 50, 100" in error.value.message
    assert giftronaut_emulator.ledger == []


def test_an_amount_outside_the_range_is_refused_for_good(giftronaut_server):
    starbucks = {"product_id": "GC-STARBUCKS-USD", "sku": "GC-STARBUCKS-USD"}
    with pytest.raises(PermanentError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1", "501", **starbucks)]))
    assert "5 to 500 USD" in error.value.message


def test_an_invalid_email_is_refused_for_good(giftronaut_server):
    with pytest.raises(PermanentError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1", email="not-an-email")]))
    assert error.value.status_code == 422 and "not-an-email" in error.value.message


def test_a_malformed_request_400_is_refused_for_good(giftronaut_server):
    with pytest.raises(PermanentError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1", recipient_name="")]))
    assert error.value.status_code == 400 and "firstName" in error.value.message


def test_a_retry_with_another_body_under_the_same_key_is_a_permanent_conflict(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    client.submit(submit_request([card("GD-1")], key="gd-same"))
    with pytest.raises(PermanentError) as error:
        client.submit(submit_request([card("GD-1", "100")], key="gd-same"))
    assert error.value.status_code == 409 and "Nothing new was bought" in error.value.message
    assert cards_in_ledger(giftronaut_emulator, "gd-1@example.com") == 1


def test_insufficient_balance_is_an_account_error_with_the_amounts(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.faults.add("insufficient_funds", path=ORDER_PATH)
    with pytest.raises(AccountError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1", "100"), card("GD-2", "25")]))
    assert "required 125.00 USD" in error.value.message and "available 0.00 USD" in error.value.message
    assert "Top up" in error.value.message
    assert giftronaut_emulator.ledger == []


@pytest.mark.parametrize("kind", ["http_500", "http_503"])
def test_server_errors_are_transient(giftronaut_server, giftronaut_emulator, kind):
    giftronaut_emulator.faults.add(kind, path=ORDER_PATH)
    with pytest.raises(TransientError):
        make_client(giftronaut_server).submit(submit_request([card("GD-1")]))
    assert giftronaut_emulator.ledger == []


def test_a_429_is_transient_and_carries_retry_after(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.faults.add("http_429", path=ORDER_PATH, retry_after=7)
    with pytest.raises(TransientError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1")]))
    assert error.value.retry_after == 7


def test_a_429_on_a_status_lookup_is_transient(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    result = client.submit(submit_request([card("GD-1")]))
    giftronaut_emulator.faults.add("http_429", path="/api/v1/orders/OT-", retry_after=3)
    with pytest.raises(TransientError) as error:
        client.fetch_status(status_request(result, [card("GD-1")]))
    assert error.value.retry_after == 3


def test_an_html_gateway_error_page_is_transient(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.faults.add("html", path=ORDER_PATH)
    with pytest.raises(TransientError) as error:
        make_client(giftronaut_server).submit(submit_request([card("GD-1")]))
    assert "HTML error page" in error.value.message


# --- Lost answers ----------------------------------------------------------------------------------


def test_a_connection_refused_before_sending_is_transient():
    class Nowhere:
        base_url = "http://127.0.0.1:9"  # discard port: nothing listens

    with pytest.raises(TransientError):
        make_client(Nowhere()).verify()


def test_a_dropped_order_answer_is_an_unknown_outcome(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.faults.add("drop_after_commit", path=ORDER_PATH)
    with pytest.raises(OutcomeUnknown):
        make_client(giftronaut_server).submit(submit_request([card("GD-1")]))
    assert cards_in_ledger(giftronaut_emulator, "gd-1@example.com") == 1  # Giftronaut did create it


def test_retrying_after_a_dropped_answer_returns_the_original_order_without_buying_again(
    giftronaut_server, giftronaut_emulator
):
    giftronaut_emulator.faults.add("drop_after_commit", path=ORDER_PATH)
    client = make_client(giftronaut_server)
    cards = [card("GD-1"), card("GD-2", "25")]
    with pytest.raises(OutcomeUnknown):
        client.submit(submit_request(cards, key="gd-same"))

    result = client.submit(submit_request(cards, key="gd-same"))

    assert result.provider_reference == giftronaut_emulator.ledger[0].order_id
    assert [c.status for c in result.cards] == [CardStatus.PROCESSING] * 2
    assert cards_in_ledger(giftronaut_emulator, "gd-1@example.com") == 1
    assert cards_in_ledger(giftronaut_emulator, "gd-2@example.com") == 1


def test_a_replay_of_a_completed_order_reports_its_cards_delivered(giftronaut_server, giftronaut_emulator):
    client = make_client(giftronaut_server)
    first = client.submit(submit_request([card("GD-1")], key="gd-same"))
    giftronaut_emulator.advance(first.provider_reference, 2)
    again = client.submit(submit_request([card("GD-1")], key="gd-same"))
    assert again.cards[0].status == CardStatus.DELIVERED
    assert len(giftronaut_emulator.ledger) == 1


def test_a_timeout_after_the_order_was_created_is_an_unknown_outcome(giftronaut_server, giftronaut_emulator, settings):
    settings.GIFTDESK_HTTP_READ_TIMEOUT = 0.3
    giftronaut_emulator.faults.add("timeout_after_commit", path=ORDER_PATH, delay=1.0)
    with pytest.raises(OutcomeUnknown):
        make_client(giftronaut_server).submit(submit_request([card("GD-1")]))
    assert cards_in_ledger(giftronaut_emulator, "gd-1@example.com") == 1


def test_a_connection_dropped_before_the_order_buys_nothing(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.faults.add("drop_before", path=ORDER_PATH)
    with pytest.raises((TransientError, OutcomeUnknown)):
        make_client(giftronaut_server).submit(submit_request([card("GD-1")]))
    assert giftronaut_emulator.ledger == []
