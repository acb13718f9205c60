"""Export is a permission of its own (issue 8, least privilege): `orders.export_order`,
given to the Finance group. Administrators (superusers) have it implicitly."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

EXPORT = "export_order"
GROUPS = ["Finance"]


def _export_permission(apps):
    # Permissions are normally created after all migrations; the group needs this one now.
    app_config = apps.get_app_config("orders")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.get(codename=EXPORT, content_type__app_label="orders")


def grant_export(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    permission = _export_permission(apps)
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(permission)


def revoke_export(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(codename=EXPORT, content_type__app_label="orders").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_card_codes"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["batch", "source_row", "id"],
                "permissions": [("export_order", "Can export orders")],
            },
        ),
        migrations.RunPython(grant_export, revoke_export),
    ]
