"""settlements 0003-0005: settlements made with a high-water mark per symbol get
participant-months whose marks are the sums of their symbols' (nothing already
charged is charged again), keep their figures, keep their old marks in the
audit trail, and must be recalculated before a pending one is approved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from common.exceptions import Conflict
from common.models import AuditLog
from settlements import services
from settlements.models import ParticipantMonth
from tests.settlements.helpers import AUG, BTC, ETH, FIN, JUL, SEP, fill, settle, split, the

D = Decimal
BEFORE = [("settlements", "0002_settlement_figures")]
AFTER = [("settlements", "0005_drop_symbol_marks")]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.fixture
def before_b21(transactional_db: None) -> Iterator[object]:
    """The schema as it was with per-symbol marks (the historical models); the
    latest schema again afterwards, whatever the test did."""
    executor = _migrate(BEFORE)
    try:
        yield executor.loader.project_state(BEFORE).apps
    finally:
        _migrate(AFTER)


def _legacy(
    apps: object,
    participant: object,
    symbol: str,
    first: dt.date,
    *,
    state: str = "APPROVED",
    **figures: str,
):
    """A settlement row as the per-symbol code wrote it."""
    Settlement = apps.get_model("settlements", "Settlement")  # type: ignore[attr-defined]
    fields = {k: D(v) for k, v in figures.items()}
    fields.setdefault("net_usdt", fields["gross_usdt"] - fields.get("platform_share_usdt", 0))
    return Settlement.objects.create(
        participant_id=participant.pk,  # type: ignore[attr-defined]
        symbol=symbol,
        period_start=first,
        period_end=(first.replace(day=28) + dt.timedelta(days=4)).replace(day=1),
        revenue_model="PERCENTAGE_SPLIT",
        revenue_share_pct=D("20"),
        inputs_sha256="f" * 64,
        state=state,
        **fields,
    )


def test_per_symbol_marks_become_the_participants_and_nothing_is_charged_twice(before_b21):
    apps = before_b21
    lp = split("20")
    # July, per symbol: BTC +1,000 (share 200 on BTC's mark), ETH −1,000 (no share).
    btc = _legacy(
        apps, lp, BTC, JUL, gross_usdt="1000", cumulative_gross_usdt="1000",
        share_base_usdt="1000", platform_share_usdt="200",
    )  # fmt: skip
    eth = _legacy(apps, lp, ETH, JUL, gross_usdt="-1000", cumulative_gross_usdt="-1000")
    # August, per symbol, still pending: ETH +300 (ETH's mark is 0: no share yet).
    _legacy(apps, lp, ETH, AUG, state="PENDING", gross_usdt="300", cumulative_gross_usdt="-700")

    _migrate(AFTER)

    jul = ParticipantMonth.objects.get(participant=lp, period_start=JUL)
    assert jul.high_water_mark_scope == "SYMBOL"
    assert (jul.gross_usdt, jul.platform_share_usdt, jul.net_usdt) == (0, D("200"), D("-200"))
    # The marks add up: BTC's 1,000 (charged) + ETH's 0; the cumulative gross is 0.
    assert (jul.high_water_mark_usdt, jul.cumulative_gross_usdt) == (0, 0)
    assert (jul.high_water_mark_after_usdt, jul.share_base_usdt) == (D("1000"), D("1000"))
    assert jul.inputs_sha256 == ""
    august = ParticipantMonth.objects.get(participant=lp, period_start=AUG)
    assert (august.high_water_mark_usdt, august.cumulative_gross_usdt) == (D("1000"), D("300"))
    assert the(lp, JUL).platform_share_usdt == D("200")  # what was charged stays as it was

    moved = AuditLog.objects.get(entity_id=str(btc.pk), action="high_water_mark_to_participant")
    assert moved.changes == {
        "high_water_mark_usdt": ["0.00000000", None],
        "cumulative_gross_usdt": ["1000.00000000", None],
        "share_base_usdt": ["1000.00000000", None],
        "participant_month": [None, str(jul.pk)],
    }
    assert (moved.actor, moved.actor_kind) == ("migration settlements.0004", "system")
    assert AuditLog.objects.filter(entity_id=str(eth.pk)).count() == 1

    # August's figures were per symbol: approval sends them back to be recalculated.
    pending = the(lp, AUG, ETH)
    with pytest.raises(Conflict, match="per symbol"):
        services.settlement_approve(settlement=pending, actor=FIN)
    services.settlement_reject(settlement=pending, actor=FIN, reason="per-symbol figures")
    fill(lp, AUG, realised="300", symbol=ETH)
    recalculated = services.settlement_recalculate(settlement=pending, actor=FIN)
    august.refresh_from_db()
    # 300 of gross on a cumulative 0 → 300, below the mark of 1,000: no share again.
    assert august.high_water_mark_scope == "PARTICIPANT"
    assert (august.cumulative_gross_usdt, august.platform_share_usdt) == (D("300"), 0)
    assert recalculated.platform_share_usdt == 0
    assert services.settlement_approve(settlement=recalculated, actor=FIN).state == "APPROVED"
    # September, per participant from the start: profit above 1,000 pays again.
    fill(lp, SEP, realised="800")
    settle(SEP)
    sep = the(lp, SEP).participant_month
    assert (sep.high_water_mark_usdt, sep.cumulative_gross_usdt) == (D("1000"), D("1100"))
    assert sep.platform_share_usdt == D("20")


def test_going_back_restores_the_per_symbol_marks(before_b21):
    apps = before_b21
    lp = split("20")
    row = _legacy(
        apps, lp, BTC, JUL, gross_usdt="10", high_water_mark_usdt="5",
        cumulative_gross_usdt="15", share_base_usdt="10", platform_share_usdt="2",
    )  # fmt: skip
    _migrate(AFTER)
    assert ParticipantMonth.objects.get().high_water_mark_after_usdt == D("15")

    executor = _migrate(BEFORE)
    Settlement = executor.loader.project_state(BEFORE).apps.get_model("settlements", "Settlement")
    back = Settlement.objects.get(pk=row.pk)
    assert (back.high_water_mark_usdt, back.cumulative_gross_usdt, back.share_base_usdt) == (
        D("5"),
        D("15"),
        D("10"),
    )
