"""`manage.py rollup_day 2026-11-23`: the Q-score rollup of one UTC day (the same
job the schedule runs nightly); idempotent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from performance.jobs import rollup_day


class Command(BaseCommand):
    help = "Roll up one UTC day's performance snapshots and fills into mm_performance_daily."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("day", help="the UTC day, YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = dt.date.fromisoformat(options["day"])
        except ValueError:
            raise CommandError(f"day must be YYYY-MM-DD, not {options['day']!r}") from None
        rows = rollup_day(day)
        self.stdout.write(f"{day}: {rows} member-day rows")
