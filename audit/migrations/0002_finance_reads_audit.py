"""Finance reads the audit trail (DESIGN.md "Roles"): `audit.view_auditentry` for the
Finance group. Administrators (superusers) read it implicitly; nobody, administrators
included, may change or delete an entry (audit.admin, audit.models)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = "view_auditentry"
GROUPS = ["Finance"]


def _view_permission(apps):
    # Permissions are normally created after all migrations; the group needs this one now.
    app_config = apps.get_app_config("audit")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.get(codename=VIEW, content_type__app_label="audit")


def grant_view(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    permission = _view_permission(apps)
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(permission)


def revoke_view(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for permission in Permission.objects.filter(codename=VIEW, content_type__app_label="audit"):
        permission.group_set.remove(*Group.objects.filter(name__in=GROUPS))


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        # After the roles exist: that migration sets each group's permissions afresh.
        ("orders", "0002_groups_and_schedules"),
    ]

    operations = [
        migrations.RunPython(grant_view, revoke_view),
    ]
