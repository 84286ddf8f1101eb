"""`manage.py settle_month 2026-10`: the settlements of one UTC month (the same job
the schedule runs on the 1st); running it twice creates nothing new."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.actors import Actor, ActorKind
from common.exceptions import DomainError
from settlements.services import settlements_create_month


class Command(BaseCommand):
    help = "Create the PENDING settlements of one UTC month (YYYY-MM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("month", help="the UTC month, YYYY-MM")
        parser.add_argument("--actor", default="settle-month-command", help="recorded as creator")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            first = dt.date.fromisoformat(f"{options['month']}-01")
        except ValueError:
            raise CommandError(f"month must be YYYY-MM, not {options['month']!r}") from None
        try:
            created = settlements_create_month(
                first=first, actor=Actor(options["actor"], ActorKind.SYSTEM)
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{first:%Y-%m}: {len(created)} settlements created")
