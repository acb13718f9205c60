"""Loopback emulators of the provider APIs, for the local demo and the tests.

- `http`: the framework-free request/response types and `LoopbackServer`.
- `faults`: fault switches (5xx, 429, HTML, dropped connections, timeouts, no funds).
- `gogift`: the GoGift emulator (seeds 000 and 001).
- `registry`: one process-wide emulator per kind, served by the Django mount
  (`urls.py`/`views.py`) under /emulators/<kind>/ when GIFTDESK_EMULATORS is on.

Nothing here imports Django except `views.py` and `urls.py`.
"""
