"""Outgoing webhook events, as Gifty and UGiftMe send them: a compact JSON body signed with
the hex HMAC-SHA256 of the raw body (keyed with the subscription's secret), POSTed once."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests


def hex_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_json(secret: str, event: dict[str, Any], *, header: str) -> tuple[dict[str, str], bytes]:
    """The headers and raw body for `event`, its signature in `header`."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return {"Content-Type": "application/json", header: hex_signature(secret, body)}, body


def post_event(url: str, headers: dict[str, str], body: bytes, *, timeout: float) -> tuple[int | None, str]:
    """POST one event, no redirects, no retries: (the receiver's status, "") or (None, why not)."""
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return response.status_code, ""
