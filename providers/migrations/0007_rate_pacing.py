"""Even pacing (issue 12): one theoretical arrival time per account (AccountPace) replaces the
sliding window's rows (RateLimitSlot), which only the limiter used: dropping them forgets at
most the last minute's count, and the new pace starts from "no request queued". A new
account's rate defaults to its provider's documented limit; existing accounts keep theirs."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("providers", "0006_monthly_limits")]

    operations = [
        migrations.CreateModel(
            name="AccountPace",
            fields=[
                ("account", models.OneToOneField(
                    on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name="+",
                    serialize=False, to="providers.provideraccount")),
                ("tat_us", models.BigIntegerField()),
                ("burst_until_us", models.BigIntegerField()),
            ],
        ),
        migrations.DeleteModel(name="RateLimitSlot"),
        # Only the model's default changes (None: filled from the provider on save). Django
        # keeps defaults in Python, so the column and every stored value stay as they are
        # (no table rebuild on SQLite).
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name="provideraccount",
                name="rate_limit_per_minute",
                field=models.PositiveIntegerField(default=None),
            ),
        ]),
    ]
