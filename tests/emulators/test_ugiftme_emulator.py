"""The UGiftMe emulator, over real HTTP, against seed 004 and DESIGN.md's assumptions."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from emulators.loopback import LoopbackServer
from emulators.registry import get_demo_emulator
from emulators.ugiftme import (
    BOL_CARD,
    DEMO_ACCOUNT,
    DEMO_API_KEY,
    EXPERIENCE_CARD,
    MAGASIN_CARD,
    UNIVERSAL_CARD,
    ApiKey,
    UGiftMeEmulator,
)
from tests.fixtures.emulators_ugiftme import UGIFTME_TEST_API_KEY


class Api:
    """A UGiftMe caller that sends the X-API-Key seed 004 asks for on every request."""

    def __init__(self, server: LoopbackServer, key: str = UGIFTME_TEST_API_KEY) -> None:
        self.server = server
        self.key = key

    def call(self, method: str, path: str, body: Any = None, *, idem: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 5) -> requests.Response:
        sent = {"X-API-Key": self.key} if self.key else {}
        if idem:
            sent["Idempotency-Key"] = idem
        sent.update(headers or {})
        return requests.request(method, f"{self.server.base_url}{path}", json=body, headers=sent,
                                timeout=timeout)

    def order(self, idem: str | None = None, timeout: float = 5, **fields: Any) -> requests.Response:
        return self.call("POST", "/orders", order(**fields), idem=idem, timeout=timeout)

    def bulk(self, orders: list[dict[str, Any]], idem: str | None = None) -> requests.Response:
        return self.call("POST", "/orders/bulk", {"orders": orders}, idem=idem)

    def poll(self, order_request_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/orders/order-requests/{order_request_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def poll_until_finished(self, order_request_id: str) -> dict[str, Any]:
        for _ in range(10):
            data = self.poll(order_request_id)
            if data["status"] in ("succeeded", "failed"):
                return data
        raise AssertionError("the order request never finished")


def order(**overrides: Any) -> dict[str, Any]:
    """DESIGN.md's order body."""
    body = {"productId": BOL_CARD, "amount": 50, "currency": "EUR",
            "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
            "message": "Thank you!", "reference": "GD-1"}
    body.update(overrides)
    return body


@pytest.fixture
def api(ugiftme_server) -> Api:
    return Api(ugiftme_server)


@pytest.fixture
def sync_api(ugiftme_server, ugiftme_emulator) -> Api:
    ugiftme_emulator.async_orders = False
    return Api(ugiftme_server)


# --- Authentication (seed 004: X-API-Key on every request) -----------------------------------


def test_auth_returns_integration_metadata_for_a_valid_key(api):
    response = api.call("GET", "/auth")
    assert response.status_code == 200
    assert response.json()["business"]["name"] == "GiftDesk Test BV"
    assert "success" not in response.json()  # seed 004: no global success envelope


def test_a_request_without_a_key_is_401_missing_api_key(ugiftme_server):
    response = Api(ugiftme_server, key="").call("GET", "/products")
    assert (response.status_code, response.json()) == (401, {"error": "Missing API key"})


def test_a_wrong_key_is_401_invalid_api_key_with_a_reason(ugiftme_server):
    response = Api(ugiftme_server, key="ugm_nope").call("GET", "/auth")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid API key" and response.json()["reason"]


def test_a_revoked_key_is_401_with_the_reason(api, ugiftme_emulator):
    ugiftme_emulator.keys[UGIFTME_TEST_API_KEY].revoked = True
    response = api.call("GET", "/auth")
    assert response.status_code == 401 and "revoked" in response.json()["reason"]


def test_a_caller_outside_the_ip_allow_list_is_403(api, ugiftme_emulator):
    ugiftme_emulator.keys[UGIFTME_TEST_API_KEY].ip_allow_list = ("203.0.113.7",)
    response = api.call("POST", "/orders", order())
    assert response.status_code == 403 and "IP address 127.0.0.1" in response.json()["error"]
    assert ugiftme_emulator.ledger == []


