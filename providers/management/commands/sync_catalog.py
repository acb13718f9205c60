from django.core.management.base import BaseCommand, CommandError

from providers.clients.base import ProviderError
from providers.models import ProviderAccount
from providers.services import catalog_sync


class Command(BaseCommand):
    help = "Fetch each active account's catalog (or one account's) into GiftDesk's products."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="The account's name; default: every active account.")

    def handle(self, *args, **options):
        accounts = ProviderAccount.objects.filter(is_active=True)
        if options["account"]:
            accounts = ProviderAccount.objects.filter(name=options["account"])
            if not accounts:
                raise CommandError(f"No account named {options['account']!r}.")
        failures = 0
        for account in accounts:
            try:
                result = catalog_sync(account=account)
            except (ProviderError, LookupError) as exc:
                failures += 1
                self.stderr.write(f"{account.name}: {getattr(exc, 'message', exc)}")
                continue
            self.stdout.write(f"{account.name}: {result}")
        if failures:
            raise CommandError(f"{failures} account(s) could not be synced.")
