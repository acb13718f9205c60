"""The scheduled export (issue 11, orders/scheduled_exports.py): the task writes the orders of
the period just ended to a directory under a dated name and records it in the audit trail; a
django-q2 schedule made as its documentation says (the admin's fields, or the shell line) is
valid, and django-q2's own scheduler and worker run it."""

from __future__ import annotations

import ast
import csv
import os
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Success
from django_q.scheduler import scheduler

from audit.models import AuditAction, AuditEntry
from orders import scheduled_exports
from orders.exports import ExportRefused
from orders.models import Order, OrderStatus
from orders.scheduled_exports import FUNC, export_schedule, period_bounds, scheduled_export
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import make_batch

DOCUMENTED_DIRECTORY = "/srv/giftdesk/exports"  # the example path the documentation uses


@pytest.fixture(autouse=True)
def copenhagen(settings):
    settings.TIME_ZONE = "Europe/Copenhagen"  # periods are the server's local days


def local(*when: int) -> datetime:
    return timezone.make_aware(datetime(*when))


def order_created(account, amount: str, when: datetime, **sku) -> Order:
    order = make_batch(account, [amount], **sku).orders.get()
    Order.objects.filter(pk=order.pk).update(created_at=when)
    return order


def csv_references(path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        return [row["reference"] for row in csv.DictReader(stream)]


def gifty_account() -> ProviderAccount:
    account = ProviderAccount.objects.create(name="Gifty NL", kind="gifty")
    Product.objects.create(account=account, provider_product_id="gc", sku="GIFTY-EUR", title="Gifty card",
                           currency="EUR", pricing=PricingKind.RANGE, min_amount=Decimal("5"),
                           max_amount=Decimal("500"), step=Decimal("1"))
    return account


# --- The task -------------------------------------------------------------------------------

@pytest.mark.parametrize("period, today, expected", [
    ("previous_day", date(2026, 3, 1), (date(2026, 2, 28), date(2026, 2, 28), "2026-02-28")),
    ("previous_month", date(2026, 12, 1), (date(2026, 11, 1), date(2026, 11, 30), "2026-11")),
    ("previous_month", date(2027, 1, 15), (date(2026, 12, 1), date(2026, 12, 31), "2026-12")),
    ("previous_month", date(2028, 3, 1), (date(2028, 2, 1), date(2028, 2, 29), "2028-02")),
    ("previous_quarter", date(2027, 1, 1), (date(2026, 10, 1), date(2026, 12, 31), "2026-Q4")),
    ("previous_quarter", date(2026, 6, 30), (date(2026, 1, 1), date(2026, 3, 31), "2026-Q1")),
])
def test_the_period_just_ended(period, today, expected):
    assert period_bounds(period, today) == expected


def test_the_previous_months_orders_and_no_other_go_into_a_dated_file(global_gift_card, tmp_path):
    account = global_gift_card.account
    order_created(account, "100", local(2026, 10, 31, 23, 30))
    first = order_created(account, "200", local(2026, 11, 1, 0, 30))
    last = order_created(account, "300", local(2026, 11, 30, 23, 30))
    order_created(account, "400", local(2026, 12, 1, 0, 10))

    # django-q2 passes the planned time in UTC: 23:30 on 30 November is 00:30 on 1 December in
    # Copenhagen, so November is over (in UTC it would still be November's last day).
    result = scheduled_export(period="previous_month", directory=str(tmp_path),
                              scheduled_for="2026-11-30T23:30:00+00:00")

    written = tmp_path / "orders-2026-11.csv"
    assert result == f"Exported 2 orders to {written}"
    assert [path.name for path in tmp_path.iterdir()] == ["orders-2026-11.csv"]  # no part file left
    assert csv_references(written) == [first.reference, last.reference]
    assert written.stat().st_mode & 0o777 == 0o600  # recipients' personal data: its owner's only
    entry = AuditEntry.objects.get(action=AuditAction.EXPORT)
    assert (entry.user, entry.amounts) == (None, {"DKK": "500.00"})
    assert f"Exported 2 orders (500.00 DKK) as CSV by the schedule to {written.resolve()}" in entry.summary
    assert "previous_month (created 2026-11-01 to 2026-11-30)" in entry.summary


def test_one_accounts_delivered_orders_as_xlsx_name_the_account_in_the_file(global_gift_card, tmp_path):
    gifty = gifty_account()
    wanted = order_created(gifty, "25", local(2026, 11, 12, 12), sku="GIFTY-EUR")
    Order.objects.filter(pk=wanted.pk).update(status=OrderStatus.DELIVERED)
    order_created(gifty, "30", local(2026, 11, 13, 12), sku="GIFTY-EUR")  # pending
    order_created(global_gift_card.account, "100", local(2026, 11, 14, 12))  # another account

    scheduled_export(period="previous_month", file_format="xlsx", directory=str(tmp_path), account="Gifty NL",
                     status="delivered", scheduled_for="2026-12-01T05:00:00+00:00")

    sheet = openpyxl.load_workbook(tmp_path / "orders-gifty-nl-delivered-2026-11.xlsx").worksheets[0]
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == [wanted.reference]
    assert "--account Gifty NL --status delivered" in AuditEntry.objects.get(action=AuditAction.EXPORT).summary


def test_the_previous_quarter_ends_at_local_midnight(global_gift_card, tmp_path):
    account = global_gift_card.account
    order_created(account, "100", local(2026, 6, 30, 23, 50))
    first = order_created(account, "200", local(2026, 7, 1, 0, 10))
    last = order_created(account, "300", local(2026, 9, 30, 23, 50))
    order_created(account, "400", local(2026, 10, 1, 0, 10))

    # 22:30 UTC on 30 September is 00:30 on 1 October in Copenhagen (summer time, UTC+2).
    scheduled_export(period="previous_quarter", directory=str(tmp_path), scheduled_for="2026-09-30T22:30:00+00:00")

    assert csv_references(tmp_path / "orders-2026-Q3.csv") == [first.reference, last.reference]


def test_without_a_planned_time_the_period_is_the_one_before_now(global_gift_card, tmp_path):
    yesterday = timezone.localdate() - timedelta(days=1)
    order = order_created(global_gift_card.account, "100", local(yesterday.year, yesterday.month, yesterday.day, 12))

    scheduled_export(period="previous_day", directory=str(tmp_path))

    assert csv_references(tmp_path / f"orders-{yesterday}.csv") == [order.reference]


@pytest.mark.parametrize("kwargs, message", [
    ({"directory": "/nonexistent/exports"}, "The export directory /nonexistent/exports does not exist"),
    ({"period": "last_week"}, "Unknown period 'last_week': use previous_day, previous_month, previous_quarter."),
    ({"file_format": "pdf"}, "Unknown format 'pdf': use csv or xlsx."),
    ({"account": "Nope"}, "No account named 'Nope'."),
    ({"scheduled_for": "tomorrow"}, "scheduled_for 'tomorrow' is not a time"),
])
def test_a_wrong_value_fails_the_task_saying_what_to_correct(global_gift_card, tmp_path, kwargs, message):
    with pytest.raises(ExportRefused, match=re.escape(message)):
        scheduled_export(**{"directory": str(tmp_path), **kwargs})
    assert list(tmp_path.iterdir()) == []
    assert not AuditEntry.objects.exists()


@pytest.fixture
def unwritable_directory(tmp_path):
    """A directory this process may not write to: one without write permission, or for root
    (who writes anywhere else) one of a read-only file system."""
    locked = tmp_path / "exports"
    locked.mkdir(mode=0o500)
    try:
        if not os.access(locked, os.W_OK):
            yield locked
        elif not os.access("/proc/sys", os.W_OK):  # Linux mounts it read-only, even for root
            yield Path("/proc/sys")
        else:
            pytest.skip("no directory here that this user cannot write to")
    finally:
        locked.chmod(0o700)


def test_a_directory_the_worker_cannot_write_to_fails_the_task_saying_so(global_gift_card, unwritable_directory):
    message = f"The export directory {unwritable_directory} is not writable by the OS user "
    with pytest.raises(ExportRefused, match=re.escape(message)):
        scheduled_export(period="previous_month", directory=str(unwritable_directory))
    with pytest.raises(ExportRefused, match=re.escape(message)):
        export_schedule(period="previous_month", directory=str(unwritable_directory))
    assert not AuditEntry.objects.exists() and not Schedule.objects.filter(func=FUNC).exists()


# --- The schedule, as documented ------------------------------------------------------------------

def documented_admin_fields() -> dict[str, str]:
    """The fields the module's documentation says to fill in on the admin's "Add scheduled task"."""
    fields = dict(re.findall(r"^ {4}(Name|Func|Kwargs|Schedule Type|Intended date kwarg): +(.+)$",
                             scheduled_exports.__doc__, re.MULTILINE))
    assert len(fields) == 5, fields
    return fields


def documented_shell_line() -> str:
    [line] = re.findall(r'^ {4}\.venv/bin/python manage\.py shell -c "(.+)"$', scheduled_exports.__doc__, re.MULTILINE)
    return line


def first_of_last_month() -> datetime:
    """A planned run already due, whatever today is: 06:00 on the 1st of last month."""
    start = (timezone.localdate().replace(day=1) - timedelta(days=1)).replace(day=1)
    return timezone.make_aware(datetime.combine(start, scheduled_exports.RUN_AT))


def run_due_schedules(monkeypatch) -> None:
    """django-q2's scheduler, as the cluster runs it every 30 seconds; its worker runs the task
    here and now (sync), finding the function by its dotted path as a worker process does."""
    monkeypatch.setattr(Conf, "SYNC", True)
    # The migrations' own schedules (the sweep...) are not this test's: not due now.
    Schedule.objects.exclude(func=FUNC).update(next_run=timezone.now() + timedelta(days=1))
    scheduler()


def test_a_schedule_made_in_the_admin_as_documented_runs_the_export(global_gift_card, tmp_path, monkeypatch):
    due = first_of_last_month()
    month_before = (due - timedelta(days=1)).date()
    inside = order_created(global_gift_card.account, "100", timezone.make_aware(
        datetime.combine(month_before.replace(day=15), datetime.min.time())))
    order_created(global_gift_card.account, "200", due + timedelta(days=2))  # after the period
    fields = documented_admin_fields()
    schedule_type = {label: value for value, label in Schedule.TYPE}[fields["Schedule Type"]]
    schedule = Schedule(name=fields["Name"], func=fields["Func"], schedule_type=schedule_type, next_run=due,
                        kwargs=fields["Kwargs"].replace(DOCUMENTED_DIRECTORY, str(tmp_path)),
                        intended_date_kwarg=fields["Intended date kwarg"])
    schedule.full_clean()  # what the admin's form checks
    schedule.save()

    run_due_schedules(monkeypatch)

    written = tmp_path / f"orders-{month_before:%Y-%m}.xlsx"
    sheet = openpyxl.load_workbook(written).worksheets[0]
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == [inside.reference]
    task = Success.objects.get(func=FUNC)
    assert task.result == f"Exported 1 order to {written}"
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now() and timezone.localtime(schedule.next_run).day == 1  # next month's


def test_the_documented_shell_line_makes_the_same_schedule_once(global_gift_card, tmp_path, monkeypatch):
    line = documented_shell_line().replace(DOCUMENTED_DIRECTORY, str(tmp_path))
    exec(line, {})  # what `manage.py shell -c` runs
    exec(line, {})  # twice: the same schedule, updated

    schedule = Schedule.objects.get(func=FUNC)
    assert (schedule.func, schedule.schedule_type, schedule.intended_date_kwarg) == (FUNC, Schedule.MONTHLY,
                                                                                    "scheduled_for")
    next_run = timezone.localtime(schedule.next_run)
    assert (next_run.day, next_run.hour, next_run.minute) == (1, 6, 0) and next_run > timezone.now()
    schedule.full_clean()

    Schedule.objects.filter(pk=schedule.pk).update(next_run=first_of_last_month())
    run_due_schedules(monkeypatch)
    assert Success.objects.get(func=FUNC).result.startswith("Exported 0 orders to ")
    assert [path.suffix for path in tmp_path.iterdir()] == [".xlsx"]


def test_the_shell_line_refuses_a_directory_that_does_not_exist(db):
    with pytest.raises(ExportRefused, match="does not exist"):
        export_schedule(period="previous_month", file_format="csv", directory="/nonexistent/exports")
    with pytest.raises(ExportRefused, match="Unknown period"):
        export_schedule(period="monthly", directory="/tmp")
    assert not Schedule.objects.filter(func=FUNC).exists()


@pytest.mark.parametrize("period, schedule_type", [("previous_day", Schedule.DAILY),
                                                    ("previous_quarter", Schedule.QUARTERLY)])
def test_daily_and_quarterly_schedules(db, tmp_path, period, schedule_type):
    schedule = export_schedule(period=period, directory=str(tmp_path))
    next_run = timezone.localtime(schedule.next_run)
    assert schedule.schedule_type == schedule_type and next_run > timezone.now() and next_run.hour == 6
    if period == "previous_quarter":
        assert (next_run.day, next_run.month % 3) == (1, 1)
    assert schedule_kwargs(schedule) == {"period": period, "file_format": "csv", "directory": str(tmp_path.resolve())}


def schedule_kwargs(schedule: Schedule) -> dict:
    """The kwargs as django-q2's scheduler reads them (keyword syntax, literal values only)."""
    call = ast.parse(f"f({schedule.kwargs})").body[0].value
    return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}

