"""Blank the request and response bodies of provider calls older than N days, as the daily
task does with GIFTDESK_CALL_BODY_RETENTION_DAYS. The calls stay (method, URL, status,
duration, error, the orders they carried); order pages say when their bodies were removed.

Exit status: 0 done (also when nothing was old enough); 2 an option was refused (nothing changed).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from giftdesk.text import plural
from orders import call_retention

EXIT_REFUSED = 2


class Command(BaseCommand):
    help = ("Blank the bodies of provider calls older than N days (default: GIFTDESK_CALL_BODY_RETENTION_DAYS), "
            "a few thousand rows per statement. The calls and their links to orders stay. "
            "Exit status 0: done; 2: bad option.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, metavar="N",
                            help="Calls made more than N days ago (0: every call made until now).")

    def handle(self, *args, **options):
        days = options["older_than_days"]
        if days is None:
            days = call_retention.retention_days()
            if not days:
                self.stdout.write("GIFTDESK_CALL_BODY_RETENTION_DAYS is 0: bodies are kept for ever. "
                                  "Give --older-than-days N to remove older ones now.")
                return
        if days < 0:
            raise CommandError(f"--older-than-days {days}: give 0 or more days.", returncode=EXIT_REFUSED)
        blanked, _ = call_retention.bodies_blank(older_than_days=days)
        self.stdout.write(f"Bodies of {plural(blanked, 'provider call')} older than {plural(days, 'day')} removed.")
