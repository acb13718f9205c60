"""What every emulator shares: the request pipeline with its fault phases, routing, the
ledger of cards issued, the record of requests received, and the `/_emulator/` control
endpoints.

A provider's emulator subclasses `EmulatorBase` and supplies `_dispatch` (check who calls,
then `_route`), its routes, its provider-shaped answers (`_too_many_requests`,
`_server_error`, `_not_found`, `_method_not_allowed`), `_forget` (its own state, for
`reset()`) and `funds_routes` (where an order can lack funds); the rest is here, so every
emulator injects faults, routes and keeps its ledger alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from emulators import faults as F
from emulators.clock import Clock
from emulators.faults import Fault, FaultPlan
from emulators.loopback import DropConnection, EmulatorRequest, EmulatorResponse, html_response, json_response

ADMIN_PREFIX = "/_emulator/"

# What a proxy in front of a provider answers when the provider is down: the "html" fault.
GATEWAY_ERROR_PAGE = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One gift card an emulator issued. Tests count these to prove nothing was bought twice."""

    card_id: str  # the provider's id of the card (UGiftMe: of its order, one card each)
    order_id: str  # the provider order that bought it
    reference: str | None  # our order's reference, where the provider carries one per card
    product_id: str
    sku: str | None = None  # where the provider has SKUs besides product ids (GoGift)
    amount: Decimal  # the card's value, in `currency`
    currency: str
    recipient_name: str | None
    recipient_email: str | None
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific ids (basket id, code, ...)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["amount"] = str(self.amount)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True, kw_only=True)
class Call:
    """What a route handler gets besides the request: who calls (client id, token or API
    key), the path parameters, and an insufficient-funds fault taken for this request (only
    an order honours it). An emulator adds what its handlers need (language, scopes)."""

    caller: str
    params: dict[str, str] = field(default_factory=dict)
    credit_fault: Fault | None = None


Handler = Callable[[EmulatorRequest, Any], EmulatorResponse]  # (request, a Call) -> answer


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]  # matches the whole path; named groups become `Call.params`
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    return Route(method, re.compile(pattern), handler)


