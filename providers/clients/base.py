"""The one interface every provider client implements, its value types, its errors, and
the HTTP-speaking base class the clients build on.

Only these neutral types cross the boundary: the delivery engine never sees a provider's
own vocabulary, and a client never sees the ORM.

`HttpProviderClient` owns what must be the same for every provider, because "a card is
never bought twice" depends on it: timeouts, `Accept: application/json`, the idempotency
header, which failures are an account refusal, which are transient and how long to wait
(`Retry-After`), when the outcome of a request is unknown, HTML where JSON was expected,
and recording every exchange with only the provider's safe fields. A provider module
supplies hooks only.
"""

from __future__ import annotations

import email.utils
import enum
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import requests
from django.conf import settings
from django.db.models.enums import TextChoices
from urllib3.exceptions import NewConnectionError
from urllib3.util import parse_url

# --- Errors --------------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call did not succeed. `message` is written for a staff member."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response_body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.response_body = response_body
        self.retry_after = retry_after

    def reworded(self, message: str) -> ProviderError:
        """The same error (class, status, body, wait) in other words."""
        return type(self)(message, status_code=self.status_code, response_body=self.response_body,
                          retry_after=self.retry_after)


class PermanentError(ProviderError):
    """Refused for good (validation): retrying the same request cannot succeed."""


class TransientError(ProviderError):
    """Nothing was committed, or a retry with the same key is safe: try again later."""


class RateLimited(TransientError):
    """GiftDesk held the request back to keep the account's rate limit: nothing was sent."""


class OutcomeUnknown(ProviderError):
    """The request may have been committed (timeout, dropped connection): reconcile it with
    the same idempotency key or a lookup, never with a fresh key."""


class AccountError(ProviderError):
    """The provider refuses the whole account (credentials, funds, IP allow list)."""


class HostNotAllowed(AccountError):
    """GiftDesk refused to send a request (and so the account's credentials) to a host: a
    production account's URL names a host its provider does not document, or the provider
    answered with a redirect. Nothing was sent there."""


class WebhookRejected(Exception):
    """An inbound webhook that must change nothing: bad or missing signature, stale, malformed."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- Value types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountConfig:
    """What a client needs to know of a ProviderAccount."""

    id: int
    name: str
    kind: str
    environment: str
    api_base_url: str
    auth_url: str
    credentials: dict[str, str]
    settings: dict[str, Any]


class PricingKind(TextChoices):
    """How a product is priced: a list of fixed values, or any value in a range (with a step)."""

    FIXED = "fixed", "Fixed denominations"
    RANGE = "range", "Range"


@dataclass(frozen=True)
class ProductInfo:
    provider_product_id: str
    sku: str
    title: str
    currency: str
    pricing: PricingKind
    denominations: tuple[Decimal, ...] = ()
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    step: Decimal | None = None
    delivery_methods: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CardRequest:
    """One card to buy. `order_reference` is our unique reference of the order."""

    order_reference: str
    recipient_name: str
    recipient_email: str
    amount: Decimal
    currency: str
    product_id: str
    sku: str
    recipient_phone: str = ""
    message: str = ""
    send_on: date | None = None


@dataclass
class SubmitRequest:
    """One provider order for one or more cards, under one idempotency key.

    `provider_reference` is what an earlier attempt already stored (a GoGift basket id);
    `remember_reference` must persist a new one before the client sends anything that
    depends on it, so a retry continues the same provider order.
    """

    idempotency_key: str
    reference: str
    cards: list[CardRequest]
    provider_reference: str = ""
    remember_reference: Callable[[str], None] = lambda reference: None
    sender_name: str = ""
    # When the provider should deliver (the batch's scheduled time); None: now.
    send_at: datetime | None = None


class CardStatus(enum.StrEnum):
    PROCESSING = "processing"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class CardResult:
    """What became of one card. PROCESSING means: ask again with `fetch_status`."""

    order_reference: str
    status: CardStatus
    provider_order_id: str = ""
    cost: Decimal | None = None
    cost_currency: str = ""
    error: str = ""
    # The provider's own card (e.g. a Gifty gift card code), and what finance may see of it.
    provider_card_id: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SubmitResult:
    """`provider_reference` is what `fetch_status` needs to look the order up again."""

    provider_reference: str
    cards: list[CardResult]


@dataclass(frozen=True)
class StatusRequest:
    """Look up a provider order placed earlier; `cards` are its cards still in flight."""

    provider_reference: str
    cards: list[CardRequest]
    idempotency_key: str = ""


@dataclass(frozen=True)
class Quote:
    """What the provider will charge for some cards, fees included, before ordering."""

    currency: str
    subtotal: Decimal
    fees: Decimal
    total: Decimal
    lines: tuple[str, ...] = ()  # readable fee lines, e.g. "Service fee: 1.50 EUR"


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    message: str


@dataclass(frozen=True)
class CallRecord:
    """One HTTP exchange, only its safe fields kept, for the record of provider calls."""

    method: str
    url: str
    status: int | None
    request_body: str
    response_body: str
    duration_ms: int
    error: str = ""


Recorder = Callable[[CallRecord], None]


# --- The interface ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound webhook as received: the raw body, exactly as signed."""

    method: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: datetime

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class CardUpdate:
    """What a webhook says of one card, found by our reference or the provider's order id."""

    status: CardStatus
    order_reference: str = ""
    provider_order_id: str = ""
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    provider_card_id: str = ""


