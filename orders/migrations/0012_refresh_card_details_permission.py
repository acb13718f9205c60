"""Refreshing bought cards' details asks a provider: a permission of its own (issue 8, least
privilege), `orders.refresh_card_details`, given to the Senders group. Finance stays
read-only; administrators (superusers) have it implicitly."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REFRESH = "refresh_card_details"
GROUPS = ["Senders"]


def grant_refresh(apps, schema_editor):
    # Permissions are normally created after all migrations; the group needs this one now.
    app_config = apps.get_app_config("orders")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permission = Permission.objects.get(codename=REFRESH, content_type__app_label="orders")
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(permission)


def revoke_refresh(apps, schema_editor):
    apps.get_model("auth", "Permission").objects.filter(codename=REFRESH, content_type__app_label="orders").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0011_export_permission"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["batch", "source_row", "id"],
                "permissions": [
                    ("export_order", "Can export orders"),
                    ("refresh_card_details", "Can ask the provider for bought cards' details"),
                ],
            },
        ),
        migrations.RunPython(grant_refresh, revoke_refresh),
    ]
