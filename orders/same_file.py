"""Earlier batches made from the same file (by the SHA-256 kept on every batch).

Every earlier batch counts, whatever its state or account: a cancelled batch may have
delivered some cards before it was cancelled, and a rejected one tells the uploader the
file was already turned down. The preview names the state so the person can judge; who
is left out is decided by the cards actually bought (the recent-recipient check), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from orders.models import Batch


@dataclass(frozen=True)
class SameFile:
    latest: Batch  # the most recent batch made from this file
    earlier: int  # how many more batches before it came from the same file


def same_file_batches(checksum: str) -> SameFile | None:
    """The most recent batch whose source file had this checksum, and how many others did."""
    if not checksum:
        return None
    matches = Batch.objects.filter(source_checksum=checksum)
    latest = matches.select_related("account", "created_by").order_by("-created_at", "-pk").first()
    if latest is None:
        return None
    return SameFile(latest=latest, earlier=matches.count() - 1)