def test_a_caller_inside_the_ip_allow_list_is_served(ugiftme_server):
    emulator = ugiftme_server.app
    emulator.keys[UGIFTME_TEST_API_KEY].ip_allow_list = ("203.0.113.7",)
    response = Api(ugiftme_server).call("GET", "/auth", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 200


def test_auth_is_403_while_the_business_profile_is_incomplete(api, ugiftme_emulator):
    ugiftme_emulator.business_complete = False
    response = api.call("GET", "/auth")
    assert response.status_code == 403 and response.json()["error"] == "Business profile incomplete"


def test_paths_under_the_documented_base_path_are_served_too(api):
    assert api.call("GET", "/api/v1/business/auth").status_code == 200


def test_an_unknown_path_is_404_with_an_error(api):
    response = api.call("GET", "/giftcards")
    assert response.status_code == 404 and response.json()["error"]


# --- Catalog and wallet --------------------------------------------------------------------


def test_products_list_fixed_and_ranged_pricing_in_eur_and_dkk(api):
    products = {p["id"]: p for p in api.call("GET", "/products").json()["products"]}
    assert products[BOL_CARD] == {"id": BOL_CARD, "name": "Bol.com Gift Card", "currency": "EUR",
                                  "denominations": [25, 50, 100]}
    assert products[UNIVERSAL_CARD]["minAmount"] == 10 and products[UNIVERSAL_CARD]["maxAmount"] == 500
    assert products[MAGASIN_CARD]["currency"] == "DKK" and "denominations" in products[MAGASIN_CARD]
    assert products[EXPERIENCE_CARD]["currency"] == "DKK" and "minAmount" in products[EXPERIENCE_CARD]


def test_the_wallet_reports_its_balance_and_currency(api):
    assert api.call("GET", "/wallet").json() == {"balance": 10000, "currency": "EUR"}


def test_the_wallet_pays_each_card_in_its_own_currency_converted(sync_api):
    sync_api.order(amount=50)
    sync_api.order(productId=MAGASIN_CARD, amount=500, currency="DKK", reference="GD-2")
    # 500 DKK at 7.46 DKK per EUR is 67.02 EUR.
    assert sync_api.call("GET", "/wallet").json()["balance"] == pytest.approx(10000 - 50 - 67.02)


# --- Orders, async mode ----------------------------------------------------------------------


def test_an_async_order_is_accepted_with_202_and_an_order_request_id(api):
    response = api.order()
    assert response.status_code == 202
    assert set(response.json()) == {"orderRequestId", "status"} and response.json()["status"] == "queued"
    assert response.headers["X-Business-Orders-Async"] == "true"


def test_an_order_request_moves_queued_processing_succeeded_as_it_is_polled(api, ugiftme_emulator):
    order_request_id = api.order().json()["orderRequestId"]
    first = api.poll(order_request_id)
    assert first["status"] == "processing" and first["result"] is None
    assert ugiftme_emulator.cards_for("GD-1") == 1  # created while processing
    second = api.poll(order_request_id)
    assert second["status"] == "succeeded" and second["errors"] == []
    created = second["result"]["order"]
    assert created["status"] == "completed" and created["reference"] == "GD-1" and created["id"]
    assert created["charged"] == {"amount": 50, "currency": "EUR"}


def test_polling_a_finished_order_request_changes_nothing(api, ugiftme_emulator):
    order_request_id = api.order().json()["orderRequestId"]
    finished = api.poll_until_finished(order_request_id)
    assert api.poll(order_request_id) == finished
    assert len(ugiftme_emulator.ledger) == 1


def test_an_async_bulk_request_results_in_one_order_per_card_with_its_reference(api, ugiftme_emulator):
    order_request_id = api.bulk([order(reference="GD-1"), order(reference="GD-2", amount=100)]).json()["orderRequestId"]
    result = api.poll_until_finished(order_request_id)["result"]
    assert [o["reference"] for o in result["orders"]] == ["GD-1", "GD-2"]
    assert [entry.amount for entry in ugiftme_emulator.ledger] == [Decimal("50"), Decimal("100")]


def test_an_async_order_for_an_amount_the_product_does_not_sell_fails_with_its_error(api, ugiftme_emulator):
    order_request_id = api.order(amount=55).json()["orderRequestId"]
    finished = api.poll_until_finished(order_request_id)
    assert finished["status"] == "failed" and finished["result"] is None
    [error] = finished["errors"]
    assert error["reference"] == "GD-1" and "55 EUR is not available for Bol.com Gift Card" in error["message"]
    assert ugiftme_emulator.ledger == []
    assert api.call("GET", "/wallet").json()["balance"] == 10000  # refunded


def test_an_async_bulk_request_creates_the_good_orders_and_lists_the_bad_ones(api, ugiftme_emulator):
    order_request_id = api.bulk([order(reference="GD-1"), order(reference="GD-2", productId="nope")]).json()[
        "orderRequestId"]
    finished = api.poll_until_finished(order_request_id)
    assert finished["status"] == "succeeded"
    assert [o["reference"] for o in finished["result"]["orders"]] == ["GD-1"]
    assert [e["reference"] for e in finished["errors"]] == ["GD-2"]
    assert [entry.reference for entry in ugiftme_emulator.ledger] == ["GD-1"]


def test_an_async_bulk_request_with_only_bad_orders_fails(api):
    order_request_id = api.bulk([order(reference="GD-1", amount=1), order(reference="GD-2", amount=2)]).json()[
        "orderRequestId"]
    finished = api.poll_until_finished(order_request_id)
    assert finished["status"] == "failed" and finished["result"] == {"orders": []}
    assert len(finished["errors"]) == 2


def test_an_unknown_order_request_is_404(api):
    response = api.call("GET", "/orders/order-requests/66b2ffffffffffffffffffff")
    assert response.status_code == 404 and response.json()["error"] == "Order request not found"


def test_another_keys_order_request_is_404(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.keys["ugm_other"] = ApiKey("ugm_other")
    order_request_id = Api(ugiftme_server).order().json()["orderRequestId"]
    assert Api(ugiftme_server, key="ugm_other").call(
        "GET", f"/orders/order-requests/{order_request_id}").status_code == 404


# --- Orders, sync mode -----------------------------------------------------------------------


def test_a_sync_order_is_created_with_201_and_completed(sync_api, ugiftme_emulator):
    response = sync_api.order()
    assert response.status_code == 201 and response.headers["X-Business-Orders-Async"] == "false"
    created = response.json()["order"]
    assert created["status"] == "completed" and created["reference"] == "GD-1"
    assert ugiftme_emulator.cards_for("GD-1") == 1


def test_a_sync_bulk_request_answers_every_created_order(sync_api, ugiftme_emulator):
    response = sync_api.bulk([order(reference="GD-1"), order(reference="GD-2")])
    assert response.status_code == 201
    assert [o["reference"] for o in response.json()["orders"]] == ["GD-1", "GD-2"]
    assert len(ugiftme_emulator.ledger) == 2


def test_a_sync_bulk_request_with_one_bad_order_creates_nothing(sync_api, ugiftme_emulator):
    response = sync_api.bulk([order(reference="GD-1"), order(reference="GD-2", amount=55)])
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid order"
    assert "orders[1] (reference GD-2)" in response.json()["message"]
    assert ugiftme_emulator.ledger == []
    assert sync_api.call("GET", "/wallet").json()["balance"] == 10000


def test_an_order_is_looked_up_by_id(sync_api):
    created = sync_api.order().json()["order"]
    response = sync_api.call("GET", f"/orders/{created['id']}")
    assert response.status_code == 200 and response.json()["order"]["id"] == created["id"]


def test_an_unknown_order_is_404(api):
    response = api.call("GET", "/orders/66b2ffffffffffffffffffff")
    assert (response.status_code, response.json()["error"]) == (404, "Order not found")


def test_a_pending_sync_order_completes_as_it_is_looked_up(sync_api, ugiftme_emulator):
    ugiftme_emulator.sync_order_status = "pending"
    created = sync_api.order().json()["order"]
    assert created["status"] == "pending"
    statuses = [sync_api.call("GET", f"/orders/{created['id']}").json()["order"]["status"] for _ in range(2)]
    assert statuses == ["pending", "completed"]


# --- Validation (400) --------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, words", [
    ({"recipient": {"name": "Ada", "email": "not-an-email"}}, "recipient.email"),
    ({"recipient": {"email": "ada@example.com"}}, "recipient.name"),
    ({"productId": ""}, "productId is required"),
    ({"amount": 0}, "amount must be a positive number"),
    ({"amount": 12.345}, "at most 2 decimals"),
    ({"currency": "USD"}, "currency 'USD' is not supported"),
])
def test_an_order_body_with_a_bad_field_is_400_with_error_and_message(api, ugiftme_emulator, overrides, words):
    response = api.order(**overrides)
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed" and words in response.json()["message"]
    assert ugiftme_emulator.ledger == []


