"""Leases on requests in flight (issue 12): `Submission.lease_until`, an index for the search
for leases run out, and a second engine schedule half a minute after the sweep.

Why a second schedule: django-q2 runs a schedule at most once a minute and checks them only
every 30 s, so one sweep can notice a dead worker up to 90 s late; two, half a minute apart,
make every check run one and a new worker's first check (30 s after it starts) run one.
"""

from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone

SWEEP = "giftdesk-sweep"
LEASE_SWEEP = "giftdesk-lease-sweep"


def create_lease_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    sweep = Schedule.objects.filter(name=SWEEP).values_list("next_run", flat=True).first()
    Schedule.objects.update_or_create(
        name=LEASE_SWEEP,
        defaults={"func": "orders.tasks.sweep_leases", "schedule_type": "I", "minutes": 1, "repeats": -1,
                  "next_run": (sweep or timezone.now()) + timedelta(seconds=30)},
    )


def remove_lease_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=LEASE_SWEEP).delete()


class Migration(migrations.Migration):
    dependencies = [("orders", "0019_reconciliation")]
    operations = [
        migrations.AddField(
            model_name="submission",
            name="lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="submission",
            index=models.Index(condition=models.Q(("state", "in_flight")), fields=["lease_until"],
                               name="orders_sub_inflight_lease_idx"),
        ),
        migrations.RunPython(create_lease_schedule, remove_lease_schedule),
    ]
