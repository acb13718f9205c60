"""What every emulator shares: the request pipeline with its fault phases, the record of
requests received, and the `/_emulator/` control endpoints.

A provider's emulator subclasses `EmulatorBase` and supplies `_dispatch` (its API),
`_fault_response` (a fault in its provider's own error format) and `funds_routes` (where
an order can lack funds); the rest is here, so every emulator injects faults alike.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from providers.emulators import faults as F
from providers.emulators.faults import Fault, FaultPlan
from providers.emulators.http import DropConnection, EmulatorRequest, EmulatorResponse, json_response

ADMIN_PREFIX = "/_emulator/"


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the emulator received it, for tests that check headers and bodies."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class EmulatorBase:
    """Subclasses set `self._lock`, `self.faults`, `self.ledger`, `self.requests` and `reset()`."""

    # (method, path) of the requests that place an order: only they can lack funds.
    funds_routes: ClassVar[frozenset[tuple[str, str]]] = frozenset()
    _lock: threading.RLock | threading.Lock
    faults: FaultPlan
    ledger: list
    requests: list[RecordedRequest]

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
                time.sleep(after.delay)  # outside the lock: other requests carry on
        return response

    # --- Supplied by each emulator --------------------------------------------------------

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        """Answer one API request, under the lock. `credit_fault` is a pending
        insufficient-funds fault for an order request."""
        raise NotImplementedError

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        raise NotImplementedError

    def _normalize(self, request: EmulatorRequest) -> EmulatorRequest:
        return request

    def _after_dispatch(self) -> None:
        """Work to do outside the lock once a request was answered (e.g. send webhooks)."""

    # --- Shared ---------------------------------------------------------------------------

    def _record(self, request: EmulatorRequest) -> None:
        recorded = RecordedRequest(request.method, request.path, dict(request.query),
                                   dict(request.headers.items()), request.body)
        with self._lock:
            self.requests.append(recorded)

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

    def _extra_control(self, request: EmulatorRequest, action: str) -> EmulatorResponse | None:
        """An emulator's own `/_emulator/` controls; None: not one of mine."""
        return None

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


def request_fingerprint(request: EmulatorRequest) -> str:
    """Same request <=> same fingerprint: method, path and the body as canonical JSON."""
    data = request.json()
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() if data is not None else request.body
    return f"{request.method} {request.path} {hashlib.sha256(body).hexdigest()}"


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int
    body: bytes
    headers: dict[str, str]


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
        if stored.fingerprint != fingerprint:
            return mismatch()
        return EmulatorResponse(stored.status, stored.body, dict(stored.headers))
    response = run()
    if 200 <= response.status < 300:
        answers[scope] = StoredAnswer(fingerprint, response.status, response.body, dict(response.headers))
    return response


def parse_decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as a Decimal; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
