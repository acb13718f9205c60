"""The account's field history (django-auditlog): who changed which URL or setting, when,
from where. Credentials are never part of it: their field is left out, so not even their
ciphertext reaches a log entry."""

from auditlog.registry import auditlog

from providers.models import ProviderAccount


def register() -> None:
    auditlog.register(
        ProviderAccount,
        # updated_at changes on every save and says nothing the entry's time does not.
        exclude_fields=["credentials_encrypted", "updated_at"],
    )
