"""The Order Service stand-in's venue: the contract's request checks over the
matching engine (`simulator.exchange`), the dead-man's switch per (account,
symbol), the admin book, and the counts the admin routes show. No HTTP here
(simulator/order_service.py serves it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from simulator.exchange import Exchange, Order, PlaceOutcome
from simulator.model import INSTRUMENTS, InstrumentRules, Side, is_house_account

ACCOUNT_TYPE = "SYSTEM_MARKET_MAKER"
SIDES = frozenset({"BUY", "SELL"})
DEFAULT_INSTRUMENTS = INSTRUMENTS[:2]  # BTC and ETH; `--instrument` replaces them
BOOK_ACCOUNT = "sim-admin-book"  # rests the best bid and ask set through /admin/book


class BadRequest(Exception):
    """The body does not follow the contract's schema (400)."""


def order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "account_id": order.account_id,
        "user_id": order.user_id,
        "account_type": ACCOUNT_TYPE,
        "symbol": order.symbol,
        "side": order.side,
        "type": "LIMIT",
        "time_in_force": "GTC",
        "post_only": order.post_only,
        "price": format(order.price, "f"),
        "size": format(order.size, "f"),
        "filled_size": format(order.filled_size, "f"),
        "status": order.status,
        "created_at": order.created_ns // 1_000_000,
    }
    if order.reason:
        body["reason"] = order.reason
    return body


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    client_order_id: str
    account_id: str
    user_id: str
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    refusal: tuple[str, str] | None  # order-entry checks the book does not make


