import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.context import os_user
from providers.audit import account_change_record
from providers.models import Environment, ProviderAccount, ProviderKind
from providers.services import AccountConfigError, account_configure, credential_keys

# Exit status of a refused configuration (nothing saved), as send_csv's refused file.
REFUSED = 2


def refused(message: str) -> CommandError:
    return CommandError(message, returncode=REFUSED)


class Command(BaseCommand):
    help = (
        "Create or update a provider account. --set takes credentials (client_id, "
        "client_secret, api_token, api_key) and settings (see the README), e.g. "
        "--set client_id=abc --set buyer_name='Acme A/S'. Unknown keys are refused. Pass secrets "
        "with --set-from-env KEY=ENV_VAR or --secret-stdin KEY, not on the command line."
    )
    # call_command(..., stdin=...) in tests, as createsuperuser.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", required=True, choices=ProviderKind.values)
        parser.add_argument("--environment", required=True, choices=Environment.values)
        parser.add_argument("--api-base-url", help="The provider's base URL as it documents it.")
        parser.add_argument("--auth-url", help="The token URL (GoGift, Giftronaut).")
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="values")
        parser.add_argument(
            "--set-from-env", action="append", default=[], metavar="KEY=ENV_VAR", dest="from_env",
            help="Take KEY's value from the environment variable ENV_VAR (kept out of the process list).",
        )
        parser.add_argument(
            "--secret-stdin", metavar="KEY",
            help="Read KEY's value from one line of standard input (asked without echo on a terminal).",
        )

    def handle(self, *args, **options):
        values = self._pairs(options["values"], "--set", "KEY=VALUE")
        on_command_line = sorted(set(values) & credential_keys(options["kind"]))
        for key, variable in self._pairs(options["from_env"], "--set-from-env", "KEY=ENV_VAR").items():
            value = os.environ.get(variable.strip(), "")
            if not value:
                raise refused(f"--set-from-env {key}: the environment variable {variable.strip()} is not set "
                              "or empty. Nothing was saved.")
            values[key] = value
        if options["secret_stdin"]:
            key = options["secret_stdin"].strip()
            values[key] = self._read_stdin(key, options.get("stdin") or sys.stdin)
        try:
            # The account as it was, the change and its audit entry: one transaction.
            with transaction.atomic():
                before = ProviderAccount.objects.select_for_update().filter(name=options["name"]).first()
                configured = account_configure(
                    name=options["name"], kind=options["kind"], environment=options["environment"],
                    api_base_url=options["api_base_url"], auth_url=options["auth_url"], values=values,
                )
                account_change_record(
                    account=configured.account, before=before,
                    credentials_entered={key: value for key, value in values.items()
                                         if key in credential_keys(options["kind"])},
                    how=f"with configure_account (run by the OS user {os_user()})",
                )
        except AccountConfigError as exc:
            raise refused(str(exc)) from exc
        account = configured.account
        verb = "Created" if configured.created else "Updated"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {account.get_kind_display()} account “{account.name}” ({account.environment})."
        ))
        for notice in configured.notices:
            self.stderr.write(self.style.WARNING(notice))
        if on_command_line:
            self.stderr.write(
                f"Note: {', '.join(on_command_line)} came on the command line, where the process list and "
                "the shell history keep it; --set-from-env or --secret-stdin keep a secret out of both."
            )

    @staticmethod
    def _pairs(items: list[str], option: str, shape: str) -> dict[str, str]:
        pairs = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                # The item itself is not shown: it may be a secret typed without its key.
                raise refused(f"{option} takes {shape}; one of them has no key before “=”. Nothing was saved.")
            pairs[key.strip()] = value
        return pairs

    @staticmethod
    def _read_stdin(key: str, stream) -> str:
        if stream.isatty():
            value = getpass.getpass(f"{key}: ")
        else:
            value = stream.readline().rstrip("\r\n")
        if not value:
            raise refused(f"--secret-stdin {key}: standard input gave no value. Nothing was saved.")
        return value
