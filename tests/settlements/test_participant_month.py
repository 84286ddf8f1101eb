"""The high-water mark is the participant's (SPEC Part B.21): the platform's
share is on the participant's month gross, across its symbols, above its mark;
it is allocated to the symbols pro rata to positive gross, the parts summing
to it exactly; the mark is carried from month to month; and the participant's
settlements of a month are approved, rejected and recalculated together."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from common.exceptions import Conflict, IllegalTransition
from common.models import AuditLog
from settlements import services
from settlements.calculation import allocate
from settlements.models import ParticipantMonth, Settlement
from tests.settlements.helpers import (
    AUG,
    BTC,
    ETH,
    FIN,
    JUL,
    SEP,
    SOL,
    XRP,
    D,
    fill,
    funding,
    settle,
    split,
    states,
    the,
)

pytestmark = pytest.mark.django_db


# --- the share: on the participant's month gross above its mark ---------------------


def test_btc_profit_and_eth_loss_pay_a_share_only_on_the_net_above_the_mark() -> None:
    lp = split("20")
    fill(lp, AUG, realised="1000", fee="-2")  # BTC: 1,002 of gross (a maker rebate)
    fill(lp, AUG, realised="-400", fee="1.5", symbol=ETH)  # ETH: −401.5
    funding(lp, AUG, "-0.5", symbol=ETH)  # ETH: −402

    btc, eth = sorted(settle(AUG), key=lambda s: s.symbol)

    month = btc.participant_month
    assert eth.participant_month_id == month.pk
    assert (btc.gross_usdt, eth.gross_usdt) == (D("1002"), D("-402"))
    # 600 of month gross above a mark of 0: 20 % of 600, not of BTC's 1,002.
    assert (month.gross_usdt, month.high_water_mark_usdt, month.share_base_usdt) == (
        D("600"),
        0,
        D("600"),
    )
    assert month.platform_share_usdt == D("120")
    assert (month.cumulative_gross_usdt, month.high_water_mark_after_usdt) == (D("600"), D("600"))
    # All of it is BTC's: ETH's gross is not positive.
    assert (btc.platform_share_usdt, btc.net_usdt) == (D("120"), D("882"))
    assert (eth.platform_share_usdt, eth.net_usdt) == (0, D("-402"))
    assert month.positive_gross_usdt == D("1002")
    assert month.net_usdt == btc.net_usdt + eth.net_usdt == D("480")
    assert btc.inputs_sha256 == eth.inputs_sha256 == month.inputs_sha256


def test_a_loss_across_symbols_pays_no_share_even_with_one_symbol_in_profit() -> None:
    lp = split("20")
    fill(lp, AUG, realised="100", symbol=ETH)
    fill(lp, AUG, realised="-150")
    settle(AUG)
    month = the(lp, AUG).participant_month
    assert (month.gross_usdt, month.share_base_usdt, month.platform_share_usdt) == (
        D("-50"),
        0,
        0,
    )
    assert the(lp, AUG, ETH).platform_share_usdt == 0
    assert the(lp, AUG, ETH).net_usdt == D("100")


def test_the_mark_is_carried_across_months_for_the_participant_as_a_whole() -> None:
    lp = split("20")
    fill(lp, JUL, realised="1000")  # July: BTC +1,000
    fill(lp, AUG, realised="-300")  # August: BTC −300, ETH +100
    fill(lp, AUG, realised="100", symbol=ETH)
    fill(lp, SEP, realised="500", symbol=ETH)  # September: ETH +500 (no BTC at all)

    settle(JUL)
    settle(AUG)
    settle(SEP)
    jul, aug, sep = (
        ParticipantMonth.objects.get(participant=lp, period_start=first)
        for first in (JUL, AUG, SEP)
    )
    assert jul.platform_share_usdt == D("200")
    # August: ETH made 100, but the participant lost 200 in all: no share, and the
    # mark stays at July's 1,000 (per symbol, ETH would have paid 20).
    assert (aug.gross_usdt, aug.cumulative_gross_usdt, aug.high_water_mark_usdt) == (
        D("-200"),
        D("800"),
        D("1000"),
    )
    assert (aug.platform_share_usdt, aug.high_water_mark_after_usdt) == (0, D("1000"))
    assert the(lp, AUG, ETH).platform_share_usdt == 0
    # September: ETH's 500 first makes good August's 200; the share is on 300.
    assert (sep.high_water_mark_usdt, sep.cumulative_gross_usdt, sep.share_base_usdt) == (
        D("1000"),
        D("1300"),
        D("300"),
    )
    assert (sep.platform_share_usdt, sep.high_water_mark_after_usdt) == (D("60"), D("1300"))
    assert Settlement.objects.filter(participant=lp, period_start=SEP).count() == 1
    assert the(lp, SEP, ETH).platform_share_usdt == D("60")


def test_the_mark_skips_a_quiet_month() -> None:
    lp = split("10")
    fill(lp, JUL, realised="500")
    fill(lp, SEP, realised="-100", symbol=ETH)
    settle(JUL)
    assert settle(AUG) == []  # no activity, no participant-month
    settle(SEP)
    sep = the(lp, SEP, ETH).participant_month
    assert (sep.high_water_mark_usdt, sep.cumulative_gross_usdt) == (D("500"), D("400"))


# --- the allocation: pro rata to positive gross, exact ------------------------------


def test_the_allocation_sums_exactly_and_gives_a_tied_quantum_to_the_first_symbol() -> None:
    lp = split("50")
    for symbol in (BTC, ETH, SOL):
        fill(lp, AUG, realised="1", symbol=symbol)
    fill(lp, AUG, realised="-1", symbol=XRP)
    settle(AUG)
    month = the(lp, AUG).participant_month
    # Month gross 2, share 1: three equal thirds of 0.33333333 leave one 1e-8,
    # which goes to the tie's first symbol alphabetically; XRP's loss gets none.
    assert month.platform_share_usdt == D("1")
    shares = {s.symbol: s.platform_share_usdt for s in month.settlements.all()}
    assert shares == {
        BTC: D("0.33333334"),
        ETH: D("0.33333333"),
        SOL: D("0.33333333"),
        XRP: D("0"),
    }
    assert sum(shares.values()) == month.platform_share_usdt
    nets = {s.symbol: s.net_usdt for s in month.settlements.all()}
    assert nets == {BTC: D("0.66666666"), ETH: D("0.66666667"), SOL: D("0.66666667"), XRP: -1}


def test_allocate_gives_the_leftover_quanta_to_the_largest_remainders() -> None:
    # 0.00000010 over weights 2 : 1 = 6.67 and 3.33 units: 6 + 3, and the one
    # left goes to BTC's remainder of 0.67 before ETH's 0.33.
    assert allocate(D("0.00000010"), {BTC: D("2"), ETH: D("1")}) == {
        BTC: D("0.00000007"),
        ETH: D("0.00000003"),
    }
    # Weights 1 : 2 reverse it, whatever the alphabet says.
    assert allocate(D("0.00000010"), {BTC: D("1"), ETH: D("2")}) == {
        BTC: D("0.00000003"),
        ETH: D("0.00000007"),
    }
    assert allocate(D("0"), {BTC: D("-5")}) == {BTC: D("0")}
    with pytest.raises(ValueError, match="no positive gross"):
        allocate(D("1"), {BTC: D("-1"), ETH: D("0")})


def test_allocate_is_exact_on_many_random_months() -> None:
    rng = random.Random(19)
    for _ in range(2_000):
        symbols = [f"S{i}USDT-PERP" for i in range(rng.randint(1, 8))]
        gross = {
            s: Decimal(rng.randint(-(10**12), 10**12)).scaleb(-8) if rng.random() < 0.8 else D(0)
            for s in symbols
        }
        positive = sum((g for g in gross.values() if g > 0), D(0))
        share = (positive * Decimal(rng.randint(0, 10_000)) / 10_000).quantize(D("1e-8"))
        if positive == 0:
            share = D(0)
        parts = allocate(share, gross)
        assert sum(parts.values()) == share
        for symbol, part in parts.items():
            assert part == part.quantize(D("1e-8"))
            assert 0 <= part <= max(D(0), gross[symbol])
            if gross[symbol] <= 0:
                assert part == 0


# --- approve, reject and recalculate: the participant-month as a whole -------------


def _two_symbols() -> tuple:
    lp = split("10")
    fill(lp, AUG, realised="300")
    fill(lp, AUG, realised="100", symbol=ETH)
    settle(AUG)
    return lp, the(lp, AUG), the(lp, AUG, ETH)


def test_approving_one_symbol_approves_the_participant_month() -> None:
    lp, btc, eth = _two_symbols()
    other = split("10")
    fill(other, AUG, realised="5")
    settle(AUG)

    approved = services.settlement_approve(settlement=eth, actor=FIN)

    assert (approved.pk, approved.state) == (eth.pk, "APPROVED")
    assert states(lp, AUG) == {BTC: "APPROVED", ETH: "APPROVED"}
    assert states(other, AUG) == {BTC: "PENDING"}  # another participant's month
    audits = AuditLog.objects.filter(entity_type="settlement", action="approve")
    assert sorted(audits.values_list("entity_id", "actor", "from_state", "to_state")) == sorted(
        [
            (str(btc.pk), FIN.name, "PENDING", "APPROVED"),
            (str(eth.pk), FIN.name, "PENDING", "APPROVED"),
        ]
    )
    assert {the(lp, AUG, s).approved_by for s in (BTC, ETH)} == {FIN.name}


def test_rejecting_one_symbol_rejects_the_participant_month_with_the_reason() -> None:
    lp, btc, _ = _two_symbols()
    services.settlement_reject(settlement=btc, actor=FIN, reason="fees look off")
    assert states(lp, AUG) == {BTC: "REJECTED", ETH: "REJECTED"}
    assert {the(lp, AUG, s).rejection_reason for s in (BTC, ETH)} == {"fees look off"}
    assert AuditLog.objects.filter(action="reject", reason="fees look off").count() == 2


def test_recalculating_recomputes_the_month_and_takes_in_a_new_symbol() -> None:
    lp, btc, eth = _two_symbols()
    month = btc.participant_month
    assert month.platform_share_usdt == D("40")
    fill(lp, AUG, realised="-200", symbol=SOL)  # a late fill, in a symbol new to the month
    with pytest.raises(Conflict, match="inputs changed"):
        services.settlement_approve(settlement=btc, actor=FIN)
    assert states(lp, AUG) == {BTC: "PENDING", ETH: "PENDING"}

    services.settlement_reject(settlement=eth, actor=FIN, reason="late SOL fill")
    services.settlement_recalculate(settlement=btc, actor=FIN, reason="late SOL fill")

    assert states(lp, AUG) == {BTC: "PENDING", ETH: "PENDING", SOL: "PENDING"}
    month.refresh_from_db()
    # 300 + 100 − 200 = 200 of gross: a share of 20, BTC 15 and ETH 5 (3 : 1).
    assert (month.gross_usdt, month.platform_share_usdt) == (D("200"), D("20"))
    assert [(s.symbol, s.platform_share_usdt, s.net_usdt) for s in month.settlements.all()] == [
        (BTC, D("15"), D("285")),
        (ETH, D("5"), D("95")),
        (SOL, D("0"), D("-200")),
    ]
    assert {s.inputs_sha256 for s in month.settlements.all()} == {month.inputs_sha256}
    recalc = AuditLog.objects.get(entity_type="participant_month", action="recalculate")
    assert recalc.changes["platform_share_usdt"] == ["40.00000000", "20.00000000"]
    assert recalc.actor == FIN.name
    created = AuditLog.objects.get(entity_id=str(the(lp, AUG, SOL).pk), action="create")
    assert (created.actor, created.to_state) == (FIN.name, "PENDING")
    approved = services.settlement_approve(settlement=the(lp, AUG, SOL), actor=FIN)
    assert approved.state == "APPROVED"
    assert states(lp, AUG) == {BTC: "APPROVED", ETH: "APPROVED", SOL: "APPROVED"}


def test_a_participant_month_in_mixed_states_is_refused_naming_each_and_nothing_moves() -> None:
    lp, btc, eth = _two_symbols()
    Settlement.objects.filter(pk=btc.pk).update(state="APPROVED")  # as only a legacy month can be

    with pytest.raises(IllegalTransition) as refused:
        services.settlement_approve(settlement=eth, actor=FIN)
    assert "BTCUSDT-PERP is APPROVED" in refused.value.message
    assert "together" in refused.value.message
    assert refused.value.extra["settlement_states"] == {BTC: "APPROVED", ETH: "PENDING"}
    assert refused.value.extra["current_state"] == "PENDING"
    with pytest.raises(IllegalTransition, match="BTCUSDT-PERP is APPROVED"):
        services.settlement_reject(settlement=eth, actor=FIN, reason="no")
    assert states(lp, AUG) == {BTC: "APPROVED", ETH: "PENDING"}
    assert not AuditLog.objects.filter(entity_type="settlement").exclude(action="create").exists()


def test_a_later_month_of_any_symbol_blocks_the_recalculation() -> None:
    lp = split("10")
    fill(lp, JUL, realised="100")
    fill(lp, AUG, realised="100", symbol=ETH)
    settle(JUL)
    settle(AUG)
    jul = services.settlement_reject(settlement=the(lp, JUL), actor=FIN, reason="check")
    with pytest.raises(Conflict, match="2026-08"):
        services.settlement_recalculate(settlement=jul, actor=FIN)
    services.settlement_reject(settlement=the(lp, AUG, ETH), actor=FIN, reason="check")
    assert services.settlement_recalculate(settlement=jul, actor=FIN).state == "PENDING"


def test_a_migrated_month_approved_in_part_can_have_its_open_settlements_rejected() -> None:
    lp, btc, eth = _two_symbols()
    Settlement.objects.filter(pk=btc.pk).update(state="APPROVED")
    ParticipantMonth.objects.filter(pk=btc.participant_month_id).update(
        high_water_mark_scope="SYMBOL", inputs_sha256=""
    )
    with pytest.raises(IllegalTransition, match="BTCUSDT-PERP is APPROVED"):
        services.settlement_approve(settlement=eth, actor=FIN)
    rejected = services.settlement_reject(settlement=eth, actor=FIN, reason="per-symbol figures")
    assert rejected.state == "REJECTED"
    assert states(lp, AUG) == {BTC: "APPROVED", ETH: "REJECTED"}
    # Recalculating would change the approved BTC's part: refused, naming it.
    with pytest.raises(IllegalTransition, match="BTCUSDT-PERP is APPROVED"):
        services.settlement_recalculate(settlement=eth, actor=FIN)
