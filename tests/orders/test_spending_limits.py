"""Monthly spending limits per account and currency (DESIGN.md engine rule 8): what the
engine claims, what waits and why, how staff set a limit (configure_account, the account
admin) and where they see it. The race of two workers: test_spending_limit_race.py."""

import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from orders import dispatch
from orders.batches import batch_send
from orders.models import Order, OrderStatus
from orders.spending import month_spent, month_start
from providers.forms import account_form
from providers.models import ProviderAccount
from tests.fixtures.data import make_batch

EURO_CARD_SKU = "C3D4E5F6"  # the GoGift emulator's EUR card (sandbox), 10..500 in steps of 5


def configure(account, *values: str) -> str:
    out = StringIO()
    call_command("configure_account", account.name, "--kind", account.kind, "--environment", account.environment,
                 *[arg for value in values for arg in ("--set", value)], stdout=out, stderr=out)
    return out.getvalue()


def pump(account) -> dispatch.PumpReport:
    return dispatch.account_pump(account.pk, budget_seconds=20)


def by_amount(batch) -> dict[str, tuple[str, str]]:
    """{amount: (status, waiting_reason)} of a batch whose amounts differ."""
    return {f"{order.amount:.0f}": (order.status, order.waiting_reason) for order in batch.orders.all()}


def ledger_total(emulator, currency: str) -> Decimal:
    return sum((entry.amount for entry in emulator.ledger if entry.currency == currency), Decimal(0))


def reason(*, limit: str, spent: str, needs: str, over: str, currency: str = "DKK") -> str:
    return (f"Waits for the monthly {currency} limit of “GoGift emulated”: {limit} {currency} a month, "
            f"{spent} {currency} spent or in flight this month; this card needs {needs} {currency}, "
            f"{over} {currency} over. It goes when the limit is raised or next month begins.")


# --- The engine -------------------------------------------------------------------------------


def test_an_order_over_the_limit_waits_with_the_reason_and_the_cards_that_fit_go(
    emulated_gogift_account, gogift_emulator
):
    configure(emulated_gogift_account, "monthly_limit=DKK:1000")
    batch = make_batch(emulated_gogift_account, ["400", "500", "300", "100"])
    batch_send(batch=batch)

    pump(emulated_gogift_account)

    # 400 + 500 fit; 300 would make 1,200; the 100 behind it still fits: exactly 1,000.
    assert by_amount(batch) == {
        "400": (OrderStatus.DELIVERED, ""),
        "500": (OrderStatus.DELIVERED, ""),
        "100": (OrderStatus.DELIVERED, ""),
        "300": (OrderStatus.QUEUED, reason(limit="1,000.00", spent="1,000.00", needs="300.00", over="300.00")),
    }
    assert ledger_total(gogift_emulator, "DKK") == Decimal("1000")
    assert len(gogift_emulator.ledger) == 3
    assert month_spent(emulated_gogift_account, "DKK") == Decimal("1000")


def test_each_currency_has_its_own_limit(emulated_gogift_account, gogift_emulator):
    configure(emulated_gogift_account, "monthly_limit=DKK 500, EUR 100")
    crowns = make_batch(emulated_gogift_account, ["300", "250"])
    euros = make_batch(emulated_gogift_account, ["50", "40", "30"], sku=EURO_CARD_SKU)
    batch_send(batch=crowns)
    batch_send(batch=euros)

    pump(emulated_gogift_account)

    assert by_amount(crowns) == {
        "300": (OrderStatus.DELIVERED, ""),
        "250": (OrderStatus.QUEUED, reason(limit="500.00", spent="300.00", needs="250.00", over="50.00")),
    }
    assert by_amount(euros) == {
        "50": (OrderStatus.DELIVERED, ""),
        "40": (OrderStatus.DELIVERED, ""),
        "30": (OrderStatus.QUEUED, reason(limit="100.00", spent="90.00", needs="30.00", over="20.00",
                                          currency="EUR")),
    }
    assert (ledger_total(gogift_emulator, "DKK"), ledger_total(gogift_emulator, "EUR")) == (300, 90)


