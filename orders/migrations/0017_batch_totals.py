"""A batch's totals stored on its row (issue 11, orders.batch_totals): its orders per status and
their face value per currency, computed here from the orders already there. The batch list
reads them instead of counting every order on every page; an index on created_at gives it
its default order (newest first) and its date drill-down without sorting every batch.

The backfill is self-contained (historical models, no import of orders.batch_totals): per
chunk of batches, one grouped query over their orders and one bulk update."""

from collections import Counter, defaultdict
from decimal import Decimal

from django.db import migrations, models
from django.db.models import Count, Sum

STATUSES = ("pending", "queued", "sending", "processing", "delivered", "failed", "cancelled")
CHUNK = 500


def totals_backfill(apps, schema_editor):
    Batch = apps.get_model("orders", "Batch")
    Order = apps.get_model("orders", "Order")
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    names = [f"{status}_count" for status in STATUSES] + ["face_value_totals"]
    # One statement for a chunk's batches, sent once with all their values (bulk_update's CASE
    # per field and batch costs seconds of Python per thousand batches).
    update = (f"UPDATE {quote(Batch._meta.db_table)} SET "
              + ", ".join(f"{quote(Batch._meta.get_field(name).column)} = %s" for name in names)
              + f" WHERE {quote(Batch._meta.pk.column)} = %s")
    totals_field = Batch._meta.get_field("face_value_totals")
    ids = list(Batch.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        counts: dict[int, Counter] = defaultdict(Counter)
        sums: dict[int, Counter] = defaultdict(Counter)
        rows = (Order.objects.filter(batch_id__in=chunk).order_by()
                .values_list("batch_id", "status", "currency").annotate(n=Count("id"), total=Sum("amount")))
        for batch_id, status, currency, count, total in rows:
            counts[batch_id][status] += count
            sums[batch_id][currency] += total or Decimal(0)
        params = []
        for batch_id in chunk:
            totals = {currency: str(Decimal(total).quantize(Decimal("0.01")))
                      for currency, total in sorted(sums[batch_id].items())}
            params.append([*(counts[batch_id][status] for status in STATUSES),
                           totals_field.get_db_prep_value(totals, connection), batch_id])
        with connection.cursor() as cursor:
            cursor.executemany(update, params)


def count_field():
    return models.PositiveIntegerField(default=0, editable=False)


class Migration(migrations.Migration):
    dependencies = [("orders", "0016_order_status_completed_index")]

    operations = [
        *(migrations.AddField(model_name="batch", name=f"{status}_count", field=count_field())
          for status in STATUSES),
        migrations.AddField(
            model_name="batch",
            name="face_value_totals",
            field=models.JSONField(blank=True, default=dict, editable=False,
                                   help_text='Face value of all its orders per currency, e.g. {"DKK": "1500.00"}.'),
        ),
        # Reversed, the fields are dropped: nothing to undo first.
        migrations.RunPython(totals_backfill, migrations.RunPython.noop),
        # The batch list's default order (-created_at) and its date drill-down: read from an
        # index instead of sorting every batch (EXPLAIN on PostgreSQL, 50,000 batches).
        migrations.AddIndex(model_name="batch", index=models.Index(fields=["created_at"], name="batch_created_at_idx")),
    ]
