"""Outbox payloads for the pool topics (SPEC Part A "Kafka", Part B.9)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from common.actors import Actor
from common.services import outbox_enqueue
from messaging.topics import QUOTE_SIMULATED as QUOTE_SIMULATED_TOPIC
from messaging.topics import RISK_TRIGGERED as RISK_TRIGGERED_TOPIC
from messaging.topics import STATE_CHANGED as STATE_CHANGED_TOPIC
from pools.models import PoolConfig


def emit_state_changed(
    *, pool: PoolConfig, from_state: str, action: str, actor: Actor, reason: str
) -> None:
    outbox_enqueue(
        topic=STATE_CHANGED_TOPIC,
        key=pool.symbol,
        event_type="PoolStateChanged",
        payload={
            "symbol": pool.symbol,
            "from_state": from_state,
            "to_state": str(pool.state),
            "action": action,
            "actor": actor.name,
            "actor_kind": str(actor.kind),
            "reason": reason,
            "occurred_at": timezone.now().isoformat(),
        },
    )


@dataclass(frozen=True, slots=True)
class SimulatedQuote:
    """A quote shadow mode computed and did not place (MM_SHADOW_MODE)."""

    participant_id: str
    side: str
    level: int
    price: Decimal
    size: Decimal


def emit_simulated_quotes(*, symbol: str, quotes: Sequence[SimulatedQuote], ts_ns: int) -> None:
    """One mm.quote.simulated.v1 event per quote, in one transaction."""
    with transaction.atomic():
        for quote in quotes:
            outbox_enqueue(
                topic=QUOTE_SIMULATED_TOPIC,
                key=symbol,
                event_type="SimulatedQuote",
                payload={
                    "symbol": symbol,
                    "participant_id": quote.participant_id,
                    "side": quote.side,
                    "level": quote.level,
                    # Plain notation, as the contract asks ("0.0000001", never "1E-7").
                    "price": format(quote.price, "f"),
                    "size": format(quote.size, "f"),
                    "ts_ns": ts_ns,
                },
            )


def emit_risk_triggered(*, pool: PoolConfig, trigger: str, detail: str, actor: Actor) -> None:
    outbox_enqueue(
        topic=RISK_TRIGGERED_TOPIC,
        key=pool.symbol,
        event_type="RiskTriggered",
        payload={
            "symbol": pool.symbol,
            "trigger": trigger,
            "detail": detail,
            "actor": actor.name,
            "actor_kind": str(actor.kind),
            "occurred_at": timezone.now().isoformat(),
        },
    )
