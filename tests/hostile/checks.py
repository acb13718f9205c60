"""What every hostile-input test asserts besides its message: nothing was created, nothing
was bought, nothing secret or internal came back."""

from __future__ import annotations

import html
import re

from django.conf import settings

from orders.models import Batch, Order, Recipient

# A server path in a message means a traceback or an internal error leaked out.
SERVER_PATH = re.compile(r"/(?:tmp|var|usr|home|root|work|srv|opt)/[\w.-]+/")


def assert_nothing_created(emulator) -> None:
    assert not Batch.objects.exists(), "a batch was created"
    assert not Order.objects.exists(), "orders were created"
    assert not Recipient.objects.exists(), "recipients were created"
    assert emulator.ledger == [], "the provider issued cards"


def assert_nothing_secret(text: str, secrets: list[str]) -> None:
    """No credential, no SECRET_KEY, no path of the server, no traceback."""
    for secret in secrets:
        assert secret not in text, "a secret is in the response"
    assert settings.SECRET_KEY not in text
    assert str(settings.BASE_DIR) not in text, "a server path is in the response"
    assert "site-packages" not in text and "Traceback" not in text
    found = SERVER_PATH.search(text)
    assert found is None, f"a server path is in the response: {found.group()}"


def page_text(response) -> str:
    """What the user reads: the page with HTML entities decoded."""
    return html.unescape(response.content.decode())
