from django.core.management.base import BaseCommand, CommandError

from providers.models import Environment, ProviderKind
from providers.services import AccountConfigError, account_configure


class Command(BaseCommand):
    help = (
        "Create or update a provider account. --set takes credentials (client_id, "
        "client_secret, api_token, api_key) and settings (see the README), e.g. "
        "--set client_id=abc --set buyer_name='Acme A/S'."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", required=True, choices=ProviderKind.values)
        parser.add_argument("--environment", required=True, choices=Environment.values)
        parser.add_argument("--api-base-url", help="The provider's base URL as it documents it.")
        parser.add_argument("--auth-url", help="The token URL (GoGift, Giftronaut).")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="values")

    def handle(self, *args, **options):
        values = {}
        for item in options["values"]:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise CommandError(f"--set takes KEY=VALUE, not {item!r}.")
            values[key.strip()] = value
        try:
            account, created = account_configure(
                name=options["name"], kind=options["kind"], environment=options["environment"],
                api_base_url=options["api_base_url"], auth_url=options["auth_url"], values=values,
            )
        except AccountConfigError as exc:
            raise CommandError(str(exc)) from exc
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {account.get_kind_display()} account “{account.name}” ({account.environment})."
        ))