def test_a_currency_without_a_limit_goes_on_while_another_waits(emulated_gogift_account, gogift_emulator):
    configure(emulated_gogift_account, "monthly_limit=DKK:0")  # 0: no DKK at all this month
    crowns = make_batch(emulated_gogift_account, ["100", "200"])
    euros = make_batch(emulated_gogift_account, ["400", "450", "500", "250"], sku=EURO_CARD_SKU)
    batch_send(batch=crowns)
    batch_send(batch=euros)

    pump(emulated_gogift_account)

    assert set(euros.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    assert ledger_total(gogift_emulator, "EUR") == Decimal("1600")
    assert by_amount(crowns) == {
        "100": (OrderStatus.QUEUED, reason(limit="0.00", spent="0.00", needs="100.00", over="100.00")),
        "200": (OrderStatus.QUEUED, reason(limit="0.00", spent="0.00", needs="200.00", over="200.00")),
    }
    assert ledger_total(gogift_emulator, "DKK") == 0


def test_last_months_spending_does_not_count_against_this_month(emulated_gogift_account, gogift_emulator):
    configure(emulated_gogift_account, "monthly_limit=DKK:1000")
    earlier = make_batch(emulated_gogift_account, ["600", "400"])
    batch_send(batch=earlier)
    pump(emulated_gogift_account)
    later = make_batch(emulated_gogift_account, ["500"])
    batch_send(batch=later)
    pump(emulated_gogift_account)
    assert by_amount(later) == {
        "500": (OrderStatus.QUEUED, reason(limit="1,000.00", spent="1,000.00", needs="500.00", over="500.00"))}

    # The first batch was claimed last month (its last day, local time).
    earlier.orders.update(claimed_at=month_start() - timedelta(hours=1))
    assert month_spent(emulated_gogift_account, "DKK") == 0
    pump(emulated_gogift_account)

    assert by_amount(later) == {"500": (OrderStatus.DELIVERED, "")}
    assert month_spent(emulated_gogift_account, "DKK") == Decimal("500")
    assert ledger_total(gogift_emulator, "DKK") == Decimal("1500")


def test_raising_the_limit_lets_the_waiting_orders_go_at_the_next_pump(emulated_gogift_account, gogift_emulator):
    configure(emulated_gogift_account, "monthly_limit=DKK:1000")
    batch = make_batch(emulated_gogift_account, ["800", "700"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    assert by_amount(batch)["700"][0] == OrderStatus.QUEUED

    configure(emulated_gogift_account, "monthly_limit=DKK:1500")
    pump(emulated_gogift_account)

    assert by_amount(batch) == {"800": (OrderStatus.DELIVERED, ""), "700": (OrderStatus.DELIVERED, "")}
    assert ledger_total(gogift_emulator, "DKK") == Decimal("1500")


def test_clearing_the_limits_lets_everything_go(emulated_gogift_account, gogift_emulator):
    configure(emulated_gogift_account, "monthly_limit=DKK:100")
    batch = make_batch(emulated_gogift_account, ["200", "300"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}

    configure(emulated_gogift_account, "monthly_limit=")
    assert ProviderAccount.objects.get(pk=emulated_gogift_account.pk).monthly_limits == {}
    pump(emulated_gogift_account)

    assert by_amount(batch) == {"200": (OrderStatus.DELIVERED, ""), "300": (OrderStatus.DELIVERED, "")}


def test_a_limit_lowered_below_the_spend_holds_every_new_order_and_says_by_how_much(
    emulated_gogift_account, gogift_emulator
):
    batch = make_batch(emulated_gogift_account, ["600", "400"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    configure(emulated_gogift_account, "monthly_limit=DKK:500")
    later = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=later)

    pump(emulated_gogift_account)

    assert by_amount(later) == {
        "100": (OrderStatus.QUEUED, reason(limit="500.00", spent="1,000.00", needs="100.00", over="600.00"))}
    assert ledger_total(gogift_emulator, "DKK") == Decimal("1000")


def test_a_card_the_provider_refused_spent_nothing(emulated_gogift_account, gogift_emulator):
    configure(emulated_gogift_account, "monthly_limit=DKK:500")
    # 55 is off GoGift's 10 DKK steps: refused for good.
    batch = make_batch(emulated_gogift_account, ["55", "400"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    assert by_amount(batch)["55"][0] == OrderStatus.FAILED

    later = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=later)
    pump(emulated_gogift_account)

    # 400 + 100 = 500: the refused 55 is not counted, so the 100 fits exactly.
    assert by_amount(later) == {"100": (OrderStatus.DELIVERED, "")}
    assert ledger_total(gogift_emulator, "DKK") == Decimal("500")


def test_every_claimed_order_records_when_it_was_claimed_also_without_a_limit(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "200"])
    batch_send(batch=batch)
    # A reason left from a limit since removed is cleared when the order goes.
    batch.orders.update(waiting_reason="Waits for the monthly DKK limit of “GoGift emulated”: (old)")
    before = month_start()

    pump(emulated_gogift_account)

    for order in batch.orders.all():
        assert order.status == OrderStatus.DELIVERED
        assert order.claimed_at is not None and order.claimed_at >= before
        assert order.waiting_reason == ""


def test_the_pump_does_not_spin_when_a_limit_holds_everything_and_writes_the_reason_once(
    emulated_gogift_account, gogift_emulator
):
    configure(emulated_gogift_account, "monthly_limit=DKK:100")
    batch = make_batch(emulated_gogift_account, ["200", "300"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    written = dict(batch.orders.values_list("pk", "updated_at"))

    started = time.monotonic()
    report = pump(emulated_gogift_account)

    assert time.monotonic() - started < 5  # the budget is 20 s: it returned, it did not wait or spin
    assert (report.claimed, report.attempted) == (0, 0)
    assert dict(batch.orders.values_list("pk", "updated_at")) == written  # same reason: not rewritten
    assert all(reason.startswith("Waits for the monthly DKK limit")
               for reason in batch.orders.values_list("waiting_reason", flat=True))
    assert gogift_emulator.ledger == []


def test_a_paused_accounts_reason_is_not_taken_for_a_limits_reason(emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch_send(batch=batch)
    batch.orders.update(waiting_reason="Sending is paused for the account: GoGift refused the credentials.")
    configure(emulated_gogift_account, "monthly_limit=DKK:1000")
    ProviderAccount.objects.filter(pk=emulated_gogift_account.pk).update(blocked_reason="refused")

    pump(emulated_gogift_account)  # paused: nothing is claimed, nothing rewritten

    assert by_amount(batch) == {"100": (OrderStatus.QUEUED,
                                        "Sending is paused for the account: GoGift refused the credentials.")}


# --- configure_account -----------------------------------------------------------------------------


@pytest.mark.parametrize("value, stored", [
    ("DKK:50000,EUR:5000", {"DKK": "50000.00", "EUR": "5000.00"}),
    ("DKK 50000, EUR 5000", {"DKK": "50000.00", "EUR": "5000.00"}),
    ("dkk=1234.5", {"DKK": "1234.50"}),
    ("DKK:0", {"DKK": "0.00"}),
    ("", {}),
])
def test_configure_account_sets_monthly_limits(gogift_account, value, stored):
    gogift_account.monthly_limits = {"SEK": "10.00"}
    gogift_account.save()

    output = configure(gogift_account, f"monthly_limit={value}")

    assert "Updated GoGift account “GoGift sandbox”" in output
    assert ProviderAccount.objects.get(pk=gogift_account.pk).monthly_limits == stored


@pytest.mark.parametrize("value, words", [
    ("DK:5000", "Monthly limit “DK:5000”: “DK” is not a currency code; write three letters, e.g. DKK."),
    ("DKK:lots", "Monthly limit “DKK:lots”: “lots” is not a number."),
    ("DKK:-5", "Monthly limit “DKK:-5”: a limit cannot be negative"),
    ("DKK 50,000", "“50,000” is not a number (write it without thousands separators, e.g. 50000)."),
    ("DKK 50.000", "DKK amounts have at most two decimals; write thousands without a separator"),
    ("DKK:NaN", "“NaN” is not a number."),
    ("EUR 5, DKK 5000, EUR 6", "Monthly limit for EUR is given twice"),
    ("5000", "Monthly limit “5000” is not a currency and an amount; write each as CURRENCY AMOUNT"),
    ("DKK 1e20", "is more than any account may spend"),
])
def test_configure_account_refuses_a_bad_limit_naming_the_part_and_saves_nothing(gogift_account, value, words):
    gogift_account.monthly_limits = {"DKK": "1000.00"}
    gogift_account.save()

    with pytest.raises(CommandError) as refused:
        configure(gogift_account, "buyer_name=Someone Else", f"monthly_limit={value}")

    assert refused.value.returncode == 2
    assert words in str(refused.value) and "Nothing was saved." in str(refused.value)
    account = ProviderAccount.objects.get(pk=gogift_account.pk)
    assert account.monthly_limits == {"DKK": "1000.00"}
    assert "buyer_name" not in account.settings


def test_a_misspelt_limit_key_is_refused_and_the_right_one_is_listed(gogift_account):
    with pytest.raises(CommandError) as refused:
        configure(gogift_account, "monthly_limits=DKK:5000")
    assert "'monthly_limits' is not a known key" in str(refused.value)
    assert "sending: max_cards_per_request, monthly_limit, rate_limit_per_minute" in str(refused.value)
    assert ProviderAccount.objects.get(pk=gogift_account.pk).monthly_limits == {}


def test_a_limit_change_is_in_the_accounts_history(gogift_account):
    configure(gogift_account, "monthly_limit=DKK:50000")
    configure(gogift_account, "monthly_limit=DKK:60000")

    changes = [entry.changes_dict["monthly_limits"] for entry in LogEntry.objects.get_for_object(gogift_account)
               .order_by("timestamp", "pk") if "monthly_limits" in entry.changes_dict]
    assert "50000.00" in changes[-2][1] and "60000.00" not in changes[-2][0]
    assert "50000.00" in changes[-1][0] and "60000.00" in changes[-1][1]


# --- The admin ----------------------------------------------------------------------------------------


def change_url(account) -> str:
    return reverse("admin:providers_provideraccount_change", args=[account.pk])


def account_post(account, **fields) -> dict:
    return {
        "name": account.name, "environment": account.environment, "api_base_url": account.api_base_url,
        "auth_url": account.auth_url, "max_cards_per_request": account.max_cards_per_request,
        "rate_limit_per_minute": account.rate_limit_per_minute, "is_active": "on", **fields,
    }


def test_the_form_reads_both_ways_of_writing_limits_and_shows_them_back(gogift_account):
    form_class = account_form("gogift")
    field = form_class.base_fields["monthly_limits"]
    assert field.label == "Monthly spending limits" and "DKK 50000, EUR 5000" in field.help_text

    form = form_class(instance=gogift_account, data={**account_post(gogift_account), "kind": "gogift",
                                                     "monthly_limits": "DKK:50000, EUR 5000"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["monthly_limits"] == {"DKK": "50000.00", "EUR": "5000.00"}

    gogift_account.monthly_limits = {"EUR": "5000.00", "DKK": "50000.00"}
    assert form_class(instance=gogift_account).initial["monthly_limits"] == "DKK 50000.00, EUR 5000.00"


def test_the_admin_saves_limits_and_records_the_change(admin_client, gogift_account):
    response = admin_client.post(change_url(gogift_account), account_post(
        gogift_account, monthly_limits="DKK 50000, EUR 5000"))

    assert response.status_code == 302
    gogift_account.refresh_from_db()
    assert gogift_account.monthly_limits == {"DKK": "50000.00", "EUR": "5000.00"}
    entry = LogEntry.objects.get_for_object(gogift_account).latest("timestamp")
    assert "monthly_limits" in entry.changes_dict
    html = admin_client.get(change_url(gogift_account)).content.decode()
    assert 'name="monthly_limits"' in html and 'value="DKK 50000.00, EUR 5000.00"' in html


def test_the_admin_refuses_a_bad_limit_and_saves_nothing(admin_client, gogift_account):
    response = admin_client.post(change_url(gogift_account), account_post(
        gogift_account, monthly_limits="DKK 50000, EURO 5000", setting_buyer_name="Changed"))

    assert response.status_code == 200
    assert "Monthly limit “EURO 5000”: “EURO” is not a currency code" in response.content.decode()
    gogift_account.refresh_from_db()
    assert gogift_account.monthly_limits == {}
    assert gogift_account.settings.get("buyer_name") != "Changed"


def test_the_account_page_and_list_show_this_months_spend(admin_client, emulated_gogift_account):
    configure(emulated_gogift_account, "monthly_limit=DKK 1000, EUR 200")
    batch = make_batch(emulated_gogift_account, ["400", "300"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)

    page = admin_client.get(change_url(emulated_gogift_account)).content.decode()
    listing = admin_client.get(reverse("admin:providers_provideraccount_changelist")).content.decode()

    for html in (page, listing):
        assert "This month" in html
        assert "700.00 of 1,000.00 DKK spent; 300.00 DKK left" in html
        assert "0.00 of 200.00 EUR spent; 200.00 EUR left" in html


def test_an_account_without_limits_says_so(admin_client, gogift_account):
    assert "No monthly limit" in admin_client.get(change_url(gogift_account)).content.decode()


def test_the_batch_page_says_how_many_orders_wait_for_a_limit_and_why(admin_client, emulated_gogift_account):
    configure(emulated_gogift_account, "monthly_limit=DKK:500")
    batch = make_batch(emulated_gogift_account, ["400", "300", "200"])
    batch_send(batch=batch)
    pump(emulated_gogift_account)
    url = reverse("admin:orders_batch_change", args=[batch.pk])

    html = admin_client.get(url).content.decode()

    assert "2 queued orders wait for a monthly spending limit." in html
    assert "Waits for the monthly DKK limit of “GoGift emulated”: 500.00 DKK a month, 400.00 DKK spent" in html

    configure(emulated_gogift_account, "monthly_limit=")
    pump(emulated_gogift_account)
    assert "No order of this batch waits for a spending limit." in admin_client.get(url).content.decode()
    assert not Order.objects.filter(batch=batch, status=OrderStatus.QUEUED).exists()
