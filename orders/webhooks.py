"""Inbound provider webhooks: POST only, signature checked by the provider's client, each
event stored once under a unique id, then applied to the orders it names by the engine
(`orders.dispatch.card_updates_apply`).

A webhook that fails its checks changes nothing: a body over 1 MB gets 413 unread; an
unknown account, an account without a webhook secret and a missing or wrong signature all
get the same 401 (so account ids cannot be probed); a signed body of a shape the client does
not understand gets 400 (so the provider stops retrying). Each refusal is logged with its
reason. A replayed event gets 200 and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orders.dispatch import card_updates_apply
from providers.clients import client_class, client_for
from providers.clients.base import WebhookRejected, WebhookRequest
from providers.models import ProviderAccount, WebhookEvent

logger = logging.getLogger(__name__)

def webhook_secrets(account: ProviderAccount) -> list[str]:
    """The account's webhook secrets, newest first: the previous one keeps working during a rotation."""
    credentials = account.credentials if account.has_credentials else {}
    return [secret for secret in (credentials.get("webhook_secret"), credentials.get("webhook_secret_previous")) if secret]


# One provider event is a few kilobytes; anything near this is not a webhook of ours.
MAX_BODY_BYTES = 1024 * 1024
# Python's errors for a JSON value of another shape than the client expected (a list for an
# object, a number for a list...): the body is wrong, not GiftDesk.
SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError)


def not_verified() -> HttpResponse:
    """The one answer to an unknown account, a missing secret, a missing or wrong signature."""
    return HttpResponse("The webhook could not be verified.", status=401, content_type="text/plain; charset=utf-8")


def capped_body(request: HttpRequest) -> bytes | None:
    """The raw body, or None when it is over MAX_BODY_BYTES: the declared length is checked
    before anything is read, and no more than the cap and one byte are ever read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None
    body = request.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


def refusal_logged(account_label: str, status: int, reason: str, body: bytes) -> None:
    # The digest lets a provider's retries of one delivery be matched up in the log.
    logger.warning("Webhook for %s refused with %s: %s (%d bytes, sha256 %s)", account_label, status, reason,
                   len(body), hashlib.sha256(body).hexdigest()[:16])


@csrf_exempt  # Signed by the provider instead; browsers never post here.
@require_POST
def receive(request: HttpRequest, account_id: int) -> HttpResponse:
    body = capped_body(request)
    if body is None:
        logger.warning("Webhook for account id %s refused with 413: over %d bytes (not read)", account_id,
                       MAX_BODY_BYTES)
        return HttpResponse("The body is over 1 MB: no webhook is that large.", status=413)
    account = ProviderAccount.objects.filter(pk=account_id).first()
    secrets = webhook_secrets(account) if account is not None else []
    if not secrets:
        refusal_logged(f"account id {account_id}", 401,
                       "no such account" if account is None else "no webhook secret is configured", body)
        return not_verified()
    inbound = WebhookRequest(
        method=request.method, headers={name.lower(): value for name, value in request.headers.items()},
        body=body, received_at=timezone.now(),
    )
    client = client_for(account)
    try:
        event = client.parse_webhook(inbound, secrets)
    except WebhookRejected as exc:
        refusal_logged(str(account), exc.status, exc.reason, body)
        if exc.status != 400:  # 401 bad signature, 404 a kind without webhooks: all look unknown
            return not_verified()
        return HttpResponse(exc.reason, status=400)
    except SHAPE_ERRORS as exc:  # verified, but shaped like nothing the client knows
        reason = f"the body's shape is not understood ({type(exc).__name__})"
        logger.exception("Webhook for %s refused with 400: %s", account, reason)
        return HttpResponse(f"The webhook was refused: {reason}.", status=400)
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(account=account, event_id=event.event_id[:200],
                                                 event_type=event.event_type[:100], payload=stored_payload(account, event.payload))
            stored.outcome = card_updates_apply(account=account, updates=event.updates,
                                                actor=f"{account.get_kind_display()} webhook")
            stored.save(update_fields=["outcome"])
    except IntegrityError:
        return HttpResponse("Already received; nothing changed.", status=200)
    return HttpResponse(stored.outcome, status=200)


def stored_payload(account: ProviderAccount, payload: dict) -> dict:
    """What is kept of a verified event: only the fields its provider's client lists as safe
    (an allow-list), so a code, PIN or claim link, however a provider names it, is not."""
    return client_class(account.kind).recordable(payload)
