"""The HTTP layer shared by every provider client.

It owns what must be the same everywhere: timeouts, `Accept: application/json`, the
distinction between "never sent" and "maybe committed" network failures, HTML where JSON
was expected, secret redaction, and recording every exchange.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from urllib3.exceptions import NewConnectionError

from providers.clients.base import (
    CallRecord,
    OutcomeUnknown,
    PermanentError,
    Recorder,
    Throttle,
    TransientError,
)

USER_AGENT = "GiftDesk/1.0 (+self-hosted gift card back-office)"
REDACTED = "[redacted]"
SECRET_FIELDS = re.compile(
    r"(secret|password|token|api[_-]?key|authorization|client_secret)", re.IGNORECASE
)
MAX_RECORDED_BODY = 8_000


def to_json_number(value: Any) -> Any:
    """json.dumps `default`: Decimals become exact JSON numbers (2-decimal money)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (REDACTED if SECRET_FIELDS.search(str(key)) else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # An HTTP date: the caller's own backoff applies.


def looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type:
        return True
    head = response.text[:200].lstrip().lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


@dataclass
class Reply:
    status: int
    data: Any
    headers: requests.structures.CaseInsensitiveDict
    text: str

    @property
    def retry_after(self) -> float | None:
        return _parse_retry_after(self.headers.get("Retry-After"))


class HttpClient:
    """A requests session with GiftDesk's rules; one per provider client."""

    def __init__(
        self, *, provider_name: str, recorder: Recorder | None = None, throttle: Throttle | None = None
    ) -> None:
        self.provider_name = provider_name
        self.recorder = recorder
        # Called before every request: the account's rate limit, shared by all workers.
        self.throttle = throttle
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.timeout = (settings.GIFTDESK_HTTP_CONNECT_TIMEOUT, settings.GIFTDESK_HTTP_READ_TIMEOUT)

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        commits: bool = False,
    ) -> Reply:
        """Send one request and return its reply, whatever its status.

        `commits` marks a request that may create something at the provider: if it fails
        after being sent, its outcome is unknown rather than merely transient.
        """
        body = None
        send_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, default=to_json_number)
            send_headers["Content-Type"] = "application/json"
        if self.throttle is not None:
            self.throttle()
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, data=body if form is None else form, headers=send_headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            self._record(method, url, json_body if form is None else form, None, "", started, exc)
            raise self._network_error(exc, commits) from exc
        self._record(method, url, json_body if form is None else form, response.status_code,
                     response.text, started, None)
        if looks_like_html(response):
            raise self._html_error(response)
        return Reply(
            status=response.status_code,
            data=self._decode(response),
            headers=response.headers,
            text=response.text[:MAX_RECORDED_BODY],
        )

    def _decode(self, response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if response.status_code >= 500:
                return None
            raise PermanentError(
                f"{self.provider_name} answered something that is not JSON "
                f"(HTTP {response.status_code}). Report this to {self.provider_name} support.",
                status_code=response.status_code,
                response_body=response.text[:MAX_RECORDED_BODY],
            ) from None

    def _network_error(self, exc: requests.RequestException, commits: bool) -> Exception:
        never_sent = isinstance(exc, requests.ConnectTimeout) or _is_connect_refused(exc)
        if never_sent or not commits:
            return TransientError(
                f"Could not reach {self.provider_name} ({_short(exc)}). It will be retried."
            )
        return OutcomeUnknown(
            f"No answer from {self.provider_name} after the request was sent ({_short(exc)}). "
            "It will be checked with the same idempotency key, never sent again as new."
        )

    def _html_error(self, response: requests.Response) -> Exception:
        if response.status_code >= 500 or response.status_code == 429:
            return TransientError(
                f"{self.provider_name} answered with an HTML error page (HTTP "
                f"{response.status_code}) instead of JSON: it is probably down. It will be retried.",
                status_code=response.status_code,
                retry_after=_parse_retry_after(response.headers.get("Retry-After")),
            )
        return PermanentError(
            f"{self.provider_name} answered with an HTML page instead of JSON (HTTP "
            f"{response.status_code}). The request must carry 'Accept: application/json' and "
            "go to the API base URL; check the account's API base URL.",
            status_code=response.status_code,
            response_body=response.text[:500],
        )

    def _record(self, method, url, body, status, text, started, exc) -> None:
        if self.recorder is None:
            return
        self.recorder(
            CallRecord(
                method=method,
                url=url,
                status=status,
                request_body=json.dumps(redact(body), default=to_json_number) if body else "",
                response_body=_redact_text(text)[:MAX_RECORDED_BODY],
                duration_ms=int((time.monotonic() - started) * 1000),
                error=_short(exc) if exc else "",
            )
        )


def _redact_text(text: str) -> str:
    try:
        return json.dumps(redact(json.loads(text)))
    except ValueError:
        return text


def _is_connect_refused(exc: Exception) -> bool:
    """True when the connection was never established (nothing reached the provider)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        current = next((arg for arg in args if isinstance(arg, BaseException)), None) or (
            current.__cause__ or current.__context__
        )
    return False


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed" if _is_connect_refused(exc) else "connection dropped"
    return type(exc).__name__
