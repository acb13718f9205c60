"""`check --deploy` fails on settings that are fine for the demo and dangerous in production
(issue 8, finding 8); plain `check` stays quiet for the demo and the tests."""

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

VALID_KEY = "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg="
DANGEROUS = {"GIFTDESK_EMULATORS": True, "GIFTDESK_CREDENTIALS_KEYS": [], "DEBUG": True}
SAFE = {"GIFTDESK_EMULATORS": False, "GIFTDESK_CREDENTIALS_KEYS": [VALID_KEY], "DEBUG": False,
        "GIFTDESK_APPROVAL_THRESHOLDS": "DKK=10000,EUR=1500"}


def giftdesk_errors(**kwargs) -> dict[str, str]:
    return {message.id: message.msg for message in run_checks(**kwargs)
            if message.id and message.id.startswith("giftdesk.") and message.is_serious()}



def giftdesk_warnings(**kwargs) -> dict[str, str]:
    return {message.id: message.msg for message in run_checks(**kwargs)
            if message.id and message.id.startswith("giftdesk.") and not message.is_serious()}


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
    assert giftdesk_warnings(include_deployment_checks=True) == {}


@override_settings(GIFTDESK_CREDENTIALS_KEYS=["not-a-fernet-key"])
def test_a_malformed_credentials_key_is_an_error_even_without_deploy():
    assert "Key 1 of GIFTDESK_CREDENTIALS_KEY is not a Fernet key" in giftdesk_errors()["giftdesk.E004"]


# --- Approval thresholds (issue 9): unset is allowed but warned about; malformed never passes --------


@override_settings(**{**SAFE, "GIFTDESK_APPROVAL_THRESHOLDS": None})
def test_no_approval_thresholds_is_a_deploy_warning_that_any_sender_sends_alone():
    warnings = giftdesk_warnings(include_deployment_checks=True)

    assert warnings == {"giftdesk.W005": "GIFTDESK_APPROVAL_THRESHOLDS is not set, so no batch needs approval: "
                                         "any Sender can send any amount alone."}
    assert giftdesk_errors(include_deployment_checks=True) == {}  # a warning: check --deploy still passes
    call_command("check", deploy=True)


@override_settings(GIFTDESK_APPROVAL_THRESHOLDS=None)
def test_no_approval_thresholds_is_not_mentioned_by_the_plain_check():
    assert "giftdesk.W005" not in giftdesk_warnings()


@pytest.mark.parametrize("value", ["DKK=0", "DKK=10000, EUR=1500.50,", "usd=1500"])
def test_well_formed_approval_thresholds_pass_every_check(settings, value):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = value
    every = {**giftdesk_errors(include_deployment_checks=True), **giftdesk_warnings(include_deployment_checks=True)}
    assert not {"giftdesk.W005", "giftdesk.E006"} & set(every)


@pytest.mark.parametrize("value, part", [
    ("DKK:10000", "'DKK:10000'"),
    ("DKK=ten thousand", "'DKK=ten thousand'"),
    ("DKK=10000,EUR=-5", "'EUR=-5'"),
    ("KRONER=10000", "'KRONER=10000'"),
    ("DKK=NaN", "'DKK=NaN'"),
    ("DKK=", "'DKK='"),
    ("0", "'0'"),  # 0 is per currency: "DKK=0"
])
def test_malformed_approval_thresholds_are_an_error_even_without_deploy(settings, value, part):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = value

    error = giftdesk_errors()["giftdesk.E006"]

    assert error == (f"GIFTDESK_APPROVAL_THRESHOLDS: {part} is not CURRENCY=AMOUNT; write it like "
                     "DKK=10000,EUR=1500 (0 means every batch in that currency needs approval).")
    with pytest.raises(SystemCheckError, match="giftdesk.E006"):
        call_command("check")
