"""Settings come from the environment; production values pass Django's deploy check."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-of-more-than-fifty-characters-0123456789abcdef",
    "ALLOWED_HOSTS": "giftdesk.example.com",
    "GIFTDESK_HTTPS": "true",
    "GIFTDESK_CREDENTIALS_KEY": "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=",
    # Four eyes (issue 9): without thresholds the deploy check warns (giftdesk.W005).
    "GIFTDESK_APPROVAL_THRESHOLDS": "DKK=10000,EUR=1500,USD=1500",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items()
            if key not in {"DEBUG", "SECRET_KEY", "GIFTDESK_HTTPS", "DJANGO_SETTINGS_MODULE",
                           "GIFTDESK_APPROVAL_THRESHOLDS"}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_check_deploy_passes_with_production_values():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_when_production_has_no_approval_thresholds():
    env = {key: value for key, value in PRODUCTION.items() if key != "GIFTDESK_APPROVAL_THRESHOLDS"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "giftdesk.W005" in result.stderr and "any Sender can send any amount alone" in result.stderr
    assert manage("check", "--deploy", env=env).returncode == 0  # a warning, not an error


def test_check_deploy_fails_with_the_demo_defaults():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={"DEBUG": "true"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr + result.stdout


def test_emulators_are_off_in_production_and_on_for_the_demo():
    script = "from django.conf import settings; print(settings.GIFTDESK_EMULATORS)"
    assert manage("shell", "-v", "0", "-c", script, env=PRODUCTION).stdout.strip() == "False"
    assert manage("shell", "-v", "0", "-c", script, env={"DEBUG": "true"}).stdout.strip() == "True"


def test_the_task_queue_timeout_is_well_below_its_retry():
    from django.conf import settings

    assert settings.Q_CLUSTER["timeout"] * 2 <= settings.Q_CLUSTER["retry"]
    assert settings.Q_CLUSTER["max_attempts"] >= 1
