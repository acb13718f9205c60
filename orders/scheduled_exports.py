"""Finance's export on a schedule (issue 11): django-q2 runs `scheduled_export` by its dotted
path after each day, month or quarter; it writes the orders created in the period just ended
to a directory, under a dated name (`orders-2026-11.xlsx`), through `orders_export` (the file
of `manage.py export_orders`: written under a temporary name, renamed when complete, readable
by its owner only), and records the export in the audit trail as the command does. Running it
twice for a period writes the same file again: safe under the ORM broker's redelivery.

Create the schedule once, either in the admin (Task queue -> Scheduled tasks -> Add; the
task-queue pages are administrators'):

    Name:                 Monthly export for the books
    Func:                 orders.scheduled_exports.scheduled_export
    Kwargs:               period="previous_month", file_format="xlsx", directory="/srv/giftdesk/exports"
    Schedule Type:        Monthly
    Next Run:             the 1st of next month, 06:00
    Intended date kwarg:  scheduled_for

or with one line from the shell (the same schedule; it checks the values first, and running
it again updates the schedule of that name instead of adding a second):

    .venv/bin/python manage.py shell -c "from orders.scheduled_exports import export_schedule; export_schedule(period='previous_month', file_format='xlsx', directory='/srv/giftdesk/exports')"

`period` is `previous_day` (Schedule Type Daily), `previous_month` (Monthly) or
`previous_quarter` (Quarterly); days are the server's TIME_ZONE, as for `export_orders
--from/--to`. Optional kwargs: `account="GoGift"` (one account's orders; its name goes into
the file name) and `status="delivered"`. With the intended date kwarg set, the period is the
one before the time the run was planned for, so a worker that was down at 06:00 on the 1st
still exports the right month when it catches up.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from pathlib import Path

from django.utils import timezone
from django.utils.text import slugify

from audit.context import os_user
from giftdesk.text import plural
from orders.audit import export_record
from orders.exports import ExportCriteria, ExportRefused, check_format, check_status, find_account, orders_export

FUNC = "orders.scheduled_exports.scheduled_export"
INTENDED_DATE_KWARG = "scheduled_for"
RUN_AT = time(6, 0)  # local time of a run made by `export_schedule`: the period is well over
PERIODS = ("previous_day", "previous_month", "previous_quarter")


def check_period(period: str) -> str:
    if period not in PERIODS:
        raise ExportRefused(f"Unknown period {period!r}: use {', '.join(PERIODS)}.")
    return period


def period_bounds(period: str, today: date) -> tuple[date, date, str]:
    """The first and last day (both included) of the period before `today`, and its label."""
    check_period(period)
    if period == "previous_day":
        day = today - timedelta(days=1)
        return day, day, day.isoformat()
    if period == "previous_month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last, f"{last:%Y-%m}"
    # previous_quarter
    this_quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last = this_quarter - timedelta(days=1)
    return date(last.year, last.month - 2, 1), last, f"{last.year}-Q{(last.month - 1) // 3 + 1}"


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportRefused(f"{INTENDED_DATE_KWARG} {text!r} is not a time: write it as ISO 8601, "
                            "e.g. 2026-12-01T06:00:00+01:00.") from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _directory(directory: str | Path) -> Path:
    path = Path(directory)
    if not path.is_dir():
        raise ExportRefused(f"The export directory {path} does not exist (or is not a directory): create it, "
                            "readable by finance only, or correct the schedule's directory.")
    # Checked here for a clear message (the file is written under a temporary name first);
    # the worker may run as another OS user than the shell that made the schedule.
    if not os.access(path, os.W_OK | os.X_OK):
        raise ExportRefused(f"The export directory {path} is not writable by the OS user {os_user()}: "
                            "let that user write to it, or correct the schedule's directory.")
    return path


def scheduled_export(*, period: str = "previous_month", file_format: str = "csv", directory: str,
                     account: str | None = None, status: str | None = None, scheduled_for: str | None = None) -> str:
    """Write the orders created in the `period` before `scheduled_for` (an ISO time, given by
    django-q2's intended date kwarg; now without it) to `directory`. Returns what it did (the
    task's result); raises ExportRefused with what to correct (the task's failure)."""
    check_format(file_format)
    moment = _moment(scheduled_for) if scheduled_for else timezone.now()
    first, last, label = period_bounds(period, timezone.localtime(moment).date())
    criteria = ExportCriteria(created_from=first, created_to=last,
                              account=find_account(account) if account else None,
                              status=check_status(status) if status else None)
    name = "-".join(filter(None, ["orders", slugify(account or ""), status, label]))
    path = _directory(directory) / f"{name}.{file_format}"
    count = orders_export(criteria=criteria, file_format=file_format, path=path)
    # Once the file is there, as export_orders does: an export that failed took nothing out.
    chosen = [f"{period} (created {first} to {last})"] + [f"--{option} {value}" for option, value in
                                                          (("account", account), ("status", status)) if value]
    export_record(user=None, orders=criteria.queryset(), count=count, file_format=file_format,
                  where=f"by the schedule to {path.resolve()} (run by the OS user {os_user()})",
                  chosen=" ".join(chosen))
    return f"Exported {plural(count, 'order')} to {path}"


# --- Creating the schedule ----------------------------------------------------------------------

def _next_start(period: str, now: datetime) -> datetime:
    """When the current period is over: tomorrow, the 1st of next month or quarter, at RUN_AT."""
    today = timezone.localtime(now).date()
    if period == "previous_day":
        day = today + timedelta(days=1)
    else:
        months = 1 if period == "previous_month" else 3 - (today.month - 1) % 3
        year, month = divmod(today.month - 1 + months, 12)
        day = date(today.year + year, month + 1, 1)
    return timezone.make_aware(datetime.combine(day, RUN_AT))


def export_schedule(*, period: str = "previous_month", file_format: str = "csv", directory: str,
                    account: str | None = None, status: str | None = None, name: str | None = None):
    """Create, or update by its name, the django-q2 schedule that runs `scheduled_export`
    after every period, first when the current one is over. Checks every value first."""
    from django_q.models import Schedule  # the task queue's, imported only when scheduling

    # Every value checked now, not at the first run weeks later.
    check_period(period)
    check_format(file_format)
    directory = str(_directory(directory).resolve())
    if account:
        find_account(account)
    if status:
        check_status(status)
    kwargs = {"period": period, "file_format": file_format, "directory": directory, "account": account,
              "status": status}
    schedule_type = {"previous_day": Schedule.DAILY, "previous_month": Schedule.MONTHLY,
                     "previous_quarter": Schedule.QUARTERLY}[period]
    schedule, _ = Schedule.objects.update_or_create(
        name=(name or f"Export {period} {file_format} to {directory}")[:100],
        defaults={"func": FUNC, "schedule_type": schedule_type, "repeats": -1,
                  "kwargs": ", ".join(f"{key}={value!r}" for key, value in kwargs.items() if value),
                  "next_run": _next_start(period, timezone.now()), "intended_date_kwarg": INTENDED_DATE_KWARG},
    )
    return schedule

