"""The GoGift emulator, over real HTTP, against seeds 000 and 001."""

from __future__ import annotations

import base64
import json
import socket
from decimal import Decimal
from typing import Any

import pytest
import requests

from emulators.clock import ManualClock
from emulators.faults import FaultPlan
from emulators.gogift import GoGiftEmulator
from emulators.loopback import EmulatorRequest, LoopbackServer
from emulators.oauth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from emulators.registry import get_demo_emulator
from tests.fixtures.emulators_gogift import GOGIFT_TEST_CLIENT_ID, GOGIFT_TEST_CLIENT_SECRET


SANDBOX_CARD, SANDBOX_SKU = "256314825926729728", "AEC9A553"  # seed 000
PRODUCTION_CARD, PRODUCTION_SKU = "256472009205907456", "FF79DB80"  # seed 000
SPA_DAY, SPA_DAY_250, SPA_DAY_500 = "256314825926730112", "5B1C0E2A", "5B1C0E2B"
EURO_CARD, EURO_SKU = "256314825926731136", "C3D4E5F6"
LANGUAGES = ["en", "da", "sv", "no", "fi", "de", "ru", "fr", "nl", "it", "es",
             "pl", "cs", "ro", "hu", "bg", "pt", "ja", "el", "tr", "sk", "sl"]
BUYER = {  # seed 000, step 2
    "accountId": "328685355341950976",
    "accountType": "B2BDepartment",
    "name": "YourCompany A/S",
    "email": "contact@yourcompany.dk",
    "phone": "+4500000000",
    "address": {"line1": "Street 1", "city": "City", "countryCode": "DK", "postCode": "0000"},
}


# --- Helpers ---------------------------------------------------------------------------------


def request_token(server: LoopbackServer, **form: str) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": GOGIFT_TEST_CLIENT_ID,
            "client_secret": GOGIFT_TEST_CLIENT_SECRET, **form}
    return requests.post(f"{server.base_url}/connect/token", data=data, timeout=5)


