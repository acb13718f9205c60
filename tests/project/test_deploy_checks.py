"""`check --deploy` fails on settings that are fine for the demo and dangerous in production
(issue 8, finding 8); plain `check` stays quiet for the demo and the tests."""

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

VALID_KEY = "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg="
DANGEROUS = {"GIFTDESK_EMULATORS": True, "GIFTDESK_CREDENTIALS_KEYS": [], "DEBUG": True}
SAFE = {"GIFTDESK_EMULATORS": False, "GIFTDESK_CREDENTIALS_KEYS": [VALID_KEY], "DEBUG": False}


def giftdesk_errors(**kwargs) -> dict[str, str]:
    return {message.id: message.msg for message in run_checks(**kwargs)
            if message.id and message.id.startswith("giftdesk.") and message.is_serious()}


@override_settings(**DANGEROUS)
def test_the_demo_settings_fail_the_deploy_check_each_with_its_reason():
    errors = giftdesk_errors(include_deployment_checks=True)

    assert "GIFTDESK_EMULATORS is on" in errors["giftdesk.E001"]
    assert "rotating SECRET_KEY would make every stored credential unreadable" in errors["giftdesk.E002"]
    assert "DEBUG is on" in errors["giftdesk.E003"]


@override_settings(**DANGEROUS)
def test_check_deploy_exits_with_an_error():
    with pytest.raises(SystemCheckError, match="giftdesk.E002"):
        call_command("check", deploy=True)


@override_settings(**DANGEROUS)
def test_plain_check_stays_quiet_for_the_demo():
    assert giftdesk_errors() == {}


@override_settings(**SAFE)
def test_production_settings_pass():
    assert giftdesk_errors(include_deployment_checks=True) == {}


@override_settings(GIFTDESK_CREDENTIALS_KEYS=["not-a-fernet-key"])
def test_a_malformed_credentials_key_is_an_error_even_without_deploy():
    assert "Key 1 of GIFTDESK_CREDENTIALS_KEY is not a Fernet key" in giftdesk_errors()["giftdesk.E004"]
