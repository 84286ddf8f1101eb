"""The quoting worker's door to the apps (SPEC Part B.4, B.9, B.11): the core's
events and state as the apps' records and back, through their services and
selectors (pools.services for lifecycle changes, trading.services for orders,
fills and funding) and the reads the engine is rebuilt from.

Synchronous functions: the runquoter calls them on its database thread, in
batches. Every write of orders and fills carries the symbol's fencing token
and is refused when the token is stale, so a worker that lost a symbol can
never write for it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import models

from common.actors import SYSTEM, Actor, ActorKind
from common.exceptions import IllegalTransition
from participants.enums import ParticipantState
from pools import events as pool_events
from pools import services as pool_services
from pools.enums import PoolState
from pools.models import PoolConfig, PoolMember
from quoting_worker.core.member import OpenOrder, OrderState, quantize_usdt
from quoting_worker.core.types import (
    Fill,
    FundingPayment,
    Instrument,
    MemberSpec,
    MemberStatus,
    PlaceOrder,
    PoolMode,
    PoolParams,
    Side,
    SimulatedQuote,
)
from trading import services as trading_services
from trading.enums import TERMINAL_ORDER_STATUSES, OrderStatus
from trading.models import MMFill, MMFundingPayment, MMOrder

NS = 1_000_000_000


def quoter_actor(worker_id: str) -> Actor:
    return Actor(worker_id, ActorKind.QUOTER)


def _ts(ts_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns / NS, tz=dt.UTC)


# ---------------------------------------------------------------- reading the pool


@dataclass(frozen=True, slots=True)
class PoolSetup:
    symbol: str
    mode: PoolMode
    enabled: bool
    params: PoolParams
    members: tuple[MemberSpec, ...]
    # Each member account's user id, which every placement carries (read with
    # the members, from the same rows).
    user_ids: Mapping[str, str]


def pool_params(pool: PoolConfig) -> PoolParams:
    return PoolParams.of(vars(pool))


def _member_spec(member: PoolMember) -> MemberSpec:
    return MemberSpec(
        participant_id=str(member.participant_id),
        short_id=member.participant.short_id,
        account_id=member.participant.account_id,
        weight=member.weight,
        max_position_usdt=member.max_position_usdt,
        status=MemberStatus(member.participant.state),
    )


def pool_setups(
    *, symbols: Collection[str] = (), every_enabled: bool = False
) -> dict[str, PoolSetup]:
    """The setups of these pools (and of every enabled one with `every_enabled`),
    unarchived, by symbol: two queries however many pools, since the worker re-reads
    every hosted pool each interval on its one database thread (a query pair per
    pool took most of that thread at 200 pools: bench/load.py, py-spy)."""
    wanted = models.Q(symbol__in=list(symbols))
    if every_enabled:
        wanted |= models.Q(enabled=True)
    pools = {p.pk: p for p in PoolConfig.objects.filter(wanted, archived_at__isnull=True)}
    members: dict[int, list[MemberSpec]] = {pk: [] for pk in pools}
    user_ids: dict[int, dict[str, str]] = {pk: {} for pk in pools}
    for member in (
        PoolMember.objects.filter(pool_id__in=list(pools))
        .exclude(participant__state=ParticipantState.TERMINATED)
        .select_related("participant")
        .order_by("id")
    ):
        members[member.pool_id].append(_member_spec(member))
        user_ids[member.pool_id][member.participant.account_id] = member.participant.user_id
    return {
        pool.symbol: PoolSetup(
            symbol=pool.symbol,
            mode=PoolMode(pool.state),
            enabled=pool.enabled,
            params=pool_params(pool),
            members=tuple(members[pk]),
            user_ids=user_ids[pk],
        )
        for pk, pool in pools.items()
    }


def pool_setup(*, symbol: str) -> PoolSetup | None:
    return pool_setups(symbols=[symbol]).get(symbol)


# ---------------------------------------------------------------- lifecycle through the services


def pool_boot_pause(*, symbol: str, worker_id: str, reason: str) -> PoolMode:
    """At boot or takeover an ACTIVE pool goes PAUSED first (SPEC B.9); HALTED stays."""
    pool = PoolConfig.objects.get(symbol=symbol)
    # SPEC B.9 names the actor "system"; the reason says which worker.
    pool_services.pool_boot_pause(pool=pool, actor=SYSTEM, reason=f"{reason} ({worker_id})")
    return PoolMode(PoolConfig.objects.get(symbol=symbol).state)


def pool_unwind_finished(*, symbol: str, worker_id: str, reason: str) -> bool:
    """The engine ended an unwind (every member flat, or its time limit): the pool
    goes PAUSED through the one service function. False when it had left
    UNWINDING meanwhile (a person paused or killed it)."""
    pool = PoolConfig.objects.get(symbol=symbol)
    done = pool_services.pool_unwind_finished(
        pool=pool, actor=quoter_actor(worker_id), reason=reason
    )
    return done is not None


def pool_halt(*, symbol: str, worker_id: str, trigger: str, detail: str) -> bool:
    """A kill-switch breach: the pool goes HALTED through the one service function.
    False when it already was (the breach is then already on record)."""
    pool = PoolConfig.objects.get(symbol=symbol)
    if pool.state == PoolState.HALTED:
        return False
    try:
        pool_services.pool_halt(
            pool=pool, actor=quoter_actor(worker_id), trigger=trigger, detail=detail
        )
    except IllegalTransition as exc:
        # Halted meanwhile (an emergency kill committed between the read and the
        # lock): on record all the same.
        if exc.extra.get("current_state") == PoolState.HALTED:
            return False
        raise
    return True


# ---------------------------------------------------------------- orders and fills
# The core's events as trading's records (trading/services.py writes them).

OrderChange = trading_services.OrderChange


def orders_record(
    *,
    symbol: str,
    token: int,
    instrument: Instrument,
    placed: Sequence[tuple[PlaceOrder, int]] = (),
    changes: Sequence[OrderChange] = (),
) -> None:
    """New orders (with the ns they were sent) and status changes, in one transaction."""
    trading_services.orders_record(
        symbol=symbol,
        token=token,
        placed=[
            trading_services.NewOrder(
                client_order_id=order.client_order_id,
                participant_id=order.participant_id,
                side=order.side.value,
                level=order.level,
                price=instrument.price(order.price_ticks),
                size=instrument.size(order.size_lots),
                sent_at=_ts(sent_ns),
            )
            for order, sent_ns in placed
        ],
        changes=changes,
    )


def fills_record(
    *,
    symbol: str,
    token: int,
    instrument: Instrument,
    fills: Iterable[tuple[str, Fill]],
    realised: Mapping[str, Decimal] | None = None,
) -> int:
    """Attributed fills, each once (unique venue fill id), with the PnL each
    realised for its member (`realised`, by fill id; quantised to 8 places); the
    orders' filled size follows. Returns how many were new."""
    realised = realised or {}
    return trading_services.fills_record(
        symbol=symbol,
        token=token,
        fills=[
            trading_services.NewFill(
                fill_id=fill.fill_id,
                client_order_id=fill.client_order_id,
                participant_id=pid,
                side=fill.side.value,
                price=instrument.price(fill.price_ticks),
                size=instrument.size(fill.size_lots),
                fee_usdt=fill.fee,
                realized_pnl_usdt=quantize_usdt(realised.get(fill.fill_id, Decimal(0))),
                filled_at=_ts(fill.ts_ns),
            )
            for pid, fill in fills
        ],
    )


