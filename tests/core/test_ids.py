"""Client order ids: the SPEC format, never two alike under any clock, and read back."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoting_worker.core.ids import (
    ClientOrderIds,
    ParsedOrderId,
    RecentIds,
    format_order_id,
    parse,
)
from quoting_worker.core.types import Side


def clock_of(values: list[int]) -> tuple[Iterator[int], ClientOrderIds]:
    ticks = iter(values)
    return ticks, ClientOrderIds(lambda: next(ticks))


def test_the_id_follows_the_spec_format() -> None:
    ids = ClientOrderIds(lambda: 1_700_000_000_123_456_789)
    order_id = ids.new(short_id="3f2a9c1e", symbol="BTCUSDT", level=2, side=Side.SELL)
    assert order_id == "mm-3f2a9c1e-BTCUSDT-2-SELL-1700000000123456789"


def test_a_constant_clock_still_gives_strictly_increasing_ids() -> None:
    ids = ClientOrderIds(lambda: 1_000)
    made = [
        ids.new(short_id="abcd1234", symbol="ETHUSDT", level=0, side=Side.BUY) for _ in range(5)
    ]
    assert [parse(order_id).ns for order_id in made] == [1_000, 1_001, 1_002, 1_003, 1_004]
    assert len(set(made)) == 5


def test_a_clock_going_backwards_never_repeats_or_decreases() -> None:
    _, ids = clock_of([5_000, 4_000, 4_000, 5_001, 9_000, 10])
    assert [ids.next_ns() for _ in range(6)] == [5_000, 5_001, 5_002, 5_003, 9_000, 9_001]
    assert ids.last_ns == 9_001


def test_ids_continue_after_a_given_value_after_a_restart() -> None:
    ids = ClientOrderIds(lambda: 0, after_ns=41)
    assert ids.next_ns() == 42


@given(st.lists(st.integers(min_value=-(10**18), max_value=10**19), min_size=1, max_size=50))
def test_any_clock_gives_strictly_increasing_non_negative_nanoseconds(values: list[int]) -> None:
    _, ids = clock_of(values)
    made = [ids.next_ns() for _ in values]
    assert made[0] >= 0
    assert all(later > earlier for earlier, later in itertools.pairwise(made))
    assert all(ns >= clock for ns, clock in zip(made, values, strict=True))


def test_threads_sharing_one_generator_never_get_the_same_id() -> None:
    ids = ClientOrderIds(lambda: 7)
    made: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [ids.next_ns() for _ in range(1_000)]
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 4_000


def test_parse_reads_a_symbol_with_dashes() -> None:
    assert parse("mm-3f2a9c1e-BTCUSDT-PERP-0-BUY-17") == ParsedOrderId(
        short_id="3f2a9c1e", symbol="BTCUSDT-PERP", level=0, side=Side.BUY, ns=17
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mm",
        "xx-3f2a9c1e-BTCUSDT-0-BUY-17",  # not ours
        "mm-3f2a9c1e-0-BUY-17",  # no symbol
        "mm--BTCUSDT-0-BUY-17",  # no short id
        "mm-3f2a9c1e-BTCUSDT-0-HOLD-17",  # no such side
        "mm-3f2a9c1e-BTCUSDT-x-BUY-17",  # level not a number
        "mm-3f2a9c1e-BTCUSDT-01-BUY-17",  # not as written
        "mm-3f2a9c1e-BTCUSDT-0-BUY-+17",
        "mm-3f2a9c1e-BTCUSDT-0-BUY-",
        "mm-3f2a9c1e-BTCUSDT-0-buy-17",
    ],
)
def test_parse_refuses_what_format_would_never_write(text: str) -> None:
    with pytest.raises(ValueError, match="not an MMS client order id"):
        parse(text)


@pytest.mark.parametrize(
    ("short_id", "symbol", "level", "ns"),
    [
        ("ab-cd", "X", 0, 0),
        ("", "X", 0, 0),
        ("ab", "", 0, 0),
        ("ab", "X", -1, 0),
        ("ab", "X", 0, -1),
    ],
)
def test_format_refuses_fields_it_could_not_read_back(
    short_id: str, symbol: str, level: int, ns: int
) -> None:
    with pytest.raises(ValueError, match="must be"):
        format_order_id(short_id=short_id, symbol=symbol, level=level, side=Side.BUY, ns=ns)


short_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="-", exclude_categories=["Cs"]),
    min_size=1,
    max_size=8,
)
symbols = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20
)


@given(
    short_id=short_ids,
    symbol=symbols,
    level=st.integers(min_value=0, max_value=1_000),
    side=st.sampled_from(Side),
    ns=st.integers(min_value=0, max_value=2**64),
)
def test_parse_reads_back_every_id_format_writes(
    short_id: str, symbol: str, level: int, side: Side, ns: int
) -> None:
    order_id = format_order_id(short_id=short_id, symbol=symbol, level=level, side=side, ns=ns)
    assert order_id.startswith(f"mm-{short_id}-")
    assert parse(order_id) == ParsedOrderId(short_id, symbol, level, side, ns)


@given(st.text(max_size=40))
def test_anything_parse_accepts_formats_back_to_itself(text: str) -> None:
    try:
        parsed = parse(text)
    except ValueError:
        return
    assert format_order_id(**parsed._asdict()) == text


def test_recent_ids_remember_the_last_ones_added_and_forget_the_oldest() -> None:
    seen = RecentIds(3)
    for key in ("f-1", "f-2", "f-3", "f-2", "f-4"):  # f-2 again: no new entry
        seen.add(key)
    assert len(seen) == 3
    assert "f-1" not in seen
    assert all(key in seen for key in ("f-2", "f-3", "f-4"))


def test_recent_ids_refuse_a_capacity_that_holds_nothing() -> None:
    with pytest.raises(ValueError, match="capacity must be positive, not 0"):
        RecentIds(0)
