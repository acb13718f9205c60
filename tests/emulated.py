"""What every provider's emulator fixtures share: an emulator served over real HTTP on
loopback, and an account pointed at it with its catalog synced."""

from collections.abc import Iterator

from emulators.base import EmulatorBase
from emulators.loopback import LoopbackServer
from providers.models import ProviderAccount, ProviderKind
from providers.services import account_configure, catalog_sync


def served(emulator: EmulatorBase) -> Iterator[LoopbackServer]:
    with LoopbackServer(emulator) as server:
        yield server


# Emulated accounts pace their requests 0.1 ms apart, not at a real provider's rate: the limiter
# spreads requests evenly (providers.ratelimit), and tests that are not about pacing would
# otherwise wait up to a second between requests (and a status lookup right after another would
# be put off). Tests of the limit set their own.
TEST_RATE_PER_MINUTE = "600000"


def emulated_account(server: LoopbackServer, *, kind: str, environment: str, values: dict[str, str],
                     token_path: str = "") -> ProviderAccount:
    """The account "<Provider> emulated" at the emulator `server` serves, catalog synced."""
    account, _ = account_configure(
        name=f"{ProviderKind(kind).label} emulated", kind=kind, environment=environment,
        api_base_url=server.base_url, auth_url=f"{server.base_url}{token_path}" if token_path else "",
        values={"rate_limit_per_minute": TEST_RATE_PER_MINUTE, **values},
    )
    catalog_sync(account=account)
    return account