def funding_record(
    *, symbol: str, token: int, payments: Iterable[tuple[str, FundingPayment]]
) -> int:
    """Attributed funding payments, each once (unique venue payment id). Returns
    how many were new."""
    return trading_services.funding_record(
        symbol=symbol,
        token=token,
        payments=[
            trading_services.NewFundingPayment(
                payment_id=payment.payment_id,
                participant_id=pid,
                amount_usdt=payment.amount,
                paid_at=_ts(payment.ts_ns),
            )
            for pid, payment in payments
        ],
    )


def simulated_quotes_record(
    *, symbol: str, instrument: Instrument, quotes: Sequence[SimulatedQuote], ts_ns: int
) -> None:
    """Shadow mode's quotes as mm.quote.simulated.v1 events (through the outbox)."""
    pool_events.emit_simulated_quotes(
        symbol=symbol,
        quotes=[
            pool_events.SimulatedQuote(
                participant_id=quote.participant_id,
                side=quote.side.value,
                level=quote.level,
                price=instrument.price(quote.price_ticks),
                size=instrument.size(quote.size_lots),
            )
            for quote in quotes
        ],
        ts_ns=ts_ns,
    )


# ---------------------------------------------------------------- restart


@dataclass(frozen=True, slots=True)
class RestoreData:
    fills: tuple[tuple[str, Fill], ...]  # (participant id, fill)
    open_orders: tuple[tuple[str, OpenOrder], ...]
    funding: tuple[tuple[str, FundingPayment], ...] = ()


def restore_data(*, symbol: str, instrument: Instrument) -> RestoreData:
    """Everything the engine needs to rebuild positions, PnL and its owner map."""
    fills = tuple(
        (
            str(f.participant_id),
            Fill(
                fill_id=f.fill_id,
                client_order_id=f.client_order_id,
                side=Side(f.side),
                price_ticks=instrument.ticks(f.price),
                size_lots=instrument.lots(f.size),
                fee=f.fee_usdt,
                ts_ns=int(f.filled_at.timestamp() * NS),
            ),
        )
        for f in MMFill.objects.filter(symbol=symbol).order_by("filled_at", "id")
    )
    open_orders = tuple(
        (
            str(o.participant_id),
            OpenOrder(
                client_order_id=o.client_order_id,
                side=Side(o.side),
                price_ticks=instrument.ticks(o.price),
                size_lots=instrument.lots(o.size),
                level=o.level,
                remaining_lots=instrument.lots(o.size - o.filled_size),
                # Unacknowledged at the crash: the venue may or may not have it.
                state=OrderState.OPEN if o.status != OrderStatus.PENDING else OrderState.UNKNOWN,
            ),
        )
        for o in MMOrder.objects.filter(symbol=symbol)
        .exclude(status__in=TERMINAL_ORDER_STATUSES)
        .order_by("created_at", "id")
        if o.size > o.filled_size
    )
    funding = tuple(
        (
            str(p.participant_id),
            FundingPayment(
                payment_id=p.payment_id,
                account_id=p.participant.account_id,
                amount=p.amount_usdt,
                ts_ns=int(p.paid_at.timestamp() * NS),
            ),
        )
        for p in MMFundingPayment.objects.filter(symbol=symbol)
        .select_related("participant")
        .order_by("paid_at", "id")
    )
    return RestoreData(fills=fills, open_orders=open_orders, funding=funding)
