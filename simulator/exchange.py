"""TradeX's matching engine and account ledger, for the simulator.

One price-time priority limit order book per instrument, the orders every
account ever sent (queryable forever, idempotent by (account_id,
client_order_id)), and a ledger per account. Pure Python: no I/O, no threads,
no clock of its own (every call takes `ts_ns`), deterministic.

Units: prices in USDT on the instrument's tick grid, sizes in base units on
its lot grid; cash, fees and funding in USDT, quantized to 1e-8 (half-even).
A maker trades at its resting price; the fee is notional × rate, so a negative
maker rate is a rebate paid to the maker.

Ledger identities, which hold after every call:
    Σ over accounts of positions[symbol] == 0 for every symbol
    Σ cash == Σ funding − Σ fees
(the notional a buyer pays is the notional the seller receives; funding is not
exactly zero-sum because each payment is rounded on its own: the exchange
absorbs the rounding.)

Events go to `on_event` synchronously, in the order things happen, each after
the state change it reports; a listener must not call back into the exchange.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import islice

from simulator.book import Book
from simulator.model import (
    ExchangeEvent,
    Filled,
    FundingPaid,
    InstrumentRules,
    LevelChanged,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Side,
    StatusChanged,
    Traded,
)

OPEN = "OPEN"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"
LIVE_STATUSES = frozenset({OPEN, PARTIALLY_FILLED})

DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
SELF_TRADE_PREVENTED = "SELF_TRADE_PREVENTED"
IOC = "IOC"  # the unfilled rest of a `take`, which never rests

MONEY_QUANTUM = Decimal("0.00000001")
# Finished orders of accounts outside the simulator's own flow kept for replays
# and queries (a venue answers for recent orders only), newest first out last.
FINISHED_KEPT = 50_000
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fees:
    maker: Decimal = Decimal("-0.0001")  # rate on notional; negative = rebate paid to the maker
    taker: Decimal = Decimal("0.0005")


DEFAULT_FEES = Fees()


@dataclass(slots=True)
class Order:
    """An order the exchange knows, in any status; kept forever for queries."""

    order_id: str
    client_order_id: str
    account_id: str
    user_id: str
    symbol: str
    side: Side
    price: Decimal  # a `take` without a limit price records 0
    size: Decimal
    filled_size: Decimal
    status: str  # OPEN, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED
    reason: str  # the reject or cancel code, "" otherwise
    created_ns: int
    post_only: bool = True

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled_size


@dataclass(frozen=True, slots=True)
class PlaceOutcome:
    order: Order | None
    code: str  # "" accepted; else the reject code, or DUPLICATE_CLIENT_ORDER_ID
    reason: str  # human-readable
    replayed: bool = False  # the same order again: the original, and nothing happened


@dataclass(slots=True)
class Account:
    cash: Decimal = ZERO  # USDT: − price·size on buys, + on sells, − fees, + funding
    fees: Decimal = ZERO  # total fees charged (rebates make it smaller)
    funding: Decimal = ZERO  # total funding received (negative = paid)
    positions: dict[str, Decimal] = field(default_factory=dict)  # symbol → signed base units
    volume: dict[str, Decimal] = field(default_factory=dict)  # symbol → traded notional
    trades: dict[str, int] = field(default_factory=dict)  # symbol → fill count


# ---------------------------------------------------------------- the exchange


class Exchange:
    def __init__(
        self,
        instruments: Iterable[InstrumentRules],
        *,
        fees: Fees = DEFAULT_FEES,
        on_event: Callable[[ExchangeEvent], None] | None = None,
        forget_finished: Callable[[str], bool] | None = None,
        order_id_prefix: str = "sim-",
        trade_id_prefix: str = "",
        finished_kept: int = FINISHED_KEPT,
    ) -> None:
        """`forget_finished(account_id)`: accounts whose orders are dropped once they
        are final (the simulator's own flow, which nobody queries): a day of
        background takers would otherwise keep millions of orders. Every other
        account's finished orders are kept for replays and queries, the newest
        `finished_kept` of them (as a venue answers for recent orders only):
        MMS re-quoting for hours would otherwise grow the venue without bound.
        `order_id_prefix`: what the venue's order ids start with; a venue process
        gives each run its own, so ids never repeat across restarts (as a real
        venue's do not: MMS keeps them unique). `trade_id_prefix`: the same for
        trade and fill ids: MMS drops a fill whose id it has stored before as a
        redelivery, so a venue restarted under a kept database must never reuse
        one (`make run` lost most fills to this until the prefix was given)."""
        self.instruments: dict[str, InstrumentRules] = {
            rules.symbol: rules for rules in instruments
        }
        self.fees = fees
        self.on_event = on_event
        self._forget = forget_finished
        self.accounts: dict[str, Account] = {}
        self._books = {symbol: Book() for symbol in self.instruments}
        self._halted: set[str] = set()
        self._orders: dict[tuple[str, str], Order] = {}  # (account_id, client_order_id) → order
        self._live: dict[str, Order] = {}  # order_id → live order, in creation order
        self._live_by_account: dict[str, dict[str, Order]] = {}
        self._reject_reasons: dict[str, str] = {}  # order_id → the text a replay repeats
        self._finished: deque[Order] = deque()  # kept finished orders, oldest first
        self._finished_kept = finished_kept
        self._funded: set[tuple[str, int]] = set()
        self._order_id_prefix = order_id_prefix
        self._trade_id_prefix = trade_id_prefix
        self._order_seq = 0
        self._trade_seq = 0
        self._take_seq = 0

    def account(self, account_id: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = Account()
        return account

    # -------------------------------------------------------------- order entry

    def place(
        self,
        *,
        account_id: str,
        client_order_id: str,
        symbol: str,
        side: Side,
        price: Decimal,
        size: Decimal,
        ts_ns: int,
        user_id: str = "",
        post_only: bool = True,
        refuse: tuple[str, str] | None = None,
    ) -> PlaceOutcome:
        """A limit order (post-only unless told). `refuse`: (code, reason) decided
        before the book (an order-entry check, an injected reject): a new order is
        recorded REJECTED with it; a replay answers as usual."""
        self.account(account_id)
        existing = self._orders.get((account_id, client_order_id))
        if existing is not None:
            request = (user_id, symbol, side, price, size, post_only)
            if request != _request(existing):
                return PlaceOutcome(
                    existing,
                    DUPLICATE_CLIENT_ORDER_ID,
                    "this client_order_id was used for a different order",
                )
            if existing.status == REJECTED:
                reason = self._reject_reasons[existing.order_id]
                return PlaceOutcome(existing, existing.reason, reason, replayed=True)
            return PlaceOutcome(existing, "", "", replayed=True)

        order = self._record(
            account_id, client_order_id, user_id, symbol, side, price, size, ts_ns, post_only
        )
        code, reason = refuse or self._refusal(order)
        if code:
            order.status, order.reason = REJECTED, code
            self._reject_reasons[order.order_id] = reason
            self._maybe_forget(order)
            self._emit(OrderRejected(client_order_id, account_id, symbol, code, ts_ns))
            return PlaceOutcome(order, code, reason)

        self._live[order.order_id] = order
        self._live_by_account.setdefault(account_id, {})[order.order_id] = order
        self._emit(OrderAccepted(client_order_id, order.order_id, account_id, symbol, ts_ns))
        if not post_only:
            _, self_trade = self._match(order, price, ts_ns)
            if self_trade:
                self._end(order, CANCELLED, SELF_TRADE_PREVENTED)
                self._emit(self._cancelled(order, ts_ns))
                return PlaceOutcome(order, "", "")
            if not order.live:
                return PlaceOutcome(order, "", "")  # filled as a taker
        total = self._books[symbol].add(order)
        self._emit(LevelChanged(symbol, side, price, total, ts_ns))
        return PlaceOutcome(order, "", "")

    def take(
        self,
        *,
        account_id: str,
        symbol: str,
        side: Side,
        size: Decimal,
        limit_price: Decimal | None,
        ts_ns: int,
    ) -> list[Filled]:
        """An immediate-or-cancel taker: trades up to `size` at prices no worse than
        `limit_price` (None: any), never rests; the taker's fills. Raises KeyError for
        an unknown symbol and ValueError for a size off the lot grid."""
        rules = self.instruments[symbol]
        if not _on_grid(size, rules.lot_size):
            raise ValueError(f"size must be a positive multiple of {rules.lot_size}")
        if symbol in self._halted:
            return []
        self.account(account_id)
        client_order_id = self._new_take_id(account_id)
        price = ZERO if limit_price is None else limit_price
        order = self._record(
            account_id, client_order_id, "", symbol, side, price, size, ts_ns, post_only=False
        )
        fills, self_trade = self._match(order, limit_price, ts_ns)
        if order.remaining > 0:
            self._end(order, CANCELLED, SELF_TRADE_PREVENTED if self_trade else IOC)
        else:
            self._maybe_forget(order)
        return fills

    def cancel(
        self,
        *,
        account_id: str,
        client_order_id: str,
        ts_ns: int,
        symbol: str | None = None,
        reason: str = "USER",
    ) -> Order | None:
        """The order, now CANCELLED; None when no live order has this id in this
        account (or it is for another symbol)."""
        order = self._orders.get((account_id, client_order_id))
        if order is None or not order.live or (symbol and order.symbol != symbol):
            return None
        self._cancel_resting(order, reason, ts_ns)
        return order

    def cancel_all(
        self, *, account_id: str, symbol: str, ts_ns: int, reason: str = "CANCEL_ALL"
    ) -> list[Order]:
        """Every live order of the account in `symbol`, oldest first, now CANCELLED."""
        orders = self.open_orders(account_id, symbol)
        for order in orders:
            self._cancel_resting(order, reason, ts_ns)
        return orders

    # -------------------------------------------------------------- queries

    def order(self, account_id: str, client_order_id: str) -> Order | None:
        return self._orders.get((account_id, client_order_id))

    def open_orders(self, account_id: str, symbol: str | None = None) -> list[Order]:
        """Live orders, oldest first."""
        live = self._live_by_account.get(account_id, {})
        return [order for order in live.values() if symbol is None or order.symbol == symbol]

    def best_bid(self, symbol: str) -> Decimal | None:
        return self._best(symbol, "BUY")

    def best_ask(self, symbol: str) -> Decimal | None:
        return self._best(symbol, "SELL")

    def depth(
        self, symbol: str, side: Side, levels: int | None = None
    ) -> list[tuple[Decimal, Decimal]]:
        """(price, total resting size) per level, best first."""
        book = self._books.get(symbol)
        if book is None:
            return []
        return [(price, level.total) for price, level in islice(book.levels(side), levels)]

    def halted(self, symbol: str) -> bool:
        return symbol in self._halted

    def order_count(self) -> int:
        """Every order ever recorded (takes included)."""
        return len(self._orders)

    def live_count(self) -> int:
        return len(self._live)

    def duplicate_live_orders(self) -> int:
        """(account, client_order_id)s with more than one live order: must stay 0."""
        counts = Counter((o.account_id, o.client_order_id) for o in self._live.values())
        return sum(1 for n in counts.values() if n > 1)

    # -------------------------------------------------------------- operator actions

    def set_halted(self, symbol: str, halted: bool, ts_ns: int) -> None:
        """Resting orders stay (and may be cancelled); KeyError for an unknown symbol."""
        if symbol not in self.instruments:
            raise KeyError(symbol)
        if halted == (symbol in self._halted):
            return
        if halted:
            self._halted.add(symbol)
        else:
            self._halted.discard(symbol)
        self._emit(StatusChanged(symbol, halted, ts_ns))

    def pay_funding(
        self, symbol: str, *, rate: Decimal, mark: Decimal, ts_ns: int
    ) -> list[FundingPaid]:
        """Funding for every account holding `symbol`: −position·mark·rate (longs pay when
        rate > 0). One payment per (symbol, ts_ns): ValueError on a second."""
        if symbol not in self.instruments:
            raise KeyError(symbol)
        if (symbol, ts_ns) in self._funded:
            raise ValueError(f"funding for {symbol} at {ts_ns} was already paid")
        self._funded.add((symbol, ts_ns))
        payments = []
        for account_id, account in list(self.accounts.items()):
            position = account.positions.get(symbol, ZERO)
            if position == 0:
                continue
            amount = _money(-position * mark * rate)
            account.cash += amount
            account.funding += amount
            payment = FundingPaid(
                f"fund-{symbol}-{ts_ns}-{account_id}", account_id, symbol, amount, rate, ts_ns
            )
            payments.append(payment)
            self._emit(payment)
        return payments

    # -------------------------------------------------------------- internals

    def _record(
        self,
        account_id: str,
        client_order_id: str,
        user_id: str,
        symbol: str,
        side: Side,
        price: Decimal,
        size: Decimal,
        ts_ns: int,
        post_only: bool,
    ) -> Order:
        """A new OPEN order with the next order id, kept under (account, client id)."""
        order = Order(
            order_id=self._new_order_id(),
            client_order_id=client_order_id,
            account_id=account_id,
            user_id=user_id,
            symbol=symbol,
            side=side,
            price=price,
            size=size,
            filled_size=ZERO,
            status=OPEN,
            reason="",
            created_ns=ts_ns,
            post_only=post_only,
        )
        self._orders[(account_id, client_order_id)] = order
        return order

    def _emit(self, event: ExchangeEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _new_order_id(self) -> str:
        self._order_seq += 1
        return f"{self._order_id_prefix}{self._order_seq:010d}"

    def _new_take_id(self, account_id: str) -> str:
        while True:  # skips an id a client happened to use in this account
            self._take_seq += 1
            client_order_id = f"take-{self._take_seq}"
            if (account_id, client_order_id) not in self._orders:
                return client_order_id

    def _best(self, symbol: str, side: Side) -> Decimal | None:
        book = self._books.get(symbol)
        best = None if book is None else book.best(side)
        return None if best is None else best[0]

    def _refusal(self, order: Order) -> tuple[str, str]:
        """("", "") when the order may be accepted, else (code, reason)."""
        rules = self.instruments.get(order.symbol)
        if rules is None:
            return "UNKNOWN_SYMBOL", f"no instrument {order.symbol}"
        if order.symbol in self._halted:
            return "INSTRUMENT_HALTED", f"{order.symbol} is halted"
        if not _on_grid(order.price, rules.tick_size):
            return "INVALID_TICK", f"price must be a positive multiple of {rules.tick_size}"
        if not _on_grid(order.size, rules.lot_size):
            return "INVALID_LOT", f"size must be a positive multiple of {rules.lot_size}"
        if order.size < rules.min_size:
            return "BELOW_MIN_SIZE", f"size must be at least {rules.min_size}"
        if order.price * order.size < rules.min_notional:
            return "BELOW_MIN_NOTIONAL", f"price × size must be at least {rules.min_notional}"
        if order.post_only:
            bid, ask = self.best_bid(order.symbol), self.best_ask(order.symbol)
            if order.side == "BUY" and ask is not None and order.price >= ask:
                return "POST_ONLY_WOULD_CROSS", f"a bid at {order.price} would take the ask {ask}"
            if order.side == "SELL" and bid is not None and order.price <= bid:
                return "POST_ONLY_WOULD_CROSS", f"an ask at {order.price} would take the bid {bid}"
        return "", ""

    def _match(self, taker: Order, limit: Decimal | None, ts_ns: int) -> tuple[list[Filled], bool]:
        """Trades `taker` against the other side, best price first, then oldest first,
        while it crosses `limit`; (the taker's fills, whether it stopped at one of its
        own account's orders)."""
        book = self._books[taker.symbol]
        maker_side: Side = "SELL" if taker.side == "BUY" else "BUY"
        fills: list[Filled] = []
        while taker.remaining > 0:
            best = book.best(maker_side)
            if best is None:
                break
            price, level = best
            if limit is not None and (price > limit if taker.side == "BUY" else price < limit):
                break
            maker = next(iter(level.orders.values()))
            if maker.account_id == taker.account_id:
                return fills, True
            size = min(taker.remaining, maker.remaining)
            self._trade_seq += 1
            trade_id = f"{self._trade_id_prefix}T{self._trade_seq}"
            maker_fill = self._fill(maker, f"{trade_id}-M", price, size, "MAKER", ts_ns)
            taker_fill = self._fill(taker, f"{trade_id}-T", price, size, "TAKER", ts_ns)
            total = book.remove(maker, size)
            self._emit(maker_fill)
            self._emit(taker_fill)
            self._emit(Traded(trade_id, taker.symbol, price, size, taker.side, ts_ns))
            self._emit(LevelChanged(taker.symbol, maker_side, price, total, ts_ns))
            fills.append(taker_fill)
        return fills, False

    def _fill(
        self,
        order: Order,
        fill_id: str,
        price: Decimal,
        size: Decimal,
        liquidity: Liquidity,
        ts_ns: int,
    ) -> Filled:
        """Books one side of a trade on the order and its account."""
        order.filled_size += size
        if order.remaining > 0:
            order.status = PARTIALLY_FILLED
        else:
            self._end(order, FILLED, "")
        notional = price * size
        fee = _money(notional * (self.fees.maker if liquidity == "MAKER" else self.fees.taker))
        account = self.account(order.account_id)
        account.cash += (-notional if order.side == "BUY" else notional) - fee
        account.fees += fee
        symbol = order.symbol
        signed = size if order.side == "BUY" else -size
        account.positions[symbol] = account.positions.get(symbol, ZERO) + signed
        account.volume[symbol] = account.volume.get(symbol, ZERO) + notional
        account.trades[symbol] = account.trades.get(symbol, 0) + 1
        return Filled(
            fill_id,
            order.order_id,
            order.client_order_id,
            order.account_id,
            symbol,
            order.side,
            price,
            size,
            fee,
            liquidity,
            ts_ns,
        )

    def _end(self, order: Order, status: str, reason: str) -> None:
        order.status, order.reason = status, reason
        self._live.pop(order.order_id, None)
        self._live_by_account.get(order.account_id, {}).pop(order.order_id, None)
        self._maybe_forget(order)

    def _maybe_forget(self, order: Order) -> None:
        if self._forget is not None and self._forget(order.account_id):
            self._drop(order)
            return
        self._finished.append(order)
        while len(self._finished) > self._finished_kept:
            self._drop(self._finished.popleft())

    def _drop(self, order: Order) -> None:
        self._orders.pop((order.account_id, order.client_order_id), None)
        self._reject_reasons.pop(order.order_id, None)

    def _cancel_resting(self, order: Order, reason: str, ts_ns: int) -> None:
        remaining = order.remaining
        self._end(order, CANCELLED, reason)
        total = self._books[order.symbol].remove(order, remaining)
        self._emit(self._cancelled(order, ts_ns))
        self._emit(LevelChanged(order.symbol, order.side, order.price, total, ts_ns))

    @staticmethod
    def _cancelled(order: Order, ts_ns: int) -> OrderCancelled:
        return OrderCancelled(
            order.client_order_id,
            order.order_id,
            order.account_id,
            order.symbol,
            order.reason,
            ts_ns,
        )


def _request(order: Order) -> tuple[str, str, Side, Decimal, Decimal, bool]:
    """What makes a placement the same order again (Decimal equality: 0.0010 == 0.001)."""
    return (order.user_id, order.symbol, order.side, order.price, order.size, order.post_only)


def _on_grid(value: Decimal, step: Decimal) -> bool:
    """`value` is a positive whole multiple of `step`."""
    try:
        return value > 0 and value % step == 0
    except InvalidOperation:  # NaN, infinity, or a quotient too large for the precision
        return False


def _money(amount: Decimal) -> Decimal:
    # `+ ZERO` turns a rounded −0E-8 into 0E-8.
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN) + ZERO
