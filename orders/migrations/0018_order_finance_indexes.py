"""Indexes behind the order list's filters, search and sorting (issue 11): at a million orders
every page reads an index, never the whole table. Plain CREATE INDEX: on PostgreSQL it holds
writes to the table while it builds (seconds at this scale); the migration runs in a
transaction, so CONCURRENTLY is not an option here."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orders", "0017_batch_totals")]

    operations = [
        migrations.AddIndex(
            model_name="recipient",
            index=models.Index(django.db.models.functions.text.Lower("email"), name="recipient_email_lower_idx"),
        ),
        migrations.AddIndex(
            model_name="recipient",
            index=models.Index(fields=["reference"], name="recipient_reference_idx"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["batch", "id"], name="order_batch_id_idx"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["currency", "batch", "id"], name="order_currency_batch_id_idx"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["updated_at", "id"], name="order_updated_at_id_idx"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["provider_order_id"], name="order_provider_order_id_idx"),
        ),
    ]
