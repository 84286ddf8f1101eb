"""OrderBook: sequencing (snapshot, deltas, gaps, duplicates, heartbeats) and the
prices the quoter reads from it (best, mid, microprice net of own orders, depth)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quoting_worker.core.book import OrderBook
from quoting_worker.core.types import BookDelta, BookHeartbeat, BookSnapshot, Level, Side


def snapshot(
    seq: int,
    bids: tuple[Level, ...] = ((99, 5), (98, 7), (97, 9)),
    asks: tuple[Level, ...] = ((101, 4), (102, 6), (103, 8)),
    ts_ns: int = 1_000,
) -> BookSnapshot:
    return BookSnapshot(seq=seq, bids=bids, asks=asks, ts_ns=ts_ns)


def delta(
    seq: int,
    bids: tuple[Level, ...] = (),
    asks: tuple[Level, ...] = (),
    ts_ns: int = 2_000,
) -> BookDelta:
    return BookDelta(seq=seq, bids=bids, asks=asks, ts_ns=ts_ns)


@pytest.fixture
def book() -> OrderBook:
    book = OrderBook("BTC-USDT")
    book.apply_snapshot(snapshot(seq=10))
    return book


# ---------------------------------------------------------------- sequencing


def test_new_book_is_unsynced_and_empty() -> None:
    book = OrderBook()

    assert not book.synced
    assert book.seq == 0
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.mid_ticks() is None
    assert book.microprice() is None
    assert book.last_received_ns == 0


def test_snapshot_then_in_sequence_deltas_build_the_book(book: OrderBook) -> None:
    assert book.synced
    assert book.seq == 10
    assert (book.best_bid(), book.best_bid_size()) == (99, 5)
    assert (book.best_ask(), book.best_ask_size()) == (101, 4)

    assert book.apply_delta(delta(11, bids=((100, 3),), asks=((101, 0),)))
    assert book.apply_delta(delta(12, bids=((98, 1),), asks=((102, 2), (104, 1))))

    assert book.seq == 12
    assert book.levels(Side.BUY) == [(100, 3), (99, 5), (98, 1), (97, 9)]
    assert book.levels(Side.SELL) == [(102, 2), (103, 8), (104, 1)]
    assert book.levels(Side.SELL, n=2) == [(102, 2), (103, 8)]


def test_size_zero_removes_a_level_and_removing_an_absent_level_is_harmless(
    book: OrderBook,
) -> None:
    assert book.apply_delta(delta(11, bids=((99, 0), (50, 0))))

    assert book.best_bid() == 98
    assert book.levels(Side.BUY) == [(98, 7), (97, 9)]


def test_snapshot_replaces_the_book_and_drops_empty_levels(book: OrderBook) -> None:
    book.apply_snapshot(snapshot(seq=20, bids=((90, 1), (89, 0)), asks=((95, 2),)))

    assert book.seq == 20
    assert book.levels(Side.BUY) == [(90, 1)]
    assert book.levels(Side.SELL) == [(95, 2)]


def test_delta_before_any_snapshot_is_ignored() -> None:
    book = OrderBook()

    assert not book.apply_delta(delta(1, bids=((99, 1),)))

    assert not book.synced
    assert book.best_bid() is None


def test_duplicate_and_old_deltas_are_ignored_and_the_book_stays_synced(book: OrderBook) -> None:
    assert book.apply_delta(delta(11, bids=((99, 50),)))

    assert not book.apply_delta(delta(11, bids=((99, 1),)))  # redelivered
    assert not book.apply_delta(delta(7, bids=((99, 2),)))  # older than the snapshot

    assert book.synced
    assert book.seq == 11
    assert book.best_bid_size() == 50
    assert book.stale_deltas == 2
    assert book.apply_delta(delta(12))


def test_gap_unsyncs_the_book_until_the_next_snapshot(book: OrderBook) -> None:
    assert not book.apply_delta(delta(12, bids=((100, 1),)))  # 11 was lost

    assert not book.synced
    assert book.gaps == 1
    assert book.best_bid() == 99  # the gapped delta was not applied
    assert book.mid_ticks() is None
    assert book.microprice() is None
    assert book.depth_lots(Side.BUY, 1_000) == 0
    # Nothing after a gap applies, not even the delta that would have come next.
    assert not book.apply_delta(delta(13, bids=((100, 1),)))
    assert book.best_bid() == 99

    book.apply_snapshot(snapshot(seq=30, bids=((96, 2),)))

    assert book.synced
    assert book.seq == 30
    assert book.best_bid() == 96
    assert book.apply_delta(delta(31, bids=((97, 1),)))
    assert book.best_bid() == 97


def test_resync_takes_a_snapshot_older_than_the_gapped_book(book: OrderBook) -> None:
    book.apply_delta(delta(15))
    assert not book.synced

    assert book.apply_snapshot(snapshot(seq=9))

    assert book.synced
    assert book.seq == 9


def test_late_snapshot_older_than_a_synced_book_is_ignored(book: OrderBook) -> None:
    assert book.apply_delta(delta(11, bids=((100, 3),)))

    assert not book.apply_snapshot(snapshot(seq=10, bids=((1, 1),)))

    assert book.seq == 11
    assert book.best_bid() == 100
    assert book.apply_delta(delta(12))


def test_heartbeat_at_our_seq_keeps_the_book_synced(book: OrderBook) -> None:
    assert book.on_heartbeat(BookHeartbeat(seq=10, ts_ns=5_000))
    assert book.on_heartbeat(BookHeartbeat(seq=9, ts_ns=5_001))  # a late one

    assert book.synced


def test_heartbeat_ahead_of_our_seq_reveals_lost_deltas(book: OrderBook) -> None:
    assert not book.on_heartbeat(BookHeartbeat(seq=11, ts_ns=5_000))

    assert not book.synced
    assert book.gaps == 1
    assert not book.apply_delta(delta(12))
    assert not book.on_heartbeat(BookHeartbeat(seq=12, ts_ns=5_001))


def test_every_message_received_counts_for_staleness_applied_or_not() -> None:
    book = OrderBook()

    book.apply_delta(delta(5, ts_ns=100))  # before the snapshot: ignored
    assert book.last_received_ns == 100
    book.apply_snapshot(snapshot(seq=10, ts_ns=200))
    assert book.last_received_ns == 200
    book.apply_delta(delta(10, ts_ns=300))  # duplicate
    assert book.last_received_ns == 300
    book.apply_delta(delta(12, ts_ns=400))  # gap
    assert book.last_received_ns == 400
    book.apply_delta(delta(13, ts_ns=500))  # ignored while unsynced
    assert book.last_received_ns == 500
    book.on_heartbeat(BookHeartbeat(seq=13, ts_ns=600))
    assert book.last_received_ns == 600
    # A redelivery stamped in the past must not make the feed look older.
    book.apply_delta(delta(1, ts_ns=50))
    assert book.last_received_ns == 600


# ---------------------------------------------------------------- prices


def test_mid_and_microprice_of_the_raw_book(book: OrderBook) -> None:
    assert book.mid_ticks() == 100.0
    # (99·4 + 101·5) / 9: the bigger bid queue pulls the price towards the ask.
    assert book.microprice() == pytest.approx((99 * 4 + 101 * 5) / 9)


def test_microprice_removes_our_own_resting_size(book: OrderBook) -> None:
    # We rest 3 of the 5 lots at 99 and 1 of the 4 at 101.
    price = book.microprice(own_bid={99: 3}, own_ask={101: 1})

    assert price == pytest.approx((99 * 3 + 101 * 2) / 5)


def test_microprice_skips_a_level_that_is_only_our_own_size(book: OrderBook) -> None:
    # All 5 lots at 99 are ours: the market's best bid is 98 (7 lots).
    price = book.microprice(own_bid={99: 5, 97: 9})

    assert price == pytest.approx((98 * 4 + 101 * 7) / 11)
    assert book.best_bid() == 99  # the book itself still shows our orders


def test_microprice_ignores_own_orders_at_prices_the_book_does_not_show(book: OrderBook) -> None:
    assert book.microprice(own_bid={95: 2}, own_ask={110: 1}) == book.microprice()


def test_microprice_is_none_when_our_orders_are_the_whole_side(book: OrderBook) -> None:
    assert book.microprice(own_ask={101: 4, 102: 6, 103: 8}) is None


def test_microprice_and_mid_are_none_for_a_crossed_or_one_sided_book() -> None:
    crossed = OrderBook()
    crossed.apply_snapshot(snapshot(seq=1, bids=((101, 1),), asks=((100, 1),)))
    locked = OrderBook()
    locked.apply_snapshot(snapshot(seq=1, bids=((100, 1),), asks=((100, 1),)))
    one_sided = OrderBook()
    one_sided.apply_snapshot(snapshot(seq=1, asks=()))

    for book in (crossed, locked, one_sided):
        assert book.microprice() is None
        assert book.mid_ticks() is None


def test_microprice_with_a_thin_book_walks_to_the_next_level_or_gives_up() -> None:
    book = OrderBook()
    book.apply_snapshot(snapshot(seq=1, bids=((100, 2), (99, 1)), asks=((101, 2),)))
    # Our 2 lots at 100 are the whole level: the bid is 99. Our 2 lots at 101
    # are the whole ask side: no market ask, no price.
    assert book.microprice(own_bid={100: 2}) == pytest.approx((99 * 2 + 101 * 1) / 3)
    assert book.microprice(own_ask={101: 2}) is None


def test_depth_counts_lots_within_bps_of_mid() -> None:
    book = OrderBook()
    book.apply_snapshot(
        snapshot(
            seq=1,
            bids=((9_999, 1), (9_995, 2), (9_990, 4), (9_989, 8)),
            asks=((10_001, 1), (10_005, 2), (10_010, 4), (10_011, 8)),
        )
    )
    # mid 10 000; 10 bps = 10 ticks: 9 990 and 10 010 are exactly on the boundary.
    assert book.depth_lots(Side.BUY, 10) == 1 + 2 + 4
    assert book.depth_lots(Side.SELL, 10) == 1 + 2 + 4
    assert book.depth_lots(Side.BUY, 5) == 1 + 2
    assert book.depth_lots(Side.SELL, 0.5) == 0
    assert book.depth_lots(Side.SELL, 1_000) == 15


# ---------------------------------------------------------------- against a naive model

levels_st = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 5)), max_size=6).map(tuple)


def naive_levels(model: dict[int, int], side: Side) -> list[Level]:
    return sorted(model.items(), reverse=side is Side.BUY)


@settings(max_examples=300, deadline=None)
@given(
    initial_bids=levels_st,
    initial_asks=levels_st,
    deltas=st.lists(st.tuples(levels_st, levels_st), max_size=40),
)
def test_random_deltas_match_a_naive_dict_book(
    initial_bids: tuple[Level, ...],
    initial_asks: tuple[Level, ...],
    deltas: list[tuple[tuple[Level, ...], tuple[Level, ...]]],
) -> None:
    book = OrderBook()
    book.apply_snapshot(snapshot(seq=1, bids=initial_bids, asks=initial_asks))
    model: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    for side, levels in ((Side.BUY, initial_bids), (Side.SELL, initial_asks)):
        for price, size in levels:
            if size > 0:
                model[side][price] = size

    for seq, (bids, asks) in enumerate(deltas, start=2):
        assert book.apply_delta(delta(seq, bids=bids, asks=asks))
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            for price, size in levels:
                if size > 0:
                    model[side][price] = size
                else:
                    model[side].pop(price, None)

        assert book.levels(Side.BUY) == naive_levels(model[Side.BUY], Side.BUY)
        assert book.levels(Side.SELL) == naive_levels(model[Side.SELL], Side.SELL)
        assert book.best_bid() == max(model[Side.BUY], default=None)
        assert book.best_ask() == min(model[Side.SELL], default=None)


@settings(max_examples=300, deadline=None)
@given(
    bids=st.dictionaries(st.integers(1, 50), st.integers(1, 9), max_size=8),
    asks=st.dictionaries(st.integers(51, 100), st.integers(1, 9), max_size=8),
    own_bid=st.dictionaries(st.integers(1, 50), st.integers(1, 9), max_size=4),
    own_ask=st.dictionaries(st.integers(51, 100), st.integers(1, 9), max_size=4),
)
def test_microprice_matches_a_naive_net_book(
    bids: dict[int, int], asks: dict[int, int], own_bid: dict[int, int], own_ask: dict[int, int]
) -> None:
    book = OrderBook()
    book.apply_snapshot(snapshot(seq=1, bids=tuple(bids.items()), asks=tuple(asks.items())))
    net_bids = {p: s - own_bid.get(p, 0) for p, s in bids.items() if s > own_bid.get(p, 0)}
    net_asks = {p: s - own_ask.get(p, 0) for p, s in asks.items() if s > own_ask.get(p, 0)}

    got = book.microprice(own_bid=own_bid, own_ask=own_ask)

    if not net_bids or not net_asks:
        assert got is None
    else:
        bid, ask = max(net_bids), min(net_asks)
        bid_size, ask_size = net_bids[bid], net_asks[ask]
        assert got == pytest.approx((bid * ask_size + ask * bid_size) / (bid_size + ask_size))


near_bids = st.lists(st.tuples(st.integers(44, 52), st.integers(0, 9)), max_size=3).map(tuple)
near_asks = st.lists(st.tuples(st.integers(49, 57), st.integers(0, 9)), max_size=3).map(tuple)


@settings(max_examples=500, deadline=None)
@given(
    bids=st.dictionaries(st.integers(40, 50), st.integers(1, 9), min_size=1, max_size=8),
    asks=st.dictionaries(st.integers(51, 61), st.integers(1, 9), min_size=1, max_size=8),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("delta"), near_bids, near_asks),
            st.tuples(st.just("snapshot"), near_bids, near_asks),
            st.tuples(st.just("own"), st.just(Side.BUY), st.integers(44, 52)),
            st.tuples(st.just("own"), st.just(Side.SELL), st.integers(49, 57)),
        ),
        max_size=30,
    ),
)
def test_the_remembered_microprice_is_always_the_one_worked_out_afresh(
    bids: dict[int, int],
    asks: dict[int, int],
    steps: list[tuple[str, object, object]],
) -> None:
    """Deltas at any depth (crossing, emptying, refilling the top) and own orders
    changing between them: the memo never answers with an out-of-date price."""
    book = OrderBook()
    book.apply_snapshot(snapshot(seq=1, bids=tuple(bids.items()), asks=tuple(asks.items())))
    own: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    version = 0
    seq = 1
    book.microprice(own[Side.BUY], own[Side.SELL], version)  # remembered from the start
    for kind, first, second in steps:
        if kind == "delta":
            seq += 1
            book.apply_delta(delta(seq, bids=first, asks=second))  # type: ignore[arg-type]
        elif kind == "snapshot":
            seq += 1
            book.apply_snapshot(snapshot(seq, bids=first, asks=second))  # type: ignore[arg-type]
        else:
            side, price = first, second
            levels = own[side]  # type: ignore[index]
            levels[price] = levels.get(price, 0) + 3  # type: ignore[index]
            version += 1
        remembered = book.microprice(own[Side.BUY], own[Side.SELL], version)
        afresh = OrderBook()
        afresh.apply_snapshot(
            snapshot(seq=1, bids=tuple(book.levels(Side.BUY)), asks=tuple(book.levels(Side.SELL)))
        )
        assert remembered == afresh.microprice(own[Side.BUY], own[Side.SELL])


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 5),
    events=st.lists(
        st.one_of(
            st.tuples(st.just("delta"), st.integers(0, 12)),
            st.tuples(st.just("heartbeat"), st.integers(0, 12)),
            st.tuples(st.just("snapshot"), st.integers(0, 12)),
        ),
        max_size=30,
    ),
)
def test_sequencing_matches_the_stated_rules(start: int, events: list[tuple[str, int]]) -> None:
    book = OrderBook()
    book.apply_snapshot(snapshot(seq=start))
    synced, last = True, start

    for kind, seq in events:
        if kind == "delta":
            applied = book.apply_delta(delta(seq))
            expect_applied = synced and seq == last + 1
            if synced and seq > last + 1:
                synced = False
            if expect_applied:
                last = seq
            assert applied == expect_applied
        elif kind == "heartbeat":
            ok = book.on_heartbeat(BookHeartbeat(seq=seq, ts_ns=0))
            if synced and seq > last:
                synced = False
            assert ok == synced
        else:
            took = book.apply_snapshot(snapshot(seq=seq))
            expect_took = not synced or seq >= last
            if expect_took:
                synced, last = True, seq
            assert took == expect_took
        assert book.synced == synced
        assert book.seq == last
