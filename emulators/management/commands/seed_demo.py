"""Demo data: an admin login, an approver login (to try four eyes: the admin uploads, the
approver approves) and one emulator-backed account per provider, catalogs synced.

Safe to run twice: it updates what exists instead of adding more. A command of the
emulators app, so it exists only when GIFTDESK_EMULATORS is on.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from emulators.registry import available_kinds, emulator_module
from orders.batch_access import APPROVERS_GROUP
from providers.clients.base import ProviderError
from providers.models import ProviderKind
from providers.services import account_configure, catalog_sync

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "giftdesk-demo"
# Nobody approves their own batch, administrators included: a batch the admin uploads
# above GIFTDESK_APPROVAL_THRESHOLDS needs this second person.
DEMO_APPROVER_USERNAME = "approver"


class Command(BaseCommand):
    help = ("Create the demo admin and approver users and one emulator-backed account per provider, "
            "catalogs synced.")

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000",
            help="Where this GiftDesk serves /emulators/ (the running web server).",
        )
        parser.add_argument("--no-sync", action="store_true", help="Skip the catalog sync.")

    def handle(self, *args, **options):
        self._admin()
        self._approver()
        base = options["base_url"].rstrip("/")
        for kind in available_kinds():
            self._account(kind, base, sync=not options["no_sync"])

    def _account(self, kind: str, base: str, *, sync: bool) -> None:
        demo = emulator_module(kind).DEMO_ACCOUNT
        emulator_url = f"{base}/emulators/{kind}"
        account, created = account_configure(
            name=f"{ProviderKind(kind).label} demo",
            kind=kind,
            environment="sandbox",
            api_base_url=emulator_url,
            auth_url=f"{emulator_url}{demo['auth_path']}" if demo["auth_path"] else "",
            values={**demo["credentials"], **demo["settings"]},
        )
        self.stdout.write(f"{'Created' if created else 'Updated'} account “{account}” → {account.api_base_url}")
        if not sync:
            return
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

    def _approver(self) -> None:
        group = Group.objects.filter(name=APPROVERS_GROUP).first()
        if group is None:
            # The migrations create the roles with their permissions; a flushed database
            # has lost them, and a bare group made here would have none.
            self.stderr.write(f"No demo approver: the {APPROVERS_GROUP} group is missing (the migrations "
                              "create it; `manage.py flush` removes it). Recreate the database, then run "
                              "seed_demo again.")
            return
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_APPROVER_USERNAME, defaults={"email": "approver@giftdesk.example"}
        )
        # A member of Approvers and nothing more: the demo shows what that role may do.
        user.is_staff, user.is_superuser = True, False
        user.set_password(DEMO_PASSWORD)
        user.save()
        user.groups.set([group])
        self.stdout.write(f"{'Created' if created else 'Reset'} demo approver login: "
                          f"{DEMO_APPROVER_USERNAME} / {DEMO_PASSWORD}")
