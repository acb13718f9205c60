"""A provider call becomes one row, linked to the orders it carried (issue 7, section 6).
Its data comes from the old call events in 0008; their columns go in 0009."""

import django.db.models.deletion
import django.utils.timezone
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def let_history_readers_read_calls(apps, schema_editor):
    """Whoever may read an order's events may read the calls that carried it."""
    # Permissions are normally created after all migrations; the roles need this one now.
    orders = apps.get_app_config("orders")
    orders.models_module = True
    create_permissions(orders, apps=apps, verbosity=0)
    orders.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view_calls = Permission.objects.get(codename="view_providercall", content_type__app_label="orders")
    readers = Group.objects.filter(
        permissions__codename="view_orderevent", permissions__content_type__app_label="orders"
    )
    for group in readers:
        group.permissions.add(view_calls)


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0006_attempt_fencing'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.CreateModel(
            name='ProviderCall',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('actor', models.CharField(help_text='The worker that made the call.', max_length=150)),
                ('method', models.CharField(max_length=10)),
                ('url', models.CharField(max_length=500, verbose_name='URL')),
                ('http_status', models.PositiveIntegerField(blank=True, help_text='Empty: no answer.', null=True, verbose_name='HTTP status')),
                ('duration_ms', models.PositiveIntegerField(verbose_name='duration (ms)')),
                ('request_body', models.TextField(blank=True, help_text='Secrets redacted.')),
                ('response_body', models.TextField(blank=True, help_text='Secrets redacted.')),
                ('error', models.TextField(blank=True, help_text='Why there was no answer, e.g. “timed out”.')),
                ('orders', models.ManyToManyField(help_text='The orders it carried.', related_name='provider_calls', to='orders.order')),
                ('submission', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='calls', to='orders.submission')),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.AddField(
            model_name='orderevent',
            name='provider_call',
            field=models.ForeignKey(blank=True, help_text='The provider call that caused it.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='events', to='orders.providercall'),
        ),
        migrations.RunPython(let_history_readers_read_calls, migrations.RunPython.noop),
    ]
