"""The payout file finance pays from: one line per participant-month, adding up
its settlements in one state (APPROVED: to pay; FAILED: to retry), read from
the database in one query.

Money in USDT, exact (Σ of 8-place columns, printed in plain notation, 8
places). `amount_usdt` is the Σ of the settlements' net: what the participant
is paid for the month; negative when the month's net is a loss (nothing to pay,
the loss is carried in the high-water mark).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal
from itertools import groupby
from uuid import UUID

from common.spreadsheet import csv_cell
from settlements.enums import SettlementState
from settlements.models import Settlement

ZERO = Decimal(0)
CURRENCY = "USDT"
HEADER = (
    "participant_id",
    "short_id",
    "participant_name",
    "account_id",
    "month",
    "symbols",
    "settlement_ids",
    "gross_usdt",
    "platform_share_usdt",
    "amount_usdt",
    "currency",
    "state",
    "approved_by",
    "approved_at",
)
PAYABLE_STATES = (SettlementState.APPROVED, SettlementState.FAILED)


@dataclass(frozen=True)
class PayoutLine:
    participant_id: UUID
    short_id: str
    participant_name: str
    account_id: str
    month: str
    symbols: tuple[str, ...]
    settlement_ids: tuple[UUID, ...]
    gross_usdt: Decimal
    platform_share_usdt: Decimal
    amount_usdt: Decimal
    currency: str
    state: str
    approved_by: str
    approved_at: dt.datetime | None

    def cells(self) -> list[str]:
        values: dict[str, object] = {
            **asdict(self),
            "symbols": ";".join(self.symbols),
            "settlement_ids": ";".join(str(i) for i in self.settlement_ids),
            "gross_usdt": _plain(self.gross_usdt),
            "platform_share_usdt": _plain(self.platform_share_usdt),
            "amount_usdt": _plain(self.amount_usdt),
            "approved_at": self.approved_at.isoformat() if self.approved_at else "",
        }
        return [csv_cell(values[column]) for column in HEADER]


def _plain(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.00000001")), "f")


def payout_lines(
    *,
    first: dt.date | None = None,
    state: str = SettlementState.APPROVED,
    participant_month_ids: Iterable[UUID | str] | None = None,
) -> list[PayoutLine]:
    """The settlements in `state`, of the month starting `first` (every month when
    None) or of those participant-months, one line per participant-month: oldest
    month first, then by participant short id."""
    if state not in PAYABLE_STATES:
        raise ValueError(f"a payout file lists APPROVED or FAILED settlements, not {state}")
    settlements = Settlement.objects.filter(state=state).select_related("participant")
    if first is not None:
        settlements = settlements.filter(period_start=first)
    if participant_month_ids is not None:
        settlements = settlements.filter(participant_month_id__in=list(participant_month_ids))
    ordered = settlements.order_by(
        "period_start", "participant__short_id", "participant_month_id", "symbol"
    )
    lines = []
    for _, rows in groupby(ordered, key=lambda s: (s.period_start, s.participant_month_id)):
        month = list(rows)
        first_row = month[0]
        participant = first_row.participant
        lines.append(
            PayoutLine(
                participant_id=participant.pk,
                short_id=participant.short_id,
                participant_name=participant.name,
                account_id=participant.account_id,
                month=f"{first_row.period_start:%Y-%m}",
                symbols=tuple(s.symbol for s in month),
                settlement_ids=tuple(s.pk for s in month),
                gross_usdt=sum((s.gross_usdt for s in month), ZERO),
                platform_share_usdt=sum((s.platform_share_usdt for s in month), ZERO),
                amount_usdt=sum((s.net_usdt for s in month), ZERO),
                currency=CURRENCY,
                state=str(state),
                approved_by=first_row.approved_by,
                approved_at=first_row.approved_at,
            )
        )
    return lines


def payout_csv(lines: Iterable[PayoutLine]) -> str:
    """The header row, then one row per line; symbols and settlement ids `;`-separated."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(line.cells() for line in lines)
    return out.getvalue()


def payout_filename(*, first: dt.date | None, state: str = SettlementState.APPROVED) -> str:
    month = f"-{first:%Y-%m}" if first else ""
    suffix = "" if state == SettlementState.APPROVED else f"-{str(state).lower()}"
    return f"payouts{month}{suffix}.csv"
