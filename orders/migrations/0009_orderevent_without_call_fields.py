"""The call events are rows of ProviderCall now (0008): their columns go."""

from django.db import migrations, models

CALL_COLUMNS = ("http_method", "url", "http_status", "request_body", "response_body", "duration_ms")


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0008_provider_calls_from_events'),
    ]

    operations = [
        *(migrations.RemoveField(model_name='orderevent', name=name) for name in CALL_COLUMNS),
        migrations.AlterField(
            model_name='orderevent',
            name='kind',
            field=models.CharField(choices=[('status', 'Status change'), ('note', 'Note')], max_length=20),
        ),
    ]
