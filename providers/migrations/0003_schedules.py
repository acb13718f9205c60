"""The repeating schedules of providers: a daily catalog sync and wallet balances."""

from django.db import migrations

SCHEDULES = {
    "giftdesk-catalog-sync": {"func": "providers.tasks.sync_all_catalogs", "schedule_type": "D", "minutes": None},
    "giftdesk-balances": {"func": "providers.tasks.refresh_balances", "schedule_type": "I", "minutes": 15},
}


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, values in SCHEDULES.items():
        Schedule.objects.update_or_create(name=name, defaults={**values, "repeats": -1})


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0002_balance_and_rate_limit"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
