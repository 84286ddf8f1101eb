"""Metadata Service client: an instrument's tick size, lot size and status over gRPC.

A pool quotes only after its instrument's rules came from here and passed the
checks below (SPEC Part A, "Safety guarantees"): every failure is an exception
naming the symbol and the service's address, never a default a pool could
quote on. Decimal quantities arrive as strings and stay exact Decimals.

Contract: contracts/metadata.proto; stubs from scripts/gen_protos.sh.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from types import TracebackType

import grpc

from common.fields import unstorable
from messaging._generated import metadata_pb2, metadata_pb2_grpc
from quoting_worker.core.types import Instrument

DEFAULT_TIMEOUT_SECONDS = 5.0


class MetadataError(Exception):
    """The Metadata Service gave no usable answer: the pool must not quote."""


class InstrumentNotFound(MetadataError):
    pass


class MetadataUnavailable(MetadataError):
    """No answer within the timeout (service down, unreachable or too slow)."""


class InvalidInstrument(MetadataError):
    """The answer's trading rules are malformed or inconsistent."""


class MetadataClient:
    """Async client; create and use it inside the event loop that runs the worker.

    `timeout` bounds each call, connection included: the call waits for the
    channel to become ready, so a service restarting within the timeout is not
    an error, and one that stays away is a MetadataUnavailable.
    """

    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.target = target
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: metadata_pb2_grpc.MetadataServiceStub | None = None

    async def get_instrument(self, symbol: str) -> tuple[Instrument, bool]:
        """The instrument's rules and whether it is halted (anything but TRADING)."""
        request = metadata_pb2.GetInstrumentRequest(symbol=symbol)
        try:
            answer = await self._service().GetInstrument(
                request, timeout=self.timeout, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, f"GetInstrument({symbol})") from exc
        if answer.symbol != symbol:
            raise InvalidInstrument(
                f"{symbol}: the Metadata Service at {self.target} answered for {answer.symbol!r}"
            )
        return instrument_from_message(answer, source=self.target)

    async def list_instruments(self) -> list[tuple[Instrument, bool]]:
        """Every instrument the service lists, each checked as in get_instrument."""
        try:
            answer = await self._service().ListInstruments(
                metadata_pb2.ListInstrumentsRequest(), timeout=self.timeout, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, "ListInstruments") from exc
        return [instrument_from_message(item, source=self.target) for item in answer.instruments]

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    async def __aenter__(self) -> MetadataClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _service(self) -> metadata_pb2_grpc.MetadataServiceStub:
        # Made on first use, so the channel belongs to the loop that uses it.
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.target)
            self._stub = metadata_pb2_grpc.MetadataServiceStub(self._channel)
        return self._stub

    def _error(self, exc: grpc.aio.AioRpcError, call: str) -> MetadataError:
        code, details = exc.code(), exc.details()
        where = f"the Metadata Service at {self.target}"
        if code == grpc.StatusCode.NOT_FOUND:
            return InstrumentNotFound(f"{call}: {where} has no such instrument ({details})")
        if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
            return MetadataUnavailable(
                f"{call}: {where} did not answer within {self.timeout} s ({code.name}: {details})"
            )
        return MetadataError(f"{call}: {where} failed with {code.name}: {details}")


def instrument_from_message(
    message: metadata_pb2.Instrument, *, source: str = "the Metadata Service"
) -> tuple[Instrument, bool]:
    """Checks and converts one answer: (rules, halted).

    tick_size and lot_size must be positive decimals that the price and size
    columns hold exactly (common/fields.py); min_size, when given, a
    positive whole number of lots (min_lots = min_size / lot_size, exactly);
    min_notional, when given, a decimal ≥ 0. An UNKNOWN status counts as halted:
    a pool does not quote an instrument whose state nobody vouches for.
    """
    symbol = message.symbol
    if not symbol:
        raise InvalidInstrument(f"{source} answered an instrument without a symbol")

    def decimal_field(name: str, value: str) -> Decimal:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise InvalidInstrument(
                f"{symbol}: {name} {value!r} from {source} is not a decimal"
            ) from None
        if not number.is_finite():
            raise InvalidInstrument(f"{symbol}: {name} {value!r} from {source} is not finite")
        return number

    tick_size = decimal_field("tick_size", message.tick_size)
    lot_size = decimal_field("lot_size", message.lot_size)
    for name, value in (("tick_size", tick_size), ("lot_size", lot_size)):
        if value <= 0:
            raise InvalidInstrument(f"{symbol}: {name} {value} from {source} must be > 0")
        # Prices and sizes are stored at the instrument's precision (SPEC Part B.14):
        # a unit mm_orders and mm_fills cannot hold exactly is refused here, not
        # rounded there.
        why = unstorable(value)
        if why is not None:
            raise InvalidInstrument(
                f"{symbol}: {name} from {source} cannot be stored exactly in mm_orders "
                f"and mm_fills: {why}"
            )

    min_lots = 1
    if message.min_size:
        min_size = decimal_field("min_size", message.min_size)
        try:
            lots, remainder = divmod(min_size, lot_size)
        except InvalidOperation:  # a quotient beyond the context's precision
            lots, remainder = Decimal(0), Decimal(1)
        if min_size <= 0 or remainder != 0:
            raise InvalidInstrument(
                f"{symbol}: min_size {min_size} from {source} is not a positive whole number "
                f"of lots of {lot_size}"
            )
        min_lots = int(lots)

    min_notional = Decimal(0)
    if message.min_notional:
        min_notional = decimal_field("min_notional", message.min_notional)
        if min_notional < 0:
            raise InvalidInstrument(f"{symbol}: min_notional {min_notional} from {source} is < 0")

    instrument = Instrument(
        symbol=symbol,
        tick_size=tick_size,
        lot_size=lot_size,
        min_lots=min_lots,
        min_notional=min_notional,
    )
    return instrument, message.status != metadata_pb2.INSTRUMENT_STATUS_TRADING
