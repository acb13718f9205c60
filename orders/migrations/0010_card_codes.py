"""A gift card's code is cash: Order.provider_card_id becomes an encrypted code and its last
4 characters, and what was already stored in clear is scrubbed.

- each order's code is encrypted (the credentials' keys) and its clear column dropped;
- recorded provider bodies (ProviderCall) and stored webhook payloads (WebhookEvent) are
  filtered again with their provider's allow-list of safe fields (a body that is not JSON
  is blanked: nothing in it can be vouched for);
- wherever a stored order's code still appears (event messages, call URLs and errors,
  webhook outcomes), its masked form replaces it.

Reversible: going back decrypts the codes into the old column (the scrubbing stays).
"""

import json

from django.db import migrations, models

NOT_JSON = ""


def _codes_to_masked(apps) -> dict[str, str]:
    Order = apps.get_model("orders", "Order")
    return {code: f"••••{code[-4:]}" for code in
            Order.objects.exclude(provider_card_id="").values_list("provider_card_id", flat=True)
            if len(code) > 4}


def _allowed_text(client, text: str, masks: dict[str, str]) -> str:
    if not text:
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return NOT_JSON
    return _masked(json.dumps(client.recordable(data)), masks)


def _masked(text: str, masks: dict[str, str]) -> str:
    for code, masked in masks.items():
        text = text.replace(code, masked)
    return text


def codes_encrypt_and_scrub(apps, schema_editor):
    from providers import crypto
    from providers.clients import client_class

    Order = apps.get_model("orders", "Order")
    OrderEvent = apps.get_model("orders", "OrderEvent")
    ProviderCall = apps.get_model("orders", "ProviderCall")
    WebhookEvent = apps.get_model("providers", "WebhookEvent")
    masks = _codes_to_masked(apps)

    for order in Order.objects.exclude(provider_card_id="").only("id", "provider_card_id").iterator():
        code = order.provider_card_id.strip()
        Order.objects.filter(pk=order.pk).update(
            card_code_encrypted=crypto.encrypt_text(code) if code else "", card_code_last4=code[-4:],
        )

    for call in ProviderCall.objects.select_related("submission__account").iterator():
        client = client_class(call.submission.account.kind)
        request_body = _allowed_text(client, call.request_body, masks)
        response_body = _allowed_text(client, call.response_body, masks)
        url, error = _masked(call.url, masks), _masked(call.error, masks)
        if (url, request_body, response_body, error) != (call.url, call.request_body, call.response_body, call.error):
            ProviderCall.objects.filter(pk=call.pk).update(
                url=url, request_body=request_body, response_body=response_body, error=error)

    for event in WebhookEvent.objects.select_related("account").iterator():
        payload = json.loads(_masked(json.dumps(client_class(event.account.kind).recordable(event.payload)), masks))
        outcome = _masked(event.outcome, masks)
        if (payload, outcome) != (event.payload, event.outcome):
            WebhookEvent.objects.filter(pk=event.pk).update(payload=payload, outcome=outcome)

    for code, masked in masks.items():
        for event in OrderEvent.objects.filter(message__contains=code).only("id", "message"):
            OrderEvent.objects.filter(pk=event.pk).update(message=event.message.replace(code, masked))


def codes_decrypt(apps, schema_editor):
    from providers import crypto

    Order = apps.get_model("orders", "Order")
    for order in Order.objects.exclude(card_code_encrypted="").only("id", "card_code_encrypted").iterator():
        Order.objects.filter(pk=order.pk).update(provider_card_id=crypto.decrypt_text(order.card_code_encrypted))


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0009_orderevent_without_call_fields'),
        ('providers', '0005_rename_providercall_ratelimitslot'),
    ]

    operations = [
        migrations.AddField(
            model_name='order',
            name='card_code_encrypted',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name='order',
            name='card_code_last4',
            field=models.CharField(blank=True, editable=False, max_length=4, verbose_name='card code (last 4)'),
        ),
        migrations.RunPython(codes_encrypt_and_scrub, codes_decrypt),
        migrations.RemoveField(
            model_name='order',
            name='provider_card_id',
        ),
    ]
