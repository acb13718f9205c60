from django.apps import AppConfig


class EmulatorsConfig(AppConfig):
    """Installed only when settings.GIFTDESK_EMULATORS is on (the demo and the tests)."""

    name = "emulators"
    verbose_name = "Provider emulators"