@dataclass(frozen=True)
class ParsedWebhook:
    """A verified webhook. `event_id` is unique per account: a replay changes nothing."""

    event_id: str
    event_type: str
    updates: list[CardUpdate]
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing reveals nothing of the expected signature."""
    return hmac.compare_digest(expected.strip().lower().encode(), given.strip().lower().encode())


def webhook_json_object(body: bytes) -> dict[str, Any]:
    """A verified webhook body that is one JSON object. Raises WebhookRejected (400)
    otherwise: a signed body of another shape must not be retried forever."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookRejected("The body is not a JSON object.")
    return payload


def webhook_event(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """A verified webhook body that is one JSON event {"id", "type", ...}: its id and type
    (stripped; a numeric id as text) and the whole object. Raises WebhookRejected otherwise."""
    payload = webhook_json_object(body)
    event_id, event_type = payload.get("id"), payload.get("type")
    if not isinstance(event_id, str | int) or isinstance(event_id, bool) or not str(event_id).strip():
        raise WebhookRejected("The event has no id.")
    if not isinstance(event_type, str) or not event_type.strip():
        raise WebhookRejected("The event has no type.")
    return str(event_id).strip(), event_type.strip(), payload


Throttle = Callable[[], None]


@dataclass(frozen=True)
class SettingField:
    """One account setting a provider needs (GoGift buyer details, a sender name...), as the
    admin form and the pre-launch checklist show it. Stored in ProviderAccount.settings."""

    label: str
    help_text: str = ""
    required: bool = False  # the pre-launch checklist asks for it
    default: str = ""  # what the client uses when it is blank


class ProviderClient:
    """Base of every provider client; subclasses build requests and parse responses.

    Class attributes tell the engine and the admin what the provider needs; the optional
    methods at the end return None (or raise NotImplementedError) where a provider has no
    such thing.
    """

    kind: ClassVar[str]
    display_name: ClassVar[str]
    # Credentials (key -> label) `configure_account --set` and the account form accept for
    # this kind; stored encrypted, never shown back.
    credential_fields: ClassVar[dict[str, str]] = {}
    # What each credential is and where to find it, in the provider's own words (key -> help;
    # "webhook_secret" too): the account form shows it under the field.
    credential_help: ClassVar[dict[str, str]] = {}
    # The account settings this kind reads (key -> how the form shows it).
    setting_fields: ClassVar[dict[str, SettingField]] = {}
    # Lists in this provider's bodies whose entries are one card each but name no card (no
    # reference, no email): the order page matches them by position (orders.call_excerpts).
    cards_in_order_lists: ClassVar[tuple[str, ...]] = ()
    # Environment -> (API base URL, token URL or ""), as the provider documents them.
    documented_urls: ClassVar[dict[str, tuple[str, str]]] = {}
    # Most cards one provider request may carry (None: the account's setting decides).
    max_cards_per_submission: ClassVar[int | None] = None
    # Card fields that must be the same for every card of one request ("currency", "product").
    submission_group: ClassVar[tuple[str, ...]] = ("currency",)
    # Whether `fetch_status` can look up orders the provider is still fulfilling.
    supports_status: ClassVar[bool] = False
    # Whether `balance` can report a prepaid balance (a wallet) to compare a batch's total with.
    reports_balance: ClassVar[bool] = False
    # The provider's documented request limit per minute, if it has one.
    max_requests_per_minute: ClassVar[int | None] = None
    # The JSON field names (any depth, any case) whose values are safe to keep in a recorded
    # request or answer and in a stored webhook: ids, statuses, amounts, errors, times. Every
    # other value is kept as REDACTED (see `keep_safe_fields`). Never a code, PIN or claim
    # link, a card number, a secret or token, nor a recipient's personal data.
    recorded_fields: ClassVar[frozenset[str]] = frozenset()

    # Derived from the declarations above, for the engine and the checklist.
    credential_keys: ClassVar[tuple[str, ...]] = ()
    required_settings: ClassVar[dict[str, str]] = {}
    # The hosts of `documented_urls`: where a production account may send its credentials.
    documented_hosts: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.credential_keys = tuple(cls.credential_fields)
        cls.required_settings = {key: declared.label for key, declared in cls.setting_fields.items() if declared.required}
        cls.recorded_fields = frozenset(name.lower() for name in cls.recorded_fields)
        cls.documented_hosts = frozenset(url_host(url) for urls in cls.documented_urls.values() for url in urls if url)

    def __init__(
        self,
        account: AccountConfig,
        *,
        recorder: Recorder | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.account = account
        self.recorder = recorder
        self.throttle = throttle

    def setting(self, key: str) -> str:
        """An account setting as text, or its declared default when it is blank."""
        value = self.account.settings.get(key)
        if value in (None, ""):
            declared = self.setting_fields.get(key)
            return declared.default if declared else ""
        return str(value)

    @classmethod
    def recordable(cls, value: Any) -> Any:
        """A request, answer or webhook body (JSON) as it may be stored: only this provider's
        safe fields keep their values."""
        return keep_safe_fields(value, cls.recorded_fields)

    def verify(self) -> VerifyResult:
        """Check the credentials and the account's health with one cheap call."""
        raise NotImplementedError

    def list_products(self) -> list[ProductInfo]:
        """The whole catalog, normalized."""
        raise NotImplementedError

    def submit(self, request: SubmitRequest) -> SubmitResult:
        """Place one provider order for the request's cards."""
        raise NotImplementedError

    def fetch_status(self, request: StatusRequest) -> SubmitResult:
        """The current state of a provider order placed by `submit`."""
        raise NotImplementedError(f"{self.display_name} has no status lookup.")

    def quote(self, cards: list[CardRequest]) -> Quote | None:
        """Price with fees before ordering, where the provider offers one."""
        return None

    def balance(self) -> Balance | None:
        """The account's prepaid balance, where the provider keeps one."""
        return None

    def card_details(self, provider_card_id: str) -> dict[str, Any] | None:
        """What finance may see of an issued card (balance, redeemable, expiry)."""
        return None

    # --- Webhooks ------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest, secrets: list[str]) -> ParsedWebhook:
        """Verify an inbound webhook against the account's secrets (newest first, so a
        secret can be rotated) and say what it changes. Raises WebhookRejected."""
        raise WebhookRejected(f"{self.display_name} sends no webhooks GiftDesk understands.", status=404)

    def register_webhook(self, url: str, secret: str) -> tuple[str, str]:
        """Subscribe `url` to order events at the provider. Returns (the provider's
        webhook id, the secret to verify deliveries with: `secret`, or the provider's own)."""
        raise NotImplementedError(f"{self.display_name} webhooks are not registered through its API.")


# --- Where credentials may go -----------------------------------------------------------------


def url_host(url: str) -> str:
    """The host a URL connects to, lower-case, parsed as requests (urllib3) parses it."""
    return (parse_url(url).host or "").lower().strip("[]")


def hosts_allowed() -> set[str]:
    """GIFTDESK_PROVIDER_HOSTS_ALLOWED: hosts an operator lets production accounts reach."""
    return {host.strip().lower().strip("[]") for host in settings.GIFTDESK_PROVIDER_HOSTS_ALLOWED if host.strip()}


# --- Reading providers' numbers ---------------------------------------------------------------


def parse_decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as an exact, finite Decimal; None for anything else
    (null, booleans, objects, "abc", NaN). Floats go through str, never binary."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


# --- The HTTP-speaking base class -------------------------------------------------------------

USER_AGENT = "GiftDesk/1.0 (+self-hosted gift card back-office)"
REDACTED = "[redacted]"
MAX_RECORDED_BODY = 8_000
# Reset headers at least this large are Unix times, not seconds to wait: no rate-limit
# window lasts 31 years (1e9 s is 2001-09-09); 1e12 and more are epoch milliseconds.
EPOCH_SECONDS_FROM = 1_000_000_000
EPOCH_MILLISECONDS_FROM = 1_000_000_000_000


def to_json_number(value: Any) -> Any:
    """json.dumps `default`: Decimals become exact JSON numbers (2-decimal money)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def keep_safe_fields(value: Any, safe: frozenset[str], *, kept: bool = False, parent: str = "") -> Any:
    """A JSON value with only the values of `safe` fields: lower-case names, at any depth, or
    "parent.name" for a name only inside `parent` (a map of translations or prices). Every
    other text or number becomes REDACTED, its key kept so the shape stays readable; objects
    and lists are walked (a list's items count as its field's); null and booleans reveal
    nothing and stay.

    An allow-list, not a deny-list: a field nobody vetted (a provider's new `claimLink`)
    is never stored."""
    if isinstance(value, dict):
        walked = {}
        for key, item in value.items():
            name = str(key).lower()
            walked[key] = keep_safe_fields(item, safe, kept=name in safe or f"{parent}.{name}" in safe, parent=name)
        return walked
    if isinstance(value, list):
        return [keep_safe_fields(item, safe, kept=kept, parent=parent) for item in value]
    if kept or value is None or isinstance(value, bool):
        return value
    return REDACTED


def rate_limit_wait(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait before asking again, from standard headers: `Retry-After` (seconds or
    an HTTP date, RFC 9110), else `RateLimit-Reset`, else `X-RateLimit-Reset` (seconds to
    wait, or a Unix time in seconds or milliseconds). None when no header says."""
    now = time.time() if now is None else now
    value = (headers.get("Retry-After") or "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                moment = None
            if moment is not None and moment.tzinfo is not None:
                return max(0.0, moment.timestamp() - now)
    for name in ("RateLimit-Reset", "X-RateLimit-Reset"):
        try:
            number = float((headers.get(name) or "").strip())
        except ValueError:
            continue
        if number >= EPOCH_MILLISECONDS_FROM:
            return max(0.0, number / 1000 - now)
        if number >= EPOCH_SECONDS_FROM:
            return max(0.0, number - now)
        return max(0.0, number)
    return None


@dataclass
class Reply:
    """A provider's answer: its status, its JSON (None when empty), headers and text."""

    status: int
    data: Any
    headers: Mapping[str, str]
    text: str

    @property
    def fields(self) -> dict[str, Any]:
        """The JSON object answered, or {} when the answer is not an object."""
        return self.data if isinstance(self.data, dict) else {}

    @property
    def retry_after(self) -> float | None:
        return rate_limit_wait(self.headers)


@dataclass(frozen=True)
class Call:
    """What a request was for, so a refusal can be explained in its context."""

    method: str
    path: str
    # What the provider did when it refused, as a phrase: "refused the order".
    refusal: str = "refused the request"


class HttpProviderClient(ProviderClient):
    """A provider client over HTTP and JSON. It owns the whole of a request: the session,
    timeouts, authentication and idempotency headers, the account's rate limit, recording
    (redacted), and turning every failure into one of the normalized errors.

    A provider module supplies hooks only: `auth_headers` (and `renew_auth` where a token
    can be renewed), `error_reason` (its error body as one sentence), and `refine_error`
    (its own words for a refusal, and the deviations its documents call for).
    """

    # The header carrying a request's idempotency key, as the provider documents it.
    idempotency_headers: ClassVar[tuple[str, ...]] = ("Idempotency-Key",)

    def __init__(self, account: AccountConfig, **kwargs: Any) -> None:
        super().__init__(account, **kwargs)
        documented = self.documented_urls.get(account.environment) or next(iter(self.documented_urls.values()))
        self.api_url = (account.api_base_url or documented[0]).rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.timeout = (settings.GIFTDESK_HTTP_CONNECT_TIMEOUT, settings.GIFTDESK_HTTP_READ_TIMEOUT)

    # --- Hooks ---------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate an API request (asked per request: tokens expire)."""
        return {}

    def renew_auth(self) -> bool:
        """Forget cached authentication after a 401; True if a fresh one may succeed (then
        the request is sent once more)."""
        return False

    def error_reason(self, reply: Reply) -> str:
        """The provider's error body as one readable sentence; "" when it says nothing."""
        return ""

    def recorded_url(self, url: str) -> str:
        """A request's URL as it may be stored: a provider whose paths carry a card's code
        masks it here."""
        return url

    def refine_error(self, error: ProviderError, reply: Reply, reason: str, call: Call) -> ProviderError:
        """The provider's own words for a refusal (what to do in its dashboard), and the
        deviations its documents call for. `error` is the default classification."""
        return error

    # --- Requests ------------------------------------------------------------------------

    def check_host(self, url: str) -> None:
        """Refuse, before anything is sent, a production account's request to a host its
        provider does not document and GIFTDESK_PROVIDER_HOSTS_ALLOWED does not list, so its
        credentials cannot be sent to a listener. Sandbox accounts may point anywhere (an
        emulator, a mock): their credentials buy nothing, and changing an account's URL
        clears its stored credentials anyway (services.account_save)."""
        if self.account.environment != "production":
            return
        host = url_host(url)
        if host in self.documented_hosts or host in hosts_allowed():
            return
        raise HostNotAllowed(
            f"GiftDesk did not send the request to {host or url}: a production {self.display_name} account "
            f"talks only to {self.display_name}'s documented hosts ({', '.join(sorted(self.documented_hosts))}). "
            f"If {host or 'this host'} is your proxy or emulator, add it to GIFTDESK_PROVIDER_HOSTS_ALLOWED; "
            "otherwise correct the account's URLs."
        )

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        commits: bool = False,
        refusal: str = "refused the request",
    ) -> Reply:
        """Send one request to the provider's API and return its 2xx reply, or raise the
        normalized error. `commits` marks a request that may create something: if it fails
        after being sent, its outcome is unknown rather than merely transient."""
        call = Call(method, path, refusal)
        extra = dict(headers or {})
        if idempotency_key:
            extra.update(dict.fromkeys(self.idempotency_headers, idempotency_key))
        reply = self.send(method, f"{self.api_url}{path}", json_body=body,
                          headers={**self.auth_headers(), **extra}, commits=commits)
        if reply.status == 401 and self.renew_auth():
            # A token can expire or be revoked before its cache says so: renew it once.
            reply = self.send(method, f"{self.api_url}{path}", json_body=body,
                              headers={**self.auth_headers(), **extra}, commits=commits)
        if 200 <= reply.status < 300:
            return reply
        raise self.error_for(reply, call)

    def send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        commits: bool = False,
    ) -> Reply:
        """Send one request and return its reply, whatever its status. Network failures and
        HTML pages raise the normalized errors; everything is recorded, redacted."""
        content = None
        send_headers = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body, default=to_json_number)
            send_headers["Content-Type"] = "application/json"
        self.check_host(url)
        if self.throttle is not None:
            self.throttle()  # the account's rate limit, shared by every worker
        sent = json_body if form is None else form
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, data=content if form is None else form, headers=send_headers, timeout=self.timeout,
                # A redirect would resend custom auth headers (X-API-Key) and, for 307/308, a
                # token request's client secret to a host nobody checked: never followed.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self._record(method, url, sent, None, "", started, exc)
            raise self._network_error(exc, commits) from exc
        self._record(method, url, sent, response.status_code, response.text, started, None)
        if response.is_redirect:
            raise self._redirect_error(response)
        if _looks_like_html(response):
            raise self._html_error(response)
        return Reply(status=response.status_code, data=self._decode(response), headers=response.headers,
                     text=response.text[:MAX_RECORDED_BODY])

    # --- Classification --------------------------------------------------------------------

    def error_for(self, reply: Reply, call: Call) -> ProviderError:
        """What a non-2xx answer means: the account refused (401, 402, 403: sending pauses),
        try again later (429, 5xx, after `Retry-After`), or refused for good (other 4xx)."""
        reason = self.error_reason(reply) or f"HTTP {reply.status}"
        name, status = self.display_name, reply.status
        details = {"status_code": status, "response_body": reply.text}
        if status in (401, 402, 403):
            error: ProviderError = AccountError(
                f"{name} refused the account (HTTP {status}: {reason}). Fix it with {name}, "
                "then resume sending.", **details)
        elif status == 429:
            error = TransientError(
                f"{name}'s rate limit was reached ({reason}). It will be retried when the limit "
                "resets; lower the account's requests per minute if this happens often.",
                retry_after=reply.retry_after, **details)
        elif status >= 500:
            error = TransientError(f"{name} is unavailable right now (HTTP {status}: {reason}). "
                                   "It will be retried.", retry_after=reply.retry_after, **details)
        else:
            error = PermanentError(f"{name} {call.refusal}: {reason}", **details)
        return self.refine_error(error, reply, reason, call)

    def _decode(self, response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if response.status_code >= 500:
                return None
            raise PermanentError(
                f"{self.display_name} answered something that is not JSON (HTTP {response.status_code}). "
                f"Report this to {self.display_name} support.",
                status_code=response.status_code, response_body=response.text[:MAX_RECORDED_BODY],
            ) from None

    def _network_error(self, exc: requests.RequestException, commits: bool) -> ProviderError:
        never_sent = isinstance(exc, requests.ConnectTimeout) or _is_connect_refused(exc)
        if never_sent or not commits:
            return TransientError(f"Could not reach {self.display_name} ({_short(exc)}). It will be retried.")
        return OutcomeUnknown(
            f"No answer from {self.display_name} after the request was sent ({_short(exc)}). "
            "It will be checked with the same idempotency key, never sent again as new."
        )

    def _redirect_error(self, response: requests.Response) -> ProviderError:
        target = url_host(response.headers.get("Location", "")) or "another address"
        return HostNotAllowed(
            f"{self.display_name} answered with a redirect (HTTP {response.status_code}) to {target}. GiftDesk "
            "does not follow redirects with the account's credentials: check the account's URLs.",
            status_code=response.status_code,
        )

    def _html_error(self, response: requests.Response) -> ProviderError:
        name, status = self.display_name, response.status_code
        if status >= 500 or status == 429:
            return TransientError(
                f"{name} answered with an HTML error page (HTTP {status}) instead of JSON: it is "
                "probably down. It will be retried.",
                status_code=status, retry_after=rate_limit_wait(response.headers),
            )
        return PermanentError(
            f"{name} answered with an HTML page instead of JSON (HTTP {status}). The request must "
            "carry 'Accept: application/json' and go to the API base URL; check the account's API "
            "base URL.",
            status_code=status, response_body=response.text[:500],
        )

    def _record(self, method: str, url: str, body: Any, status: int | None, text: str, started: float,
                exc: BaseException | None) -> None:
        if self.recorder is None:
            return
        self.recorder(CallRecord(
            method=method,
            url=self.recorded_url(url),
            status=status,
            request_body=json.dumps(self.recordable(body), default=to_json_number) if body else "",
            response_body=self._recorded_text(text)[:MAX_RECORDED_BODY],
            duration_ms=int((time.monotonic() - started) * 1000),
            error=_short(exc),
        ))

    def _recorded_text(self, text: str) -> str:
        """An answer as it may be stored: its safe fields, or only its length when it is
        not JSON (nothing in free text can be vouched for)."""
        if not text:
            return ""
        try:
            data = json.loads(text)
        except ValueError:
            return f"[not JSON: {len(text)} characters, not recorded]"
        return json.dumps(self.recordable(data), default=to_json_number)


def _looks_like_html(response: requests.Response) -> bool:
    if "html" in response.headers.get("Content-Type", ""):
        return True
    head = response.text[:200].lstrip().lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


def _is_connect_refused(exc: BaseException) -> bool:
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
