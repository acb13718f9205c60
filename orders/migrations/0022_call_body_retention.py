"""Provider calls' bodies kept for GIFTDESK_CALL_BODY_RETENTION_DAYS (orders.call_retention):
how long a blanked call's bodies were kept, the index the daily task finds the calls still
holding bodies by, and its daily schedule."""

from django.db import migrations, models
from django.db.models import Q

SCHEDULE = "giftdesk-call-body-retention"


def create_schedule(apps, schema_editor):
    # By name: running it again (or after an admin changed the time) keeps one schedule.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE,
        defaults={"func": "orders.tasks.call_bodies_purge", "schedule_type": "D", "minutes": None, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0021_batch_creation_event"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [
        migrations.AddField(
            model_name="providercall",
            name="bodies_kept_days",
            field=models.PositiveSmallIntegerField(
                blank=True, editable=False, null=True,
                help_text="Set when the bodies were blanked: the days they were kept (GIFTDESK_CALL_BODY_RETENTION_DAYS).",
            ),
        ),
        migrations.AddIndex(
            model_name="providercall",
            index=models.Index(condition=Q(bodies_kept_days__isnull=True), fields=["created_at"],
                               name="providercall_bodies_kept_idx"),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
