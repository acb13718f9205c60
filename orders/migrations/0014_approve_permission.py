"""Approving a batch is a permission of its own (issue 9, four eyes): `orders.approve_batch`,
given to the Approvers group. Administrators have it implicitly; nobody may use it on a batch
they uploaded (orders.batch_access.approval_refusal)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPROVE = "approve_batch"
GROUPS = ["Approvers"]


def grant_approve(apps, schema_editor):
    # Permissions are normally created after all migrations; the group needs this one now.
    app_config = apps.get_app_config("orders")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permission = Permission.objects.get(codename=APPROVE, content_type__app_label="orders")
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(permission)


def revoke_approve(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(codename=APPROVE, content_type__app_label="orders").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0013_money_controls"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="batch",
            options={
                "ordering": ["-created_at"],
                "permissions": [("approve_batch", "Can approve or reject others' batches")],
                "verbose_name_plural": "batches",
            },
        ),
        migrations.RunPython(grant_approve, revoke_approve),
    ]
