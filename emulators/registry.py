"""One process-wide emulator per provider kind, for the Django mount (the local demo).

Each `emulators/<kind>.py` defines `make_demo_emulator()` and `DEMO_ACCOUNT`
(the credentials and settings `seed_demo` gives the demo account, and `auth_path`, the
token path under the emulator's base URL, or "" where the provider has no token URL).
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

from emulators.loopback import Emulator
from providers.models import ProviderKind

KINDS = tuple(ProviderKind.values)

_emulators: dict[str, Emulator] = {}
_lock = threading.Lock()  # the dev server handles requests on several threads


def emulator_module(kind: str) -> ModuleType:
    """The emulator module of `kind`. Raises LookupError if there is none."""
    if kind not in KINDS:
        raise LookupError(f"No emulator for provider kind {kind!r}")
    try:
        return importlib.import_module(f"emulators.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"emulators.{kind}":
            raise
        raise LookupError(f"No emulator for provider kind {kind!r} yet") from None


def available_kinds() -> list[str]:
    kinds = []
    for kind in KINDS:
        try:
            emulator_module(kind)
        except LookupError:
            continue
        kinds.append(kind)
    return kinds


def get_demo_emulator(kind: str) -> Emulator:
    """The demo emulator for `kind`, created on first use. Raises LookupError if unknown."""
    module = emulator_module(kind)
    with _lock:
        if kind not in _emulators:
            _emulators[kind] = module.make_demo_emulator()
        return _emulators[kind]
