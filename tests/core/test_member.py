"""A member's live state: average-cost position and PnL, fees and rebates, funding,
volume, and the open orders with their resting size per side."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoting_worker.core.member import (
    BASIS_QUANTUM,
    MemberRuntime,
    OrderState,
    quantize_usdt,
)
from quoting_worker.core.types import Fill, Instrument, Side

# One base unit a lot and cent ticks: 100.00 is 10000 ticks.
UNIT = Instrument(symbol="ETHUSDT", tick_size=Decimal("0.01"), lot_size=Decimal(1))
BTC = Instrument(symbol="BTCUSDT-PERP", tick_size=Decimal("0.1"), lot_size=Decimal("0.001"))

_fill_ids = iter(range(10**9))


def fill(
    side: Side,
    lots: int,
    price: str,
    *,
    fee: str = "0",
    order: str = "mm-x",
    instrument: Instrument = UNIT,
) -> Fill:
    return Fill(
        fill_id=f"f{next(_fill_ids)}",
        client_order_id=order,
        side=side,
        price_ticks=instrument.ticks(Decimal(price)),
        size_lots=lots,
        fee=Decimal(fee),
        ts_ns=0,
    )


def member(instrument: Instrument = UNIT) -> MemberRuntime:
    return MemberRuntime("p-1", instrument)


# ------------------------------------------------------------ worked examples


def test_adding_to_a_long_averages_the_entry_price() -> None:
    m = member()
    m.apply_fill(fill(Side.BUY, 2, "100"))
    m.apply_fill(fill(Side.BUY, 2, "110"))
    assert m.position_lots == 4
    assert m.avg_entry_price == Decimal(105)
    assert m.cost_basis_usdt == Decimal(420)
    assert m.realised_pnl_usdt == 0


def test_reducing_a_long_realises_exit_minus_average() -> None:
    m = member()
    m.apply_fill(fill(Side.BUY, 2, "100"))
    m.apply_fill(fill(Side.BUY, 2, "110"))
    m.apply_fill(fill(Side.SELL, 3, "120"))
    assert m.position_lots == 1
    assert m.realised_pnl_usdt == Decimal(45)  # (120 − 105) · 3
    assert m.avg_entry_price == Decimal(105)  # reducing leaves the average alone


def test_selling_through_zero_realises_the_closed_part_and_opens_a_short_at_the_fill() -> None:
    m = member()
    m.apply_fill(fill(Side.BUY, 2, "100"))
    m.apply_fill(fill(Side.BUY, 2, "110"))
    m.apply_fill(fill(Side.SELL, 3, "120"))
    m.apply_fill(fill(Side.SELL, 3, "100"))
    assert m.position_lots == -2
    assert m.realised_pnl_usdt == Decimal(40)  # 45 + (100 − 105) · 1
    assert m.avg_entry_price == Decimal(100)
    assert m.cost_basis_usdt == Decimal(-200)
    # A short gains when the price falls.
    assert m.unrealised_pnl(Decimal(90)) == Decimal(20)
    assert m.unrealised_pnl(Decimal(101)) == Decimal(-2)


def test_buying_back_a_short_realises_average_minus_exit() -> None:
    m = member()
    m.apply_fill(fill(Side.SELL, 1, "200"))
    m.apply_fill(fill(Side.SELL, 3, "204"))
    assert m.avg_entry_price == Decimal(203)
    m.apply_fill(fill(Side.BUY, 2, "201"))
    assert m.realised_pnl_usdt == Decimal(4)  # (203 − 201) · 2
    m.apply_fill(fill(Side.BUY, 5, "205"))
    assert m.realised_pnl_usdt == Decimal(0)  # 4 + (203 − 205) · 2
    assert m.position_lots == 3
    assert m.avg_entry_price == Decimal(205)


def test_a_third_of_a_position_realises_its_share_of_an_uneven_basis() -> None:
    # avg 302/3 = 100.666…: the reduced share is rounded once, to 1e-30, and the
    # rounding never shows in the total once flat.
    m = member()
    m.apply_fill(fill(Side.BUY, 1, "100"))
    m.apply_fill(fill(Side.BUY, 2, "101"))
    m.apply_fill(fill(Side.SELL, 1, "102"))
    expected = Fraction(102) - Fraction(302, 3)
    assert abs(Fraction(m.realised_pnl_usdt) - expected) <= Fraction(BASIS_QUANTUM)
    m.apply_fill(fill(Side.SELL, 2, "99"))
    assert m.position_lots == 0
    assert m.cost_basis_usdt == 0
    assert m.realised_pnl_usdt == Decimal(102 + 2 * 99 - 302)  # exact once flat


def test_lot_size_scales_sizes_into_base_units() -> None:
    m = member(BTC)
    m.apply_fill(fill(Side.BUY, 5, "30000.0", instrument=BTC))  # 0.005 BTC
    assert m.cost_basis_usdt == Decimal("150.0000")
    assert m.notional_usdt(Decimal(31000)) == Decimal(155)
    assert m.unrealised_pnl(Decimal(31000)) == Decimal(5)
    assert m.volume_usdt == Decimal(150)


def test_fees_count_against_pnl_and_rebates_for_it() -> None:
    m = member()
    m.apply_fill(fill(Side.BUY, 2, "100", fee="0.04"))
    m.apply_fill(fill(Side.SELL, 2, "101", fee="-0.0202"))  # maker rebate
    assert m.fees_usdt == Decimal("0.0198")
    assert m.realised_pnl_usdt == Decimal(2)
    assert m.total_pnl(Decimal(500)) == Decimal("1.9802")


def test_funding_received_adds_and_paid_subtracts() -> None:
    m = member()
    m.apply_fill(fill(Side.BUY, 1, "100"))
    m.apply_funding(Decimal("0.75"))
    m.apply_funding(Decimal("-0.25"))
    assert m.funding_usdt == Decimal("0.50")
    assert m.total_pnl(Decimal(103)) == Decimal("3.50")


def test_volume_counts_both_sides_and_every_fill() -> None:
    m = member()
    m.apply_fill(fill(Side.BUY, 2, "100"))
    m.apply_fill(fill(Side.SELL, 1, "110"))
    assert m.volume_usdt == Decimal(310)
    assert m.trade_count == 2


def test_notional_is_the_absolute_exposure_and_the_signed_one_nets() -> None:
    m = member()
    m.apply_fill(fill(Side.SELL, 3, "100"))
    assert m.notional_usdt(Decimal(100)) == Decimal(300)
    assert m.signed_notional_usdt(Decimal(100)) == Decimal(-300)


def test_a_flat_member_has_no_average_and_no_unrealised_pnl() -> None:
    m = member()
    assert m.avg_entry_price == 0
    assert m.unrealised_pnl(Decimal(123)) == 0
    assert m.total_pnl(Decimal(123)) == 0


def test_a_refreshed_tick_size_reads_the_fill_but_a_new_lot_size_is_refused() -> None:
    m = member()
    coarser = Instrument(symbol="ETHUSDT", tick_size=Decimal("0.1"), lot_size=Decimal(1))
    m.apply_fill(fill(Side.BUY, 1, "100", instrument=coarser), coarser)
    assert m.cost_basis_usdt == Decimal(100)
    other_lots = Instrument(symbol="ETHUSDT", tick_size=Decimal("0.01"), lot_size=Decimal("0.1"))
    with pytest.raises(ValueError, match="lot size"):
        m.apply_fill(fill(Side.BUY, 1, "100"), other_lots)
    assert m.position_lots == 1


def test_an_empty_fill_is_refused() -> None:
    with pytest.raises(ValueError, match="> 0 lots"):
        member().apply_fill(fill(Side.BUY, 0, "100"))


def test_output_is_quantised_to_eight_places_half_even() -> None:
    assert quantize_usdt(Decimal("1.000000005")) == Decimal("1.00000000")
    assert quantize_usdt(Decimal("1.000000015")) == Decimal("1.00000002")
    assert quantize_usdt(Decimal(-3)) == Decimal("-3.00000000")


# ------------------------------------------------------------ open orders


def test_orders_rest_on_their_side_until_filled_or_removed() -> None:
    m = member()
    m.add_order(client_order_id="b0", side=Side.BUY, price_ticks=9_900, size_lots=5, level=0)
    m.add_order(client_order_id="b1", side=Side.BUY, price_ticks=9_800, size_lots=3, level=1)
    m.add_order(client_order_id="s0", side=Side.SELL, price_ticks=10_100, size_lots=4, level=0)
    assert m.resting_lots(Side.BUY) == 8
    assert m.resting_lots(Side.SELL) == 4

    m.apply_fill(fill(Side.BUY, 2, "99", order="b0"))
    assert m.open_orders["b0"].remaining_lots == 3
    assert m.resting_lots(Side.BUY) == 6

    m.apply_fill(fill(Side.BUY, 3, "99", order="b0"))
    assert "b0" not in m.open_orders
    assert m.resting_lots(Side.BUY) == 3

    removed = m.remove_order("s0")
    assert removed is not None
    assert removed.remaining_lots == 4
    assert m.resting_lots(Side.SELL) == 0
    assert m.remove_order("s0") is None
    assert m.position_lots == 5


def test_order_state_moves_from_new_to_open_or_unknown() -> None:
    m = member()
    order = m.add_order(client_order_id="a", side=Side.SELL, price_ticks=1, size_lots=1, level=2)
    assert order.state is OrderState.NEW
    states = []
    for state in (OrderState.OPEN, OrderState.UNKNOWN):
        assert m.set_order_state("a", state) is not None
        states.append(m.open_orders["a"].state)
    assert states == [OrderState.OPEN, OrderState.UNKNOWN]
    assert m.resting_lots(Side.SELL) == 1  # an unknown order may be on the book
    assert m.set_order_state("nope", OrderState.OPEN) is None


def test_a_fill_bigger_than_the_order_removes_it_and_moves_the_whole_position() -> None:
    m = member()
    m.add_order(client_order_id="a", side=Side.SELL, price_ticks=10_000, size_lots=2, level=0)
    m.apply_fill(fill(Side.SELL, 3, "100", order="a"))
    assert m.open_orders == {}
    assert m.resting_lots(Side.SELL) == 0
    assert m.position_lots == -3


def test_a_fill_for_an_untracked_order_still_moves_the_position() -> None:
    m = member()
    m.add_order(client_order_id="a", side=Side.BUY, price_ticks=10_000, size_lots=2, level=0)
    m.apply_fill(fill(Side.BUY, 1, "100", order="cancelled-earlier"))
    assert m.position_lots == 1
    assert m.resting_lots(Side.BUY) == 2


def test_an_order_is_tracked_once_and_must_have_a_size() -> None:
    m = member()
    m.add_order(client_order_id="a", side=Side.BUY, price_ticks=1, size_lots=1, level=0)
    with pytest.raises(ValueError, match="already tracked"):
        m.add_order(client_order_id="a", side=Side.BUY, price_ticks=1, size_lots=1, level=0)
    with pytest.raises(ValueError, match="> 0 lots"):
        m.add_order(client_order_id="b", side=Side.BUY, price_ticks=1, size_lots=0, level=0)


def test_open_orders_cannot_be_changed_from_outside() -> None:
    m = member()
    m.add_order(client_order_id="a", side=Side.BUY, price_ticks=1, size_lots=1, level=0)
    with pytest.raises(TypeError):
        m.open_orders["b"] = m.open_orders["a"]  # type: ignore[index]


# ------------------------------------------------------------ properties

fills = st.lists(
    st.tuples(
        st.sampled_from(Side),
        st.integers(min_value=1, max_value=5_000),  # lots of 0.001
        st.integers(min_value=1, max_value=2_000_000),  # ticks of 0.1 (≤ 200000.0)
        st.decimals(min_value=-5, max_value=5, places=8),  # fee, rebate if negative
        st.one_of(st.none(), st.decimals(min_value=-50, max_value=50, places=8)),  # funding
    ),
    max_size=40,
)


@given(fills, st.decimals(min_value=Decimal("0.1"), max_value=300_000, places=1))
def test_total_pnl_equals_the_cash_flows_exactly(
    events: list[tuple[Side, int, int, Decimal, Decimal | None]], mark: Decimal
) -> None:
    m = member(BTC)
    position = 0
    cash = Decimal(0)
    fees = Decimal(0)
    funding = Decimal(0)
    for side, lots, ticks, fee, payment in events:
        m.apply_fill(
            Fill(
                fill_id="f",
                client_order_id="o",
                side=side,
                price_ticks=ticks,
                size_lots=lots,
                fee=fee,
                ts_ns=0,
            ),
            BTC,
        )
        notional = BTC.notional(ticks, lots)
        if side is Side.BUY:
            position += lots
            cash -= notional
        else:
            position -= lots
            cash += notional
        fees += fee
        if payment is not None:
            m.apply_funding(payment)
            funding += payment

    assert m.position_lots == position
    assert m.fees_usdt == fees
    assert m.funding_usdt == funding
    assert m.trade_count == len(events)
    assert m.total_pnl(mark) == cash + BTC.size(position) * mark - fees + funding
    assert m.realised_pnl_usdt + m.unrealised_pnl(mark) == cash + BTC.size(position) * mark
    if position == 0:
        assert m.realised_pnl_usdt == cash


@given(fills)
def test_realised_pnl_matches_exact_average_cost_to_within_the_basis_rounding(
    events: list[tuple[Side, int, int, Decimal, Decimal | None]],
) -> None:
    m = member(BTC)
    # Reference model in exact fractions (base units and USDT).
    position = Fraction(0)
    average = Fraction(0)
    realised = Fraction(0)
    for step, (side, lots, ticks, _fee, _funding) in enumerate(events):
        m.apply_fill(
            Fill(
                fill_id=str(step),
                client_order_id="o",
                side=side,
                price_ticks=ticks,
                size_lots=lots,
                fee=Decimal(0),
                ts_ns=0,
            )
        )
        price = Fraction(BTC.price(ticks))
        signed = Fraction(BTC.size(lots)) * (1 if side is Side.BUY else -1)
        if position == 0 or (position > 0) == (signed > 0):
            average = (average * abs(position) + price * abs(signed)) / abs(position + signed)
        else:
            closed = min(abs(signed), abs(position))
            direction = 1 if position > 0 else -1
            realised += (price - average) * closed * direction
            if abs(signed) > abs(position):
                average = price
        position += signed
        if position == 0:
            average = Fraction(0)
        # Each reduction rounds once, by at most half a quantum.
        assert abs(Fraction(m.realised_pnl_usdt) - realised) <= (step + 1) * Fraction(BASIS_QUANTUM)
        if position:
            assert abs(Fraction(m.avg_entry_price) - average) < Fraction(1, 10**20)
