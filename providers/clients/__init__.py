"""Provider clients, registered by account kind."""

from providers.clients.base import AccountConfig, ProviderClient, Recorder
from providers.clients.gogift import GoGiftClient

CLIENTS: dict[str, type[ProviderClient]] = {
    GoGiftClient.kind: GoGiftClient,
}


def client_class(kind: str) -> type[ProviderClient]:
    try:
        return CLIENTS[kind]
    except KeyError:
        raise LookupError(f"GiftDesk has no client for provider kind {kind!r} yet.") from None


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


def client_for(account, *, recorder: Recorder | None = None) -> ProviderClient:
    return client_class(account.kind)(account_config(account), recorder=recorder)
