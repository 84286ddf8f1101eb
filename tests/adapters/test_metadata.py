"""The Metadata Service client against the simulator, run as a separate process
and reached over real gRPC: exact trading rules, halts, and clear errors when
the service has no answer a pool could quote on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

import grpc
import pytest

from devstack import standins
from messaging._generated import metadata_pb2, metadata_pb2_grpc
from quoting_worker.adapters.metadata import (
    InstrumentNotFound,
    InvalidInstrument,
    MetadataClient,
    MetadataUnavailable,
    instrument_from_message,
)
from quoting_worker.core.types import Instrument
from tests.conftest import ROOT, free_port


@pytest.fixture(scope="module")
def metadata_target() -> Iterator[str]:
    with standins.metadata_service() as metadata:
        yield metadata.target


def _get(target: str, symbol: str, timeout: float = 5.0) -> tuple[Instrument, bool]:
    async def call() -> tuple[Instrument, bool]:
        async with MetadataClient(target, timeout=timeout) as client:
            return await client.get_instrument(symbol)

    return asyncio.run(call())


def _set_status(target: str, symbol: str, status: metadata_pb2.InstrumentStatus) -> None:
    with grpc.insecure_channel(target) as channel:
        admin = metadata_pb2_grpc.MetadataSimulatorAdminStub(channel)
        admin.SetStatus(metadata_pb2.SetStatusRequest(symbol=symbol, status=status), timeout=5)


def test_btc_rules_arrive_as_exact_decimals(metadata_target: str) -> None:
    instrument, halted = _get(metadata_target, "BTCUSDT-PERP")

    assert instrument == Instrument(
        symbol="BTCUSDT-PERP",
        tick_size=Decimal("0.1"),
        lot_size=Decimal("0.001"),
        min_lots=1,
        min_notional=Decimal("5"),
    )
    assert str(instrument.tick_size) == "0.1"  # the exchange's own digits, not a float's
    assert halted is False


def test_every_listed_instrument_is_usable(metadata_target: str) -> None:
    async def listing() -> list[tuple[Instrument, bool]]:
        async with MetadataClient(metadata_target) as client:
            return await client.list_instruments()

    instruments = {instrument.symbol: instrument for instrument, _ in asyncio.run(listing())}

    assert {"BTCUSDT-PERP", "ETHUSDT-PERP", "PEPEUSDT-PERP"} <= set(instruments)
    assert instruments["ETHUSDT-PERP"].tick_size == Decimal("0.01")
    assert instruments["PEPEUSDT-PERP"].price(12_345) == Decimal("0.000012345")


def test_the_stand_in_serves_the_instruments_it_is_given() -> None:
    """`--instrument` replaces the built-in three (a bench's 200 symbols)."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "simulator.metadata_service",
            "--port",
            str(port),
            "--instrument",
            "LT07USDT-PERP:0.5:0.01:10",
        ],
        cwd=ROOT,
    )
    target = f"127.0.0.1:{port}"
    try:
        standins.wait_grpc(target, proc, timeout=30.0)
        instrument, halted = _get(target, "LT07USDT-PERP")
        with pytest.raises(InstrumentNotFound):
            _get(target, "BTCUSDT-PERP")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (instrument.tick_size, instrument.lot_size, instrument.min_notional) == (
        Decimal("0.5"),
        Decimal("0.01"),
        Decimal("10"),
    )
    assert halted is False


def test_a_malformed_instrument_option_is_refused_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator.metadata_service", "--instrument", "BTC:0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--instrument" in result.stderr
    assert "BTC:0.1" in result.stderr


def test_an_unknown_symbol_is_a_clear_error(metadata_target: str) -> None:
    with pytest.raises(InstrumentNotFound, match=r"NOPEUSDT-PERP.*" + metadata_target):
        _get(metadata_target, "NOPEUSDT-PERP")


def test_a_halted_instrument_reports_halted_until_resumed(metadata_target: str) -> None:
    _set_status(metadata_target, "ETHUSDT-PERP", metadata_pb2.INSTRUMENT_STATUS_HALTED)
    try:
        instrument, halted = _get(metadata_target, "ETHUSDT-PERP")
        assert halted is True
        assert instrument.tick_size == Decimal("0.01")  # the rules still come through
    finally:
        _set_status(metadata_target, "ETHUSDT-PERP", metadata_pb2.INSTRUMENT_STATUS_TRADING)

    assert _get(metadata_target, "ETHUSDT-PERP")[1] is False


def test_an_unreachable_service_is_a_timeout_naming_symbol_and_target() -> None:
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()

    with pytest.raises(MetadataUnavailable, match=rf"BTCUSDT-PERP.*{target}.*0\.5 s"):
        _get(target, "BTCUSDT-PERP", timeout=0.5)

    assert time.monotonic() - started < 5  # bounded by the timeout, not hanging


def _message(**fields: object) -> metadata_pb2.Instrument:
    rules: dict[str, object] = {
        "symbol": "BTCUSDT-PERP",
        "tick_size": "0.1",
        "lot_size": "0.001",
        "min_size": "0.005",
        "min_notional": "5",
        "status": metadata_pb2.INSTRUMENT_STATUS_TRADING,
    }
    return metadata_pb2.Instrument(**{**rules, **fields})


def test_min_size_becomes_a_whole_number_of_lots() -> None:
    instrument, _ = instrument_from_message(_message(min_size="0.005"))
    assert instrument.min_lots == 5


@pytest.mark.parametrize(
    "fields",
    [
        {"tick_size": ""},
        {"tick_size": "0"},
        {"tick_size": "-0.1"},
        {"tick_size": "abc"},
        {"tick_size": "NaN"},
        {"lot_size": "Infinity"},
        {"lot_size": "0"},
        {"min_size": "0.0015"},  # not a whole number of 0.001 lots
        {"min_notional": "-1"},
        {"symbol": ""},
    ],
)
def test_a_malformed_answer_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInstrument):
        instrument_from_message(_message(**fields))


def test_an_unknown_status_counts_as_halted() -> None:
    _, halted = instrument_from_message(_message(status=metadata_pb2.INSTRUMENT_STATUS_UNKNOWN))
    assert halted is True


def test_a_pepe_tick_is_taken_exactly() -> None:
    instrument, _ = instrument_from_message(
        _message(symbol="PEPEUSDT-PERP", tick_size="0.000000001", lot_size="1000", min_size="")
    )
    assert instrument.tick_size == Decimal("1e-9")
    assert format(instrument.price(10_006), "f") == "0.000010006"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tick_size": "1e-16384"}, "tick_size .* 16384 decimal places, more than the 16383"),
        ({"lot_size": "1e131072", "min_size": ""}, "lot_size .* 131073 whole digits"),
    ],
)
def test_a_unit_the_price_and_size_columns_cannot_hold_is_refused_naming_it(
    fields: dict[str, object], message: str
) -> None:
    """Prices and sizes are stored at the instrument's precision: a tick or lot
    finer (or wider) than PostgreSQL's numeric holds is refused at the door,
    never rounded in the database."""
    with pytest.raises(InvalidInstrument, match=f"BTCUSDT-PERP: {message}"):
        instrument_from_message(_message(**fields))