class Venue:
    """Order entry over the matching engine: the request checks of the contract,
    dead-man's switches and snapshot requests. No I/O, no clock of its own."""

    def __init__(
        self,
        instruments: Iterable[InstrumentRules] = DEFAULT_INSTRUMENTS,
        *,
        exchange: Exchange | None = None,
        on_snapshot_request: Callable[[str], None] | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self._shared = exchange
        self.on_snapshot_request = on_snapshot_request
        self.reset()

    def reset(self) -> None:
        """A fresh book and ledger (a shared exchange, owned by the simulator, stays)."""
        self.exchange = self._shared or Exchange(self.instruments, forget_finished=is_house_account)
        self.switches: dict[tuple[str, str], float] = {}  # (account, symbol) → monotonic deadline
        self.switch_firings = 0
        self.switch_cancels = 0
        self.snapshot_requests: Counter[str] = Counter()

    # -------------------------------------------------------------- placing

    def place(self, body: dict[str, Any], *, now_ns: int, force_reject: bool) -> PlaceOutcome:
        request = self._parse_order(body, force_reject)
        return self.exchange.place(
            account_id=request.account_id,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            price=request.price,
            size=request.size,
            ts_ns=now_ns,
            user_id=request.user_id,
            refuse=request.refusal,
        )

    @staticmethod
    def _parse_order(body: dict[str, Any], force_reject: bool) -> PlaceRequest:
        strings = {}
        for name in ("client_order_id", "account_id", "user_id", "symbol", "side"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise BadRequest(f"{name} must be a non-empty string")
            strings[name] = value
        side = strings["side"]
        if side not in SIDES:
            raise BadRequest("side must be BUY or SELL")
        for name in ("account_type", "type", "time_in_force"):
            if not isinstance(body.get(name), str):
                raise BadRequest(f"{name} must be a string")
        if body.get("post_only") is not True:
            raise BadRequest("post_only must be true")
        refusal: tuple[str, str] | None = None
        if force_reject:
            refusal = ("VENUE_REJECT", "rejected by the venue (injected)")
        elif body["account_type"] != ACCOUNT_TYPE:
            refusal = ("INVALID_ACCOUNT_TYPE", f"account_type must be {ACCOUNT_TYPE}")
        elif body["type"] != "LIMIT" or body["time_in_force"] != "GTC":
            refusal = ("UNSUPPORTED_ORDER_TYPE", "only LIMIT GTC post-only orders")
        return PlaceRequest(
            client_order_id=strings["client_order_id"],
            account_id=strings["account_id"],
            user_id=strings["user_id"],
            symbol=strings["symbol"],
            side="BUY" if side == "BUY" else "SELL",
            price=decimal_field(body.get("price"), "price"),
            size=decimal_field(body.get("size"), "size"),
            refusal=refusal,
        )

    def set_book(
        self, symbol: str, best_bid: Decimal | None, best_ask: Decimal | None, *, now_ns: int
    ) -> None:
        """The other makers' market moved here: one order of BOOK_ACCOUNT rests at
        each given best price (replacing the last ones), after trading through
        whatever resting orders stood in its way, as a moving market would."""
        self.exchange.cancel_all(account_id=BOOK_ACCOUNT, symbol=symbol, ts_ns=now_ns)
        rules = self.exchange.instruments.get(symbol)
        if rules is None:
            raise BadRequest(f"no instrument {symbol}")
        for side, price in (("BUY", best_bid), ("SELL", best_ask)):
            if price is None:
                continue
            lots = max(rules.min_size, rules.min_notional / price) / rules.lot_size
            size = (lots.to_integral_value(rounding=ROUND_CEILING) + 1) * rules.lot_size
            opposite: Side = "SELL" if side == "BUY" else "BUY"
            size += sum(
                (
                    level_size
                    for level_price, level_size in self.exchange.depth(symbol, opposite)
                    if (level_price <= price if side == "BUY" else level_price >= price)
                ),
                Decimal(0),
            )
            outcome = self.exchange.place(
                account_id=BOOK_ACCOUNT,
                client_order_id=f"book-{symbol}-{side}-{now_ns}",
                symbol=symbol,
                side="BUY" if side == "BUY" else "SELL",
                price=price,
                size=size,
                ts_ns=now_ns,
                post_only=False,
            )
            if outcome.code:
                raise BadRequest(f"best {side.lower()} {price}: {outcome.reason}")

    # -------------------------------------------------------------- the rest

    def get(self, account_id: str, client_order_id: str) -> Order | None:
        return self.exchange.order(account_id, client_order_id)

    def cancel(
        self, account_id: str, client_order_id: str, symbol: str | None, *, now_ns: int
    ) -> Order | None:
        """The order, now CANCELLED; None when no live order has this id (404)."""
        return self.exchange.cancel(
            account_id=account_id, client_order_id=client_order_id, ts_ns=now_ns, symbol=symbol
        )

    def cancel_all(
        self, account_id: str, symbol: str, *, now_ns: int, reason: str = "CANCEL_ALL"
    ) -> list[str]:
        orders = self.exchange.cancel_all(
            account_id=account_id, symbol=symbol, ts_ns=now_ns, reason=reason
        )
        return [order.client_order_id for order in orders]

    def open_orders(self, account_id: str, symbol: str | None) -> list[Order]:
        return self.exchange.open_orders(account_id, symbol)

    def position(self, account_id: str, symbol: str) -> Decimal:
        """The account's signed position on `symbol`, base units (0 if it never traded)."""
        account = self.exchange.accounts.get(account_id)
        return Decimal(0) if account is None else account.positions.get(symbol, Decimal(0))

    def adjust_position(self, account_id: str, symbol: str, delta: Decimal) -> Decimal:
        """Simulator-only: a trade MMS never hears of (a lost fill, a manual trade);
        the account's new position."""
        positions = self.exchange.account(account_id).positions
        positions[symbol] = positions.get(symbol, Decimal(0)) + delta
        return positions[symbol]

    def request_snapshot(self, symbol: str) -> None:
        self.snapshot_requests[symbol] += 1
        if self.on_snapshot_request is not None:
            self.on_snapshot_request(symbol)

    def arm_switch(self, account_id: str, symbol: str, timeout_ms: int, now: float) -> float | None:
        """Arms or renews; 0 disarms. The monotonic deadline, or None when disarmed."""
        if timeout_ms == 0:
            self.switches.pop((account_id, symbol), None)
            return None
        deadline = now + timeout_ms / 1000
        self.switches[(account_id, symbol)] = deadline
        return deadline

    def fire_expired_switches(self, now: float, *, now_ns: int) -> int:
        """Cancels the orders of every switch past its deadline; the orders cancelled."""
        expired = [key for key, deadline in self.switches.items() if deadline <= now]
        cancelled = 0
        for account_id, symbol in expired:
            del self.switches[(account_id, symbol)]
            self.switch_firings += 1
            cancelled += len(
                self.cancel_all(account_id, symbol, now_ns=now_ns, reason="DEAD_MAN_SWITCH")
            )
        self.switch_cancels += cancelled
        return cancelled

    def live_count(self) -> int:
        """Live orders of the venue's clients (the simulator's own accounts left out)."""
        return sum(
            len(self.exchange.open_orders(account))
            for account in self.exchange.accounts
            if not is_house_account(account)
        )

    def duplicate_live_orders(self) -> int:
        """client_order_ids with more than one live order: the venue's worst bug, must be 0."""
        return self.exchange.duplicate_live_orders()


def decimal_field(value: object, name: str) -> Decimal:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadRequest(f"{name} must be a decimal string") from None
    if not number.is_finite():
        raise BadRequest(f"{name} must be finite")
    return number
