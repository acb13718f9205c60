"""How much of a provider call's bodies is kept, and for how long.

A call is one row however many cards it carried (orders.events.record_call). Its method, URL,
status, duration, error and links to its orders are its record and stay for good: an order's
history always shows which calls carried it. Its request and response bodies are there only
to diagnose a problem, so:

- they are stored compact (JSON without the spaces a provider or json.dumps put in) and cut
  at GIFTDESK_CALL_BODY_MAX_BYTES, ending in "… cut at 32,000 bytes" where they were cut (the
  order page's excerpts then say why a body cannot be narrowed to one card);
- after GIFTDESK_CALL_BODY_RETENTION_DAYS (0: never) a daily task blanks them
  (`bodies_blank`), in chunks of a few thousand rows, one short statement each, so neither
  the engine's inserts nor the order pages wait on it; the order page then says "removed
  after 90 days" instead of showing empty bodies.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from orders.models import ProviderCall
from providers.clients.base import MAX_RECORDED_BODY

CHUNK_ROWS = 5_000  # per UPDATE: a short lock whatever the backlog
CUT = "\n… cut at {limit:,} bytes"
CUT_PATTERN = re.compile(r"\n… cut at ([\d,]+) bytes\Z")
MAX_KEPT_DAYS = 32_767  # what ProviderCall.bodies_kept_days holds (a small integer): 89 years


def body_stored(body: str, *, limit: int | None = None) -> str:
    """`body` as it is stored: compact JSON (a body that is not JSON as it came), at most
    `limit` bytes (GIFTDESK_CALL_BODY_MAX_BYTES; 0: no limit) with the cut marked."""
    if not body:
        return body
    limit = settings.GIFTDESK_CALL_BODY_MAX_BYTES if limit is None else limit
    try:
        data = json.loads(body)
    except ValueError:
        # The client already cut a long answer at MAX_RECORDED_BODY characters, unmarked
        # (providers.clients.base): mark it, as a cut made here is.
        if body[:1] in ("{", "[") and len(body) >= MAX_RECORDED_BODY and not CUT_PATTERN.search(body):
            body += CUT.format(limit=len(body.encode()))
    else:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        try:
            body.encode()
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") stays escaped, as it came
            body = json.dumps(data, separators=(",", ":"))
    encoded = body.encode()
    if not limit or len(encoded) <= limit:
        return body
    marker = CUT.format(limit=limit)
    kept = encoded[:max(limit - len(marker.encode()), 0)].decode(errors="ignore")  # whole characters only
    return kept + marker


def body_cut_at(body: str) -> int | None:
    """The size a stored body was cut at, or None when it was stored whole."""
    found = CUT_PATTERN.search(body)
    return int(found[1].replace(",", "")) if found else None


def retention_days() -> int:
    """GIFTDESK_CALL_BODY_RETENTION_DAYS; 0: bodies are kept for ever."""
    return max(int(settings.GIFTDESK_CALL_BODY_RETENTION_DAYS), 0)


def bodies_blank(*, older_than_days: int, chunk: int = CHUNK_ROWS, budget_seconds: float | None = None) -> tuple[int, bool]:
    """Blank the bodies of the calls made more than `older_than_days` days ago (0: all made
    until now), oldest first, `chunk` rows per statement, each its own transaction. Returns
    how many calls were blanked, and whether any is left (the time budget ran out first)."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    blanked = 0
    # Read through the partial index of the calls that still have bodies (ProviderCall.Meta):
    # the rows blanked before cost nothing to pass.
    due = ProviderCall.objects.filter(bodies_kept_days__isnull=True, created_at__lt=cutoff)
    kept_days = min(older_than_days, MAX_KEPT_DAYS)
    while True:
        ids = list(due.order_by("created_at").values_list("id", flat=True)[:chunk])
        if not ids:
            return blanked, False
        # Conditional: a run racing this one blanks each row once.
        blanked += ProviderCall.objects.filter(id__in=ids, bodies_kept_days__isnull=True).update(
            request_body="", response_body="", bodies_kept_days=kept_days)
        if len(ids) < chunk:
            return blanked, False
        if deadline is not None and time.monotonic() >= deadline:
            return blanked, True
