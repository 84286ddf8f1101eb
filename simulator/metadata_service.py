"""Metadata Service stand-in: TradeX's instrument trading rules over gRPC.

Serves contracts/metadata.proto (tradex.metadata.v1):

    MetadataService.GetInstrument({symbol})  -> Instrument | NOT_FOUND
    MetadataService.ListInstruments({})      -> {instruments}
    MetadataSimulatorAdmin.SetStatus({symbol, status}) -> Instrument | NOT_FOUND
        (simulator only: halts or resumes an instrument; the real service has no such call)

Run:  python -m simulator.metadata_service --port 50051 [--instrument SYM:TICK:LOT:MIN_NOTIONAL]
Halt: python -m simulator.metadata_service set-status --target 127.0.0.1:50051 \\
          --symbol BTCUSDT-PERP --status HALTED
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

import grpc

from messaging._generated import metadata_pb2, metadata_pb2_grpc
from simulator.model import INSTRUMENTS, InstrumentRules
from telemetry import logs

# Status names as a person types them on the command line.
STATUS_BY_NAME = {
    "TRADING": metadata_pb2.INSTRUMENT_STATUS_TRADING,
    "HALTED": metadata_pb2.INSTRUMENT_STATUS_HALTED,
    "UNKNOWN": metadata_pb2.INSTRUMENT_STATUS_UNKNOWN,
}


class InstrumentBook:
    """The simulator's state: every instrument and its current status."""

    def __init__(self, instruments: tuple[InstrumentRules, ...] = INSTRUMENTS) -> None:
        self._rules = {rules.symbol: rules for rules in instruments}
        self._status = dict.fromkeys(self._rules, metadata_pb2.INSTRUMENT_STATUS_TRADING)

    def get(self, symbol: str) -> metadata_pb2.Instrument | None:
        rules = self._rules.get(symbol)
        if rules is None:
            return None
        return metadata_pb2.Instrument(
            symbol=rules.symbol,
            tick_size=format(rules.tick_size, "f"),
            lot_size=format(rules.lot_size, "f"),
            min_size=format(rules.min_size, "f"),
            min_notional=format(rules.min_notional, "f"),
            status=self._status[symbol],
        )

    def all(self) -> list[metadata_pb2.Instrument]:
        return [
            instrument for symbol in self._rules if (instrument := self.get(symbol)) is not None
        ]

    def set_status(
        self, symbol: str, status: metadata_pb2.InstrumentStatus
    ) -> metadata_pb2.Instrument | None:
        if symbol not in self._rules:
            return None
        self._status[symbol] = status
        return self.get(symbol)


class MetadataServicer(metadata_pb2_grpc.MetadataServiceServicer):
    def __init__(self, book: InstrumentBook) -> None:
        self._book = book

    async def GetInstrument(  # the gRPC method names
        self, request: metadata_pb2.GetInstrumentRequest, context: grpc.aio.ServicerContext
    ) -> metadata_pb2.Instrument:
        instrument = self._book.get(request.symbol)
        if instrument is None:
            return _not_found(context, request.symbol)
        return instrument

    async def ListInstruments(
        self, request: metadata_pb2.ListInstrumentsRequest, context: grpc.aio.ServicerContext
    ) -> metadata_pb2.ListInstrumentsResponse:
        return metadata_pb2.ListInstrumentsResponse(instruments=self._book.all())


class AdminServicer(metadata_pb2_grpc.MetadataSimulatorAdminServicer):
    def __init__(self, book: InstrumentBook) -> None:
        self._book = book

    async def SetStatus(
        self, request: metadata_pb2.SetStatusRequest, context: grpc.aio.ServicerContext
    ) -> metadata_pb2.Instrument:
        instrument = self._book.set_status(request.symbol, request.status)
        if instrument is None:
            return _not_found(context, request.symbol)
        return instrument


def _not_found(context: grpc.aio.ServicerContext, symbol: str) -> metadata_pb2.Instrument:
    context.set_code(grpc.StatusCode.NOT_FOUND)
    context.set_details(f"unknown symbol {symbol!r}")
    return metadata_pb2.Instrument()


async def serve(host: str, port: int, instruments: tuple[InstrumentRules, ...]) -> None:
    book = InstrumentBook(instruments)
    server = grpc.aio.server()
    metadata_pb2_grpc.add_MetadataServiceServicer_to_server(MetadataServicer(book), server)
    metadata_pb2_grpc.add_MetadataSimulatorAdminServicer_to_server(AdminServicer(book), server)
    address = f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"metadata simulator: cannot listen on {address}")
    await server.start()
    print(f"metadata simulator: serving on {address}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


async def set_status(target: str, symbol: str, status: str, deadline_seconds: float) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = metadata_pb2_grpc.MetadataSimulatorAdminStub(channel)
        request = metadata_pb2.SetStatusRequest(symbol=symbol, status=STATUS_BY_NAME[status])
        instrument = await stub.SetStatus(request, timeout=deadline_seconds)
    print(f"{instrument.symbol}: {metadata_pb2.InstrumentStatus.Name(instrument.status)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument(
        "--instrument",
        action="append",
        type=InstrumentRules.parse,
        help="SYMBOL:TICK:LOT:MIN_NOTIONAL (repeatable; replaces the built-in three)",
    )
    commands = parser.add_subparsers(dest="command")
    admin = commands.add_parser("set-status", help="halt or resume an instrument")
    admin.add_argument("--target", default="127.0.0.1:50051")
    admin.add_argument("--symbol", required=True)
    admin.add_argument("--status", required=True, choices=sorted(STATUS_BY_NAME))
    admin.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    if args.command == "set-status":
        asyncio.run(set_status(args.target, args.symbol, args.status, args.timeout))
        return
    logs.setup(os.environ.get("LOG_FORMAT", "json"), os.environ.get("LOG_LEVEL", "INFO"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, tuple(args.instrument or INSTRUMENTS)))


if __name__ == "__main__":
    main()
