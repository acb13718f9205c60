"""The settings of the test run: the project's own, with the emulators app installed.

Tests serve the emulators (on loopback and under /emulators/), so GIFTDESK_EMULATORS is
on while giftdesk.settings reads the environment, the one way the app gets installed. The
environment itself is left alone, so processes the tests start see only what they set.
"""

import os
from unittest import mock

with mock.patch.dict(os.environ, {"GIFTDESK_EMULATORS": "true"}):
    from giftdesk.settings import *  # noqa: F403

# The emulators the tests start listen on loopback; production accounts may reach them.
GIFTDESK_PROVIDER_HOSTS_ALLOWED = ["127.0.0.1", "localhost"]