class EmulatorBase:
    """The pipeline: record, before-commit fault, dispatch under the lock, after-commit fault."""

    # (method, path) of the requests that place an order: only they can lack funds.
    funds_routes: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    _routes: list[Route]

    def __init__(self, *, clock: Clock | None = None, unscoped_excludes: tuple[str, ...] = ()) -> None:
        self.clock = clock or Clock()
        self.faults = FaultPlan(unscoped_excludes=unscoped_excludes)
        self.ledger: list[LedgerEntry] = []
        self.requests: list[EmulatorRequest] = []  # as received, for tests that check headers and bodies
        self._lock = threading.Lock()
        # Each emulator's idempotency keys, with whatever it keeps per key; reset() forgets them.
        self._idempotency: dict[Any, Any] = {}

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        request = self._normalize(request)
        if request.path.startswith(ADMIN_PREFIX):
            return self._handle_admin(request)
        self._record(request)
        fault = self.faults.take(request, F.BEFORE, applicable=self._before_kinds(request))
        if fault is not None and fault.kind != F.INSUFFICIENT_FUNDS:
            return self._fault_response(request, fault)
        with self._lock:
            response = self._dispatch(request, fault)
        self._after_dispatch()
        if 200 <= response.status < 300:  # "after commit": only when something was done
            after = self.faults.take(request, F.AFTER)
            if after is not None and after.kind == F.DROP_AFTER_COMMIT:
                raise DropConnection()
            if after is not None and after.kind == F.TIMEOUT_AFTER_COMMIT:
                # Real time, outside the lock: the client's read timeout must really fire,
                # while other requests carry on.
                time.sleep(after.delay)
        return response

    def reset(self) -> None:
        """Forget the ledger, recorded requests, idempotency keys and faults, and what the
        emulator's `_forget` names; what a running client holds (tokens) stays valid."""
        with self._lock:
            self.ledger.clear()
            self.requests.clear()
            self._idempotency.clear()
            self._forget()
        self.faults.clear()

    # --- Supplied by each emulator --------------------------------------------------------

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        """Answer one API request, under the lock. `credit_fault` is a pending
        insufficient-funds fault for an order request."""
        raise NotImplementedError

    def _too_many_requests(self, request: EmulatorRequest, retry_after: int) -> EmulatorResponse:
        raise NotImplementedError

    def _server_error(self, request: EmulatorRequest, status: int) -> EmulatorResponse:
        """A 500 or 503 in the provider's error format."""
        raise NotImplementedError

    def _not_found(self, request: EmulatorRequest) -> EmulatorResponse:
        raise NotImplementedError

    def _method_not_allowed(self, request: EmulatorRequest, allowed: list[str]) -> EmulatorResponse:
        raise NotImplementedError

    def _forget(self) -> None:
        """Clear the emulator's own state, under the lock (see `reset`)."""

    def _normalize(self, request: EmulatorRequest) -> EmulatorRequest:
        return request

    def _after_dispatch(self) -> None:
        """Work to do outside the lock once a request was answered (e.g. send webhooks)."""

    def _extra_control(self, request: EmulatorRequest, action: str) -> EmulatorResponse | None:
        """An emulator's own `/_emulator/` controls; None: not one of mine."""
        return None

    # --- Shared ---------------------------------------------------------------------------

    def _route(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        """Hand the request to the route that matches its method and path; 405 when only
        the method is wrong, 404 when nothing matches."""
        allowed: list[str] = []
        for candidate in self._routes:
            match = candidate.pattern.fullmatch(request.path)
            if match is None:
                continue
            if candidate.method == request.method:
                return candidate.handler(request, replace(call, params=match.groupdict()))
            if candidate.method not in allowed:
                allowed.append(candidate.method)
        if allowed:
            return self._method_not_allowed(request, allowed)
        return self._not_found(request)

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        if fault.kind == F.DROP_BEFORE:
            raise DropConnection()
        if fault.kind == F.HTML:
            return html_response(502, GATEWAY_ERROR_PAGE)
        if fault.kind == F.HTTP_429:
            return self._too_many_requests(request, fault.retry_after)
        return self._server_error(request, 503 if fault.kind == F.HTTP_503 else 500)

    def _replaying(self, handler: Handler, mismatch: Callable[[EmulatorRequest, str], EmulatorResponse]) -> Handler:
        """Wrap a handler so an `Idempotency-Key` replays the first answer for that key,
        per caller; the same key with another request gets `mismatch(request, key)`
        (see `replay_or_run`)."""

        def wrapped(request: EmulatorRequest, call: Call) -> EmulatorResponse:
            key = request.headers.get("Idempotency-Key", "").strip()
            if not key:
                return handler(request, call)
            return replay_or_run(self._idempotency, (call.caller, key), request,
                                 run=lambda: handler(request, call), mismatch=lambda: mismatch(request, key))

        return wrapped

    def _record(self, request: EmulatorRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _before_kinds(self, request: EmulatorRequest) -> frozenset[str]:
        kinds = set(F.FAULT_KINDS) - F.AFTER_COMMIT_KINDS
        if (request.method, request.path) not in self.funds_routes:
            kinds.discard(F.INSUFFICIENT_FUNDS)  # only an order can lack funds
        return frozenset(kinds)

    def _handle_admin(self, request: EmulatorRequest) -> EmulatorResponse:
        action = request.path[len(ADMIN_PREFIX):].strip("/")
        if request.method == "GET" and action == "ledger":
            with self._lock:
                return json_response(200, [entry.to_json() for entry in self.ledger])
        if request.method == "POST" and action == "reset":
            self.reset()
            return json_response(200, {"reset": True})
        if request.method == "POST" and action == "faults":
            return self._admin_add_fault(request)
        extra = self._extra_control(request, action)
        if extra is not None:
            return extra
        return json_response(404, {"error": f"No emulator endpoint {request.method} {request.path}"})

    def _admin_add_fault(self, request: EmulatorRequest) -> EmulatorResponse:
        body = request.json()
        if not isinstance(body, dict):
            return json_response(400, {"error": "Send a JSON object: {\"kind\", \"path\", \"times\", ...}"})
        options = {key: body[key] for key in ("method", "path", "times", "retry_after", "delay") if key in body}
        try:
            fault = self.faults.add(str(body.get("kind")), **options)
        except (TypeError, ValueError) as error:
            return json_response(400, {"error": str(error)})
        return json_response(201, {"added": asdict(fault)})


class RateWindows:
    """A sliding window of requests per caller, on the emulator's clock (Gifty, UGiftMe)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def wait(self, caller: str, *, limit: int, window: float) -> float | None:
        """None, counting this request, while the caller is under `limit` requests in the
        last `window` seconds; else the seconds until its oldest request leaves the window."""
        now = self._clock.monotonic()
        hits = self._hits.setdefault(caller, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return hits[0] + window - now
        hits.append(now)
        return None

    def clear(self) -> None:
        self._hits.clear()


# --- Idempotency ---------------------------------------------------------------------------


def request_fingerprint(request: EmulatorRequest) -> str:
    """Same request <=> same fingerprint: method, path and the body as canonical JSON."""
    data = request.json()
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() if data is not None else request.body
    return f"{request.method} {request.path} {hashlib.sha256(body).hexdigest()}"


@dataclass(frozen=True)
class StoredAnswer:
    """An answer kept under an idempotency key, to be replayed as it was."""

    status: int
    body: bytes
    headers: dict[str, str]
    fingerprint: str = ""  # of the request answered, where another request under the key is refused
    stored_at: float = 0.0  # on the clock's monotonic time, where keys expire

    @classmethod
    def of(cls, response: EmulatorResponse, **details: Any) -> StoredAnswer:
        return cls(response.status, response.body, dict(response.headers), **details)

    def replay(self) -> EmulatorResponse:
        return EmulatorResponse(self.status, self.body, dict(self.headers))


def replay_or_run(
    answers: dict[Any, StoredAnswer], scope: Any, request: EmulatorRequest,
    run: Callable[[], EmulatorResponse], mismatch: Callable[[], EmulatorResponse],
) -> EmulatorResponse:
    """Idempotency as GoGift and UGiftMe document it: the first answer under a key is
    replayed; the same key with another request gets the provider's `mismatch` error.
    Only successful answers are kept (a refused request changed nothing and may be sent
    again, corrected, under the same key)."""
    fingerprint = request_fingerprint(request)
    stored = answers.get(scope)
    if stored is not None:
        return stored.replay() if stored.fingerprint == fingerprint else mismatch()
    response = run()
    if 200 <= response.status < 300:
        answers[scope] = StoredAnswer.of(response, fingerprint=fingerprint)
    return response