def test_a_bulk_body_without_orders_is_400(api):
    response = api.call("POST", "/orders/bulk", {"orders": []})
    assert response.status_code == 400 and "non-empty array" in response.json()["message"]


def test_a_bulk_request_over_100_orders_is_400(api):
    response = api.bulk([order(reference=f"GD-{i}") for i in range(101)])
    assert response.status_code == 400 and "at most 100 orders" in response.json()["message"]


def test_a_bad_bulk_order_is_named_by_its_position(api):
    response = api.bulk([order(), order(recipient={"name": "Bo", "email": ""})])
    assert response.status_code == 400 and "orders[1].recipient.email" in response.json()["message"]


# --- Funds (402) -------------------------------------------------------------------------------


def test_an_order_the_wallet_cannot_pay_is_402_with_required_available_and_currency(api, ugiftme_emulator):
    ugiftme_emulator.wallet_balance = Decimal("12.00")
    response = api.order(amount=50)
    assert response.status_code == 402
    assert response.json() == {"error": "Insufficient funds", "required": 50, "available": 12, "currency": "EUR"}
    assert ugiftme_emulator.ledger == [] and ugiftme_emulator.wallet_balance == Decimal("12.00")


def test_a_bulk_request_is_paid_as_a_whole(sync_api, ugiftme_emulator):
    ugiftme_emulator.wallet_balance = Decimal("120.00")
    response = sync_api.bulk([order(reference="GD-1", amount=100), order(reference="GD-2", amount=25)])
    assert response.status_code == 402 and response.json()["required"] == 125
    assert ugiftme_emulator.ledger == []


