"""Reconciliation with the providers (issue 11): the `Reconciliation` model, and the
permission to run one, `orders.reconcile_orders`, given to the Finance group with the right
to read the reports (`view_reconciliation`). Asking a provider what became of its cards
only reads: it buys nothing and changes no order. Administrators have both implicitly."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

GRANTED = ["reconcile_orders", "view_reconciliation"]
GROUPS = ["Finance"]


def grant_reconcile(apps, schema_editor):
    # Permissions are normally created after all migrations; the group needs these now.
    app_config = apps.get_app_config("orders")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permissions = list(Permission.objects.filter(codename__in=GRANTED, content_type__app_label="orders"))
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*permissions)


def revoke_reconcile(apps, schema_editor):
    apps.get_model("auth", "Permission").objects.filter(
        codename__in=GRANTED, content_type__app_label="orders").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0018_order_finance_indexes"),
        ("providers", "0006_monthly_limits"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Reconciliation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("since", models.DateField(help_text="Orders created on or after this day (server time zone).")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("state", models.CharField(
                    choices=[("running", "Running"), ("agreed", "Everything agrees"),
                             ("differences", "Differences found"), ("failed", "Failed")],
                    default="running", max_length=20)),
                ("orders_checked", models.PositiveIntegerField(
                    default=0, help_text="Orders their provider was asked about.")),
                ("orders_not_checkable", models.PositiveIntegerField(
                    default=0, help_text="Orders of providers that document no order lookup (GoGift).")),
                ("differences_count", models.PositiveIntegerField(default=0, verbose_name="differences")),
                ("lines", models.JSONField(blank=True, default=list)),
                ("summary", models.TextField(blank=True)),
                ("error", models.TextField(blank=True, help_text="Why the run itself failed.")),
                ("cursor", models.PositiveBigIntegerField(default=0, editable=False)),
                ("checked_account_ids", models.JSONField(blank=True, default=list, editable=False)),
                ("not_checkable_by_provider", models.JSONField(blank=True, default=dict, editable=False)),
                ("claimed_until", models.DateTimeField(blank=True, editable=False, null=True)),
                ("account", models.ForeignKey(
                    blank=True, help_text="Empty: every active account.", null=True,
                    on_delete=django.db.models.deletion.PROTECT, related_name="reconciliations",
                    to="providers.provideraccount")),
                ("requested_by", models.ForeignKey(
                    blank=True, help_text="Empty: run by `manage.py reconcile`.", null=True,
                    on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [("reconcile_orders", "Can reconcile orders with the providers")],
            },
        ),
        migrations.RunPython(grant_reconcile, revoke_reconcile),
    ]
