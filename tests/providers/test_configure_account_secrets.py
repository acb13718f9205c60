"""configure_account keeps secrets out of plain text (issue 8, finding 7): unknown keys and
other providers' credentials are refused with the known keys listed and nothing saved;
credentials are always encrypted; a secret can come from the environment or standard input,
out of the process list and the shell history, and is never printed."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import ProviderAccount
from providers.services import known_keys

SECRET = "sup3r-secret-value-8d1c"


def configure(*extra, stdin=None) -> str:
    out = StringIO()
    call_command("configure_account", "GoGift CLI", "--kind", "gogift", "--environment", "sandbox",
                 "--set", "client_id=acme", *extra, stdout=out, stderr=out,
                 **({"stdin": stdin} if stdin is not None else {}))
    return out.getvalue()


def refusal(*extra) -> CommandError:
    with pytest.raises(CommandError) as raised:
        configure(*extra)
    return raised.value


def test_a_mistyped_key_is_refused_with_the_known_keys_and_nothing_is_saved(db):
    error = refusal("--set", f"client_secrt={SECRET}")

    message = str(error)
    assert error.returncode == 2
    assert "'client_secrt' is not a known key. Nothing was saved." in message
    assert "credentials (stored encrypted): client_id, client_secret, webhook_secret" in message
    assert "buyer_name" in message and "max_cards_per_request" in message
    assert SECRET not in message
    assert not ProviderAccount.objects.exists()


def test_another_providers_credential_is_refused_naming_its_provider(db):
    error = refusal("--set", f"api_key={SECRET}")

    assert "api_key is a UGiftMe credential" in str(error) and SECRET not in str(error)
    assert not ProviderAccount.objects.exists()


def test_an_existing_account_is_left_unchanged_by_a_refused_update(db):
    configure("--set", "buyer_name=Acme A/S")

    refusal("--set", "buyer_name=Changed", "--set", f"api_token={SECRET}")

    account = ProviderAccount.objects.get()
    assert account.settings == {"buyer_name": "Acme A/S"}
    assert SECRET not in str(account.settings) and "api_token" not in account.credentials


def test_every_known_credential_is_encrypted_and_no_setting_looks_like_a_secret(db):
    for kind in ("gogift", "giftronaut", "gifty", "ugiftme"):
        groups = known_keys(kind)
        assert all(not any(word in key for word in ("secret", "token", "key", "password"))
                   for key in groups["settings"]), kind


def test_a_secret_is_read_from_an_environment_variable(db, monkeypatch):
    monkeypatch.setenv("GOGIFT_SECRET", SECRET)

    output = configure("--set-from-env", "client_secret=GOGIFT_SECRET")

    account = ProviderAccount.objects.get()
    assert account.credentials == {"client_id": "acme", "client_secret": SECRET}
    assert account.settings == {} and SECRET not in account.credentials_encrypted
    assert SECRET not in output


def test_an_unset_environment_variable_is_refused(db, monkeypatch):
    monkeypatch.delenv("GOGIFT_SECRET", raising=False)

    error = refusal("--set-from-env", "client_secret=GOGIFT_SECRET")

    assert error.returncode == 2 and "GOGIFT_SECRET is not set or empty" in str(error)
    assert not ProviderAccount.objects.exists()


def test_a_secret_is_read_from_one_line_of_standard_input(db):
    output = configure("--secret-stdin", "client_secret", stdin=StringIO(f"{SECRET}\nnext line\n"))

    assert ProviderAccount.objects.get().credentials["client_secret"] == SECRET
    assert SECRET not in output


def test_empty_standard_input_is_refused(db):
    with pytest.raises(CommandError, match="standard input gave no value"):
        configure("--secret-stdin", "client_secret", stdin=StringIO(""))
    assert not ProviderAccount.objects.exists()


def test_a_secret_on_the_command_line_still_works_with_a_note_that_never_echoes_it(db):
    output = configure("--set", f"client_secret={SECRET}")

    assert ProviderAccount.objects.get().credentials["client_secret"] == SECRET
    assert "client_id, client_secret came on the command line" in output and "--secret-stdin" in output
    assert SECRET not in output


def test_a_set_item_without_a_key_is_refused_without_echoing_it(db):
    error = refusal("--set", SECRET)

    assert "--set takes KEY=VALUE" in str(error) and SECRET not in str(error)
