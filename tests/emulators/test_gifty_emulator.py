"""The Gifty emulator, over real HTTP, against seed 003."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from emulators.clock import ManualClock
from emulators.gifty import DEMO_ACCOUNT, DEMO_API_TOKEN, GiftyEmulator
from emulators.loopback import LoopbackServer
from emulators.registry import get_demo_emulator
from tests.fixtures.emulators_gifty import GIFTY_DINNER_PACKAGE, GIFTY_TEST_TOKEN, GIFTY_VARIABLE_CARD


GIFT_BOX = "gc_co_gift_box"  # physical only
CONSENT = {"consumer_terms": {"accepted": True, "version": "2024-11-23"},
           "privacy_policy": {"accepted": True, "version": "2025-03-20"}}
ERROR_KEYS = {"id", "status", "type", "title", "detail"}


class Api:
    """A Gifty caller that sends what seed 003's examples send."""

    def __init__(self, server: LoopbackServer, token: str = GIFTY_TEST_TOKEN) -> None:
        self.server, self.token = server, token

    def call(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
             timeout: float = 5) -> requests.Response:
        sent = {"Accept": "application/json", "Authorization": f"Bearer {self.token}", **(headers or {})}
        return requests.request(method, f"{self.server.base_url}{path}", json=body, headers=sent, timeout=timeout)

    def preview(self, body: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.call("POST", "/v1/external-orders/preview", body, **kwargs)

    def create(self, body: dict[str, Any], *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key:
            headers["Idempotency-Key"] = key
        return self.call("POST", "/v1/external-orders", body, headers=headers, **kwargs)

    def order(self, order_id: str) -> requests.Response:
        return self.call("GET", f"/v1/external-orders/{order_id}")


def order_body(amount: int | None = 2500, *, product: str = GIFTY_VARIABLE_CARD, quantity: int = 1,
               message: str | None = None, reference: str = "GD-1", mode: str = "digital",
               **overrides: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"product_id": product, "configuration": {} if amount is None else {"amount": amount},
                            "quantity": quantity}
    if message is not None:
        line["customisations"] = [{"type": "personalised_message", "value": message}]
    body = {
        "currency": "EUR",
        "fulfillment": {"mode": mode},
        "line_items": [line],
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "locale": "en"},
        "consent": json.loads(json.dumps(CONSENT)),
        "metadata": {"source": "giftdesk", "external_reference": reference},
    }
    body.update(overrides)
    return body


def details(response: requests.Response) -> list[str]:
    return [error["detail"] for error in response.json()["errors"]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gifty_emulator(clock: ManualClock) -> GiftyEmulator:
    """Here time moves only when a test moves the clock: orders become processing after 1 s
    and completed after 3 s, as in the demo."""
    return GiftyEmulator(tokens=[GIFTY_TEST_TOKEN], processing_after=1.0, complete_after=3.0, clock=clock)


@pytest.fixture
def api(gifty_server: LoopbackServer) -> Api:
    return Api(gifty_server)


@pytest.fixture
def slow_emulator() -> GiftyEmulator:
    """Orders stay pending until a test moves them."""
    return GiftyEmulator(tokens=[GIFTY_TEST_TOKEN, "other-token"], processing_after=None, complete_after=None)


@pytest.fixture
def slow_api(slow_emulator: GiftyEmulator):
    with LoopbackServer(slow_emulator) as server:
        yield Api(server)


# --- Authentication and errors -------------------------------------------------------------


def test_a_request_without_a_token_is_refused_in_seed_003s_error_shape(gifty_server):
    response = requests.get(f"{gifty_server.base_url}/v1/external-orders/configuration",
                            headers={"Accept": "application/json"}, timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["message"] == "Unauthenticated."
    assert set(body["errors"][0]) == ERROR_KEYS and body["errors"][0]["status"] == "401"


def test_an_unknown_token_is_refused(gifty_server):
    assert Api(gifty_server, token="revoked").call("GET", "/v1/external-orders/configuration").status_code == 401


def test_a_token_without_external_orders_access_is_forbidden_there():
    emulator = GiftyEmulator(restricted_tokens=["cards-only"])
    with LoopbackServer(emulator) as server:
        response = Api(server, token="cards-only").call("GET", "/v1/external-orders/configuration")
        assert Api(server, token="cards-only").call("GET", "/v1/giftcards/AAAABBBBCCCCDDDD").status_code == 404
    assert response.status_code == 403 and response.json()["message"] == "This action is unauthorized."


def test_an_unknown_route_answers_404_and_a_wrong_method_405(api):
    assert api.call("GET", "/v1/nothing-here").status_code == 404
    response = api.call("DELETE", "/v1/external-orders/configuration")
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


# --- Configuration -------------------------------------------------------------------------


def test_the_configuration_lists_products_with_fixed_and_variable_pricing(api):
    data = api.call("GET", "/v1/external-orders/configuration").json()["data"]
    assert data["supported_currencies"] == ["EUR"] and data["supported_locales"] == ["en", "nl"]
    products = {product["id"]: product for product in data["products"]}
    variable = products[GIFTY_VARIABLE_CARD]["pricing"]
    assert variable["model"] == "variable"
    assert (variable["range"]["minimum"], variable["range"]["maximum"]) == (500, 50000)
    fixed = products[GIFTY_DINNER_PACKAGE]["pricing"]
    assert fixed["model"] == "fixed" and fixed["price"]["including_tax"] == 7500
    assert products[GIFT_BOX]["fulfillment_modes"] == ["physical"]


def test_the_configuration_carries_consent_versions_and_order_constraints(api):
    data = api.call("GET", "/v1/external-orders/configuration").json()["data"]
    assert {name: item["version"] for name, item in data["consent"].items()} == {
        "consumer_terms": "2024-11-23", "privacy_policy": "2025-03-20"}
    assert data["constraints"]["order"]["maximum_amount"] == {"currency": "EUR", "amount": 250000}


# --- Preview ----------------------------------------------------------------------------------


def test_preview_prices_a_card_and_its_message_fee_without_buying(api, gifty_emulator):
    response = api.preview(order_body(2500, message="Thank you!"))
    assert response.status_code == 200
    assert response.json()["data"]["amounts"] == {"line_items": 2500, "customisations": 79, "shipping": 0,
                                                  "subtotal": 2579, "tax": 17, "total": 2596}
    assert gifty_emulator.ledger == []


def test_preview_shows_a_configured_service_fee(gifty_emulator, api):
    gifty_emulator.service_fee = 150
    amounts = api.preview(order_body(2500)).json()["data"]["amounts"]
    assert amounts["service_fee"] == 150 and amounts["total"] == 2650


def test_a_package_takes_its_fixed_price_without_an_amount(api):
    amounts = api.preview(order_body(None, product=GIFTY_DINNER_PACKAGE)).json()["data"]["amounts"]
    assert amounts["line_items"] == 7500


def test_a_package_refuses_another_amount(api):
    response = api.preview(order_body(5000, product=GIFTY_DINNER_PACKAGE))
    assert response.status_code == 422
    assert details(response) == [
        "The line_items.0.configuration.amount must be € 75,00 for the product gc_pk_dinner_for_two."]


@pytest.mark.parametrize("amount", [499, 50001])
def test_an_amount_outside_the_range_is_refused_in_euros(api, amount):
    response = api.preview(order_body(amount))
    assert response.status_code == 422
    assert response.json()["message"] == (
        "The line_items.0.configuration.amount must be between € 5,00 and € 500,00.")


def test_an_amount_with_decimals_is_refused_as_not_cents(api):
    response = api.preview(order_body(25.5))
    assert details(response) == ["The line_items.0.configuration.amount must be a whole number of cents."]


def test_a_physical_only_product_is_refused_for_digital_fulfillment(api):
    response = api.preview(order_body(5000, product=GIFT_BOX))
    assert response.status_code == 422 and "not available for digital fulfillment" in response.json()["message"]


def test_an_order_over_the_maximum_total_is_refused(api):
    response = api.preview(order_body(50000, quantity=6))
    assert details(response) == ["The order total may not be greater than € 2500,00."]


def test_a_message_over_300_characters_is_refused(api):
    response = api.preview(order_body(2500, message="x" * 301))
    assert details(response) == ["The personalised message may not be greater than 300 characters."]


def test_every_problem_is_listed_and_the_message_counts_the_rest(api):
    body = order_body(2500, currency="USD")
    body["customer"]["email"] = "not-an-email"
    response = api.preview(body)
    assert response.status_code == 422
    assert len(response.json()["errors"]) == 2
    assert response.json()["message"] == "The currency USD is not supported; use one of EUR. (and 1 more error)"


def test_validation_messages_are_in_dutch_when_asked(api):
    response = api.preview(order_body(499), headers={"Accept-Language": "nl"})
    assert response.json()["message"] == (
        "Het veld line_items.0.configuration.amount moet tussen € 5,00 en € 500,00 liggen.")


def test_an_unknown_language_gets_english(api):
    response = api.preview(order_body(499), headers={"Accept-Language": "fr-FR, de;q=0.8"})
    assert response.json()["message"].startswith("The line_items.0.configuration.amount")


def test_a_body_that_is_not_json_is_a_bad_request(api):
    response = requests.post(f"{api.server.base_url}/v1/external-orders/preview", data="nope",
                             headers={"Authorization": f"Bearer {api.token}", "Accept": "application/json"},
                             timeout=5)
    assert response.status_code == 400 and response.json()["errors"][0]["type"] == "bad_request"


def test_physical_fulfillment_is_refused_as_not_available(api, gifty_emulator):
    body = order_body(5000, product=GIFT_BOX, mode="physical")
    response = api.create(body)
    assert response.status_code == 422 and set(response.json()["errors"][0]) == ERROR_KEYS
    assert details(response) == ["The fulfillment.mode physical is not available; use one of: digital."]
    assert details(api.preview(body)) == details(response) and gifty_emulator.ledger == []


def test_an_unknown_fulfillment_mode_is_refused(api):
    response = api.preview(order_body(2500, mode="pigeon"))
    assert details(response) == ["The fulfillment.mode must be one of: physical, digital."]


def test_a_customisation_the_product_does_not_offer_is_refused(api):
    body = order_body(2500)
    body["line_items"][0]["customisations"] = [{"type": "gift_wrapping", "value": "wr_2gxa9kQJYbm5gn584K1G7VOy"}]
    assert details(api.preview(body)) == [
        "The customisation gift_wrapping is not available for the product gc_co_giftdesk_standard."]


# --- Create and look up -------------------------------------------------------------------------


def test_create_answers_a_pending_order_with_a_masked_code(slow_api, slow_emulator):
    response = slow_api.create(order_body(2500, message="Thanks"), key="gd-1")
    assert response.status_code == 201
    order = response.json()["data"]
    assert order["id"].startswith("or_") and order["status"] == "pending"
    assert order["fulfillment"] == {"mode": "digital", "status": "pending"}
    assert order["metadata"] == {"source": "giftdesk", "external_reference": "GD-1"}
    assert order["amounts"]["total"] == 2596
    [card] = order["gift_cards"]
    assert card["code"] == "*" * 12 + slow_emulator.card_code(order["id"])[-4:]
    assert (card["balance"], card["currency"]) == (2500, "EUR")


def test_create_records_one_ledger_entry_per_card_with_the_reference(api, gifty_emulator):
    api.create(order_body(2500, quantity=2, reference="GD-7"), key="gd-7")
    assert [(entry.reference, entry.amount) for entry in gifty_emulator.ledger] == [
        ("GD-7", Decimal("25.00")), ("GD-7", Decimal("25.00"))]


def test_create_requires_every_consent(api, gifty_emulator):
    response = api.create(order_body(2500, consent={"consumer_terms": CONSENT["consumer_terms"]}))
    assert details(response) == ["The consent.privacy_policy must be accepted."]
    assert gifty_emulator.ledger == []


def test_create_refuses_an_outdated_consent_version(api, gifty_emulator):
    gifty_emulator.consent["privacy_policy"]["version"] = "2026-01-01"
    response = api.create(order_body(2500))
    assert details(response) == [
        "The consent.privacy_policy.version 2025-03-20 is outdated; accept version 2026-01-01."]


def test_an_order_moves_from_pending_through_processing_to_completed(api, clock):
    order_id = api.create(order_body(2500), key="gd-2").json()["data"]["id"]
    seen = [api.order(order_id).json()["data"]["status"]]
    for seconds in (0.5, 0.5, 1.5, 0.5):  # at 0.5, 1, 2.5 and 3 seconds
        clock.advance(seconds)
        seen.append(api.order(order_id).json()["data"]["status"])
    assert seen == ["pending", "pending", "processing", "processing", "completed"]


def test_a_completed_order_shows_the_full_code(api, gifty_emulator, clock):
    order_id = api.create(order_body(2500), key="gd-3").json()["data"]["id"]
    clock.advance(3)
    [card] = api.order(order_id).json()["data"]["gift_cards"]
    assert card["code"] == gifty_emulator.card_code(order_id)


def test_a_cancelled_order_stays_cancelled(slow_api, slow_emulator):
    order_id = slow_api.create(order_body(2500)).json()["data"]["id"]
    slow_emulator.set_order_status(order_id, "cancelled")
    assert slow_api.order(order_id).json()["data"]["status"] == "cancelled"


def test_an_unknown_order_is_not_found(api):
    response = api.order("or_unknown")
    assert response.status_code == 404 and details(response) == ["The external order or_unknown does not exist."]


def test_an_order_of_another_token_is_not_found(slow_api, slow_emulator):
    order_id = slow_api.create(order_body(2500)).json()["data"]["id"]
    assert Api(slow_api.server, token="other-token").order(order_id).status_code == 404


# --- Gift cards -----------------------------------------------------------------------------------


def test_a_gift_card_of_a_completed_order_is_found_by_its_code(slow_api, slow_emulator):
    order_id = slow_api.create(order_body(4000)).json()["data"]["id"]
    slow_emulator.set_order_status(order_id, "completed")
    card = slow_api.call("GET", f"/v1/giftcards/{slow_emulator.card_code(order_id)}").json()["data"]
    assert (card["balance"], card["currency"], card["is_redeemable"]) == (4000, "EUR", True)
    assert card["id"].startswith("gc_") and card["expires_at"].endswith("+00:00")
    assert card["transactions"][0]["type"] == "issue"


def test_a_gift_card_of_a_running_order_is_not_redeemable_yet(slow_api, slow_emulator):
    order_id = slow_api.create(order_body(4000)).json()["data"]["id"]
    card = slow_api.call("GET", f"/v1/giftcards/{slow_emulator.card_code(order_id)}").json()["data"]
    assert card["is_redeemable"] is False


def test_an_unknown_gift_card_is_not_found(api):
    assert api.call("GET", "/v1/giftcards/AAAABBBBCCCCDDDD").status_code == 404


def test_a_code_with_hyphens_is_refused(api):
    response = api.call("GET", "/v1/giftcards/AAAA-BBBB-CCCC-DDDD")
    assert response.status_code == 422 and "without hyphens" in response.json()["message"]


# --- Idempotency --------------------------------------------------------------------------------


def test_the_same_idempotency_key_replays_the_original_order(slow_api, slow_emulator):
    first = slow_api.create(order_body(2500), key="gd-same")
    slow_emulator.set_order_status(first.json()["data"]["id"], "completed")
    replay = slow_api.create(order_body(2500), key="gd-same")
    assert (replay.status_code, replay.content) == (201, first.content)  # the original answer, as it was
    assert len(slow_emulator.ledger) == 1


def test_the_general_header_replays_too(api, gifty_emulator):
    headers = {"X-Gifty-Idempotency-Key": "gd-general"}
    first = api.create(order_body(2500), headers=dict(headers))
    assert api.create(order_body(2500), headers=dict(headers)).content == first.content
    assert len(gifty_emulator.ledger) == 1


def test_a_key_reused_with_another_body_replays_the_original_answer(api, gifty_emulator):
    first = api.create(order_body(2500, reference="GD-A"), key="gd-reused")
    again = api.create(order_body(9900, reference="GD-B"), key="gd-reused")
    assert again.json()["data"]["metadata"]["external_reference"] == "GD-A"
    assert again.content == first.content and len(gifty_emulator.ledger) == 1


def test_without_a_key_every_create_buys_again(api, gifty_emulator):
    api.create(order_body(2500))
    api.create(order_body(2500))
    assert len(gifty_emulator.ledger) == 2


def test_a_refused_request_does_not_use_up_its_key(api, gifty_emulator):
    assert api.create(order_body(499), key="gd-fix").status_code == 422
    assert api.create(order_body(500), key="gd-fix").status_code == 201
    assert len(gifty_emulator.ledger) == 1


def test_an_idempotency_key_outside_the_documented_pattern_is_refused(api, gifty_emulator):
    response = api.create(order_body(2500), key="not a key!")
    assert response.status_code == 422 and "128 characters" in response.json()["message"]
    assert gifty_emulator.ledger == []


def test_two_different_keys_in_the_two_headers_are_refused(api, gifty_emulator):
    response = api.create(order_body(2500), key="gd-one", headers={"X-Gifty-Idempotency-Key": "gd-two"})
    assert response.status_code == 422 and gifty_emulator.ledger == []


def test_a_key_is_forgotten_after_its_lifetime(api, gifty_emulator, clock):
    api.create(order_body(2500), key="gd-old")
    clock.advance(24 * 3600 - 1)
    api.create(order_body(2500), key="gd-old")
    assert len(gifty_emulator.ledger) == 1  # still within the 24 hours
    clock.advance(1)
    api.create(order_body(2500), key="gd-old")
    assert len(gifty_emulator.ledger) == 2


def test_idempotency_keys_are_per_token(slow_api, slow_emulator):
    slow_api.create(order_body(2500), key="gd-shared")
    Api(slow_api.server, token="other-token").create(order_body(2500), key="gd-shared")
    assert len(slow_emulator.ledger) == 2


# --- Rate limit -----------------------------------------------------------------------------------


def test_requests_over_the_limit_get_429_with_retry_after(gifty_emulator, api):
    gifty_emulator.rate_limit = 3
    statuses = [api.call("GET", "/v1/external-orders/configuration").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.call("GET", "/v1/external-orders/configuration")
    assert response.headers["Retry-After"] == "60"  # the clock stands still: the whole window
    assert response.json()["message"] == "Too Many Attempts."
    assert response.json()["errors"][0]["type"] == "rate_limit_exceeded"


def test_the_default_limit_is_120_requests_a_minute():
    assert GiftyEmulator().rate_limit == 120 and GiftyEmulator().rate_window == 60


def test_the_rate_window_slides(gifty_emulator, api, clock):
    gifty_emulator.rate_limit = 2
    api.call("GET", "/v1/external-orders/configuration")
    clock.advance(30)
    api.call("GET", "/v1/external-orders/configuration")
    assert api.call("GET", "/v1/external-orders/configuration").status_code == 429
    clock.advance(30)  # the first request leaves the window
    assert api.call("GET", "/v1/external-orders/configuration").status_code == 200
    assert api.call("GET", "/v1/external-orders/configuration").status_code == 429


def test_the_rate_limit_is_per_token(slow_emulator, slow_api):
    slow_emulator.rate_limit = 1
    assert slow_api.call("GET", "/v1/external-orders/configuration").status_code == 200
    other = Api(slow_api.server, token="other-token")
    assert other.call("GET", "/v1/external-orders/configuration").status_code == 200


# --- Faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,status", [("http_500", 500), ("http_503", 503)])
def test_server_error_faults_answer_their_status_without_buying(api, gifty_emulator, kind, status):
    gifty_emulator.faults.add(kind, path="/v1/external-orders")
    response = api.create(order_body(2500), key="gd-f")
    assert response.status_code == status and set(response.json()["errors"][0]) == ERROR_KEYS
    assert gifty_emulator.ledger == []


def test_a_429_fault_carries_retry_after(api, gifty_emulator):
    gifty_emulator.faults.add("http_429", retry_after=7)
    response = api.call("GET", "/v1/external-orders/configuration")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_an_html_fault_answers_a_gateway_page(api, gifty_emulator):
    gifty_emulator.faults.add("html")
    response = api.call("GET", "/v1/external-orders/configuration")
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")


def test_drop_before_buys_nothing(api, gifty_emulator):
    gifty_emulator.faults.add("drop_before", path="/v1/external-orders")
    with pytest.raises(requests.ConnectionError):
        api.create(order_body(2500), key="gd-d")
    assert gifty_emulator.ledger == []


def test_drop_after_commit_buys_once_and_a_replay_returns_the_order(api, gifty_emulator):
    gifty_emulator.faults.add("drop_after_commit", method="POST", path="/v1/external-orders")
    with pytest.raises(requests.ConnectionError):
        api.create(order_body(2500), key="gd-lost")
    assert len(gifty_emulator.ledger) == 1
    replay = api.create(order_body(2500), key="gd-lost")
    assert replay.json()["data"]["id"] == gifty_emulator.ledger[0].order_id
    assert len(gifty_emulator.ledger) == 1


def test_timeout_after_commit_buys_once_and_a_replay_returns_the_order(api, gifty_emulator):
    gifty_emulator.faults.add("timeout_after_commit", path="/v1/external-orders", delay=1.0)
    with pytest.raises(requests.Timeout):
        api.create(order_body(2500), key="gd-slow", timeout=0.3)
    assert api.create(order_body(2500), key="gd-slow").json()["data"]["id"] == gifty_emulator.ledger[0].order_id
    assert len(gifty_emulator.ledger) == 1


def test_insufficient_funds_answers_402_on_create_only(api, gifty_emulator):
    gifty_emulator.faults.add("insufficient_funds")
    assert api.preview(order_body(2500)).status_code == 200
    response = api.create(order_body(2500), key="gd-poor")
    assert response.status_code == 402
    assert response.json()["message"] == "The account balance of € 15,00 is insufficient for this order of € 25,00."
    assert gifty_emulator.ledger == []


# --- Recording and test-only endpoints -------------------------------------------------------------


def test_every_api_request_is_recorded_with_its_headers(api, gifty_emulator):
    api.create(order_body(2500), key="gd-rec", headers={"Accept-Language": "nl"})
    last = gifty_emulator.requests[-1]
    assert (last.method, last.path) == ("POST", "/v1/external-orders")
    assert last.headers["Idempotency-Key"] == "gd-rec" and last.headers["Accept-Language"] == "nl"
    assert json.loads(last.body)["metadata"]["external_reference"] == "GD-1"


def test_admin_endpoints_add_faults_cancel_orders_list_the_ledger_and_reset(slow_api, slow_emulator):
    base = f"{slow_api.server.base_url}/_emulator"
    assert requests.post(f"{base}/faults", json={"kind": "http_503", "times": 1}, timeout=5).status_code == 201
    assert slow_api.call("GET", "/v1/external-orders/configuration").status_code == 503
    order_id = slow_api.create(order_body(2500, reference="GD-9")).json()["data"]["id"]
    assert requests.post(f"{base}/orders/{order_id}/cancel", timeout=5).json()["status"] == "cancelled"
    assert slow_api.order(order_id).json()["data"]["status"] == "cancelled"
    [entry] = requests.get(f"{base}/ledger", timeout=5).json()
    assert (entry["amount"], entry["currency"], entry["reference"]) == ("25.00", "EUR", "GD-9")
    assert requests.post(f"{base}/reset", timeout=5).json() == {"reset": True}
    assert slow_emulator.ledger == [] and slow_emulator.requests == []


# --- Demo and Django mount -------------------------------------------------------------------------


def test_the_demo_account_uses_the_demo_token_and_one_card_per_request():
    assert DEMO_ACCOUNT["auth_path"] == "" and DEMO_ACCOUNT["credentials"] == {"api_token": DEMO_API_TOKEN}
    assert DEMO_ACCOUNT["settings"]["max_cards_per_request"] == "1"


def test_the_django_mount_serves_the_demo_emulator(client):
    response = client.get("/emulators/gifty/v1/external-orders/configuration",
                          headers={"Accept": "application/json", "Authorization": f"Bearer {DEMO_API_TOKEN}"})
    assert response.status_code == 200 and response.json()["data"]["supported_currencies"] == ["EUR"]


def test_the_demo_emulator_is_one_gifty_emulator():
    emulator = get_demo_emulator("gifty")
    assert isinstance(emulator, GiftyEmulator) and emulator is get_demo_emulator("gifty")
    assert DEMO_API_TOKEN in emulator.tokens
