"""Demo data: an admin login and emulator-backed provider accounts with their catalogs.

Safe to run twice: it updates what exists instead of adding more.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from providers.clients.base import ProviderError
from providers.emulators import gogift as gogift_emulator
from providers.services import account_configure, catalog_sync

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "giftdesk-demo"


class Command(BaseCommand):
    help = "Create the demo admin user and one emulator-backed account per provider, catalogs synced."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000",
            help="Where this GiftDesk serves /emulators/ (the running web server).",
        )
        parser.add_argument("--no-sync", action="store_true", help="Skip the catalog sync.")

    def handle(self, *args, **options):
        if not settings.GIFTDESK_EMULATORS:
            self.stderr.write(
                "Warning: GIFTDESK_EMULATORS is off, so the demo accounts' emulator URLs will not answer."
            )
        self._admin()
        base = options["base_url"].rstrip("/")
        account, created = account_configure(
            name="GoGift demo",
            kind="gogift",
            environment="sandbox",
            api_base_url=f"{base}/emulators/gogift",
            auth_url=f"{base}/emulators/gogift/connect/token",
            values={
                "client_id": gogift_emulator.DEMO_CLIENT_ID,
                "client_secret": gogift_emulator.DEMO_CLIENT_SECRET,
                "sales_channel_id": "109",
                "payment_method": "InvoiceByFinance",
                "country_code": "DK",
                "buyer_account_id": "328685355341950976",
                "buyer_account_type": "B2BDepartment",
                "buyer_name": "GiftDesk Demo A/S",
                "buyer_email": "finance@giftdesk.example",
                "buyer_phone": "+4500000000",
                "buyer_address_line1": "Demovej 1",
                "buyer_city": "København",
                "buyer_post_code": "2100",
                "buyer_country_code": "DK",
                "sender_name": "GiftDesk demo",
                "max_cards_per_request": "10",
                "rate_limit_per_minute": "120",
            },
        )
        self.stdout.write(f"{'Created' if created else 'Updated'} account “{account}” → {account.api_base_url}")
        if not options["no_sync"]:
            try:
                self.stdout.write(f"Catalog of “{account}”: {catalog_sync(account=account)}.")
            except ProviderError as exc:
                self.stderr.write(
                    f"Catalog of “{account}” not synced ({exc.message}). Start the web server, then run "
                    f"`manage.py sync_catalog --account \"{account}\"`."
                )

    def _admin(self) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"email": "admin@giftdesk.example"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(DEMO_PASSWORD)  # Reset on every run, so the printed login works.
        user.save()
        self.stdout.write(f"{'Created' if created else 'Reset'} demo login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
