"""System checks that make `manage.py check --deploy` fail on settings that are fine for the
local demo and dangerous in production. Plain `manage.py check` runs none of them, except
the one that a malformed key fails.

The ids are numbered across the project: giftdesk.W005 (no approval thresholds) and
giftdesk.E006 (malformed thresholds) are in orders/checks.py, since providers do not read
orders' settings."""

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, register

GENERATE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


@register(Tags.security, deploy=True)
def emulators_off(app_configs, **kwargs) -> list[Error]:
    if not settings.GIFTDESK_EMULATORS:
        return []
    return [Error(
        "GIFTDESK_EMULATORS is on: the fake provider APIs are served under /emulators/ and "
        "manage.py seed_demo can create demo accounts with demo credentials.",
        hint="Set GIFTDESK_EMULATORS=false in production (it follows DEBUG when unset).",
        id="giftdesk.E001",
    )]


@register(Tags.security, deploy=True)
def credentials_key_set(app_configs, **kwargs) -> list[Error]:
    if settings.GIFTDESK_CREDENTIALS_KEYS:
        return []
    return [Error(
        "GIFTDESK_CREDENTIALS_KEY is not set, so provider credentials are encrypted with a key "
        "derived from SECRET_KEY: rotating SECRET_KEY would make every stored credential unreadable.",
        hint=f"Generate a key with `{GENERATE_KEY}`, set GIFTDESK_CREDENTIALS_KEY to it, and enter the "
             "accounts' credentials again (those saved before are under the derived key).",
        id="giftdesk.E002",
    )]


@register(Tags.security, deploy=True)
def debug_off(app_configs, **kwargs) -> list[Error]:
    if not settings.DEBUG:
        return []
    return [Error(
        "DEBUG is on: error pages show settings, SQL and request data to whoever triggers them.",
        hint="Set DEBUG=false in production.",
        id="giftdesk.E003",
    )]


@register(Tags.security)
def credentials_keys_valid(app_configs, **kwargs) -> list[Error]:
    """A malformed key fails every credential read at run time; say so at start-up instead."""
    errors = []
    for position, key in enumerate(settings.GIFTDESK_CREDENTIALS_KEYS, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            errors.append(Error(
                f"Key {position} of GIFTDESK_CREDENTIALS_KEY is not a Fernet key (32 url-safe "
                "base64-encoded bytes).",
                hint=f"Generate one with `{GENERATE_KEY}`.",
                id="giftdesk.E004",
            ))
    return errors
