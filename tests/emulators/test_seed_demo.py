"""`manage.py seed_demo [--base-url URL] [--no-sync]`: the demo logins (an administrator and
an approver, so four eyes can be tried) and one emulator-backed account per provider (a
command of the emulators app)."""

import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from orders.models import Batch, BatchState, OrderStatus
from providers.models import ProviderAccount
from providers.services import account_check
from tests.commands import run_command
from tests.fixtures.data import GLOBAL_GIFT_CARD_ID
from tests.project.test_worker_stops import Group as ProcessGroup
from tests.project.test_worker_stops import alive_in_group, environment, free_port, requirements_installed


def test_seed_demo_is_safe_to_run_twice(db):
    run_command("seed_demo", "--no-sync")
    run_command("seed_demo", "--no-sync")
    assert ProviderAccount.objects.filter(name="GoGift demo").count() == 1
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.check_password("giftdesk-demo")
    assert User.objects.filter(username="approver").count() == 1


def test_seed_demo_creates_an_approver_who_is_only_an_approver(db):
    code, output = run_command("seed_demo", "--no-sync")

    assert code == 0, output
    assert "Created demo approver login: approver / giftdesk-demo" in output
    approver = User.objects.get(username="approver")
    assert approver.check_password("giftdesk-demo") and approver.is_staff and approver.is_active
    assert not approver.is_superuser
    assert list(approver.groups.values_list("name", flat=True)) == ["Approvers"]
    assert approver.has_perm("orders.approve_batch")


def test_seed_demo_run_again_resets_the_approver_and_leaves_the_admin_as_is(db):
    run_command("seed_demo", "--no-sync")
    approver = User.objects.get(username="approver")
    approver.set_password("forgotten")
    approver.is_superuser = True  # whatever happened to it meanwhile
    approver.save()
    approver.groups.add(Group.objects.get(name="Finance"))

    code, output = run_command("seed_demo", "--no-sync")

    assert code == 0 and "Reset demo approver login: approver / giftdesk-demo" in output
    approver.refresh_from_db()
    assert approver.check_password("giftdesk-demo") and not approver.is_superuser
    assert list(approver.groups.values_list("name", flat=True)) == ["Approvers"]
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("giftdesk-demo") and not admin.groups.exists()


def test_without_the_approvers_group_seed_demo_says_so_and_seeds_the_rest(db):
    Group.objects.filter(name="Approvers").delete()  # what `manage.py flush` leaves

    code, output = run_command("seed_demo", "--no-sync")

    assert code == 0
    assert "No demo approver: the Approvers group is missing" in output
    assert not User.objects.filter(username="approver").exists()
    assert User.objects.get(username="admin").is_superuser
    assert ProviderAccount.objects.filter(name="GoGift demo").exists()


def test_the_demo_admin_uploads_and_the_demo_approver_approves(settings, tmp_path, emulated_gogift_account):
    """Four eyes on the demo: the two seeded logins are enough (the account is incidental)."""
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"
    assert run_command("seed_demo", "--no-sync")[0] == 0
    rows = tmp_path / "rows.csv"
    rows.write_text("name,email,amount\nAna,ana@example.com,1000\n", encoding="utf-8")

    code, output = run_command("send_csv", rows, "--account", emulated_gogift_account.name,
                               "--product", GLOBAL_GIFT_CARD_ID, "--user", "admin")
    assert code == 4, output
    batch = Batch.objects.get()
    assert run_command("approve_batch", batch.pk, "--user", "admin")[0] == 2  # not their own

    code, output = run_command("approve_batch", batch.pk, "--user", "approver")

    assert code == 0, output
    batch.refresh_from_db()
    assert (batch.state, batch.approved_by.username) == (BatchState.SENDING, "approver")
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}


def test_seed_demo_creates_one_connected_account_per_provider(db, live_server):
    code, output = run_command("seed_demo", "--base-url", live_server.url)
    assert code == 0, output
    accounts = {account.kind: account for account in ProviderAccount.objects.all()}
    assert set(accounts) == {"gogift", "giftronaut", "gifty", "ugiftme"}
    for account in accounts.values():
        assert account.products.filter(is_active=True).exists(), account
        assert account_check(account=account).ok, account


def test_seed_demo_points_each_account_at_its_emulator_under_the_base_url(db):
    code, output = run_command("seed_demo", "--no-sync", "--base-url", "http://demo.example:8000/")
    assert code == 0, output
    gogift = ProviderAccount.objects.get(kind="gogift")
    assert gogift.api_base_url == "http://demo.example:8000/emulators/gogift"
    assert gogift.auth_url == "http://demo.example:8000/emulators/gogift/connect/token"
    assert "Created account “GoGift demo” → http://demo.example:8000/emulators/gogift" in output


@pytest.mark.worker
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads the processes' environment from /proc")
def test_scripts_run_prints_both_demo_logins_and_hands_the_thresholds_to_server_and_worker(tmp_path):
    """One run (it takes half a minute): thresholds given on scripts/run's command line."""
    thresholds = "DKK=1000"
    if not requirements_installed():
        pytest.skip("scripts/run would reinstall the requirements first")
    env = environment(tmp_path / "run.sqlite3", PORT=str(free_port()), PYTHON=sys.executable)
    env.pop("DJANGO_SETTINGS_MODULE")
    env["GIFTDESK_APPROVAL_THRESHOLDS"] = thresholds
    run = ProcessGroup(["bash", "scripts/run"], env, tmp_path / "run.log")
    try:
        run.wait_for("Press Ctrl-C", processes=8, timeout=180)
        output = run.output()
        assert "Demo login:           admin / giftdesk-demo" in output
        assert "Demo approver:        approver / giftdesk-demo (Approvers group)" in output
        assert "Created demo approver login: approver / giftdesk-demo" in output
        assert "Four eyes:            on (DKK=1000): send as admin, then log in as approver" in output
        seen = {}
        for pid in alive_in_group(run.pgid):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone meanwhile
            for name in (b"runserver", b"run_worker"):
                if name in command:
                    seen[name.decode()] = [v for v in variables if v.startswith(b"GIFTDESK_APPROVAL_THRESHOLDS=")]
        expected = [f"GIFTDESK_APPROVAL_THRESHOLDS={thresholds}".encode()]
        assert seen == {"runserver": expected, "run_worker": expected}, output
    finally:
        run.kill()
