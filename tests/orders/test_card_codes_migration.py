"""Migration 0010: the codes already stored in clear are encrypted, and what was recorded
with them (provider calls, order events, webhook events) is scrubbed; going back decrypts."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from orders.models import Order, OrderEvent, ProviderCall
from providers.models import WebhookEvent
from tests.fixtures.data import make_batch

# With the webhook events of the providers app as they were then.
PROVIDERS = ("providers", "0005_rename_providercall_ratelimitslot")
BEFORE = [("orders", "0009_orderevent_without_call_fields"), PROVIDERS]
AFTER = [("orders", "0010_card_codes"), PROVIDERS]
CODE = "QX7B2NK4WD9FH3TJ"


def migrate_to(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def old_schema(transactional_db, gogift_account, global_gift_card):
    """An order bought before 0010, its code in clear everywhere it went; the latest schema after."""
    order_id = make_batch(gogift_account, ["100"]).orders.get().pk
    apps = migrate_to(BEFORE)
    old = apps.get_model("orders", "Order")
    old.objects.filter(pk=order_id).update(provider_card_id=CODE, status="delivered")
    submission = apps.get_model("orders", "Submission").objects.create(account_id=gogift_account.pk,
                                                                     idempotency_key="gd-old")
    call = apps.get_model("orders", "ProviderCall").objects.create(
        submission=submission, actor="worker w:1", method="GET", url=f"https://api/v1/giftcards/{CODE}",
        http_status=200, duration_ms=5, request_body=json.dumps({"reference": "GD-1", "pin": "1234"}),
        response_body=json.dumps({"orderId": "77", "gift": {"code": CODE, "giftcardUri": "https://c/x"}}),
    )
    call.orders.add(order_id)
    apps.get_model("orders", "ProviderCall").objects.create(
        submission=submission, actor="worker w:1", method="GET", url="https://api/x", duration_ms=5,
        response_body=f"card {CODE} issued")  # not JSON: nothing in it can be vouched for
    apps.get_model("orders", "OrderEvent").objects.create(order_id=order_id, actor="worker w:1", kind="note",
                                                          message=f"Card {CODE} issued.")
    apps.get_model("providers", "WebhookEvent").objects.create(
        account_id=gogift_account.pk, event_id="req-1", event_type="delivery",
        payload={"webhookId": "req-1", "content": [{"orderId": 77, "pin": "1234", "giftcardUri": "https://c/x",
                                                    "cardCode": CODE}]},
        outcome=f"Card {CODE} delivered")
    yield apps, order_id
    migrate_to_latest()


def test_codes_are_encrypted_and_every_copy_is_scrubbed(old_schema):
    _, order_id = old_schema

    migrate_to(AFTER)
    migrate_to_latest()

    order = Order.objects.get(pk=order_id)
    assert order.card_code() == CODE and order.card_code_masked == "••••" + CODE[-4:]
    assert CODE not in order.card_code_encrypted
    call, not_json = ProviderCall.objects.order_by("id")
    assert call.url == "https://api/v1/giftcards/••••" + CODE[-4:]
    assert json.loads(call.request_body) == {"reference": "GD-1", "pin": "[redacted]"}
    assert json.loads(call.response_body) == {"orderId": "77", "gift": {"code": "[redacted]",
                                                                         "giftcardUri": "[redacted]"}}
    assert not_json.response_body == ""
    assert OrderEvent.objects.get(order_id=order_id, kind="note").message == f"Card ••••{CODE[-4:]} issued."
    webhook = WebhookEvent.objects.get()
    assert webhook.payload == {"webhookId": "req-1", "content": [
        {"orderId": 77, "pin": "[redacted]", "giftcardUri": "[redacted]", "cardCode": "[redacted]"}]}
    assert CODE not in webhook.outcome


def test_going_back_puts_the_code_in_its_old_column(old_schema):
    _, order_id = old_schema
    migrate_to(AFTER)

    apps = migrate_to(BEFORE)

    assert apps.get_model("orders", "Order").objects.get(pk=order_id).provider_card_id == CODE
