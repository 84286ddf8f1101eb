"""The L2 order book of one symbol, kept from a snapshot and sequenced deltas.

Units: prices are integer ticks, sizes integer lots (see types.py); derived
prices (mid, microprice) are float ticks.

Sequencing (SPEC B.5). Every delta carries the symbol's sequence number and
describes the change since `seq - 1`:

- ``seq == last + 1`` is applied;
- ``seq <= last`` is a stale duplicate (a redelivery): ignored, the book stays
  synced;
- ``seq > last + 1`` is a gap: deltas were lost, so the book is wrong in a way
  no later delta can repair. It is marked unsynced and ignores every delta
  until the next snapshot replaces it.

A heartbeat carries the last published delta's seq; one above ours means the
deltas in between were lost, which is a gap too. While unsynced, `mid_ticks`,
`microprice` and `depth_lots` answer None / 0 so nothing prices off a book
known to be wrong; the engine's order gate reads `synced`.

Every snapshot, delta and heartbeat *received*, applied or not, moves
`last_received_ns`: staleness measures whether the feed is alive, not whether
its content was usable.

Each side is a `SortedDict` price → lots: updating an existing level is a dict
store, adding or removing one is O(log n), and the best price is the first or
last key, read in O(1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from sortedcontainers import SortedDict

from quoting_worker.core.types import (
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    Level,
    Side,
)

__all__ = ["OrderBook"]


class OrderBook:
    """L2 book of one symbol. Not thread-safe; one engine owns it."""

    __slots__ = (
        "_asks",
        "_bids",
        "_memo",
        "_memo_key",
        "_seq",
        "_synced",
        "_top_changes",
        "_watch_ask",
        "_watch_bid",
        "gaps",
        "last_received_ns",
        "stale_deltas",
        "symbol",
    )

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        # Both sides ascending by price: the best bid is the last key, the best ask the first.
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._seq = 0
        self._synced = False
        # 0 until the first message; the staleness check treats that as "never heard".
        self.last_received_ns = 0
        self.gaps = 0
        self.stale_deltas = 0
        # The microprice is remembered until something it read may have changed:
        # a level at or inside the net best prices it found (`_watch_*`; None:
        # every level counts), a snapshot, or the own orders it was given
        # (their version). `_top_changes` counts the first kind.
        self._watch_bid: int | None = None
        self._watch_ask: int | None = None
        self._top_changes = 0
        self._memo_key: tuple[int, int] = (-1, -1)
        self._memo: float | None = None

    # ------------------------------------------------------------ state

    @property
    def synced(self) -> bool:
        """True when the book reflects the feed (a snapshot and every delta since)."""
        return self._synced

    @property
    def seq(self) -> int:
        """Sequence number of the snapshot or delta last applied (0 before any)."""
        return self._seq

    # ------------------------------------------------------------ input

    def apply_snapshot(self, snap: BookSnapshot) -> bool:
        """Replace the book with `snap` and mark it synced.

        A snapshot older than the synced book (snap.seq < seq) arrived late: the
        deltas since have already moved past it, so it is ignored (False).
        While unsynced any snapshot is taken: it is the resync.
        """
        self._touch(snap.ts_ns)
        if self._synced and snap.seq < self._seq:
            return False
        self._bids = SortedDict(_positive(snap.bids))
        self._asks = SortedDict(_positive(snap.asks))
        self._seq = snap.seq
        self._synced = True
        self._top_changes += 1
        return True

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply `delta` if it is the next in sequence; True when applied.

        Each level's size is its new total; 0 (or less) removes the level.
        """
        ts = delta.ts_ns
        if ts > self.last_received_ns:
            self.last_received_ns = ts
        if not self._synced:
            return False
        seq = delta.seq
        if seq != self._seq + 1:
            if seq > self._seq:
                self._synced = False
                self.gaps += 1
            else:
                self.stale_deltas += 1
            return False
        self._seq = seq
        book = self._bids
        watch = self._watch_bid
        for price, size in delta.bids:
            if watch is None or price >= watch:
                self._top_changes += 1
            if size > 0:
                book[price] = size
            elif price in book:
                del book[price]
        book = self._asks
        watch = self._watch_ask
        for price, size in delta.asks:
            if watch is None or price <= watch:
                self._top_changes += 1
            if size > 0:
                book[price] = size
            elif price in book:
                del book[price]
        return True

    def on_heartbeat(self, hb: BookHeartbeat) -> bool:
        """Check `hb` against our seq; True while the book is synced.

        hb.seq above ours means deltas were published that we never got: a gap.
        """
        self._touch(hb.ts_ns)
        if not self._synced:
            return False
        if hb.seq > self._seq:
            self._synced = False
            self.gaps += 1
            return False
        return True

    # ------------------------------------------------------------ reads

    def best_bid(self) -> int | None:
        if not self._bids:
            return None
        price: int = self._bids.peekitem(-1)[0]
        return price

    def best_ask(self) -> int | None:
        if not self._asks:
            return None
        price: int = self._asks.peekitem(0)[0]
        return price

    def best_bid_size(self) -> int | None:
        if not self._bids:
            return None
        size: int = self._bids.peekitem(-1)[1]
        return size

    def best_ask_size(self) -> int | None:
        if not self._asks:
            return None
        size: int = self._asks.peekitem(0)[1]
        return size

    def levels(self, side: Side, n: int | None = None) -> list[Level]:
        """The `n` best levels of `side` (all when None), best first."""
        book = self._bids if side is Side.BUY else self._asks
        prices: Iterable[int] = reversed(book) if side is Side.BUY else book
        out: list[Level] = []
        for price in prices:
            if n is not None and len(out) >= n:
                break
            out.append((price, book[price]))
        return out

    def mid_ticks(self) -> float | None:
        """(best bid + best ask) / 2; None if unsynced, a side is empty or crossed."""
        if not self._synced or not self._bids or not self._asks:
            return None
        bid: int = self._bids.peekitem(-1)[0]
        ask: int = self._asks.peekitem(0)[0]
        if bid >= ask:
            return None
        return (bid + ask) / 2

    def microprice(
        self,
        own_bid: Mapping[int, int] | None = None,
        own_ask: Mapping[int, int] | None = None,
        own_version: int = -1,
    ) -> float | None:
        """Size-weighted mid at the best levels of the book minus MMS's own orders.

        own_bid / own_ask map price (ticks) → lots MMS rests there. A level our
        own orders fill entirely is not a market level, so the next one is the
        best (SPEC B.2: MMS never prices off its own quotes). None if unsynced,
        a side is empty once own size is removed, or the result would be
        crossed or locked.

        Given `own_version` (≥ 0, changed whenever the own orders change), the
        answer is remembered: a delta that touches only levels behind the net
        best prices cannot change it, so it is not worked out again.
        """
        if not self._synced:
            return None
        key = (self._top_changes, own_version)
        if own_version >= 0 and key == self._memo_key:
            return self._memo
        micro = self._microprice(own_bid, own_ask)
        if own_version >= 0:
            self._memo_key, self._memo = key, micro
        return micro

    def forget_microprice(self) -> None:
        """The next `microprice` is worked out afresh (benchmarks and tests)."""
        self._memo_key = (-1, -1)

    def _microprice(
        self, own_bid: Mapping[int, int] | None, own_ask: Mapping[int, int] | None
    ) -> float | None:
        bids = self._bids
        asks = self._asks
        self._watch_bid = self._watch_ask = None  # until both net bests are found
        if not (bids and asks):
            return None
        if own_bid:
            best = _net_best(bids, -1, -1, own_bid)
            if best is None:
                return None
            bid, bid_size = best
        else:
            bid, bid_size = bids.peekitem(-1)
        if own_ask:
            best = _net_best(asks, 0, 1, own_ask)
            if best is None:
                return None
            ask, ask_size = best
        else:
            ask, ask_size = asks.peekitem(0)
        self._watch_bid, self._watch_ask = bid, ask
        if bid >= ask:
            return None
        # Integer products are exact; one rounding, at the division.
        return (bid * ask_size + ask * bid_size) / (bid_size + ask_size)

    def depth_lots(self, side: Side, within_bps: float) -> int:
        """Lots resting on `side` no more than `within_bps` of mid away (0 without a mid)."""
        mid = self.mid_ticks()
        if mid is None:
            return 0
        # Compared as (distance · 10⁴ ≤ mid · bps) so an exact boundary stays inside.
        limit = mid * within_bps
        total = 0
        if side is Side.BUY:
            bids = self._bids
            for price in reversed(bids):
                if (mid - price) * 10_000 > limit:
                    break
                total += bids[price]
        else:
            asks = self._asks
            for price in asks:
                if (price - mid) * 10_000 > limit:
                    break
                total += asks[price]
        return total

    # ------------------------------------------------------------ helpers

    def _touch(self, ts_ns: int) -> None:
        # max(): a late redelivery carries an old stamp and must not age the feed.
        if ts_ns > self.last_received_ns:
            self.last_received_ns = ts_ns

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, seq={self._seq}, synced={self._synced}, "
            f"bid={self.best_bid()}, ask={self.best_ask()})"
        )


def _positive(levels: Iterable[Level]) -> Iterator[Level]:
    return ((price, size) for price, size in levels if size > 0)


def _net_best(
    book: SortedDict, index: int, step: int, own: Mapping[int, int]
) -> tuple[int, int] | None:
    """The first level from `index` (walking by `step`) with size left after our own lots.

    Indexing from the end the book is nearest to is O(1) in a SortedDict, and
    the walk rarely goes past the first level.
    """
    n = len(book)
    while -n <= index < n:
        price, size = book.peekitem(index)
        size -= own.get(price, 0)
        if size > 0:
            return price, size
        index += step
    return None
