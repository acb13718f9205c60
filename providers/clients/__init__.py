"""Provider clients, one module per kind: `providers/clients/<kind>.py` defines `Client`."""

import importlib

from providers.clients.base import AccountConfig, ProviderClient, Recorder, Throttle


def client_class(kind: str) -> type[ProviderClient]:
    try:
        module = importlib.import_module(f"providers.clients.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"providers.clients.{kind}":
            raise
        raise LookupError(f"GiftDesk has no client for provider kind {kind!r} yet.") from None
    return module.Client


def account_config(account) -> AccountConfig:
    """The neutral view of a ProviderAccount that clients work from."""
    return AccountConfig(
        id=account.pk,
        name=account.name,
        kind=account.kind,
        environment=account.environment,
        api_base_url=account.api_base_url,
        auth_url=account.auth_url,
        credentials=account.credentials,
        settings=dict(account.settings or {}),
    )


def client_for(account, *, recorder: Recorder | None = None, throttle: Throttle | None = None) -> ProviderClient:
    return client_class(account.kind)(account_config(account), recorder=recorder, throttle=throttle)
