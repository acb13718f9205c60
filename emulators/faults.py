"""Fault switches shared by all emulators.

A `FaultPlan` holds scripted faults ("the next finalize answers 503") and, optionally, a
seeded random fault rate. Each emulator asks `take(request, phase)` at two points:
before it does any work (BEFORE) and after its handler committed state (AFTER), and
turns the returned `Fault` into its own provider-shaped answer.
"""

from __future__ import annotations

import random as _random
import threading
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from emulators.loopback import EmulatorRequest

BEFORE = "before"
AFTER = "after"

HTTP_500 = "http_500"
HTTP_503 = "http_503"
HTTP_429 = "http_429"  # answered with a Retry-After header
HTML = "html"  # a proxy/gateway HTML error page, status 502
DROP_BEFORE = "drop_before"  # close the connection before doing any work
DROP_AFTER_COMMIT = "drop_after_commit"  # do the work, commit, close without answering
TIMEOUT_AFTER_COMMIT = "timeout_after_commit"  # do the work, then answer `delay` s late
INSUFFICIENT_FUNDS = "insufficient_funds"  # the account cannot pay for the order
# Refusals of the whole account, answered before any work in the provider's own words (each
# emulator's `_fault_response`): 401, the credentials are refused; 403, the account or this
# caller's IP address is not allowed.
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"

FAULT_KINDS: tuple[str, ...] = (
    HTTP_500, HTTP_503, HTTP_429, HTML, DROP_BEFORE,
    DROP_AFTER_COMMIT, TIMEOUT_AFTER_COMMIT, INSUFFICIENT_FUNDS, UNAUTHORIZED, FORBIDDEN,
)
AFTER_COMMIT_KINDS = frozenset({DROP_AFTER_COMMIT, TIMEOUT_AFTER_COMMIT})

DEFAULT_RETRY_AFTER = 2
DEFAULT_DELAY = 3.0


def phase_of(kind: str) -> str:
    return AFTER if kind in AFTER_COMMIT_KINDS else BEFORE


def _check_kind(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"Unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")


@dataclass
class Fault:
    kind: str
    method: str | None = None  # None: any method
    path: str | None = None  # prefix of the request path; None: any (see unscoped_excludes)
    times: int | None = 1  # how many requests it hits; None: every matching request
    retry_after: int = DEFAULT_RETRY_AFTER  # seconds, for http_429
    delay: float = DEFAULT_DELAY  # seconds, for timeout_after_commit

    @property
    def phase(self) -> str:
        return phase_of(self.kind)


def _path_matches(prefix: str | None, path: str, unscoped_excludes: Collection[str]) -> bool:
    if prefix is None:
        # A fault without a path hits "the API", not e.g. the token endpoint: a test that
        # breaks finalize should not also break authentication.
        return not any(path.startswith(excluded) for excluded in unscoped_excludes)
    return path.startswith(prefix)


@dataclass
class _RandomFaults:
    rate: float
    rng: _random.Random
    kinds: tuple[str, ...]
    paths: tuple[str, ...] | None
    retry_after: int
    delay: float


class FaultPlan:
    """Thread-safe list of faults to inject; counts what it injected in `.injected`."""

    def __init__(self, *, unscoped_excludes: Iterable[str] = ()) -> None:
        self.unscoped_excludes: tuple[str, ...] = tuple(unscoped_excludes)
        self.injected: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._random: _RandomFaults | None = None
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        retry_after: int = DEFAULT_RETRY_AFTER,
        delay: float = DEFAULT_DELAY,
    ) -> Fault:
        _check_kind(kind)
        fault = Fault(kind, method.upper() if method else None, path, times, retry_after, delay)
        with self._lock:
            self._faults.append(fault)
        return fault

    def random(
        self,
        rate: float,
        seed: int,
        kinds: list[str],
        paths: list[str] | None = None,
        *,
        retry_after: int = DEFAULT_RETRY_AFTER,
        delay: float = DEFAULT_DELAY,
    ) -> None:
        """Hit about `rate` of the matching requests with one of `kinds`, reproducibly.

        Each phase rolls separately with rate * (its share of kinds), so the overall rate
        stays close to `rate` when before- and after-commit kinds are mixed.
        """
        for kind in kinds:
            _check_kind(kind)
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._random = _RandomFaults(
                rate, _random.Random(seed), tuple(kinds),
                tuple(paths) if paths is not None else None, retry_after, delay,
            )

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._random = None
            self.injected.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [replace(fault) for fault in self._faults]

    def take(
        self, request: EmulatorRequest, phase: str, *, applicable: Collection[str] | None = None
    ) -> Fault | None:
        """The fault to apply to this request in this phase, or None.

        `applicable` lists the kinds the caller can honour for this request (e.g.
        insufficient_funds only on an order endpoint); other faults are left for later
        requests instead of being used up without effect.
        """
        with self._lock:
            fault = self._take_scripted(request, phase, applicable) or self._take_random(
                request, phase, applicable
            )
            if fault is not None:
                self.injected[fault.kind] += 1
            return fault

    def _take_scripted(
        self, request: EmulatorRequest, phase: str, applicable: Collection[str] | None
    ) -> Fault | None:
        for fault in self._faults:
            if fault.phase != phase or (applicable is not None and fault.kind not in applicable):
                continue
            if fault.method and fault.method != request.method:
                continue
            if not _path_matches(fault.path, request.path, self.unscoped_excludes):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            return replace(fault)
        return None

    def _take_random(
        self, request: EmulatorRequest, phase: str, applicable: Collection[str] | None
    ) -> Fault | None:
        plan = self._random
        if plan is None or not plan.kinds or plan.rate == 0:
            return None
        prefixes: Iterable[str | None] = plan.paths if plan.paths is not None else (None,)
        if not any(_path_matches(p, request.path, self.unscoped_excludes) for p in prefixes):
            return None
        in_phase = [kind for kind in plan.kinds if phase_of(kind) == phase]
        if not in_phase:
            return None
        # Always draw both numbers so the sequence for a seed does not depend on outcomes.
        roll, pick = plan.rng.random(), plan.rng.choice(in_phase)
        if roll >= plan.rate * len(in_phase) / len(plan.kinds):
            return None
        if applicable is not None and pick not in applicable:
            return None
        return Fault(pick, path=request.path, times=None,
                     retry_after=plan.retry_after, delay=plan.delay)
