"""`manage.py seed_demo [--base-url URL] [--no-sync]`: the demo login and one
emulator-backed account per provider (a command of the emulators app)."""

from django.contrib.auth.models import User

from providers.models import ProviderAccount
from providers.services import account_check
from tests.commands import run_command


def test_seed_demo_is_safe_to_run_twice(db):
    run_command("seed_demo", "--no-sync")
    run_command("seed_demo", "--no-sync")
    assert ProviderAccount.objects.filter(name="GoGift demo").count() == 1
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.check_password("giftdesk-demo")


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
