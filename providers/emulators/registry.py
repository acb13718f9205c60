"""One process-wide emulator per provider kind, for the Django mount (the local demo)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from providers.emulators.gogift import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, GoGiftEmulator
from providers.emulators.http import Emulator


def _demo_gogift() -> Emulator:
    return GoGiftEmulator(environment="sandbox", clients={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET})


FACTORIES: dict[str, Callable[[], Emulator]] = {
    "gogift": _demo_gogift,
}

_emulators: dict[str, Emulator] = {}
_lock = threading.Lock()  # the dev server handles requests on several threads


def get_demo_emulator(kind: str) -> Emulator:
    """The demo emulator for `kind`, created on first use. Raises LookupError if unknown."""
    if kind not in FACTORIES:
        raise LookupError(f"No emulator for provider kind {kind!r}")
    with _lock:
        if kind not in _emulators:
            _emulators[kind] = FACTORIES[kind]()
        return _emulators[kind]
