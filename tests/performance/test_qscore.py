"""The Q-score: spread weight, per-sample depth and liquidity, per-instant shares,
the day's scores (gates, exponents, exact sum, efficiency, SLA) and the
reference rollup from raw samples. Pure: no database, no Redis, no Auth Service."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from performance.qscore import (
    DayScore,
    MemberDay,
    QScoreConfig,
    RestingOrder,
    SampleRow,
    day_scores,
    member_days,
    raw_score,
    sample,
    shares,
    spread_weight,
)

D = Decimal
QUANTUM = D("0.0000000001")
CONFIG = QScoreConfig()  # v = 50 bps, min depth 100 USDT, p = 5, α = 0.5, min uptime 0.5


@pytest.fixture(autouse=True)
def _auth_service() -> None:
    """The score is pure: no API to authenticate."""


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """The score never touches Redis."""


def member(
    pid: str,
    *,
    active: int = 100,
    quoting: int = 100,
    share_sum: str = "10",
    volume: str = "1000",
    trades: int = 1,
    weight: str = "1",
    floor: str = "0",
) -> MemberDay:
    return MemberDay(
        participant_id=pid,
        weight=D(weight),
        active_samples=active,
        quoting_samples=quoting,
        liquidity_share_sum=D(share_sum),
        trade_count=trades,
        maker_volume_usdt=D(volume),
        uptime_floor=D(floor),
    )


def by_id(members: list[MemberDay], config: QScoreConfig = CONFIG) -> dict[str, DayScore]:
    return {s.participant_id: s for s in day_scores(members, config)}


# ------------------------------------------------------------ spread weight


@pytest.mark.parametrize(
    ("distance", "expected"),
    [("0", "1"), ("10", "0.64"), ("25", "0.25"), ("49.5", "0.0001"), ("50", "0"), ("80", "0")],
)
def test_spread_weight_is_full_at_mid_a_quarter_halfway_and_nothing_from_the_band_edge(
    distance: str, expected: str
) -> None:
    assert spread_weight(D(distance), D("50")) == D(expected)


def test_spread_weight_rejects_a_negative_distance() -> None:
    with pytest.raises(ValueError, match="distance_bps"):
        spread_weight(D("-1"), D("50"))


# ------------------------------------------------------------ one sample


def test_sample_on_a_ladder_counts_only_the_band_and_scores_the_weaker_side() -> None:
    orders = [
        RestingOrder("BUY", D("99.9"), D("2")),  # 10 bps: 199.8 USDT × 0.64
        RestingOrder("BUY", D("99.5"), D("3")),  # 50 bps: at the band's edge, out
        RestingOrder("SELL", D("100.1"), D("1")),  # 10 bps: 100.1 USDT × 0.64
        RestingOrder("SELL", D("100.2"), D("1")),  # 20 bps: 100.2 USDT × 0.36
        RestingOrder("SELL", D("100.6"), D("5")),  # 60 bps: past the band, out
    ]
    result = sample(orders, D("100"), CONFIG)

    bid_score = D("199.8") * D("0.64")  # 127.872
    ask_score = D("100.1") * D("0.64") + D("100.2") * D("0.36")  # 64.064 + 36.072 = 100.136
    assert result.bid_depth_usdt == D("199.8")
    assert result.ask_depth_usdt == D("100.1") + D("100.2")
    assert result.spread_bps == D("20")  # (100.1 − 99.9) / 100 × 10⁴, over all own orders
    assert result.quoting is True
    assert result.liquidity == min(bid_score, ask_score) == D("100.136")


def test_spread_uses_own_best_prices_even_outside_the_band() -> None:
    orders = [RestingOrder("BUY", D("99"), D("5")), RestingOrder("SELL", D("101"), D("5"))]
    result = sample(orders, D("100"), CONFIG)
    assert result.spread_bps == D("200")
    assert result.bid_depth_usdt == result.ask_depth_usdt == 0
    assert result.quoting is False
    assert result.liquidity == 0


def test_one_sided_quoting_is_not_quoting_and_earns_nothing() -> None:
    orders = [RestingOrder("BUY", D("99.9"), D("10")), RestingOrder("BUY", D("99.8"), D("10"))]
    result = sample(orders, D("100"), CONFIG)
    assert result.bid_depth_usdt == D("1997")
    assert result.ask_depth_usdt == 0
    assert result.spread_bps is None
    assert result.quoting is False
    assert result.liquidity == 0


def test_a_side_below_the_minimum_depth_is_not_quoting() -> None:
    orders = [RestingOrder("BUY", D("99.9"), D("10")), RestingOrder("SELL", D("100.1"), D("0.5"))]
    result = sample(orders, D("100"), CONFIG)
    assert result.ask_depth_usdt == D("50.05")
    assert result.quoting is False
    assert result.liquidity == 0


def test_orders_at_or_past_the_max_spread_earn_nothing_even_with_no_minimum_depth() -> None:
    config = QScoreConfig(min_depth_usdt=D("0"))
    orders = [RestingOrder("BUY", D("99.5"), D("100")), RestingOrder("SELL", D("100.7"), D("100"))]
    result = sample(orders, D("100"), config)
    assert result.quoting is False
    assert result.liquidity == 0


def test_sample_rejects_a_non_positive_mid() -> None:
    with pytest.raises(ValueError, match="mid"):
        sample([], D("0"), CONFIG)


@pytest.mark.parametrize(
    ("side", "price", "size", "field"),
    [("HOLD", "1", "1", "side"), ("BUY", "0", "1", "price"), ("SELL", "1", "-2", "size")],
)
def test_resting_order_rejects_bad_input_by_name(
    side: str, price: str, size: str, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        RestingOrder(side, D(price), D(size))


# ------------------------------------------------------------ shares


def test_shares_divide_by_the_sum() -> None:
    assert shares({"a": D("1"), "b": D("3"), "c": D("0")}) == {
        "a": D("0.25"),
        "b": D("0.75"),
        "c": D("0"),
    }
    thirds = shares({"a": D("1"), "b": D("1"), "c": D("1")})
    assert abs(sum(thirds.values(), D(0)) - 1) < D("1e-26")


def test_shares_are_all_zero_when_nothing_is_there() -> None:
    assert shares({"a": D("0"), "b": D("0")}) == {"a": D("0"), "b": D("0")}
    assert shares({}) == {}


def test_shares_reject_a_negative_value_by_key() -> None:
    with pytest.raises(ValueError, match="'b'"):
        shares({"a": D("1"), "b": D("-1")})


# ------------------------------------------------------------ the day's scores


def test_splitting_an_account_in_two_gains_nothing() -> None:
    # Raw level: R is homogeneous of degree 1 in (Λ, V) because α + β = 1.
    whole = raw_score(D("0.9"), D("0.6"), D("0.4"), CONFIG)
    half = raw_score(D("0.9"), D("0.3"), D("0.2"), CONFIG)
    assert abs(2 * half - whole) < D("1e-27")
    assert whole > 0

    # Final share: "a" split into "a1" and "a2" with half the share sum and half the volume each.
    together = by_id([member("a", share_sum="10", volume="600"), member("b", share_sum="6")])
    split = by_id(
        [
            member("a1", share_sum="5", volume="300"),
            member("a2", share_sum="5", volume="300"),
            member("b", share_sum="6"),
        ]
    )
    assert abs(split["a1"].q_score + split["a2"].q_score - together["a"].q_score) <= 2 * QUANTUM
    assert abs(split["b"].q_score - together["b"].q_score) <= QUANTUM


def test_99_percent_uptime_beats_90_percent_by_the_fifth_power() -> None:
    ratio = raw_score(D("0.99"), D("0.5"), D("0.5"), CONFIG) / raw_score(
        D("0.9"), D("0.5"), D("0.5"), CONFIG
    )
    assert abs(ratio - D("1.61051")) < D("1e-25")  # (0.99 / 0.9)^5 = 1.1^5

    scores = by_id([member("steady", quoting=99), member("patchy", quoting=90)])
    assert scores["steady"].uptime == D("0.99")
    share = D("1.61051") / D("2.61051")
    assert abs(scores["steady"].q_score - share) <= QUANTUM
    assert scores["steady"].q_score + scores["patchy"].q_score == 1


def test_a_one_sided_member_earns_nothing_and_the_two_sided_one_takes_the_pool() -> None:
    mid = D("100")
    two_sided = [RestingOrder("BUY", D("99.9"), D("5")), RestingOrder("SELL", D("100.1"), D("5"))]
    one_sided = [RestingOrder("BUY", D("99.95"), D("50"))]
    rows = []
    for instant in range(10):
        for pid, orders in (("two", two_sided), ("one", one_sided)):
            s = sample(orders, mid, CONFIG)
            rows.append(SampleRow(instant, pid, s.liquidity, s.quoting, pool_active=True))
    days = member_days(
        rows,
        weights={"one": D("1"), "two": D("1")},
        trades={"one": 5, "two": 5},
        maker_volume={"one": D("5000"), "two": D("500")},
    )
    scores = by_id(days)
    assert scores["one"].uptime == 0
    assert scores["one"].qualified is False
    assert scores["one"].q_score == 0
    assert scores["two"].q_score == 1


def test_a_member_below_min_uptime_gets_nothing_and_the_rest_still_sum_to_one() -> None:
    scores = by_id([member("a"), member("b", quoting=49), member("c", share_sum="3")])
    assert scores["b"].qualified is False
    assert scores["b"].q_score == 0
    assert scores["a"].q_score > scores["c"].q_score > 0
    assert sum(s.q_score for s in scores.values()) == D(1)


def test_min_uptime_is_inclusive_and_min_trades_gates_without_scoring() -> None:
    config = QScoreConfig(min_trades=3)
    scores = by_id(
        [member("edge", quoting=50, trades=3), member("idle", trades=2), member("busy", trades=99)],
        config,
    )
    assert scores["edge"].qualified is True
    assert scores["idle"].qualified is False
    assert scores["idle"].q_score == 0
    assert scores["busy"].qualified is True
    # Trade count is never scored: "busy" and "edge" differ only by uptime (1 vs 0.5).
    assert abs(scores["busy"].q_score / scores["edge"].q_score - 32) < D("1e-6")


def test_all_scores_are_zero_when_nobody_qualifies() -> None:
    scores = day_scores([member("a", quoting=10), member("b", active=0, quoting=0)], CONFIG)
    assert [s.q_score for s in scores] == [0, 0]
    assert [s.efficiency for s in scores] == [0, 0]
    assert scores[1].uptime == 0
    assert scores[1].qualified is False


def test_without_maker_volume_liquidity_takes_the_whole_exponent() -> None:
    scores = by_id([member("a", share_sum="3", volume="0"), member("b", share_sum="1", volume="0")])
    assert scores["a"].q_score == D("0.75")  # U^p × Λ with U = 1: Λ itself
    assert scores["b"].q_score == D("0.25")
    assert scores["a"].volume_share == 0
    # With volume, Λ enters as a square root and V decides the rest.
    with_volume = by_id([member("a", share_sum="3"), member("b", share_sum="1")])
    assert with_volume["a"].q_score == D("0.6339745962")  # √3 / (√3 + 1)


def test_alpha_one_drops_volume_and_alpha_zero_drops_liquidity() -> None:
    members = [member("lp", share_sum="1", volume="0"), member("taker", share_sum="0")]
    only_liquidity = by_id(members, QScoreConfig(liquidity_exponent=D("1")))
    assert only_liquidity["lp"].q_score == 1
    only_volume = by_id(members, QScoreConfig(liquidity_exponent=D("0")))
    assert only_volume["taker"].q_score == 1


def test_largest_remainders_make_the_scores_sum_to_exactly_one() -> None:
    scores = day_scores([member("c"), member("a"), member("b")], CONFIG)
    assert [s.participant_id for s in scores] == ["c", "a", "b"]  # input order kept
    # Equal remainders: the spare quantum goes to the first participant_id.
    assert [s.q_score for s in scores] == [D("0.3333333333"), D("0.3333333334"), D("0.3333333333")]
    assert sum(s.q_score for s in scores) == D(1)


def test_efficiency_compares_score_share_with_weight_share() -> None:
    matched = by_id(
        [
            member("small", share_sum="1", volume="1", weight="1"),
            member("big", share_sum="3", volume="3", weight="3"),
        ]
    )
    assert matched["small"].efficiency == matched["big"].efficiency == D("1")

    lopsided = by_id(
        [member("a", share_sum="3", volume="0"), member("b", share_sum="1", volume="0")]
    )
    assert lopsided["a"].efficiency == D("1.5")
    assert lopsided["b"].efficiency == D("0.5")


def test_sla_flag_uses_the_exact_uptime_and_the_reported_uptime_rounds_down() -> None:
    scores = by_id(
        [
            member("met", active=100, quoting=95, floor="0.95"),
            member("missed", active=1000, quoting=949, floor="0.95"),
            member("thirds", active=3, quoting=2, floor="0.6666667"),
        ]
    )
    assert scores["met"].sla_met is True
    assert scores["missed"].sla_met is False
    assert scores["missed"].uptime == D("0.949")
    assert scores["thirds"].uptime == D("0.666666")
    assert scores["thirds"].sla_met is False


def test_a_member_gone_from_the_pool_is_still_scored_with_no_capital_share() -> None:
    config = QScoreConfig(min_uptime=Decimal("0"))
    stayed = MemberDay("a", Decimal("1"), 10, 10, Decimal("5"), 3, Decimal("100"))
    left = MemberDay("b", Decimal("0"), 10, 10, Decimal("5"), 3, Decimal("100"))
    a, b = day_scores([stayed, left], config)
    assert a.q_score == b.q_score == Decimal("0.5")
    assert (a.efficiency, b.efficiency) == (Decimal("0.5"), Decimal(0))


def test_day_scores_reject_duplicate_members_and_bad_member_days() -> None:
    with pytest.raises(ValueError, match="'a'"):
        day_scores([member("a"), member("a")], CONFIG)
    with pytest.raises(ValueError, match="quoting_samples"):
        member("a", active=3, quoting=4)
    with pytest.raises(ValueError, match="weight"):
        member("a", weight="-1")
    assert day_scores([], CONFIG) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_spread_bps", D("0")),
        ("min_depth_usdt", D("-1")),
        ("uptime_exponent", D("0.5")),
        ("liquidity_exponent", D("1.5")),
        ("liquidity_exponent", D("-0.1")),
        ("min_uptime", D("1.01")),
        ("min_trades", -1),
    ],
)
def test_config_validation_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        QScoreConfig(**{field: value})


def test_raw_score_rejects_shares_out_of_range() -> None:
    with pytest.raises(ValueError, match="volume_share"):
        raw_score(D("1"), D("0.5"), D("1.5"), CONFIG)


# ------------------------------------------------------------ the reference rollup


def test_member_days_normalise_each_instant_and_skip_inactive_pools() -> None:
    rows = [
        SampleRow(1, "a", D("300"), quoting=True, pool_active=True),
        SampleRow(1, "b", D("100"), quoting=True, pool_active=True),
        SampleRow(2, "a", D("5"), quoting=True, pool_active=True),  # quiet hour, alone: share 1
        SampleRow(2, "b", D("0"), quoting=False, pool_active=True),
        SampleRow(3, "a", D("999"), quoting=True, pool_active=False),  # pool paused: ignored
    ]
    days = member_days(
        rows,
        weights={"b": D("2"), "a": D("1"), "c": D("1")},
        trades={"a": 4},
        maker_volume={"b": D("250")},
        uptime_floors={"a": D("0.9")},
    )
    assert [d.participant_id for d in days] == ["a", "b", "c"]
    a, b, c = days
    assert (a.active_samples, a.quoting_samples, a.liquidity_share_sum) == (2, 2, D("1.75"))
    assert (b.active_samples, b.quoting_samples, b.liquidity_share_sum) == (2, 1, D("0.25"))
    assert (c.active_samples, c.quoting_samples, c.liquidity_share_sum) == (0, 0, D("0"))
    assert (a.trade_count, a.maker_volume_usdt, a.uptime_floor) == (4, D("0"), D("0.9"))
    assert (b.weight, b.maker_volume_usdt, b.uptime_floor) == (D("2"), D("250"), D("0"))


def test_member_days_reject_samples_of_unweighted_members_and_duplicates() -> None:
    with pytest.raises(ValueError, match="'z'"):
        member_days(
            [SampleRow(1, "z", D("1"), quoting=True, pool_active=True)],
            weights={"a": D("1")},
            trades={},
            maker_volume={},
        )
    with pytest.raises(ValueError, match="one row per instant"):
        member_days(
            [SampleRow(1, "a", D("1"), True, True), SampleRow(1, "a", D("2"), True, True)],
            weights={"a": D("1")},
            trades={},
            maker_volume={},
        )


# ------------------------------------------------------------ properties


@st.composite
def member_sets(draw: st.DrawFn) -> tuple[list[MemberDay], QScoreConfig]:
    count = draw(st.integers(min_value=1, max_value=6))
    no_volume = draw(st.booleans())
    money = st.decimals(min_value=0, max_value=1000, places=2)
    members = []
    for i in range(count):
        active = draw(st.integers(min_value=0, max_value=50))
        members.append(
            MemberDay(
                participant_id=f"m{i}",
                weight=draw(st.decimals(min_value=D("0.01"), max_value=10, places=2)),
                active_samples=active,
                quoting_samples=draw(st.integers(min_value=0, max_value=active)),
                liquidity_share_sum=draw(st.sampled_from([D(0), D(1)]) | money),
                trade_count=draw(st.integers(min_value=0, max_value=5)),
                maker_volume_usdt=D(0) if no_volume else draw(money),
            )
        )
    config = QScoreConfig(
        uptime_exponent=draw(st.sampled_from([D(1), D(2), D(5), D("7.5")])),
        liquidity_exponent=draw(st.decimals(min_value=0, max_value=1, places=2)),
        min_uptime=draw(st.decimals(min_value=0, max_value=1, places=2)),
        min_trades=draw(st.integers(min_value=0, max_value=3)),
    )
    return members, config


@settings(max_examples=150, deadline=None, derandomize=True)
@given(member_sets())
def test_scores_are_shares_that_sum_to_exactly_one_or_are_all_zero(
    case: tuple[list[MemberDay], QScoreConfig],
) -> None:
    members, config = case
    scores = day_scores(members, config)
    total = sum(s.q_score for s in scores)
    assert total in (D(0), D(1))
    no_volume = all(m.maker_volume_usdt == 0 for m in members)
    for m, s in zip(members, scores, strict=True):
        assert 0 <= s.q_score <= 1
        if not s.qualified:
            assert s.q_score == 0
        if no_volume and m.liquidity_share_sum == 0:
            assert s.q_score == 0


@settings(max_examples=150, deadline=None, derandomize=True)
@given(member_sets(), st.data())
def test_raising_a_qualified_members_uptime_never_lowers_its_raw_score(
    case: tuple[list[MemberDay], QScoreConfig], data: st.DataObject
) -> None:
    members, config = case
    scores = day_scores(members, config)
    qualified = [i for i, s in enumerate(scores) if s.qualified]
    if not qualified:
        return
    i = data.draw(st.sampled_from(qualified))
    m, s = members[i], scores[i]
    more = data.draw(st.integers(min_value=0, max_value=m.active_samples - m.quoting_samples))
    volume = None if all(x.maker_volume_usdt == 0 for x in members) else s.volume_share
    before = raw_score(D(m.quoting_samples) / m.active_samples, s.liquidity_share, volume, config)
    after = raw_score(
        D(m.quoting_samples + more) / m.active_samples, s.liquidity_share, volume, config
    )
    assert after >= before

    raised = list(members)
    raised[i] = MemberDay(**{**m.__dict__, "quoting_samples": m.quoting_samples + more})
    assert day_scores(raised, config)[i].q_score >= s.q_score - QUANTUM
