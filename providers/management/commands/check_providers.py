from django.core.management.base import BaseCommand, CommandError

from providers.models import ProviderAccount
from providers.services import account_check


class Command(BaseCommand):
    help = "Test the connection of every active account. Exit status 1 when one fails."

    def handle(self, *args, **options):
        failures = 0
        for account in ProviderAccount.objects.filter(is_active=True):
            result = account_check(account=account)
            if result.ok:
                self.stdout.write(f"{account.name}: Connected. {result.message}")
            else:
                failures += 1
                self.stdout.write(f"{account.name}: NOT CONNECTED. {result.message}")
            if account.blocked_reason:
                self.stdout.write(f"{account.name}: sending is paused: {account.blocked_reason}")
        if failures:
            raise CommandError(f"{failures} account(s) not connected.", returncode=1)
