"""The limits a file is read under, as plain values.

Read from the settings once per upload (``ReadLimits.from_settings``) and passed down as
arguments, so the reading code never touches Django: the bounded reader's child process
(``bounded``) runs it without setting Django up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int  # the uploaded file
    max_rows: int  # data rows; header and blank rows not counted (the documented limit)
    max_sheet_rows: int  # the last row number read, blank rows included: bounds the work
    max_unzipped_bytes: int  # each part of a workbook, inflated
    read_memory_mb: int  # address space of the process that reads a workbook
    read_seconds: float  # wall-clock time it may take

    @classmethod
    def from_settings(cls) -> ReadLimits:
        from django.conf import settings

        return cls(
            max_bytes=settings.GIFTDESK_IMPORT_MAX_BYTES,
            max_rows=settings.GIFTDESK_IMPORT_MAX_ROWS,
            max_sheet_rows=settings.GIFTDESK_IMPORT_MAX_SHEET_ROWS,
            max_unzipped_bytes=settings.GIFTDESK_IMPORT_MAX_UNZIPPED_BYTES,
            read_memory_mb=settings.GIFTDESK_IMPORT_READ_MEMORY_MB,
            read_seconds=settings.GIFTDESK_IMPORT_READ_SECONDS,
        )

    def as_dict(self) -> dict:
        return asdict(self)