class Api:
    """A GoGift caller that sends what seed 000 says every request needs."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.token = request_token(server).json()["access_token"]

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None,
             timeout: float = 5, headers: dict[str, str] | None = None) -> requests.Response:
        sent = {"Accept": "application/json", "Authorization": f"Bearer {self.token}"}
        if key:
            sent["Idempotency-Key"] = key
        sent.update(headers or {})
        return requests.request(method, f"{self.server.base_url}{path}", json=body,
                                headers=sent, timeout=timeout)

    def new_basket(self) -> str:
        return self.call("POST", "/baskets", {"salesChannelId": "109"}).json()["id"]

    def update(self, basket_id: str, lines: list[dict], *, key: str | None = None,
               reference: str | None = "lead-1") -> requests.Response:
        body: dict[str, Any] = {"id": basket_id, "paymentCurrency": "DKK", "doClearProducts": False,
                                "buyer": BUYER, "addProducts": lines}
        if reference is not None:
            body["reference"] = reference
        return self.call("PUT", "/baskets", body, key=key)

    def finalize(self, basket_id: str, *, key: str | None = None, timeout: float = 5,
                 payment_method: str = "InvoiceByFinance") -> requests.Response:
        body = {"basketId": basket_id, "paymentMethod": payment_method, "countryCode": "DK"}
        return self.call("POST", "/baskets/finalize", body, key=key, timeout=timeout)

    def filled_basket(self, *lines: dict) -> str:
        basket_id = self.new_basket()
        assert self.update(basket_id, list(lines or [card_line()])).status_code == 200
        return basket_id


def card_line(**overrides: Any) -> dict[str, Any]:
    line = {"deliveryMethod": "Email", "recipientName": "Ada Lovelace",
            "recipientEmail": "ada@example.com", "stockKeepingUnit": SANDBOX_SKU,
            "productId": SANDBOX_CARD, "quantity": 1, "giftcardValue": 50,
            "valueCurrency": "DKK", "reference": "order-1"}
    line.update(overrides)
    return line


def response_status(response: requests.Response) -> dict[str, Any]:
    return response.json()["responseStatus"]


@pytest.fixture
def api(gogift_server: LoopbackServer) -> Api:
    return Api(gogift_server)


@pytest.fixture
def production_api(gogift_production_server: LoopbackServer) -> Api:
    return Api(gogift_production_server)


# --- Token endpoint --------------------------------------------------------------------------


def test_token_is_issued_for_client_credentials_in_the_form(gogift_server):
    response = request_token(gogift_server)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"


def test_token_is_issued_for_client_credentials_in_basic_auth(gogift_server):
    basic = base64.b64encode(f"{GOGIFT_TEST_CLIENT_ID}:{GOGIFT_TEST_CLIENT_SECRET}".encode()).decode()
    response = requests.post(f"{gogift_server.base_url}/connect/token",
                             data={"grant_type": "client_credentials"},
                             headers={"Authorization": f"Basic {basic}"}, timeout=5)
    assert response.status_code == 200 and response.json()["access_token"]


def test_token_endpoint_answers_invalid_client_for_a_wrong_secret(gogift_server):
    response = request_token(gogift_server, client_secret="wrong")
    assert response.status_code == 400
    assert response.text == '{"error":"invalid_client"}'  # seed 000, byte for byte


def test_token_endpoint_answers_invalid_client_for_an_unknown_client(gogift_server):
    response = request_token(gogift_server, client_id="someone-else")
    assert (response.status_code, response.json()) == (400, {"error": "invalid_client"})


def test_token_endpoint_answers_unsupported_grant_type_for_another_grant(gogift_server):
    response = request_token(gogift_server, grant_type="password")
    assert (response.status_code, response.json()) == (400, {"error": "unsupported_grant_type"})


# --- Authentication and content negotiation --------------------------------------------------


def test_api_call_without_a_token_is_unauthorized(gogift_server):
    response = requests.post(f"{gogift_server.base_url}/baskets", json={"salesChannelId": "109"},
                             headers={"Accept": "application/json"}, timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response_status(response)["errorCode"] == "Unauthorized"


def test_api_call_with_an_expired_token_is_unauthorized(api, gogift_emulator):
    gogift_emulator.expire_all_tokens()
    assert api.call("POST", "/baskets", {"salesChannelId": "109"}).status_code == 401


def test_token_expires_after_its_lifetime(gogift_emulator):
    gogift_emulator.token_lifetime = 0
    with LoopbackServer(gogift_emulator) as server:
        assert Api(server).call("POST", "/products/filter", {}).status_code == 401


def test_a_token_lasts_an_hour_on_the_emulators_clock():
    clock = ManualClock()
    emulator = GoGiftEmulator(clients={GOGIFT_TEST_CLIENT_ID: GOGIFT_TEST_CLIENT_SECRET}, clock=clock)
    with LoopbackServer(emulator) as server:
        api = Api(server)
        clock.advance(3600 - 1)
        assert api.call("POST", "/products/filter", {}).status_code == 200
        clock.advance(1)
        assert api.call("POST", "/products/filter", {}).status_code == 401


def test_api_answers_html_when_the_accept_header_is_missing(api):
    response = api.call("POST", "/baskets", {"salesChannelId": "109"}, headers={"Accept": ""})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html" in response.text


def test_api_answers_html_when_accept_is_only_a_wildcard(api):
    response = api.call("POST", "/products/filter", {}, headers={"Accept": "*/*"})
    assert response.headers["Content-Type"].startswith("text/html")


# --- Products --------------------------------------------------------------------------------


def test_product_filter_pages_through_the_whole_catalog(api, gogift_emulator):
    first = api.call("POST", "/products/filter", {"salesChannel": "109", "paging": {"perPage": 2, "page": 1}}).json()
    total_pages = first["pagingInfo"]["totalPages"]
    assert first["pagingInfo"] == {"totalItems": len(gogift_emulator.product_ids()), "totalPages": total_pages,
                                   "perPage": 2, "page": 1}
    assert total_pages >= 3
    seen = []
    for page in range(1, total_pages + 1):
        body = api.call("POST", "/products/filter", {"paging": {"perPage": 2, "page": page}}).json()
        assert body["pagingInfo"]["page"] == page and body["responseStatus"] == {}
        assert 1 <= len(body["products"]) <= 2
        seen += [product["id"] for product in body["products"]]
    assert seen == gogift_emulator.product_ids()


def test_product_filter_by_get_without_body_uses_the_default_paging(api):
    body = api.call("GET", "/products/filter").json()
    assert body["pagingInfo"]["perPage"] == 50 and body["pagingInfo"]["page"] == 1
    assert len(body["products"]) == body["pagingInfo"]["totalItems"]


def test_product_filter_lists_products_with_localized_strings(api):
    product = api.call("POST", "/products/filter", {}).json()["products"][0]
    assert set(product) == {"availableDeliveryMethods", "id", "redeemableInCountries", "title", "shortDescription"}
    assert list(product["title"]) == LANGUAGES and product["title"]["sv"] is None


def test_product_filter_keeps_only_the_requested_delivery_method(api):
    products = api.call("POST", "/products/filter", {"withDeliveryMethod": "Sms"}).json()["products"]
    assert products and all("Sms" in p["availableDeliveryMethods"] for p in products)


def test_product_by_id_describes_a_ranged_sku(api):
    body = api.call("GET", f"/products/{SANDBOX_CARD}").json()
    assert body["id"] == SANDBOX_CARD and body["responseStatus"] == {}
    [method] = body["deliveryMethods"]
    assert method["deliveryMethod"] == "Email"
    assert method["inventory"]["inventoryEntries"] == [{
        "sku": SANDBOX_SKU, "priceCurrency": "DKK", "salesPriceNoTax": None,
        "salesPriceMinNoTax": {"dkk": 50}, "salesPriceStepNoTax": {"dkk": 10}, "salesPriceMaxNoTax": {"dkk": 5000},
    }]


def test_product_by_id_describes_fixed_price_skus(api):
    entries = api.call("GET", f"/products/{SPA_DAY}").json()["deliveryMethods"][0]["inventory"]["inventoryEntries"]
    assert [(e["sku"], e["salesPriceNoTax"], e["salesPriceMinNoTax"]) for e in entries] == [
        (SPA_DAY_250, {"dkk": 250}, None), (SPA_DAY_500, {"dkk": 500}, None)]


def test_product_by_id_answers_404_for_an_unknown_product(api):
    response = api.call("GET", "/products/123")
    assert response.status_code == 404
    assert response_status(response)["errorCode"] == "NotFound"


# --- Baskets ---------------------------------------------------------------------------------


def test_created_basket_is_empty_and_shopping(api):
    body = api.call("POST", "/baskets", {"salesChannelId": "109"}).json()
    assert body["deliveries"] == [] and body["purchasePhase"] == "Shopping"
    assert body["id"] and body["salesChannelId"] == "109" and body["createdAt"].endswith("Z")
    assert body["totalPaymentAmountWithTax"] == 0 and body["responseStatus"] == {}


def test_update_adds_every_line_with_its_reference_and_totals(api):
    basket_id = api.new_basket()
    response = api.update(basket_id, [
        card_line(giftcardValue=250, quantity=2, reference="order-1"),
        card_line(productId=SPA_DAY, stockKeepingUnit=SPA_DAY_500, giftcardValue=500, reference="order-2"),
    ])
    assert response.status_code == 200
    body = response.json()
    lines = [line for delivery in body["deliveries"] for line in delivery["productLines"]]
    assert [(line["reference"], line["quantity"], line["giftcardValue"]) for line in lines] == [
        ("order-1", 2, 250), ("order-2", 1, 500)]
    assert lines[0]["totalPaymentAmountWithDiscountNoTax"] == 500
    assert body["totalPaymentAmountWithTax"] == 1000 and body["reference"] == "lead-1"
    assert body["buyer"]["accountType"] == "B2BDepartment"


def test_update_clears_earlier_lines_when_asked(api):
    basket_id = api.filled_basket(card_line(giftcardValue=60))
    body = api.call("PUT", "/baskets", {"id": basket_id, "doClearProducts": True,
                                        "addProducts": [card_line(giftcardValue=70)]}).json()
    assert [d["productLines"][0]["giftcardValue"] for d in body["deliveries"]] == [70]


def test_full_flow_places_an_order_and_records_one_ledger_entry_per_card(api, gogift_emulator):
    basket_id = api.filled_basket(card_line(giftcardValue=100, quantity=2, reference="order-1"),
                                  card_line(giftcardValue=60, reference="order-2"))
    response = api.finalize(basket_id)
    assert response.status_code == 200
    body = response.json()
    assert body["nextStep"] == "ShowConfirmationPage" and body["paymentWindowUrl"] is None
    assert body["orderId"].isdigit() and body["publicOrderId"].startswith("GG-")
    assert [(e.reference, e.amount, e.order_id) for e in gogift_emulator.ledger] == [
        ("order-1", Decimal("100"), body["orderId"]), ("order-1", Decimal("100"), body["orderId"]),
        ("order-2", Decimal("60"), body["orderId"])]
    assert gogift_emulator.ledger[0].extra["basket_reference"] == "lead-1"


def test_finalize_accepts_the_lowercase_payment_method_of_the_seed_example(api, gogift_emulator):
    response = api.finalize(api.filled_basket(), payment_method="invoicebyfinance")
    assert response.status_code == 200 and len(gogift_emulator.ledger) == 1


@pytest.mark.parametrize("value", [55, 40, 5010])
def test_update_refuses_a_value_outside_the_range_rules(api, value):
    response = api.update(api.new_basket(), [card_line(giftcardValue=value)])
    assert response.status_code == 400
    status = response_status(response)
    assert status["errorCode"] == "ValidationException"
    assert status["message"] == (f"giftcardValue {value} is not valid for product {SANDBOX_CARD} "
                                 f"(The Global Gift Card), SKU {SANDBOX_SKU}: minimum 50, maximum 5000, step 10")
    assert [e["fieldName"] for e in status["errors"]] == ["addProducts[0].giftcardValue"]


def test_update_refuses_a_fixed_price_value_that_is_not_the_price(api):
    line = card_line(productId=SPA_DAY, stockKeepingUnit=SPA_DAY_250, giftcardValue=300)
    status = response_status(api.update(api.new_basket(), [line]))
    assert "fixed value of 250 DKK" in status["message"]


def test_update_refuses_a_sku_of_another_product(api):
    status = response_status(api.update(api.new_basket(), [card_line(stockKeepingUnit=SPA_DAY_250)]))
    assert status["errors"][0]["fieldName"] == "addProducts[0].stockKeepingUnit"


def test_update_refuses_a_production_product_id_in_the_sandbox(api):
    line = card_line(productId=PRODUCTION_CARD, stockKeepingUnit=PRODUCTION_SKU)
    status = response_status(api.update(api.new_basket(), [line]))
    assert status["errors"][0]["fieldName"] == "addProducts[0].productId"
    assert "does not exist in this environment" in status["message"]


def test_update_requires_a_recipient_email_for_email_delivery(api):
    status = response_status(api.update(api.new_basket(), [card_line(recipientEmail=None)]))
    assert status["errors"][0]["fieldName"] == "addProducts[0].recipientEmail"


def test_update_refuses_a_value_currency_other_than_the_skus(api):
    status = response_status(api.update(api.new_basket(), [card_line(valueCurrency="EUR")]))
    assert status["errors"][0]["fieldName"] == "addProducts[0].valueCurrency"


def test_update_with_one_bad_line_changes_nothing(api):
    basket_id = api.new_basket()
    response = api.update(basket_id, [card_line(), card_line(giftcardValue=55), card_line(quantity=0)])
    assert response.status_code == 400
    assert [e["fieldName"] for e in response_status(response)["errors"]] == [
        "addProducts[1].giftcardValue", "addProducts[2].quantity"]
    assert "(and 1 more error)" in response_status(response)["message"]
    assert api.update(basket_id, []).json()["deliveries"] == []


def test_update_converts_a_euro_card_into_the_payment_currency(api):
    body = api.update(api.new_basket(), [card_line(productId=EURO_CARD, stockKeepingUnit=EURO_SKU,
                                                   giftcardValue=10, valueCurrency="EUR")]).json()
    assert body["totalPaymentAmountWithTax"] == 74.6


def test_update_of_an_unknown_basket_answers_404_in_the_basket_envelope(api):
    response = api.update("999", [card_line()])
    assert response.status_code == 404
    assert response.json()["id"] is None and response_status(response)["errorCode"] == "NotFound"


def test_update_of_a_finalized_basket_is_refused(api):
    basket_id = api.filled_basket()
    api.finalize(basket_id)
    response = api.update(basket_id, [card_line()])
    assert response.status_code == 400 and "already been finalized" in response_status(response)["message"]


# --- Finalize --------------------------------------------------------------------------------


def test_finalize_without_a_reference_is_refused_in_production(production_api, gogift_production_emulator):
    basket_id = production_api.new_basket()
    line = card_line(productId=PRODUCTION_CARD, stockKeepingUnit=PRODUCTION_SKU)
    assert production_api.update(basket_id, [line], reference=None).status_code == 200
    response = production_api.finalize(basket_id)
    assert response.status_code == 400
    assert response_status(response)["message"] == (
        "The basket require order reference, but the order reference is not supplied")
    assert gogift_production_emulator.ledger == []


def test_finalize_with_a_reference_succeeds_in_production(production_api):
    basket_id = production_api.new_basket()
    line = card_line(productId=PRODUCTION_CARD, stockKeepingUnit=PRODUCTION_SKU)
    production_api.update(basket_id, [line], reference="lead-42")
    assert production_api.finalize(basket_id).status_code == 200


def test_finalize_without_a_reference_succeeds_in_the_sandbox(api):
    basket_id = api.new_basket()
    api.update(basket_id, [card_line()], reference=None)
    assert api.finalize(basket_id).status_code == 200


def test_finalize_of_an_empty_basket_is_refused(api):
    response = api.finalize(api.new_basket())
    assert response.status_code == 400 and "empty" in response_status(response)["message"]


def test_finalize_by_invoice_needs_a_b2b_department_buyer(api):
    basket_id = api.new_basket()
    api.call("PUT", "/baskets", {"id": basket_id, "addProducts": [card_line()]})
    response = api.finalize(basket_id)
    assert response.status_code == 400
    assert [e["fieldName"] for e in response_status(response)["errors"]] == ["buyer.accountId", "buyer.accountType"]


def test_finalize_again_with_a_new_key_never_buys_twice(api, gogift_emulator):
    basket_id = api.filled_basket()
    assert api.finalize(basket_id, key="k-1").status_code == 200
    response = api.finalize(basket_id, key="k-2")
    assert response.status_code == 400
    assert "already been finalized" in response_status(response)["message"]
    assert len(gogift_emulator.ledger) == 1


# --- Idempotency (seed 001) ------------------------------------------------------------------


def test_update_replayed_with_the_same_key_and_body_adds_nothing(api):
    basket_id = api.new_basket()
    first = api.update(basket_id, [card_line()], key="upd-1")
    again = api.update(basket_id, [card_line()], key="upd-1")
    assert again.status_code == 200 and again.content == first.content
    assert len(api.update(basket_id, []).json()["deliveries"]) == 1


def test_finalize_replayed_with_the_same_key_returns_the_same_order(api, gogift_emulator):
    basket_id = api.filled_basket()
    first = api.finalize(basket_id, key="fin-1")
    again = api.finalize(basket_id, key="fin-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert len(gogift_emulator.ledger) == 1


def test_same_key_with_another_body_answers_the_seeds_mismatch_error(api):
    basket_id = api.new_basket()
    api.update(basket_id, [card_line()], key="k")
    response = api.update(basket_id, [card_line(giftcardValue=60)], key="k")
    assert response.status_code == 400
    assert response.json() == {
        "totalTaxAmount": 0, "totalPaymentAmountWithDiscountNoTax": 0, "totalPurchaseAmountWithTax": 0,
        "totalPaymentAmountWithTax": 0, "deliveries": None, "payments": None, "paymentCurrency": None,
        "buyer": None, "userIdMakingTheBasket": None, "salesChannelId": None, "lastUpdatedAt": None,
        "createdAt": None, "publicOrderId": None, "purchasePhase": None, "id": None, "reference": None,
        "responseStatus": {
            "errorCode": "ArgumentException",
            "message": 'There is a mismatch between what we have encountered before as a request body and '
                       'what is being sent for idempotency key "k". Please ensure that the provided request '
                       'body does not change for a request with an already provided idempotency key.',
            "stackTrace": None, "errors": [], "meta": None,
        },
    }


def test_same_body_in_another_key_order_is_a_replay_not_a_mismatch(api):
    basket_id = api.new_basket()
    body = {"id": basket_id, "addProducts": [card_line()], "reference": "r"}
    api.call("PUT", "/baskets", body, key="k")
    reordered = dict(reversed(list(body.items())))
    assert api.call("PUT", "/baskets", reordered, key="k").status_code == 200


def test_a_refused_request_does_not_use_up_its_key(api):
    basket_id = api.new_basket()
    assert api.update(basket_id, [card_line(giftcardValue=55)], key="k").status_code == 400
    assert api.update(basket_id, [card_line(giftcardValue=50)], key="k").status_code == 200


def test_idempotency_keys_are_scoped_per_client(api, gogift_emulator, gogift_server):
    gogift_emulator.clients["other-client"] = "other-secret"
    other = Api.__new__(Api)
    other.server = gogift_server
    other.token = request_token(gogift_server, client_id="other-client", client_secret="other-secret").json()["access_token"]
    api.update(api.new_basket(), [card_line()], key="shared")
    assert other.update(other.new_basket(), [card_line(giftcardValue=60)], key="shared").status_code == 200


# --- Faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,status", [("http_500", 500), ("http_503", 503)])
def test_server_error_faults_answer_their_status_without_buying(api, gogift_emulator, kind, status):
    basket_id = api.filled_basket()
    gogift_emulator.faults.add(kind, path="/baskets/finalize")
    response = api.finalize(basket_id)
    assert response.status_code == status and response_status(response)["errorCode"]
    assert gogift_emulator.ledger == [] and gogift_emulator.faults.injected[kind] == 1


def test_rate_limit_fault_answers_429_with_retry_after(api, gogift_emulator):
    gogift_emulator.faults.add("http_429", retry_after=7)
    response = api.call("POST", "/products/filter", {})
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_html_fault_answers_a_gateway_page(api, gogift_emulator):
    gogift_emulator.faults.add("html")
    response = api.call("POST", "/baskets", {"salesChannelId": "109"})
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")


def test_faults_without_a_path_leave_the_token_endpoint_alone(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("http_500")
    assert request_token(gogift_server).status_code == 200


def test_drop_before_closes_the_connection_and_buys_nothing(api, gogift_emulator):
    basket_id = api.filled_basket()
    gogift_emulator.faults.add("drop_before", path="/baskets/finalize")
    with pytest.raises(requests.ConnectionError):
        api.finalize(basket_id, key="fin")
    assert gogift_emulator.ledger == []
    assert api.finalize(basket_id, key="fin").status_code == 200


def test_a_dropped_connection_receives_no_bytes_at_all(gogift_server, gogift_emulator):
    gogift_emulator.faults.add("drop_before")
    host, port = gogift_server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET /products/filter HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n")
        assert raw.recv(1024) == b""


def test_drop_after_commit_buys_once_and_a_replay_returns_the_order(api, gogift_emulator):
    basket_id = api.filled_basket()
    gogift_emulator.faults.add("drop_after_commit", path="/baskets/finalize")
    with pytest.raises(requests.ConnectionError):
        api.finalize(basket_id, key="fin")
    assert len(gogift_emulator.ledger) == 1
    replay = api.finalize(basket_id, key="fin")
    assert replay.status_code == 200 and replay.json()["orderId"] == gogift_emulator.ledger[0].order_id
    assert len(gogift_emulator.ledger) == 1


def test_timeout_after_commit_buys_once_and_a_replay_returns_the_order(api, gogift_emulator):
    basket_id = api.filled_basket()
    gogift_emulator.faults.add("timeout_after_commit", path="/baskets/finalize", delay=1.5)
    with pytest.raises(requests.Timeout):
        api.finalize(basket_id, key="fin", timeout=0.5)
    assert len(gogift_emulator.ledger) == 1
    assert api.finalize(basket_id, key="fin").json()["orderId"] == gogift_emulator.ledger[0].order_id
    assert len(gogift_emulator.ledger) == 1


def test_insufficient_funds_answers_402_with_the_required_amount(api, gogift_emulator):
    basket_id = api.filled_basket(card_line(giftcardValue=750, quantity=2))
    gogift_emulator.faults.add("insufficient_funds")
    response = api.finalize(basket_id)
    assert response.status_code == 402
    assert response_status(response)["errorCode"] == "InsufficientCredit"
    assert response_status(response)["message"] == ("The department's credit limit does not cover this order "
                                                    "(required 1500.00 DKK, available 200.00 DKK)")
    assert gogift_emulator.ledger == []


def test_insufficient_funds_waits_for_a_finalize(api, gogift_emulator):
    gogift_emulator.faults.add("insufficient_funds")
    basket_id = api.filled_basket()
    assert api.finalize(basket_id).status_code == 402


def test_random_faults_repeat_for_the_same_seed():
    def run() -> list[str | None]:
        plan = FaultPlan()
        plan.random(0.5, seed=7, kinds=["http_500", "drop_after_commit"])
        request = EmulatorRequest("POST", "/baskets")
        return [getattr(plan.take(request, phase), "kind", None) for _ in range(20) for phase in ("before", "after")]

    first = run()
    assert first == run() and {"http_500", "drop_after_commit"} <= set(first)


# --- Recording and test-only endpoints -------------------------------------------------------


def test_every_api_request_is_recorded_with_its_headers(api, gogift_emulator):
    api.finalize(api.filled_basket(), key="fin-1")
    last = gogift_emulator.requests[-1]
    assert (last.method, last.path) == ("POST", "/baskets/finalize")
    assert last.headers["Idempotency-Key"] == "fin-1" and last.headers["Authorization"].startswith("Bearer ")
    assert json.loads(last.body)["paymentMethod"] == "InvoiceByFinance"


def test_admin_endpoints_add_faults_list_the_ledger_and_reset(api, gogift_server, gogift_emulator):
    base = f"{gogift_server.base_url}/_emulator"
    assert requests.post(f"{base}/faults", json={"kind": "http_503", "path": "/baskets", "times": 1},
                         timeout=5).status_code == 201
    assert api.call("POST", "/baskets", {"salesChannelId": "109"}).status_code == 503
    api.finalize(api.filled_basket())
    [entry] = requests.get(f"{base}/ledger", timeout=5).json()
    assert entry["amount"] == "50" and entry["currency"] == "DKK"
    assert requests.post(f"{base}/reset", timeout=5).json() == {"reset": True}
    assert gogift_emulator.ledger == [] and gogift_emulator.requests == []


# --- Django mount ----------------------------------------------------------------------------


def test_the_django_mount_serves_the_demo_emulator(client):
    token = client.post("/emulators/gogift/connect/token",
                        data=f"grant_type=client_credentials&client_id={DEMO_CLIENT_ID}"
                             f"&client_secret={DEMO_CLIENT_SECRET}",
                        content_type="application/x-www-form-urlencoded").json()["access_token"]
    response = client.post("/emulators/gogift/products/filter", data={"paging": {"perPage": 1}},
                           content_type="application/json",
                           headers={"Accept": "application/json", "Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["pagingInfo"]["perPage"] == 1


def test_the_django_mount_answers_404_for_an_unknown_kind(client):
    assert client.get("/emulators/nobody/products/filter").status_code == 404


def test_the_demo_emulator_is_a_sandbox_gogift_emulator():
    emulator = get_demo_emulator("gogift")
    assert isinstance(emulator, GoGiftEmulator) and emulator is get_demo_emulator("gogift")
    assert emulator.environment == "sandbox" and emulator.clients == {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
