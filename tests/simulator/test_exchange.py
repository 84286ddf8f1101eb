"""The TradeX matching engine and ledger: price-time priority, validation, idempotency,
cancels, self-trade prevention, fees, funding, halts, the events in the order they
happen, and (hypothesis) the book's and the ledger's invariants over random sequences."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.exchange import Exchange, Fees, Order, PlaceOutcome
from simulator.model import (
    INSTRUMENTS,
    ExchangeEvent,
    Filled,
    FundingPaid,
    InstrumentRules,
    LevelChanged,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Side,
    StatusChanged,
    Traded,
)

BTC = "BTCUSDT-PERP"
ETH = "ETHUSDT-PERP"
# Whole-number grid with a minimum size above one lot, so every reject code can be reached.
TEST = InstrumentRules("TESTUSDT-PERP", Decimal("0.5"), Decimal(1), Decimal(5), Decimal(10))
D = Decimal


class Venue:
    """An exchange with BTC, ETH and TEST that records every event it emits."""

    def __init__(self, fees: Fees | None = None) -> None:
        self.events: list[ExchangeEvent] = []
        self.exchange = Exchange(
            (*INSTRUMENTS, TEST), fees=fees or Fees(), on_event=self.events.append
        )
        self.seq = 0

    def place(
        self,
        account: str,
        side: Side,
        price: str,
        size: str,
        *,
        coid: str | None = None,
        symbol: str = BTC,
        post_only: bool = True,
    ) -> PlaceOutcome:
        self.seq += 1
        return self.exchange.place(
            account_id=account,
            client_order_id=coid or f"{account}-{self.seq}",
            symbol=symbol,
            side=side,
            price=D(price),
            size=D(size),
            ts_ns=self.seq,
            user_id=f"user-{account}",
            post_only=post_only,
        )

    def resting(self, account: str, side: Side, price: str, size: str, **kw: Any) -> Order:
        outcome = self.place(account, side, price, size, **kw)
        assert outcome.code == "", outcome.reason
        assert outcome.order is not None
        return outcome.order

    def take(
        self, account: str, side: Side, size: str, limit: str | None = None, symbol: str = BTC
    ) -> list[Filled]:
        self.seq += 1
        return self.exchange.take(
            account_id=account,
            symbol=symbol,
            side=side,
            size=D(size),
            limit_price=None if limit is None else D(limit),
            ts_ns=self.seq,
        )

    def drain(self) -> list[ExchangeEvent]:
        events, self.events[:] = list(self.events), []
        return events


@pytest.fixture
def venue() -> Venue:
    return Venue()


# ---------------------------------------------------------------- priority and fills


def test_orders_at_one_price_fill_in_arrival_order(venue: Venue) -> None:
    first = venue.resting("a", "SELL", "30000.0", "0.002")
    second = venue.resting("b", "SELL", "30000.0", "0.002")

    fills = venue.take("t", "BUY", "0.003")

    assert [(f.price, f.size) for f in fills] == [
        (D("30000.0"), D("0.002")),
        (D("30000.0"), D("0.001")),
    ]
    assert (first.status, first.filled_size) == ("FILLED", D("0.002"))
    assert (second.status, second.filled_size) == ("PARTIALLY_FILLED", D("0.001"))
    maker_fills = [e for e in venue.events if isinstance(e, Filled) and e.liquidity == "MAKER"]
    assert [f.order_id for f in maker_fills] == [first.order_id, second.order_id]


def test_the_better_price_fills_first_whatever_the_arrival(venue: Venue) -> None:
    worse = venue.resting("a", "BUY", "29999.0", "0.001")
    better = venue.resting("b", "BUY", "29999.5", "0.001")

    fills = venue.take("t", "SELL", "0.001")

    assert [f.price for f in fills] == [D("29999.5")]
    assert better.status == "FILLED"
    assert worse.status == "OPEN"
    assert venue.exchange.best_bid(BTC) == D("29999.0")


def test_a_partial_fill_leaves_the_rest_resting_until_filled(venue: Venue) -> None:
    order = venue.resting("a", "SELL", "30000.0", "0.005")

    venue.take("t", "BUY", "0.002")
    assert (order.status, order.filled_size, order.remaining) == (
        "PARTIALLY_FILLED",
        D("0.002"),
        D("0.003"),
    )
    assert order.live
    assert venue.exchange.depth(BTC, "SELL") == [(D("30000.0"), D("0.003"))]

    venue.take("t", "BUY", "0.003")
    assert (order.status, order.remaining, order.live) == ("FILLED", D(0), False)
    assert venue.exchange.depth(BTC, "SELL") == []
    assert venue.exchange.open_orders("a") == []
    assert venue.exchange.live_count() == 0


def test_take_stops_at_its_limit_price_and_never_rests(venue: Venue) -> None:
    venue.resting("a", "SELL", "30000.0", "0.001")
    venue.resting("a", "SELL", "30001.0", "0.001")

    fills = venue.take("t", "BUY", "0.005", limit="30000.5")

    assert [(f.price, f.size) for f in fills] == [(D("30000.0"), D("0.001"))]
    assert venue.exchange.best_bid(BTC) is None  # the rest was not left on the book
    assert venue.exchange.best_ask(BTC) == D("30001.0")
    taker = venue.exchange.order("t", fills[0].client_order_id)
    assert taker is not None
    assert (taker.status, taker.reason, taker.filled_size) == ("CANCELLED", "IOC", D("0.001"))
    assert fills[0].client_order_id.startswith("take-")


def test_take_without_a_limit_sweeps_every_level(venue: Venue) -> None:
    venue.resting("a", "BUY", "30000.0", "0.001")
    venue.resting("a", "BUY", "29000.0", "0.001")

    fills = venue.take("t", "SELL", "0.002")

    assert [f.price for f in fills] == [D("30000.0"), D("29000.0")]
    assert all(f.liquidity == "TAKER" and f.side == "SELL" for f in fills)


def test_take_refuses_a_size_off_the_lot_grid_and_an_unknown_symbol(venue: Venue) -> None:
    with pytest.raises(ValueError, match=r"multiple of 0\.001"):
        venue.take("t", "BUY", "0.0005")
    with pytest.raises(KeyError):
        venue.take("t", "BUY", "1", symbol="NOPE")


def test_a_take_never_reuses_a_client_order_id_of_its_account(venue: Venue) -> None:
    mine = venue.resting("t", "BUY", "29000.0", "0.001", coid="take-1")
    venue.resting("a", "SELL", "30000.0", "0.001")

    fills = venue.take("t", "BUY", "0.001")

    assert fills[0].client_order_id == "take-2"
    assert venue.exchange.order("t", "take-1") is mine
    assert mine.live


def test_a_taking_limit_order_matches_then_rests_its_remainder(venue: Venue) -> None:
    venue.resting("a", "SELL", "30000.0", "0.001")
    venue.resting("a", "SELL", "30001.0", "0.001")  # beyond its price: not taken
    venue.drain()

    order = venue.resting("b", "BUY", "30000.5", "0.003", coid="cross", post_only=False)

    assert (order.status, order.filled_size) == ("PARTIALLY_FILLED", D("0.001"))
    assert venue.exchange.best_bid(BTC) == D("30000.5")
    assert venue.exchange.best_ask(BTC) == D("30001.0")
    assert [type(e) for e in venue.events] == [
        OrderAccepted,
        Filled,
        Filled,
        Traded,
        LevelChanged,
        LevelChanged,
    ]
    assert venue.events[-1] == LevelChanged(BTC, "BUY", D("30000.5"), D("0.002"), venue.seq)


def test_ids_are_increasing_and_fill_ids_name_the_trade(venue: Venue) -> None:
    first = venue.resting("a", "SELL", "30000.0", "0.001")
    second = venue.resting("a", "SELL", "30000.0", "0.001")
    fills = venue.take("t", "BUY", "0.002")

    assert (first.order_id, second.order_id) == ("sim-0000000001", "sim-0000000002")
    fill_ids = [e.fill_id for e in venue.events if isinstance(e, Filled)]
    assert fill_ids == ["T1-M", "T1-T", "T2-M", "T2-T"]
    assert [e.trade_id for e in venue.events if isinstance(e, Traded)] == ["T1", "T2"]
    assert fills[0].order_id == "sim-0000000003"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("side", "price", "code", "reason"),
    [
        ("BUY", "30001.0", "POST_ONLY_WOULD_CROSS", "a bid at 30001.0 would take the ask 30001.0"),
        ("BUY", "30002.0", "POST_ONLY_WOULD_CROSS", "a bid at 30002.0 would take the ask 30001.0"),
        (
            "SELL",
            "30000.0",
            "POST_ONLY_WOULD_CROSS",
            "an ask at 30000.0 would take the bid 30000.0",
        ),
        (
            "SELL",
            "29000.0",
            "POST_ONLY_WOULD_CROSS",
            "an ask at 29000.0 would take the bid 30000.0",
        ),
    ],
    ids=["bid-touches", "bid-crosses", "ask-touches", "ask-crosses"],
)
def test_a_post_only_order_that_would_touch_or_cross_is_rejected(
    venue: Venue, side: Side, price: str, code: str, reason: str
) -> None:
    venue.resting("a", "BUY", "30000.0", "0.001")
    venue.resting("a", "SELL", "30001.0", "0.001")

    outcome = venue.place("b", side, price, "0.001")

    assert (outcome.code, outcome.reason) == (code, reason)
    assert venue.exchange.depth(BTC, "BUY") == [(D("30000.0"), D("0.001"))]
    assert venue.exchange.depth(BTC, "SELL") == [(D("30001.0"), D("0.001"))]
    assert all(not isinstance(e, Filled) for e in venue.events)


@pytest.mark.parametrize(
    ("symbol", "price", "size", "code", "reason"),
    [
        ("NOPEUSDT", "100", "10", "UNKNOWN_SYMBOL", "no instrument NOPEUSDT"),
        (
            "TESTUSDT-PERP",
            "100.2",
            "10",
            "INVALID_TICK",
            "price must be a positive multiple of 0.5",
        ),
        ("TESTUSDT-PERP", "0", "10", "INVALID_TICK", "price must be a positive multiple of 0.5"),
        ("TESTUSDT-PERP", "-1", "10", "INVALID_TICK", "price must be a positive multiple of 0.5"),
        ("TESTUSDT-PERP", "NaN", "10", "INVALID_TICK", "price must be a positive multiple of 0.5"),
        (
            "TESTUSDT-PERP",
            "1E+40",
            "10",
            "INVALID_TICK",
            "price must be a positive multiple of 0.5",
        ),
        ("TESTUSDT-PERP", "100", "10.5", "INVALID_LOT", "size must be a positive multiple of 1"),
        ("TESTUSDT-PERP", "100", "0", "INVALID_LOT", "size must be a positive multiple of 1"),
        ("TESTUSDT-PERP", "100", "4", "BELOW_MIN_SIZE", "size must be at least 5"),
        ("TESTUSDT-PERP", "1.5", "6", "BELOW_MIN_NOTIONAL", "price × size must be at least 10"),
    ],
)
def test_each_invalid_order_is_rejected_with_its_code_and_reason(
    venue: Venue, symbol: str, price: str, size: str, code: str, reason: str
) -> None:
    outcome = venue.place("a", "BUY", price, size, coid="bad", symbol=symbol)

    assert (outcome.code, outcome.reason, outcome.replayed) == (code, reason, False)
    assert outcome.order is not None
    assert (outcome.order.status, outcome.order.reason) == ("REJECTED", code)
    assert not outcome.order.live
    assert venue.exchange.order("a", "bad") is outcome.order  # recorded for queries
    assert venue.events == [OrderRejected("bad", "a", symbol, code, venue.seq)]
    assert venue.exchange.live_count() == 0


def test_an_order_on_the_grid_at_the_minimums_is_accepted(venue: Venue) -> None:
    outcome = venue.place("a", "BUY", "2", "5", coid="ok", symbol=TEST.symbol)

    assert (outcome.code, outcome.reason) == ("", "")
    assert outcome.order is not None
    assert outcome.order.status == "OPEN"
    assert venue.events == [
        OrderAccepted("ok", outcome.order.order_id, "a", TEST.symbol, venue.seq),
        LevelChanged(TEST.symbol, "BUY", D(2), D(5), venue.seq),
    ]


def test_a_halted_instrument_rejects_orders(venue: Venue) -> None:
    venue.exchange.set_halted(BTC, True, ts_ns=1)

    outcome = venue.place("a", "BUY", "30000.0", "0.001")

    assert (outcome.code, outcome.reason) == ("INSTRUMENT_HALTED", f"{BTC} is halted")


# ---------------------------------------------------------------- idempotency


def test_the_same_order_again_returns_the_original_and_does_nothing(venue: Venue) -> None:
    first = venue.place("a", "BUY", "30000.0", "0.001", coid="q1")
    venue.drain()

    again = venue.place("a", "BUY", "30000.0", "0.0010", coid="q1")

    assert again == PlaceOutcome(first.order, "", "", replayed=True)
    assert venue.events == []
    assert venue.exchange.depth(BTC, "BUY") == [(D("30000.0"), D("0.001"))]
    assert venue.exchange.live_count() == 1
    # The same client_order_id in another account is another order.
    other = venue.place("b", "BUY", "30000.0", "0.001", coid="q1")
    assert other.order is not first.order
    assert not other.replayed
    assert venue.exchange.depth(BTC, "BUY") == [(D("30000.0"), D("0.002"))]


def test_a_replayed_reject_repeats_the_reject_without_a_new_event(venue: Venue) -> None:
    first = venue.place("a", "BUY", "30000.05", "0.001", coid="q1")
    venue.drain()

    again = venue.place("a", "BUY", "30000.05", "0.001", coid="q1")

    assert again == PlaceOutcome(first.order, "INVALID_TICK", first.reason, replayed=True)
    assert venue.events == []


def test_a_used_client_order_id_for_a_different_order_is_refused(venue: Venue) -> None:
    first = venue.place("a", "BUY", "30000.0", "0.001", coid="q1")
    venue.drain()

    for changed in (
        {"price": "29999.0"},
        {"size": "0.002"},
        {"side": "SELL", "price": "31000.0"},
        {"post_only": False},
    ):
        args: dict[str, Any] = {"side": "BUY", "price": "30000.0", "size": "0.001", **changed}
        outcome = venue.place("a", coid="q1", **args)
        assert outcome.code == "DUPLICATE_CLIENT_ORDER_ID"
        assert outcome.order is first.order
        assert not outcome.replayed

    assert venue.events == []
    assert venue.exchange.live_count() == 1
    assert venue.exchange.duplicate_live_orders() == 0


def test_a_finished_orders_client_order_id_cannot_place_a_new_order(venue: Venue) -> None:
    order = venue.resting("a", "BUY", "30000.0", "0.001", coid="q1")
    venue.exchange.cancel(account_id="a", client_order_id="q1", ts_ns=99)

    again = venue.place("a", "BUY", "30000.0", "0.001", coid="q1")

    assert again == PlaceOutcome(order, "", "", replayed=True)
    assert order.status == "CANCELLED"
    assert venue.exchange.live_count() == 0


# ---------------------------------------------------------------- cancels


def test_cancel_takes_the_order_off_the_book(venue: Venue) -> None:
    venue.resting("a", "BUY", "30000.0", "0.001", coid="q1")
    keep = venue.resting("a", "BUY", "30000.0", "0.002", coid="q2")
    venue.drain()

    cancelled = venue.exchange.cancel(account_id="a", client_order_id="q1", ts_ns=50)

    assert cancelled is not None
    assert (cancelled.status, cancelled.reason, cancelled.live) == ("CANCELLED", "USER", False)
    assert venue.events == [
        OrderCancelled("q1", cancelled.order_id, "a", BTC, "USER", 50),
        LevelChanged(BTC, "BUY", D("30000.0"), D("0.002"), 50),
    ]
    assert venue.exchange.open_orders("a") == [keep]
    # The level's queue still works without the cancelled order.
    assert [f.size for f in venue.take("t", "SELL", "0.005")] == [D("0.002")]


def test_cancel_of_the_last_order_removes_the_level(venue: Venue) -> None:
    venue.resting("a", "SELL", "30000.0", "0.001", coid="q1")
    venue.drain()

    venue.exchange.cancel(account_id="a", client_order_id="q1", ts_ns=50, symbol=BTC)

    assert venue.events[-1] == LevelChanged(BTC, "SELL", D("30000.0"), D(0), 50)
    assert venue.exchange.best_ask(BTC) is None
    assert venue.exchange.depth(BTC, "SELL") == []


def test_cancel_answers_none_when_there_is_no_such_live_order(venue: Venue) -> None:
    venue.resting("a", "BUY", "30000.0", "0.001", coid="live")
    venue.resting("a", "SELL", "30001.0", "0.001", coid="filled")
    venue.take("t", "BUY", "0.001")
    venue.place("a", "BUY", "1.05", "0.001", coid="rejected")
    venue.drain()
    cancel = venue.exchange.cancel

    assert cancel(account_id="a", client_order_id="nope", ts_ns=1) is None
    assert cancel(account_id="b", client_order_id="live", ts_ns=1) is None  # another account
    assert cancel(account_id="a", client_order_id="live", ts_ns=1, symbol=ETH) is None
    assert cancel(account_id="a", client_order_id="filled", ts_ns=1) is None
    assert cancel(account_id="a", client_order_id="rejected", ts_ns=1) is None
    assert venue.events == []
    assert cancel(account_id="a", client_order_id="live", ts_ns=1, symbol=BTC) is not None
    assert cancel(account_id="a", client_order_id="live", ts_ns=2) is None  # already cancelled


def test_cancel_all_cancels_only_that_accounts_orders_in_that_symbol(venue: Venue) -> None:
    mine = [
        venue.resting("a", "BUY", "30000.0", "0.001"),
        venue.resting("a", "SELL", "30005.0", "0.001"),
        venue.resting("a", "BUY", "29999.0", "0.001"),
    ]
    other_symbol = venue.resting("a", "BUY", "2000.00", "0.01", symbol=ETH)
    other_account = venue.resting("b", "BUY", "30000.0", "0.004")
    venue.drain()

    cancelled = venue.exchange.cancel_all(account_id="a", symbol=BTC, ts_ns=77)

    assert cancelled == mine
    assert all((o.status, o.reason) == ("CANCELLED", "CANCEL_ALL") for o in mine)
    assert venue.exchange.open_orders("a") == [other_symbol]
    assert venue.exchange.open_orders("b") == [other_account]
    assert venue.exchange.depth(BTC, "BUY") == [(D("30000.0"), D("0.004"))]
    assert venue.exchange.depth(BTC, "SELL") == []
    cancels = [e for e in venue.events if isinstance(e, OrderCancelled)]
    assert [c.client_order_id for c in cancels] == [o.client_order_id for o in mine]
    assert venue.exchange.cancel_all(account_id="a", symbol=BTC, ts_ns=78) == []


# ---------------------------------------------------------------- self-trade prevention


def test_a_take_stops_at_its_own_accounts_resting_order(venue: Venue) -> None:
    venue.resting("b", "SELL", "30000.0", "0.001")
    own = venue.resting("a", "SELL", "30000.5", "0.001")
    venue.resting("b", "SELL", "30001.0", "0.001")

    fills = venue.take("a", "BUY", "0.003")

    assert [f.price for f in fills] == [D("30000.0")]  # ahead of its own order: traded
    assert own.status == "OPEN"
    assert venue.exchange.depth(BTC, "SELL") == [
        (D("30000.5"), D("0.001")),
        (D("30001.0"), D("0.001")),
    ]
    taker = venue.exchange.order("a", fills[0].client_order_id)
    assert taker is not None
    assert (taker.status, taker.reason) == ("CANCELLED", "SELF_TRADE_PREVENTED")


def test_a_taking_order_is_cancelled_at_its_own_accounts_order(venue: Venue) -> None:
    own = venue.resting("a", "SELL", "30000.0", "0.001")
    venue.resting("b", "SELL", "30000.0", "0.001")
    venue.drain()

    order = venue.resting("a", "BUY", "30000.0", "0.002", coid="x", post_only=False)

    assert (order.status, order.reason, order.filled_size) == (
        "CANCELLED",
        "SELF_TRADE_PREVENTED",
        D(0),
    )
    assert venue.events == [
        OrderAccepted("x", order.order_id, "a", BTC, venue.seq),
        OrderCancelled("x", order.order_id, "a", BTC, "SELF_TRADE_PREVENTED", venue.seq),
    ]
    assert own.live
    assert venue.exchange.depth(BTC, "SELL") == [(D("30000.0"), D("0.002"))]
    assert venue.exchange.best_bid(BTC) is None
    assert venue.exchange.account("a").positions == {}


# ---------------------------------------------------------------- events


def test_a_match_emits_maker_fill_taker_fill_print_and_level_in_that_order(venue: Venue) -> None:
    maker = venue.resting("m", "SELL", "30000.0", "0.003", coid="ask")
    venue.drain()

    fills = venue.take("t", "BUY", "0.001")

    ts = venue.seq
    notional = D("30.0000")
    assert venue.events == [
        Filled(
            "T1-M",
            maker.order_id,
            "ask",
            "m",
            BTC,
            "SELL",
            D("30000.0"),
            D("0.001"),
            fee=notional * D("-0.0001"),
            liquidity="MAKER",
            ts_ns=ts,
        ),
        Filled(
            "T1-T",
            fills[0].order_id,
            fills[0].client_order_id,
            "t",
            BTC,
            "BUY",
            D("30000.0"),
            D("0.001"),
            fee=notional * D("0.0005"),
            liquidity="TAKER",
            ts_ns=ts,
        ),
        Traded("T1", BTC, D("30000.0"), D("0.001"), "BUY", ts),
        LevelChanged(BTC, "SELL", D("30000.0"), D("0.002"), ts),
    ]
    assert fills == [venue.events[1]]


def test_a_listener_sees_the_state_after_the_event(venue: Venue) -> None:
    seen: list[tuple[str, Decimal | None]] = []
    exchange = venue.exchange
    exchange.on_event = lambda e: seen.append((type(e).__name__, exchange.best_ask(BTC)))
    venue.resting("m", "SELL", "30000.0", "0.001")
    venue.take("t", "BUY", "0.001")

    assert seen == [
        ("OrderAccepted", None),
        ("LevelChanged", D("30000.0")),
        ("Filled", None),
        ("Filled", None),
        ("Traded", None),
        ("LevelChanged", None),
    ]


# ---------------------------------------------------------------- depth


def test_depth_aggregates_each_level_best_first(venue: Venue) -> None:
    venue.resting("a", "BUY", "29999.0", "0.001")
    venue.resting("b", "BUY", "30000.0", "0.002")
    venue.resting("c", "BUY", "30000.0", "0.003")
    venue.resting("a", "BUY", "29998.5", "0.004")
    venue.resting("a", "SELL", "30002.0", "0.005")
    venue.resting("b", "SELL", "30001.0", "0.001")
    venue.resting("c", "SELL", "30002.0", "0.001")

    assert venue.exchange.depth(BTC, "BUY") == [
        (D("30000.0"), D("0.005")),
        (D("29999.0"), D("0.001")),
        (D("29998.5"), D("0.004")),
    ]
    assert venue.exchange.depth(BTC, "SELL", 1) == [(D("30001.0"), D("0.001"))]
    assert venue.exchange.depth(BTC, "SELL") == [
        (D("30001.0"), D("0.001")),
        (D("30002.0"), D("0.006")),
    ]
    assert venue.exchange.depth(BTC, "BUY", 0) == []
    assert venue.exchange.depth(ETH, "BUY") == []
    assert venue.exchange.depth("NOPE", "BUY") == []
    assert (venue.exchange.best_bid(BTC), venue.exchange.best_ask(BTC)) == (
        D("30000.0"),
        D("30001.0"),
    )

    venue.take("t", "SELL", "0.004")
    assert venue.exchange.depth(BTC, "BUY", 2) == [
        (D("30000.0"), D("0.001")),
        (D("29999.0"), D("0.001")),
    ]


# ---------------------------------------------------------------- the ledger


def test_fees_rebates_cash_and_positions_are_exact_over_a_sequence(venue: Venue) -> None:
    venue.resting("mm", "SELL", "30000.1", "0.5")
    venue.resting("mm", "BUY", "29999.9", "0.3")
    venue.take("x", "BUY", "0.2")  # x buys 0.2 @ 30000.1: notional 6000.02
    venue.take("y", "SELL", "0.3")  # y sells 0.3 @ 29999.9: notional 8999.97
    venue.take("y", "BUY", "0.3")  # y buys 0.3 @ 30000.1: notional 9000.03
    venue.resting("y", "BUY", "1000.00", "0.05", symbol=ETH)
    venue.take("x", "SELL", "0.05", symbol=ETH)  # y buys 0.05 ETH @ 1000: notional 50

    mm, x, y = (venue.exchange.account(a) for a in ("mm", "x", "y"))
    # mm: sold 0.5 (15000.05), bought 0.3 (8999.97), all as a maker: a 0.0001 rebate on each.
    assert mm.positions == {BTC: D("-0.2")}
    assert mm.fees == D("-0.60000200") + D("-0.89999700") + D("-0.90000300")
    assert mm.fees == D("-2.40000200")
    assert mm.cash == D("15000.05") - D("8999.97") + D("2.40000200")
    # x: bought 0.2 BTC as a taker, sold 0.05 ETH as a taker.
    assert x.positions == {BTC: D("0.2"), ETH: D("-0.05")}
    assert x.fees == D("3.00001000") + D("0.02500000")
    assert x.cash == D("-6000.02") - D("3.00001") + D("50") - D("0.025")
    # y: sold and bought 0.3 BTC as a taker, bought 0.05 ETH as a maker.
    assert y.positions == {BTC: D(0), ETH: D("0.05")}
    assert y.fees == D("4.499985") + D("4.500015") + D("-0.005")
    assert y.cash == D("8999.97") - D("9000.03") - D("50") - y.fees
    assert y.volume == {BTC: D("18000.00"), ETH: D("50.00")}
    assert y.trades == {BTC: 2, ETH: 1}
    assert mm.trades == {BTC: 3}

    assert_conserved(venue.exchange)


def test_fees_round_half_even_to_the_satoshi() -> None:
    venue = Venue(fees=Fees(maker=D("-0.00015"), taker=D("0.00075")))
    venue.resting("m", "SELL", "30000.1", "0.001")
    venue.resting("m", "SELL", "30000.3", "0.001")

    fills = venue.take("t", "BUY", "0.002")

    # 30.0001 × 0.00075 = 0.022500075 → up to the even 8; 30.0003 × 0.00075 = 0.022500225
    # → stays on the even 2; the maker's −0.004500015 → −0.00450002, −0.004500045 → −0.00450004.
    assert [f.fee for f in fills] == [D("0.02250008"), D("0.02250022")]
    maker_fees = [e.fee for e in venue.events if isinstance(e, Filled) and e.liquidity == "MAKER"]
    assert maker_fees == [D("-0.00450002"), D("-0.00450004")]
    assert venue.exchange.account("t").cash == D("-60.0004") - D("0.04500030")
    assert venue.exchange.account("m").cash == D("60.0004") + D("0.00900006")
    assert_conserved(venue.exchange)


def test_funding_longs_pay_shorts_receive_when_the_rate_is_positive(venue: Venue) -> None:
    venue.resting("short", "SELL", "30000.0", "0.003")
    venue.take("long", "BUY", "0.003")
    venue.resting("flat", "BUY", "1000.00", "0.01", symbol=ETH)  # no BTC position
    cash_before = {a: venue.exchange.account(a).cash for a in ("long", "short")}
    venue.drain()

    payments = venue.exchange.pay_funding(BTC, rate=D("0.000123"), mark=D("30010.7"), ts_ns=8)

    # 0.003 × 30010.7 × 0.000123 = 0.0110739483 → 0.01107395
    assert payments == [
        FundingPaid(f"fund-{BTC}-8-short", "short", BTC, D("0.01107395"), D("0.000123"), 8),
        FundingPaid(f"fund-{BTC}-8-long", "long", BTC, D("-0.01107395"), D("0.000123"), 8),
    ]
    assert venue.events == payments
    long, short = venue.exchange.account("long"), venue.exchange.account("short")
    assert long.cash == cash_before["long"] - D("0.01107395")
    assert short.cash == cash_before["short"] + D("0.01107395")
    assert (long.funding, short.funding) == (D("-0.01107395"), D("0.01107395"))
    assert venue.exchange.account("flat").funding == 0

    again = venue.exchange.pay_funding(BTC, rate=D("-0.0001"), mark=D("30000"), ts_ns=9)
    assert [(p.account_id, p.amount) for p in again] == [
        ("short", D("-0.009")),
        ("long", D("0.009")),
    ]
    with pytest.raises(ValueError, match="already paid"):
        venue.exchange.pay_funding(BTC, rate=D("0.0001"), mark=D("30000"), ts_ns=9)
    assert venue.exchange.pay_funding(ETH, rate=D("0.0001"), mark=D("1000"), ts_ns=9) == []
    assert_conserved(venue.exchange)


def test_a_funding_payment_that_rounds_to_nothing_is_a_plain_zero(venue: Venue) -> None:
    venue.resting("short", "SELL", "30000.0", "0.001")
    venue.take("long", "BUY", "0.001")

    payments = venue.exchange.pay_funding(BTC, rate=D("1E-12"), mark=D("30000"), ts_ns=8)

    # The long's −3E-11 rounds to zero, which must not read "-0E-8" in the feed.
    assert [format(p.amount, "f") for p in payments] == ["0.00000000", "0.00000000"]


# ---------------------------------------------------------------- halts


def test_a_halt_stops_trading_but_keeps_resting_orders(venue: Venue) -> None:
    resting = venue.resting("a", "SELL", "30000.0", "0.001", coid="r")
    venue.drain()

    venue.exchange.set_halted(BTC, True, ts_ns=5)
    venue.exchange.set_halted(BTC, True, ts_ns=6)  # no change, no event

    assert venue.exchange.halted(BTC)
    assert not venue.exchange.halted(ETH)
    assert venue.events == [StatusChanged(BTC, True, 5)]
    assert venue.take("t", "BUY", "0.001") == []
    assert resting.live
    assert venue.exchange.depth(BTC, "SELL") == [(D("30000.0"), D("0.001"))]
    assert venue.place("a", "SELL", "30001.0", "0.001").code == "INSTRUMENT_HALTED"
    assert venue.exchange.account("t").positions == {}

    venue.exchange.set_halted(BTC, False, ts_ns=7)
    assert venue.events[-1] == StatusChanged(BTC, False, 7)
    assert [f.size for f in venue.take("t", "BUY", "0.001")] == [D("0.001")]
    with pytest.raises(KeyError):
        venue.exchange.set_halted("NOPE", True, ts_ns=8)


def test_a_halted_instruments_orders_can_still_be_cancelled(venue: Venue) -> None:
    venue.resting("a", "SELL", "30000.0", "0.001", coid="r")
    venue.exchange.set_halted(BTC, True, ts_ns=5)

    assert venue.exchange.cancel(account_id="a", client_order_id="r", ts_ns=6) is not None
    assert venue.exchange.depth(BTC, "SELL") == []


# ---------------------------------------------------------------- invariants


def assert_conserved(exchange: Exchange) -> None:
    """What one side of a trade pays the other receives: positions net to zero per
    symbol, and all the cash there is came in as funding or went out as fees."""
    accounts = exchange.accounts.values()
    for symbol in exchange.instruments:
        assert sum(a.positions.get(symbol, D(0)) for a in accounts) == 0
    assert sum(a.cash for a in accounts) == sum(a.funding for a in accounts) - sum(
        a.fees for a in accounts
    )


def assert_invariants(exchange: Exchange, events: list[ExchangeEvent]) -> None:
    """The book and the ledger against independent recomputations: from the live orders
    and from the events alone (what a feed subscriber would rebuild)."""
    assert_conserved(exchange)
    live = [o for a in exchange.accounts for o in exchange.open_orders(a)]
    assert len(live) == exchange.live_count()
    assert exchange.duplicate_live_orders() == 0
    assert all(o.remaining > 0 and o.filled_size >= 0 for o in live)

    levels: dict[tuple[str, Side], dict[Decimal, Decimal]] = defaultdict(dict)
    cash: dict[str, Decimal] = defaultdict(Decimal)
    fees: dict[str, Decimal] = defaultdict(Decimal)
    positions: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    fill_ids: set[str] = set()
    for event in events:
        if isinstance(event, LevelChanged):
            book_side = levels[(event.symbol, event.side)]
            book_side[event.price] = event.size
            if event.size == 0:
                del book_side[event.price]
        elif isinstance(event, Filled):
            assert event.fill_id not in fill_ids
            fill_ids.add(event.fill_id)
            notional = event.price * event.size
            cash[event.account_id] += (-notional if event.side == "BUY" else notional) - event.fee
            fees[event.account_id] += event.fee
            sign = 1 if event.side == "BUY" else -1
            positions[(event.account_id, event.symbol)] += sign * event.size
        elif isinstance(event, FundingPaid):
            cash[event.account_id] += event.amount

    for symbol in exchange.instruments:
        bid, ask = exchange.best_bid(symbol), exchange.best_ask(symbol)
        assert bid is None or ask is None or bid < ask
        for side in ("BUY", "SELL"):
            totals: dict[Decimal, Decimal] = defaultdict(Decimal)
            for order in live:
                if (order.symbol, order.side) == (symbol, side):
                    totals[order.price] += order.remaining
            depth = exchange.depth(symbol, side)
            assert dict(depth) == totals
            assert dict(depth) == levels[(symbol, side)]
            prices = [price for price, _ in depth]
            assert prices == sorted(prices, reverse=side == "BUY")
    for account_id, account in exchange.accounts.items():
        assert account.cash == cash[account_id]
        assert account.fees == fees[account_id]
        for symbol, position in account.positions.items():
            assert position == positions[(account_id, symbol)]


PROP = InstrumentRules("PROPUSDT-PERP", Decimal("0.5"), Decimal("0.25"), Decimal("0.25"), D(5))
PROP2 = InstrumentRules("PROP2USDT-PERP", Decimal("0.01"), Decimal(1), Decimal(1), D(1))
ACCOUNTS = ("a", "b", "c")
COIDS = ("q1", "q2", "q3", "q4", "q5", "q6")
symbols = st.sampled_from((PROP, PROP2))
sides = st.sampled_from(("BUY", "SELL"))


def prices(rules: InstrumentRules) -> st.SearchStrategy[Decimal]:
    """Ten ticks either side of 100."""
    return st.integers(-10, 10).map(lambda ticks: D(100) + rules.tick_size * ticks)


@st.composite
def operations(draw: st.DrawFn) -> tuple[Any, ...]:
    kinds = ("place",) * 6 + ("take",) * 3 + ("cancel",) * 2 + ("cancel_all", "halt", "funding")
    kind = draw(st.sampled_from(kinds))
    rules = draw(symbols)
    account = draw(st.sampled_from(ACCOUNTS))
    side = draw(sides)
    size = rules.lot_size * draw(st.integers(1, 8))
    if kind == "place":
        off_grid = draw(st.integers(0, 19)) == 0  # now and then a reject
        price = D("100.3") if off_grid and rules is PROP else draw(prices(rules))
        coid = draw(st.sampled_from(COIDS))
        return (kind, rules.symbol, account, coid, side, price, size, draw(st.booleans()))
    if kind == "take":
        return (kind, rules.symbol, account, side, size, draw(st.none() | prices(rules)))
    if kind == "cancel":
        return (kind, rules.symbol, account, draw(st.sampled_from(COIDS)))
    if kind == "halt":  # halts are short: resuming is likelier
        return (kind, rules.symbol, draw(st.sampled_from((True, False, False))))
    if kind == "funding":
        rate = draw(st.sampled_from((D("0.0001"), D("-0.000377"), D("0.00123"))))
        return (kind, rules.symbol, rate, draw(prices(rules)))
    return (kind, rules.symbol, account)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(operations(), min_size=10, max_size=80))
def test_random_sequences_keep_the_book_and_the_ledger_consistent(
    ops: list[tuple[Any, ...]],
) -> None:
    events: list[ExchangeEvent] = []
    exchange = Exchange((PROP, PROP2), on_event=events.append)
    for ts, (kind, symbol, *args) in enumerate(ops, start=1):
        if kind == "place":
            account, coid, side, price, size, post_only = args
            outcome = exchange.place(
                account_id=account,
                client_order_id=coid,
                symbol=symbol,
                side=side,
                price=price,
                size=size,
                ts_ns=ts,
                post_only=post_only,
            )
            assert outcome.order is not None
        elif kind == "take":
            account, side, size, limit = args
            fills = exchange.take(
                account_id=account,
                symbol=symbol,
                side=side,
                size=size,
                limit_price=limit,
                ts_ns=ts,
            )
            assert sum(f.size for f in fills) <= size
        elif kind == "cancel":
            account, coid = args
            exchange.cancel(account_id=account, client_order_id=coid, ts_ns=ts)
        elif kind == "cancel_all":
            (account,) = args
            exchange.cancel_all(account_id=account, symbol=symbol, ts_ns=ts)
            assert exchange.open_orders(account, symbol) == []
        elif kind == "halt":
            exchange.set_halted(symbol, args[0], ts_ns=ts)
        else:
            rate, mark = args
            exchange.pay_funding(symbol, rate=rate, mark=mark, ts_ns=ts)
        assert_invariants(exchange, events)


def test_the_house_accounts_finished_orders_are_forgotten_and_clients_kept() -> None:
    exchange = Exchange(INSTRUMENTS, forget_finished=lambda account: account.startswith("bg-"))

    def place(account: str, coid: str, side: Side, price: str, size: str) -> PlaceOutcome:
        return exchange.place(
            account_id=account,
            client_order_id=coid,
            symbol=BTC,
            side=side,
            price=D(price),
            size=D(size),
            ts_ns=1,
        )

    place("bg-maker", "m1", "SELL", "60000.0", "0.002")  # will be filled
    place("bg-maker", "m2", "SELL", "60001.0", "0.002")  # stays live
    place("bg-maker", "m3", "BUY", "60002.0", "0.002")  # rejected: would cross m1
    place("client", "c1", "SELL", "60000.5", "0.001")  # will be filled
    place("client", "c2", "BUY", "59999.0", "0.001")  # will be cancelled
    exchange.take(account_id="bg-taker", symbol=BTC, side="BUY", size=D("0.003"),
                  limit_price=D("60000.5"), ts_ns=2)  # fmt: skip
    exchange.cancel(account_id="client", client_order_id="c2", ts_ns=3)

    assert exchange.order("bg-maker", "m1") is None  # filled: forgotten
    assert exchange.order("bg-maker", "m3") is None  # rejected: forgotten
    assert exchange.order("bg-maker", "m2") is not None  # live: kept
    assert [o.client_order_id for o in exchange.open_orders("bg-maker")] == ["m2"]
    assert exchange.order("client", "c1").status == "FILLED"  # type: ignore[union-attr]
    assert exchange.order("client", "c2").status == "CANCELLED"  # type: ignore[union-attr]
    assert exchange.order_count() == 3  # m2, c1, c2; the take is gone too
    assert exchange.account("bg-taker").positions[BTC] == D("0.003")  # the ledger keeps all


def test_a_clients_finished_orders_are_kept_newest_first_up_to_a_bound() -> None:
    """MMS re-quoting for hours must not grow the venue without bound: the newest
    finished orders answer replays and queries, older ones are forgotten, live
    ones are always kept, and the ledger keeps every trade."""
    exchange = Exchange(INSTRUMENTS, finished_kept=3)

    def place(coid: str, price: str) -> None:
        exchange.place(
            account_id="client",
            client_order_id=coid,
            symbol=BTC,
            side="BUY",
            price=D(price),
            size=D("0.001"),
            ts_ns=1,
        )

    place("live", "59990.0")
    for n in range(5):
        place(f"c{n}", "59999.0")
        exchange.cancel(account_id="client", client_order_id=f"c{n}", ts_ns=2)
    assert [exchange.order("client", f"c{n}") is not None for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert exchange.order("client", "c4").status == "CANCELLED"  # type: ignore[union-attr]
    assert exchange.order("client", "live") is not None
    assert exchange.order_count() == 4  # live, c2, c3, c4


def test_a_venue_run_can_give_its_order_ids_a_prefix_of_its_own() -> None:
    """The simulator process gives each run its own, so ids never repeat across restarts."""
    ids = []
    for run in ("a1", "b2"):
        venue = Exchange(INSTRUMENTS, order_id_prefix=f"sim-{run}-")
        outcome = venue.place(
            account_id="a",
            client_order_id="c-1",
            symbol=BTC,
            side="SELL",
            price=D("30000.0"),
            size=D("0.001"),
            ts_ns=1,
        )
        assert outcome.order is not None
        ids.append(outcome.order.order_id)
    assert ids == ["sim-a1-0000000001", "sim-b2-0000000001"]


def test_a_venue_run_can_give_its_trade_and_fill_ids_a_prefix_of_its_own() -> None:
    """MMS drops a fill whose id it stored before as a redelivery: a venue restarted
    under a kept database (`make run`) must not start again at T1 (it did, and
    most of a run's fills were dropped)."""
    fill_ids = []
    for run in ("a1", "b2"):
        venue = Exchange(INSTRUMENTS, trade_id_prefix=f"{run}-")
        venue.place(
            account_id="maker",
            client_order_id="m-1",
            symbol=BTC,
            side="SELL",
            price=D("30000.0"),
            size=D("0.001"),
            ts_ns=1,
        )
        fills = venue.take(
            account_id="taker", symbol=BTC, side="BUY", size=D("0.001"), limit_price=None, ts_ns=2
        )
        fill_ids.append(fills[0].fill_id)
    assert fill_ids == ["a1-T1-T", "b2-T1-T"]
