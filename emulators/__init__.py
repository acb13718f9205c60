"""Loopback emulators of the provider APIs, for the local demo and the tests.

An opt-in Django app: installed, and mounted under /emulators/<kind>/, only when
GIFTDESK_EMULATORS is on. Production code never imports it; it may import `providers`
and `orders`.

- `loopback`: the framework-free request/response types and `LoopbackServer`.
- `base`: what every emulator shares: the fault pipeline, routing, the ledger of cards
  issued (`LedgerEntry`), idempotent replay, the `/_emulator/` control endpoints.
- `clock`: the time emulators read, which tests can move by hand (`ManualClock`).
- `faults`: fault switches (5xx, 429, HTML, dropped connections, timeouts, no funds).
- `oauth`, `webhooks`, `values`: token endpoints, signed outgoing events, and the values
  in requests and answers (JSON numbers, pricing), for the emulators that need them.
- `gogift`, `giftronaut`, `gifty`, `ugiftme`: one emulator per provider.
- `registry`: one process-wide demo emulator per kind, served by `urls.py`/`views.py`.
- `fault_harness`: random faults against real worker processes, checked on the ledgers.
- `management/commands/seed_demo.py`: the demo accounts, pointed at these emulators.
"""
