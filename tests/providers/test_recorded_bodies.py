"""What is recorded of a provider call keeps only the fields its client lists as safe (issue 8,
finding 1): an allow-list per provider, not a deny-list of key names. Each provider's real
client reads its catalog from its emulator over HTTP; the answers also carry fields nobody
vetted (a claim link, a card number), at the top and inside every object. The safe fields
keep their values, the unknown ones keep only their key."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from django.core.cache import cache

from emulators.loopback import EmulatorRequest, EmulatorResponse, LoopbackServer
from providers.clients import account_config, client_class
from providers.clients.base import REDACTED, CallRecord

CLAIM_LINK = "https://claim.example/c/0d9e8f7a6b5c"
CARD_NUMBER = "6006491286354127"
UNVETTED = {"claimLink": CLAIM_LINK, "cardNumber": CARD_NUMBER}


def with_unvetted_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {**{key: with_unvetted_fields(item) for key, item in value.items()}, **UNVETTED}
    if isinstance(value, list):
        return [with_unvetted_fields(item) for item in value]
    return value


class Unvetted:
    """The provider's emulator, with unvetted fields added to every JSON object it answers."""

    def __init__(self, emulator) -> None:
        self.emulator = emulator

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        response = self.emulator.handle(request)
        data = response.json()
        if data is None:
            return response
        body = json.dumps(with_unvetted_fields(data)).encode()
        return EmulatorResponse(response.status, body, {**response.headers, "Content-Length": str(len(body))})


def catalog_calls(account, emulator) -> list[CallRecord]:
    """The calls the account's real client makes to read the catalog, as they are recorded."""
    cache.clear()  # no cached token: the token exchange is recorded too
    calls: list[CallRecord] = []
    with LoopbackServer(Unvetted(emulator)) as server:
        config = account_config(account)
        token_path = config.auth_url[len(config.api_base_url):] if config.auth_url else ""
        config = dataclasses.replace(config, api_base_url=server.base_url,
                                     auth_url=f"{server.base_url}{token_path}" if token_path else "")
        products = client_class(account.kind)(config, recorder=calls.append).list_products()
    assert products and calls
    return calls


def recorded(calls: list[CallRecord]) -> str:
    return "\n".join(call.request_body + call.response_body for call in calls)


def assert_kept_and_dropped(calls: list[CallRecord], safe_value: str) -> None:
    text = recorded(calls)
    assert safe_value in text  # a known-safe field keeps its value
    assert CLAIM_LINK not in text and CARD_NUMBER not in text  # an unknown one does not
    answers = [json.loads(call.response_body) for call in calls if call.response_body]
    assert all(answer["claimLink"] == answer["cardNumber"] == REDACTED for answer in answers)  # the key stays


@pytest.mark.parametrize("kind", ["gifty", "gogift", "giftronaut", "ugiftme"])
def test_each_provider_declares_its_own_safe_fields_and_none_that_redeems_a_card(kind):
    safe = client_class(kind).recorded_fields
    assert safe and safe == {name.lower() for name in safe}
    never = {"code", "pin", "claimlink", "cardnumber", "giftcarduri", "redeemurl", "url", "secret", "api_key",
             "access_token", "client_secret", "email", "recipientemail", "recipientname", "name", "phone"}
    assert not safe & never


def test_a_gifty_answer_keeps_its_product_ids_and_drops_an_unknown_field(emulated_gifty_account, gifty_emulator):
    calls = catalog_calls(emulated_gifty_account, gifty_emulator)
    assert_kept_and_dropped(calls, '"id": "gc_co_giftdesk_standard"')


def test_a_gogift_answer_keeps_its_product_ids_and_drops_an_unknown_field(emulated_gogift_account, gogift_emulator):
    calls = catalog_calls(emulated_gogift_account, gogift_emulator)
    assert_kept_and_dropped(calls, '"id": "256314825926729728"')
    token = calls[0]
    assert token.url.endswith("token") and '"token_type": "Bearer"' in token.response_body
    assert '"access_token": "[redacted]"' in token.response_body
    assert '"client_secret": "[redacted]"' in token.request_body


def test_a_giftronaut_answer_keeps_its_product_ids_and_drops_an_unknown_field(
        emulated_giftronaut_account, giftronaut_emulator):
    calls = catalog_calls(emulated_giftronaut_account, giftronaut_emulator)
    assert_kept_and_dropped(calls, '"productId": "GC-AMAZON-USD"')


def test_a_ugiftme_answer_keeps_its_product_ids_and_drops_an_unknown_field(
        emulated_ugiftme_account, ugiftme_emulator):
    calls = catalog_calls(emulated_ugiftme_account, ugiftme_emulator)
    assert_kept_and_dropped(calls, '"id": "66a1f0c2b5e4d3a2f1e0d9c1"')


def test_an_answer_that_is_not_json_is_recorded_as_its_length_only(emulated_ugiftme_account):
    class PlainText:
        def handle(self, request: EmulatorRequest) -> EmulatorResponse:
            return EmulatorResponse(500, f"card {CARD_NUMBER} failed".encode(), {"Content-Type": "text/plain"})

    calls: list[CallRecord] = []
    with LoopbackServer(PlainText()) as server:
        config = dataclasses.replace(account_config(emulated_ugiftme_account), api_base_url=server.base_url)
        with pytest.raises(Exception):
            client_class("ugiftme")(config, recorder=calls.append).balance()

    assert calls and all(CARD_NUMBER not in call.response_body for call in calls)
    assert calls[0].response_body == f"[not JSON: {len(f'card {CARD_NUMBER} failed')} characters, not recorded]"
