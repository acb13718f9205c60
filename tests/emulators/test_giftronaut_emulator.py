"""The Giftronaut emulator, over real HTTP, against seed 002 (the quickstart)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from emulators.clock import ManualClock
from emulators.giftronaut import GiftronautEmulator
from emulators.loopback import LoopbackServer
from emulators.oauth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from emulators.registry import get_demo_emulator
from tests.fixtures.emulators_giftronaut import GIFTRONAUT_TEST_CLIENT_ID, GIFTRONAUT_TEST_CLIENT_SECRET


SCOPES = "orders.read orders.write catalog.read"
ORDER_PATH = "/api/v1/orders/branded-card"


# --- Helpers ---------------------------------------------------------------------------------


def request_token(server: LoopbackServer, **form: str) -> requests.Response:
    data = {"grant_type": "client_credentials", "client_id": GIFTRONAUT_TEST_CLIENT_ID,
            "client_secret": GIFTRONAUT_TEST_CLIENT_SECRET, "scope": SCOPES, **form}
    return requests.post(f"{server.base_url}/oauth2/token", data=data, timeout=5)


def recipient(first: str = "Alice", last: str = "Kim", email: str = "alice@giftronaut.com",
              amount: Any = 50) -> dict[str, Any]:
    return {"firstName": first, "lastName": last, "email": email, "amount": amount}


def order_body(*recipients: dict, product: str = "GC-AMAZON-USD", **overrides: Any) -> dict[str, Any]:
    """The order of seed 002, step 4."""
    body = {
        "productId": product,
        "recipients": list(recipients) or [recipient(), recipient("Bob", "Lee", "bob@giftronaut.com", 25)],
        "emailSetting": {"senderName": "Acme Corp", "subject": "You have received a gift card!",
                         "message": "Thank you for your hard work this quarter."},
        "sendTiming": {"type": "IMMEDIATE"},
    }
    body.update(overrides)
    return body


class Api:
    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.token = request_token(server).json()["access_token"]

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None,
             timeout: float = 5, headers: dict[str, str] | None = None) -> requests.Response:
        sent = {"Authorization": f"Bearer {self.token}"}
        if key:
            sent["X-Idempotency-Key"] = key
        sent.update(headers or {})
        return requests.request(method, f"{self.server.base_url}{path}", json=body, headers=sent,
                                timeout=timeout)

    def order(self, body: dict | None = None, *, key: str | None = "my-first-order-001",
              timeout: float = 5) -> requests.Response:
        return self.call("POST", ORDER_PATH, body or order_body(), key=key, timeout=timeout)

    def status(self, order_id: str) -> requests.Response:
        return self.call("GET", f"/api/v1/orders/{order_id}")


@pytest.fixture
def api(giftronaut_server: LoopbackServer) -> Api:
    return Api(giftronaut_server)


# --- Token endpoint (step 2) -----------------------------------------------------------------


def test_token_is_issued_for_client_credentials_with_the_seeds_fields(giftronaut_server):
    response = request_token(giftronaut_server)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and set(body["scope"].split()) == set(SCOPES.split())


def test_sandbox_tokens_live_24_hours_and_production_tokens_one_hour():
    assert GiftronautEmulator("sandbox").token_lifetime == 86_400
    assert GiftronautEmulator("production").token_lifetime == 3_600


def test_the_token_lifetime_is_a_parameter_reported_in_expires_in():
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                                  token_lifetime=42)
    with LoopbackServer(emulator) as server:
        assert request_token(server).json()["expires_in"] == 42


def test_a_token_is_refused_once_its_lifetime_is_over():
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                                  token_lifetime=0)
    with LoopbackServer(emulator) as server:
        assert Api(server).call("GET", "/api/v1/catalog/branded-cards").status_code == 401


def test_a_sandbox_token_lasts_24_hours_on_the_emulators_clock():
    clock = ManualClock()
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET}, clock=clock)
    with LoopbackServer(emulator) as server:
        api = Api(server)
        clock.advance(86_400 - 1)
        assert api.call("GET", "/api/v1/catalog/branded-cards").status_code == 200
        clock.advance(1)
        assert api.call("GET", "/api/v1/catalog/branded-cards").status_code == 401


def test_a_wrong_secret_is_invalid_client(giftronaut_server):
    response = request_token(giftronaut_server, client_secret="wrong")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_an_unknown_client_is_invalid_client(giftronaut_server):
    assert request_token(giftronaut_server, client_id="someone").json()["error"] == "invalid_client"


def test_another_grant_type_is_unsupported(giftronaut_server):
    response = request_token(giftronaut_server, grant_type="password")
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


def test_a_json_token_request_is_an_invalid_request(giftronaut_server):
    response = requests.post(f"{giftronaut_server.base_url}/oauth2/token",
                             json={"grant_type": "client_credentials"}, timeout=5)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_a_scope_the_app_was_not_given_is_invalid_scope():
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                                  app_scopes={GIFTRONAUT_TEST_CLIENT_ID: {"catalog.read", "orders.read"}})
    with LoopbackServer(emulator) as server:
        response = request_token(server)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")
    assert "orders.write" in response.json()["error_description"]


def test_a_token_without_the_endpoints_scope_is_forbidden(giftronaut_server):
    token = request_token(giftronaut_server, scope="catalog.read").json()["access_token"]
    response = requests.post(f"{giftronaut_server.base_url}{ORDER_PATH}", json=order_body(),
                             headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 403
    assert response.json() == {"error": "insufficient_scope", "message": "This access token lacks the orders.write scope."}


# --- Authentication ----------------------------------------------------------------------------


def test_an_api_call_without_a_token_is_unauthorized(giftronaut_server):
    response = requests.get(f"{giftronaut_server.base_url}/api/v1/catalog/branded-cards", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token" and response.json()["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_an_api_call_with_an_expired_token_is_unauthorized(api, giftronaut_emulator):
    giftronaut_emulator.expire_all_tokens()
    assert api.call("GET", "/api/v1/catalog/branded-cards").status_code == 401


def test_an_unknown_path_answers_404_in_the_error_shape(api):
    response = api.call("GET", "/api/v1/nothing")
    assert response.status_code == 404 and set(response.json()) == {"error", "message"}


# --- Catalog (step 3) --------------------------------------------------------------------------


def test_the_catalog_lists_the_seeds_two_cards_word_for_word(api):
    data = api.call("GET", "/api/v1/catalog/branded-cards").json()["data"]
    assert data[0] == {"productId": "GC-AMAZON-USD", "brandName": "Amazon", "currencyCode": "USD",
                       "faceValueType": "FIXED", "denominations": [10, 25, 50, 100]}
    assert data[1] == {"productId": "GC-STARBUCKS-USD", "brandName": "Starbucks", "currencyCode": "USD",
                       "faceValueType": "RANGE", "minAmount": 5, "maxAmount": 500}


def test_the_catalog_also_has_a_fixed_euro_card_and_a_ranged_krone_card(api):
    data = api.call("GET", "/api/v1/catalog/branded-cards").json()["data"]
    by_currency = {item["currencyCode"]: item["faceValueType"] for item in data[2:]}
    assert by_currency == {"EUR": "FIXED", "DKK": "RANGE"}


# --- Orders (step 4) ---------------------------------------------------------------------------


def test_an_order_is_created_pending_with_the_seeds_fields(api):
    response = api.order()
    assert response.status_code == 201
    body = response.json()
    assert body["orderId"].startswith("OT-") and body["status"] == "PENDING"
    assert body["cardType"] == "BRANDED_CARD" and body["cardName"] == "Amazon"
    assert body["totalCost"] == {"amount": 75.0, "currency": "USD"}
    assert (body["recipientCount"], body["sentCount"], body["bouncedCount"]) == (2, 0, 0)
    assert datetime.fromisoformat(body["createdAt"])


def test_an_order_records_one_ledger_entry_per_recipient(api, giftronaut_emulator):
    order_id = api.order().json()["orderId"]
    ledger = giftronaut_emulator.ledger
    assert [(e.recipient_email, e.amount, e.extra["position"]) for e in ledger] == [
        ("alice@giftronaut.com", Decimal("50"), 0), ("bob@giftronaut.com", Decimal("25"), 1)]
    assert {e.order_id for e in ledger} == {order_id}
    assert {e.extra["idempotency_key"] for e in ledger} == {"my-first-order-001"}


def test_each_recipient_may_receive_another_amount_on_a_ranged_card(api, giftronaut_emulator):
    body = order_body(recipient(amount=5), recipient(email="b@example.com", amount=12.5),
                      recipient(email="c@example.com", amount=500), product="GC-STARBUCKS-USD")
    assert api.order(body).status_code == 201
    assert [e.amount for e in giftronaut_emulator.ledger] == [Decimal("5"), Decimal("12.5"), Decimal("500")]


def test_an_order_without_a_key_is_accepted(api):
    assert api.order(key=None).status_code == 201


@pytest.mark.parametrize("amount", [30, 10.5, 1000])
def test_an_amount_that_is_not_a_denomination_is_refused_with_422(api, giftronaut_emulator, amount):
    response = api.order(order_body(recipient(), recipient(email="x@example.com", amount=amount)))
    assert response.status_code == 422 and response.json()["error"] == "invalid_amount"
    assert "recipients[1]" in response.json()["message"] and "10, 25, 50, 100" in response.json()["message"]
    assert giftronaut_emulator.ledger == []


@pytest.mark.parametrize("amount", [4.99, 500.01])
def test_an_amount_outside_the_range_is_refused_with_422(api, amount):
    response = api.order(order_body(recipient(amount=amount), product="GC-STARBUCKS-USD"))
    assert response.status_code == 422 and "5 to 500 USD" in response.json()["message"]


def test_an_amount_off_the_step_of_a_stepped_range_is_refused(api):
    response = api.order(order_body(recipient(amount=125), product="GC-MAGASIN-DKK"))
    assert response.status_code == 422 and "steps of 50" in response.json()["message"]


def test_an_amount_with_more_than_two_decimals_is_refused(api):
    response = api.order(order_body(recipient(amount=10.005), product="GC-STARBUCKS-USD"))
    assert response.status_code == 422 and response.json()["error"] == "invalid_amount"


def test_an_unknown_product_is_refused_with_422(api):
    response = api.order(order_body(product="GC-NOPE-USD"))
    assert (response.status_code, response.json()["error"]) == (422, "invalid_product")


def test_an_invalid_email_is_refused_with_422(api):
    response = api.order(order_body(recipient(email="not-an-email")))
    assert (response.status_code, response.json()["error"]) == (422, "invalid_recipient")


@pytest.mark.parametrize("change, words", [
    ({"recipients": []}, "recipients"),
    ({"productId": None}, "productId"),
    ({"emailSetting": {"subject": "Hi"}}, "senderName"),
    ({"sendTiming": {"type": "LATER"}}, "sendTiming"),
    ({"sendTiming": {"type": "SCHEDULED", "scheduledAt": "tomorrow"}}, "scheduledAt"),
])
def test_a_malformed_order_is_refused_with_400_naming_the_field(api, giftronaut_emulator, change, words):
    response = api.order(order_body(**change))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert words in response.json()["message"]
    assert giftronaut_emulator.ledger == []


def test_a_recipient_without_a_first_name_is_refused(api):
    response = api.order(order_body(recipient(first="")))
    assert response.status_code == 400 and "firstName" in response.json()["message"]


def test_a_recipient_with_an_empty_last_name_is_accepted(api):
    assert api.order(order_body(recipient(first="Cher", last=""))).status_code == 201


def test_a_body_that_is_not_json_is_refused_with_400(api):
    response = api.call("POST", ORDER_PATH, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


# --- Idempotency (step 4) ----------------------------------------------------------------------


def test_the_same_key_returns_the_original_order_instead_of_a_duplicate(api, giftronaut_emulator):
    first = api.order(key="k-1")
    again = api.order(key="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["orderId"] == first.json()["orderId"]
    assert len(giftronaut_emulator.ledger) == 2


def test_a_replay_returns_the_original_order_as_it_is_now(api, giftronaut_emulator):
    order_id = api.order(key="k-1").json()["orderId"]
    giftronaut_emulator.advance(order_id, 2)
    assert api.order(key="k-1").json()["status"] == "COMPLETE"


def test_the_same_key_with_another_body_is_an_idempotency_conflict(api, giftronaut_emulator):
    api.order(key="k-1")
    response = api.order(order_body(recipient(amount=100)), key="k-1")
    assert response.status_code == 409 and response.json()["error"] == "idempotency_conflict"
    assert "k-1" in response.json()["message"]
    assert len(giftronaut_emulator.ledger) == 2


def test_the_same_body_with_keys_in_another_order_is_a_replay(api):
    first = api.order(key="k-1").json()["orderId"]
    reordered = json.loads(json.dumps(order_body(), sort_keys=True))
    assert api.order(reordered, key="k-1").json()["orderId"] == first


def test_a_refused_order_does_not_use_its_key_up(api):
    assert api.order(order_body(recipient(amount=30)), key="k-1").status_code == 422
    assert api.order(key="k-1").status_code == 201


def test_a_new_key_creates_a_new_order(api, giftronaut_emulator):
    assert api.order(key="k-1").json()["orderId"] != api.order(key="k-2").json()["orderId"]
    assert len(giftronaut_emulator.ledger) == 4


def test_idempotency_keys_are_scoped_per_client(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.clients["other"] = "other-secret"
    other = Api.__new__(Api)
    other.server = giftronaut_server
    other.token = request_token(giftronaut_server, client_id="other", client_secret="other-secret").json()["access_token"]
    mine = Api(giftronaut_server)
    assert mine.order(key="k-1").json()["orderId"] != other.order(key="k-1").json()["orderId"]


# --- Status (step 5) ---------------------------------------------------------------------------


def test_each_status_poll_moves_the_order_one_step_until_complete(api):
    order_id = api.order().json()["orderId"]
    statuses = [api.status(order_id).json()["status"] for _ in range(3)]
    assert statuses == ["IN_PROGRESS", "COMPLETE", "COMPLETE"]


def test_a_complete_order_counts_and_lists_its_sent_recipients(api):
    order_id = api.order().json()["orderId"]
    api.status(order_id)
    body = api.status(order_id).json()
    assert (body["sentCount"], body["bouncedCount"]) == (2, 0)
    assert [(r["email"], r["amount"], r["status"], r["bounceReason"]) for r in body["recipients"]] == [
        ("alice@giftronaut.com", 50, "SENT", None), ("bob@giftronaut.com", 25, "SENT", None)]


def test_a_recipient_whose_email_has_the_bounce_marker_bounces_with_a_reason(api):
    order_id = api.order(order_body(recipient(), recipient(email="bounce@example.com"))).json()["orderId"]
    api.status(order_id)
    body = api.status(order_id).json()
    assert (body["sentCount"], body["bouncedCount"]) == (1, 1)
    assert body["recipients"][1]["status"] == "BOUNCED"
    assert body["recipients"][1]["bounceReason"] == "Mailbox does not exist"


def test_recipients_stay_pending_while_the_order_is_in_progress(api):
    order_id = api.order().json()["orderId"]
    body = api.status(order_id).json()
    assert body["status"] == "IN_PROGRESS" and {r["status"] for r in body["recipients"]} == {"PENDING"}


def test_with_no_steps_per_poll_only_advance_moves_an_order(api, giftronaut_emulator):
    giftronaut_emulator.steps_per_poll = 0
    order_id = api.order().json()["orderId"]
    assert api.status(order_id).json()["status"] == "PENDING"
    giftronaut_emulator.advance(order_id, 2)
    assert api.status(order_id).json()["status"] == "COMPLETE"


def test_a_scheduled_order_stays_pending_until_its_time(api):
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = order_body(sendTiming={"type": "SCHEDULED", "scheduledAt": later})
    order_id = api.order(body).json()["orderId"]
    assert [api.status(order_id).json()["status"] for _ in range(2)] == ["PENDING", "PENDING"]


def test_a_scheduled_order_is_sent_once_the_clock_reaches_its_time():
    clock = ManualClock(datetime(2025, 3, 15, 8, 0, tzinfo=UTC))
    emulator = GiftronautEmulator(clients={GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET}, clock=clock)
    with LoopbackServer(emulator) as server:
        api = Api(server)
        body = order_body(sendTiming={"type": "SCHEDULED", "scheduledAt": "2025-03-15T09:00:00Z"})
        order_id = api.order(body).json()["orderId"]
        clock.advance(3600 - 1)
        assert api.status(order_id).json()["status"] == "PENDING"
        clock.advance(1)
        assert api.status(order_id).json()["status"] == "IN_PROGRESS"


def test_a_scheduled_order_whose_time_has_come_is_sent(api):
    body = order_body(sendTiming={"type": "SCHEDULED", "scheduledAt": "2020-01-01T09:00:00Z"})
    created = api.order(body).json()
    assert created["sendTiming"] == {"type": "SCHEDULED", "scheduledAt": "2020-01-01T09:00:00Z"}
    assert api.status(created["orderId"]).json()["status"] == "IN_PROGRESS"


def test_an_unknown_order_answers_404(api):
    response = api.status("OT-20240315-FFFF")
    assert (response.status_code, response.json()["error"]) == (404, "order_not_found")


def test_another_clients_order_answers_404(api, giftronaut_server, giftronaut_emulator):
    order_id = api.order().json()["orderId"]
    giftronaut_emulator.clients["other"] = "other-secret"
    token = request_token(giftronaut_server, client_id="other", client_secret="other-secret").json()["access_token"]
    response = requests.get(f"{giftronaut_server.base_url}/api/v1/orders/{order_id}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 404


# --- Balance ------------------------------------------------------------------------------------


def test_a_production_balance_is_charged_and_an_order_beyond_it_is_refused_with_402():
    emulator = GiftronautEmulator("production", {GIFTRONAUT_TEST_CLIENT_ID: GIFTRONAUT_TEST_CLIENT_SECRET},
                                  balances={"USD": Decimal("100")})
    with LoopbackServer(emulator) as server:
        api = Api(server)
        assert api.order(key="a").status_code == 201  # 75 of 100
        response = api.order(key="b")
    assert response.status_code == 402
    assert response.json()["error"] == "insufficient_balance"
    assert response.json()["required"] == {"amount": 75.0, "currency": "USD"}
    assert response.json()["available"] == {"amount": 25.0, "currency": "USD"}
    assert len(emulator.ledger) == 2


# --- Faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,status", [("http_500", 500), ("http_503", 503)])
def test_server_error_faults_answer_their_status_in_the_error_shape(api, giftronaut_emulator, kind, status):
    giftronaut_emulator.faults.add(kind, path=ORDER_PATH)
    response = api.order()
    assert response.status_code == status and set(response.json()) == {"error", "message"}
    assert giftronaut_emulator.ledger == []


def test_rate_limit_fault_answers_429_with_retry_after(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("http_429", retry_after=7)
    response = api.call("GET", "/api/v1/catalog/branded-cards")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_html_fault_answers_a_gateway_page(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("html")
    response = api.order()
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")


def test_faults_without_a_path_leave_the_token_endpoint_alone(giftronaut_server, giftronaut_emulator):
    giftronaut_emulator.faults.add("http_500")
    assert request_token(giftronaut_server).status_code == 200


def test_drop_before_closes_the_connection_and_buys_nothing(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("drop_before", path=ORDER_PATH)
    with pytest.raises(requests.ConnectionError):
        api.order()
    assert giftronaut_emulator.ledger == []


def test_drop_after_commit_buys_once_and_a_replay_returns_the_order(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("drop_after_commit", path=ORDER_PATH)
    with pytest.raises(requests.ConnectionError):
        api.order(key="k-1")
    assert len(giftronaut_emulator.ledger) == 2
    replay = api.order(key="k-1")
    assert replay.status_code == 200 and replay.json()["orderId"] == giftronaut_emulator.ledger[0].order_id
    assert len(giftronaut_emulator.ledger) == 2


def test_timeout_after_commit_buys_once_and_a_replay_returns_the_order(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("timeout_after_commit", path=ORDER_PATH, delay=1.0)
    with pytest.raises(requests.Timeout):
        api.order(key="k-1", timeout=0.3)
    assert api.order(key="k-1").json()["orderId"] == giftronaut_emulator.ledger[0].order_id
    assert len(giftronaut_emulator.ledger) == 2


def test_insufficient_funds_fault_answers_402_with_the_required_amount(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("insufficient_funds")
    response = api.order()
    assert response.status_code == 402
    assert response.json()["error"] == "insufficient_balance"
    assert response.json()["required"] == {"amount": 75.0, "currency": "USD"}
    assert giftronaut_emulator.ledger == []


def test_insufficient_funds_waits_for_an_order_request(api, giftronaut_emulator):
    giftronaut_emulator.faults.add("insufficient_funds")
    assert api.call("GET", "/api/v1/catalog/branded-cards").status_code == 200
    assert api.order().status_code == 402


# --- Recording and test-only endpoints -------------------------------------------------------


def test_every_api_request_is_recorded_with_its_headers(api, giftronaut_emulator):
    api.order(key="k-rec")
    last = giftronaut_emulator.requests[-1]
    assert (last.method, last.path) == ("POST", ORDER_PATH)
    assert last.headers["X-Idempotency-Key"] == "k-rec" and last.headers["Authorization"].startswith("Bearer ")
    assert json.loads(last.body)["productId"] == "GC-AMAZON-USD"


def test_admin_endpoints_add_faults_list_the_ledger_and_reset(api, giftronaut_server, giftronaut_emulator):
    base = f"{giftronaut_server.base_url}/_emulator"
    assert requests.post(f"{base}/faults", json={"kind": "http_503", "path": ORDER_PATH},
                         timeout=5).status_code == 201
    assert api.order().status_code == 503
    api.order()
    entries = requests.get(f"{base}/ledger", timeout=5).json()
    assert [(e["recipient_email"], e["amount"], e["currency"]) for e in entries] == [
        ("alice@giftronaut.com", "50", "USD"), ("bob@giftronaut.com", "25", "USD")]
    assert requests.post(f"{base}/reset", timeout=5).json() == {"reset": True}
    assert giftronaut_emulator.ledger == [] and giftronaut_emulator.requests == []


def test_an_unknown_fault_kind_is_refused_by_the_admin_endpoint(giftronaut_server):
    response = requests.post(f"{giftronaut_server.base_url}/_emulator/faults", json={"kind": "meteor"}, timeout=5)
    assert response.status_code == 400 and "meteor" in response.json()["error"]


# --- Django mount ----------------------------------------------------------------------------


def test_the_django_mount_serves_the_demo_emulator(client):
    token = client.post("/emulators/giftronaut/oauth2/token",
                        data=f"grant_type=client_credentials&client_id={DEMO_CLIENT_ID}"
                             f"&client_secret={DEMO_CLIENT_SECRET}&scope=catalog.read",
                        content_type="application/x-www-form-urlencoded").json()["access_token"]
    response = client.get("/emulators/giftronaut/api/v1/catalog/branded-cards",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["data"][0]["productId"] == "GC-AMAZON-USD"


def test_the_demo_emulator_is_a_sandbox_giftronaut_emulator():
    emulator = get_demo_emulator("giftronaut")
    assert isinstance(emulator, GiftronautEmulator) and emulator is get_demo_emulator("giftronaut")
    assert emulator.environment == "sandbox" and emulator.clients == {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
