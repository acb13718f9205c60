"""A batch's creation recorded once (issue 12): one BatchEvent per upload, not one OrderEvent
per order. Orders created before keep their own creation events; nothing is converted."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orders", "0020_submission_lease")]
    operations = [
        migrations.CreateModel(
            name="BatchEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("actor", models.CharField(help_text="A user name, or “system”.", max_length=150)),
                ("kind", models.CharField(choices=[("created", "Orders created")], max_length=20)),
                ("to_status", models.CharField(blank=True, help_text="The status the orders were given.",
                                               max_length=20)),
                ("order_count", models.PositiveIntegerField(default=0, help_text="How many orders it concerned.")),
                ("message", models.TextField(blank=True)),
                ("batch", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="events",
                                            to="orders.batch")),
            ],
            options={
                "ordering": ["created_at", "id"],
                "constraints": [models.UniqueConstraint(condition=models.Q(("kind", "created")), fields=("batch",),
                                                        name="batch_created_once")],
            },
        ),
    ]