def test_the_insufficient_funds_fault_answers_402_on_an_order(api, ugiftme_emulator):
    ugiftme_emulator.faults.add("insufficient_funds")
    assert api.call("GET", "/wallet").status_code == 200  # only an order can lack funds
    response = api.order(amount=50)
    assert response.status_code == 402
    body = response.json()
    assert body["required"] == 50 and body["available"] < 50 and body["currency"] == "EUR"


# --- Idempotency (seed 004) ----------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_answer_and_buys_once(sync_api, ugiftme_emulator):
    first = sync_api.order(idem="gd-1")
    second = sync_api.order(idem="gd-1")
    assert second.status_code == 201 and second.json() == first.json()
    assert ugiftme_emulator.cards_for("GD-1") == 1


def test_an_async_replay_returns_the_same_order_request(api, ugiftme_emulator):
    first = api.order(idem="gd-1").json()["orderRequestId"]
    second = api.order(idem="gd-1")
    assert second.status_code == 202 and second.json()["orderRequestId"] == first
    api.poll_until_finished(first)
    assert ugiftme_emulator.cards_for("GD-1") == 1


def test_the_same_key_with_another_body_is_400(api, ugiftme_emulator):
    api.order(idem="gd-1", amount=50)
    response = api.order(idem="gd-1", amount=100)
    assert response.status_code == 400 and "Idempotency" in response.json()["error"]


def test_the_same_key_on_the_bulk_path_is_another_request(api):
    api.order(idem="gd-1")
    assert api.bulk([order()], idem="gd-1").status_code == 400


def test_a_refused_request_does_not_use_up_its_key(api, ugiftme_emulator):
    ugiftme_emulator.wallet_balance = Decimal("1.00")
    assert api.order(idem="gd-1").status_code == 402
    ugiftme_emulator.wallet_balance = Decimal("100.00")
    assert api.order(idem="gd-1").status_code == 202


