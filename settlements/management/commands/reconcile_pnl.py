"""`manage.py reconcile_pnl 2026-10 [--symbol PEPEUSDT-PERP]`: does each of the
month's settlements' realised PnL follow from its stored fills?

For finance, on any settled month: every settlement's realised PnL recomputed
from mm_fills by an average-cost ledger of its own (settlements/reconciliation.py)
against the stored figure, to the quantum (0.00000001 USDT). Prints one row per
settlement and exits non-zero when any differs; read-only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from settlements.reconciliation import PnlReconciliation, settlement_pnl_reconcile

COLUMNS = ("participant", "symbol", "fills", "stored", "recomputed", "difference", "")


class Command(BaseCommand):
    help = (
        "Recompute each settlement's realised PnL of a UTC month (YYYY-MM) from its stored "
        "fills and compare it with the stored figure; exits 1 on any difference."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("month", help="the UTC month, YYYY-MM")
        parser.add_argument(
            "--symbol", action="append", dest="symbols", help="only this symbol (repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            first = dt.date.fromisoformat(f"{options['month']}-01")
        except ValueError:
            raise CommandError(f"month must be YYYY-MM, not {options['month']!r}") from None
        checks = settlement_pnl_reconcile(first=first, symbols=options["symbols"])
        if not checks:
            self.stdout.write(f"{first:%Y-%m}: no settlement to reconcile")
            return
        rows = [COLUMNS, *(_row(check) for check in checks)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            self.stdout.write(
                "  ".join(
                    cell.ljust(width) if i < 2 else cell.rjust(width)
                    for i, (cell, width) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
            )
        for check in checks:
            if check.fills_differing:
                self.stdout.write(
                    f"{check.symbol} {check.participant_name}: {check.fills_differing} fill(s) "
                    f"whose stored PnL is not the ledger's, the first {check.first_differing_fill}"
                )
            if check.fill_count != check.settled_fill_count:
                self.stdout.write(
                    f"{check.symbol} {check.participant_name}: {check.fill_count} fills stored "
                    f"now, {check.settled_fill_count} when the settlement was computed"
                )
        failed = [check for check in checks if not check.reconciles]
        if failed:
            raise CommandError(
                f"{first:%Y-%m}: {len(failed)} of {len(checks)} settlements do not reconcile "
                f"with their fills ({', '.join(sorted({c.symbol for c in failed}))})"
            )
        self.stdout.write(
            f"{first:%Y-%m}: all {len(checks)} settlements reconcile with their fills "
            "to 0.00000001 USDT"
        )


def _row(check: PnlReconciliation) -> tuple[str, ...]:
    return (
        check.participant_name,
        check.symbol,
        str(check.fill_count),
        format(check.stored, "f"),
        format(check.recomputed, "f"),
        format(check.difference, "f"),
        "ok" if check.reconciles else "DIFFERS",
    )
