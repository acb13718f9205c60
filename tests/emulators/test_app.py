"""The emulators are an opt-in app: installed and routed under /emulators/ only when
GIFTDESK_EMULATORS is on, and never imported by production code."""

import os
import subprocess
import sys
from pathlib import Path

from django.apps import apps
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]

# What a process with the given flag sees: is the app installed, is /emulators/ routed, and
# did setting up Django and its URLs import any emulator module?
PROBE = """
import sys
import django
django.setup()
from django.apps import apps
from django.urls import Resolver404, resolve
try:
    resolve("/emulators/gogift/connect/token")
    routed = True
except Resolver404:
    routed = False
imported = any(name == "emulators" or name.startswith("emulators.") for name in sys.modules)
print(apps.is_installed("emulators"), routed, imported)
"""


def run(*args: str, emulators: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "giftdesk.settings", "DEBUG": "false",
           "GIFTDESK_EMULATORS": emulators}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_with_the_flag_off_the_app_is_not_installed_routed_or_imported():
    result = run("-c", PROBE, emulators="false")
    assert result.stdout.split() == ["False", "False", "False"], result.stderr


def test_with_the_flag_on_the_app_is_installed_and_routed():
    result = run("-c", PROBE, emulators="true")
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


def test_with_the_flag_off_there_is_no_seed_demo_command():
    result = run("manage.py", "seed_demo", "--no-sync", emulators="false")
    assert result.returncode != 0 and "Unknown command: 'seed_demo'" in result.stderr


def test_the_test_run_has_the_emulators_installed_and_routed(client):
    assert apps.is_installed("emulators")
    match = resolve("/emulators/gifty/v1/external-orders/configuration")
    assert (match.namespace, match.url_name, match.kwargs) == (
        "emulators", "endpoint", {"kind": "gifty", "rest": "v1/external-orders/configuration"})
    assert client.get("/emulators/gifty/v1/external-orders/configuration").status_code == 401  # served: no token