def test_keys_of_different_api_keys_do_not_meet(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.keys["ugm_other"] = ApiKey("ugm_other")
    Api(ugiftme_server).order(idem="gd-1", amount=50)
    assert Api(ugiftme_server, key="ugm_other").order(idem="gd-1", amount=100).status_code == 202


# --- Rate limits (429) ---------------------------------------------------------------------


def test_the_rate_limit_answers_429_with_standard_headers(ugiftme_server, ugiftme_emulator):
    ugiftme_emulator.rate_limit_per_minute = 2
    api = Api(ugiftme_server)
    assert [api.call("GET", "/auth").status_code for _ in range(3)] == [200, 200, 429]
    limited = api.call("GET", "/auth")
    assert limited.json()["error"].startswith("Too many")
    assert 0 < int(limited.headers["Retry-After"]) <= 61
    assert int(limited.headers["X-RateLimit-Reset"]) > time.time()
    assert limited.headers["X-RateLimit-Remaining"] == "0"


@pytest.mark.parametrize("style, header", [("reset-epoch", "epoch"), ("reset-seconds", "seconds")])
def test_a_429_can_say_when_to_retry_with_x_ratelimit_reset_only(api, ugiftme_emulator, style, header):
    ugiftme_emulator.rate_limit_headers = style
    ugiftme_emulator.faults.add("http_429", retry_after=7)
    response = api.call("GET", "/products")
    assert response.status_code == 429 and "Retry-After" not in response.headers
    reset = int(response.headers["X-RateLimit-Reset"])
    assert (reset > time.time()) if header == "epoch" else reset == 7


# --- Faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, status", [("http_500", 500), ("http_503", 503)])
def test_server_error_faults_answer_json_errors_and_buy_nothing(api, ugiftme_emulator, kind, status):
    ugiftme_emulator.faults.add(kind, path="/orders")
    response = api.order()
    assert response.status_code == status and response.json()["error"]
    assert ugiftme_emulator.ledger == [] and ugiftme_emulator.wallet_balance == Decimal("10000.00")


def test_the_429_fault_carries_retry_after(api, ugiftme_emulator):
    ugiftme_emulator.faults.add("http_429", retry_after=7)
    response = api.call("GET", "/wallet")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_the_html_fault_answers_a_gateway_page(api, ugiftme_emulator):
    ugiftme_emulator.faults.add("html")
    response = api.call("GET", "/products")
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")


def test_drop_before_closes_the_connection_and_buys_nothing(sync_api, ugiftme_emulator):
    ugiftme_emulator.faults.add("drop_before", path="/orders")
    with pytest.raises(requests.ConnectionError):
        sync_api.order(idem="gd-1")
    assert ugiftme_emulator.ledger == []
    assert sync_api.order(idem="gd-1").status_code == 201


def test_drop_after_commit_buys_once_and_a_replay_returns_the_order(sync_api, ugiftme_emulator):
    ugiftme_emulator.faults.add("drop_after_commit", path="/orders")
    with pytest.raises(requests.ConnectionError):
        sync_api.order(idem="gd-1")
    assert ugiftme_emulator.cards_for("GD-1") == 1
    replay = sync_api.order(idem="gd-1")
    assert replay.json()["order"]["id"] == ugiftme_emulator.ledger[0].card_id
    assert ugiftme_emulator.cards_for("GD-1") == 1


def test_timeout_after_commit_accepts_once_and_a_replay_returns_the_same_request(api, ugiftme_emulator):
    ugiftme_emulator.faults.add("timeout_after_commit", path="/orders", delay=1.0)
    with pytest.raises(requests.Timeout):
        api.order(idem="gd-1", timeout=0.3)
    replay = api.order(idem="gd-1").json()["orderRequestId"]
    api.poll_until_finished(replay)
    assert ugiftme_emulator.cards_for("GD-1") == 1


# --- Recording and test-only endpoints -------------------------------------------------------


def test_every_api_request_is_recorded_with_its_headers_and_body(api, ugiftme_emulator):
    api.order(idem="gd-1")
    last = ugiftme_emulator.requests[-1]
    assert (last.method, last.path) == ("POST", "/orders")
    assert last.headers["X-API-Key"] == UGIFTME_TEST_API_KEY and last.headers["Idempotency-Key"] == "gd-1"
    assert json.loads(last.body)["reference"] == "GD-1"


def test_admin_endpoints_add_faults_switch_modes_list_the_ledger_and_reset(api, ugiftme_server, ugiftme_emulator):
    base = f"{ugiftme_server.base_url}/_emulator"
    assert requests.post(f"{base}/faults", json={"kind": "http_503", "path": "/orders"}, timeout=5).status_code == 201
    assert api.order().status_code == 503
    settings = requests.post(f"{base}/settings", json={"async": False, "wallet_balance": "500"}, timeout=5).json()
    assert settings["async"] is False and settings["wallet_balance"] == "500.00"
    assert api.order().status_code == 201
    [entry] = requests.get(f"{base}/ledger", timeout=5).json()
    assert entry["reference"] == "GD-1" and entry["amount"] == "50" and entry["currency"] == "EUR"
    assert requests.post(f"{base}/reset", timeout=5).json() == {"reset": True}
    assert ugiftme_emulator.ledger == [] and ugiftme_emulator.requests == []
    assert ugiftme_emulator.wallet_balance == Decimal("10000.00")


# --- Django mount ------------------------------------------------------------------------------


def test_the_django_mount_serves_the_demo_emulator(client):
    response = client.get("/emulators/ugiftme/auth", headers={"X-API-Key": DEMO_API_KEY})
    assert response.status_code == 200 and response.json()["business"]["name"] == "GiftDesk Demo BV"


def test_the_demo_emulator_is_an_async_ugiftme_emulator_with_the_demo_key():
    emulator = get_demo_emulator("ugiftme")
    assert isinstance(emulator, UGiftMeEmulator) and emulator is get_demo_emulator("ugiftme")
    assert emulator.async_orders and DEMO_API_KEY in emulator.keys
    assert DEMO_ACCOUNT["credentials"] == {"api_key": DEMO_API_KEY} and DEMO_ACCOUNT["auth_path"] == ""
