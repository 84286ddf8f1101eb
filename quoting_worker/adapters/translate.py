"""Decoded Kafka records (contracts/avro) to the core's events.

Prices and sizes arrive as decimal strings and become integer ticks and lots
with the symbol's Instrument; a price off the tick grid or a size off the lot
grid is refused (`ValueError`), never rounded silently: it means the venue and
the Metadata Service disagree, and the pool must not price off it.
The matching engine's topic carries every account's events; only MMS's own
(client order ids `mm-…`) and funding for member accounts are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from messaging.topics import DELTA, ENGINE, MARK, SNAPSHOT
from quoting_worker.core.ids import PREFIX
from quoting_worker.core.types import (
    BookDelta,
    BookHeartbeat,
    BookSnapshot,
    Event,
    Fill,
    FundingPayment,
    Instrument,
    InstrumentStatus,
    Level,
    MarkPrice,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    PublicTrade,
    Side,
)

MMS_ORDER_PREFIX = f"{PREFIX}-"

_SCALES: dict[Decimal, tuple[int, int]] = {}


def _scale(unit: Decimal) -> tuple[int, int]:
    """(d, u): `unit` is u × 10^-d with u an integer (0.001 → (3, 1), 0.5 → (1, 5))."""
    scale = _SCALES.get(unit)
    if scale is None:
        exponent = unit.as_tuple().exponent
        digits = max(0, -exponent) if isinstance(exponent, int) else 0
        scale = _SCALES[unit] = (digits, int(unit.scaleb(digits)))
    return scale


def _whole(value: str, unit: Decimal, instrument: Instrument, refusal: str) -> int:
    """`value` as a whole number of `unit`s; refused (never rounded) when it is not.

    This runs for every book level, so plain digits ("60000.1") are read with
    integer arithmetic; anything else (a sign, an exponent, more decimals than
    the unit has) takes the exact Decimal path. The message is formatted only
    on refusal."""
    digits, unit_int = _scale(unit)
    whole, _, fraction = value.partition(".")
    if (
        len(fraction) <= digits
        and value.isascii()
        and whole.isdigit()
        and (not fraction or fraction.isdigit())
    ):
        count, rest = divmod(int(whole + fraction.ljust(digits, "0")), unit_int)
    else:
        exact = Decimal(value) / unit
        count, rest = int(exact), exact != exact.to_integral_value()
    if rest:
        raise ValueError(f"{instrument.symbol}: " + refusal.format(value=value, unit=unit))
    return count


def ticks(instrument: Instrument, price: str) -> int:
    return _whole(
        price, instrument.tick_size, instrument, "price {value} is not on the tick {unit}"
    )


def lots(instrument: Instrument, size: str) -> int:
    return _whole(
        size, instrument.lot_size, instrument, "size {value} is not a multiple of the lot {unit}"
    )


def _levels(instrument: Instrument, levels: Iterable[Mapping[str, str]]) -> tuple[Level, ...]:
    return tuple((ticks(instrument, lv["price"]), lots(instrument, lv["size"])) for lv in levels)


def to_event(topic: str, record: Mapping[str, Any], instrument: Instrument) -> Event | None:
    """The core event for one decoded record, or None when it is not the pool's business."""
    if topic == DELTA:
        if record["type"] == "BookHeartbeat":
            return BookHeartbeat(record["seq"], record["ts_ns"])
        return BookDelta(
            record["seq"],
            _levels(instrument, record["bids"]),
            _levels(instrument, record["asks"]),
            record["ts_ns"],
        )
    if topic == SNAPSHOT:
        return BookSnapshot(
            record["seq"],
            _levels(instrument, record["bids"]),
            _levels(instrument, record["asks"]),
            record["ts_ns"],
        )
    if topic == MARK:
        return MarkPrice(Decimal(record["mark_price"]), record["ts_ns"])
    if topic == ENGINE:
        return _engine_event(record, instrument)
    raise ValueError(f"not a topic the quoter consumes: {topic}")


def _engine_event(record: Mapping[str, Any], instrument: Instrument) -> Event | None:
    kind = record["type"]
    ts = record["ts_ns"]
    if kind == "PublicTrade":
        return PublicTrade(ticks(instrument, record["price"]), lots(instrument, record["size"]), ts)
    if kind == "InstrumentStatus":
        return InstrumentStatus(record["status"] != "TRADING", ts)
    if kind == "FundingPayment":
        return FundingPayment(
            record["payment_id"], record["account_id"], Decimal(record["amount"]), ts
        )
    coid = record.get("client_order_id") or ""
    if not coid.startswith(MMS_ORDER_PREFIX):
        return None  # another account's order
    if kind == "Fill":
        return Fill(
            fill_id=record["fill_id"],
            client_order_id=coid,
            side=Side(record["side"]),
            price_ticks=ticks(instrument, record["price"]),
            size_lots=lots(instrument, record["size"]),
            fee=Decimal(record["fee"]),
            ts_ns=ts,
        )
    if kind == "OrderAccepted":
        return OrderAccepted(coid, record["order_id"], ts)
    if kind == "OrderRejected":
        return OrderRejected(coid, record["reason"], ts)
    if kind == "OrderCancelled":
        return OrderCancelled(coid, ts)
    raise ValueError(f"unknown engine event type {kind!r}")
