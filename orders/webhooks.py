"""Inbound provider webhooks: POST only, signature checked by the provider's client, each
event stored once under a unique id, then applied to the orders it names by the engine
(`orders.dispatch.card_updates_apply`).

A webhook that fails its checks gets 400 (or 401 for a bad signature) and changes nothing;
a replayed event gets 200 and changes nothing.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orders.dispatch import card_updates_apply
from providers.clients import client_for
from providers.clients.base import WebhookRejected, WebhookRequest
from providers.models import ProviderAccount, WebhookEvent

logger = logging.getLogger(__name__)

# Never stored from a webhook payload: what would let someone redeem a card.
SECRET_PAYLOAD_KEYS = {"pin", "giftcarduri", "code", "giftcard_code", "url", "redeem_url"}


def webhook_secrets(account: ProviderAccount) -> list[str]:
    """The account's webhook secrets, newest first: the previous one keeps working during a rotation."""
    credentials = account.credentials if account.has_credentials else {}
    return [secret for secret in (credentials.get("webhook_secret"), credentials.get("webhook_secret_previous")) if secret]


@csrf_exempt  # Signed by the provider instead; browsers never post here.
@require_POST
def receive(request: HttpRequest, account_id: int) -> HttpResponse:
    account = get_object_or_404(ProviderAccount, pk=account_id)
    secrets = webhook_secrets(account)
    if not secrets:
        return HttpResponse("No webhook secret is configured for this account.", status=401)
    inbound = WebhookRequest(
        method=request.method, headers={name.lower(): value for name, value in request.headers.items()},
        body=request.body, received_at=timezone.now(),
    )
    try:
        event = client_for(account).parse_webhook(inbound, secrets)
    except WebhookRejected as exc:
        logger.warning("Webhook for %s refused: %s", account, exc.reason)
        return HttpResponse(exc.reason, status=exc.status)
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(account=account, event_id=event.event_id[:200],
                                                 event_type=event.event_type[:100], payload=_without_secrets(event.payload))
            stored.outcome = card_updates_apply(account=account, updates=event.updates,
                                                actor=f"{account.get_kind_display()} webhook")
            stored.save(update_fields=["outcome"])
    except IntegrityError:
        return HttpResponse("Already received; nothing changed.", status=200)
    return HttpResponse(stored.outcome, status=200)


def _without_secrets(value):
    if isinstance(value, dict):
        return {key: ("[removed]" if key.lower() in SECRET_PAYLOAD_KEYS else _without_secrets(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value
