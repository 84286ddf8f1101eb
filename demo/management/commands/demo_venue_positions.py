"""`manage.py demo_venue_positions URL`: the demo's simulator remembers what it
filled before (`make run`).

A real venue keeps every account's position across MMS's restarts; the demo's
simulator starts empty at each `make run`, while MMS's database keeps the fills
of every earlier run. Without this the position reconciliation (SPEC B.4,
issue 19) would rightly report every member as mismatched, and an unwind would
bring MMS's position to flat while the venue's is not. This sets each member
account's position on the simulator (its simulator-only POST /admin/positions)
to what MMS's stored fills say, once, before the pools quote. Idempotent: an
account already there is left alone. Never run against a real venue: it has
no such route.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandParser

from pools.models import PoolMember
from trading.selectors import member_position


class Command(BaseCommand):
    help = "Set the demo simulator's member positions to MMS's stored fills (make run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("order_service_url", help="the TradeX simulator's Order Service URL")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["order_service_url"].rstrip("/") + "/admin/positions"
        members = PoolMember.objects.select_related("pool", "participant").order_by(
            "pool__symbol", "participant__account_id"
        )
        moved = 0
        with httpx.Client(timeout=10) as client:
            for member in members:
                account, symbol = member.participant.account_id, member.pool.symbol
                stored = member_position(participant_id=member.participant_id, symbol=symbol)
                body = {"account_id": account, "symbol": symbol, "delta": "0"}
                current = Decimal(client.post(url, json=body).raise_for_status().json()["position"])
                if current != stored:
                    body["delta"] = str(stored - current)
                    client.post(url, json=body).raise_for_status()
                    moved += 1
        self.stdout.write(
            f"demo_venue_positions: {moved} of {len(members)} member positions set on the simulator"
        )
