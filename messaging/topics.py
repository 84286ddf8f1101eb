"""The Kafka topics of MMS (SPEC Part A "Kafka"), named once.

Code everywhere uses the *logical* names below: the Avro schemas
(contracts/avro/<topic>.avsc), the outbox rows and the worker's routing are
keyed by them. On the broker a topic may carry a namespace prefix,
"<namespace>.<name>", so several stacks (a test session's tests, two
developers) can share one broker without reading each other's records; only
the code that talks to the broker maps a logical name to the broker's and
back, through `Topics`. The namespace is KAFKA_TOPIC_NAMESPACE (empty in
production: the names are the contract with the exchange).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SNAPSHOT = "md.orderbook.snap.v1"
DELTA = "md.orderbook.delta.v1"
MARK = "md.mark.v1"
ENGINE = "engine.event.v1"
STATE_CHANGED = "mm.state.changed.v1"
RISK_TRIGGERED = "mm.risk.triggered.v1"
QUOTE_SIMULATED = "mm.quote.simulated.v1"

# What the quoting worker consumes: keyed by symbol and co-partitioned (SPEC B.8).
CONSUMED = (SNAPSHOT, DELTA, MARK, ENGINE)
# The market data among them: worthless once old, so kept briefly and, for a
# group with no committed offset, read from the end after asking for a snapshot.
MARKET_DATA = (SNAPSHOT, DELTA, MARK)
# What MMS publishes through the outbox.
PUBLISHED = (STATE_CHANGED, RISK_TRIGGERED, QUOTE_SIMULATED)
ALL = (*CONSUMED, *PUBLISHED)

_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Topics:
    """Logical names ↔ the broker's, for one namespace ("" = none)."""

    namespace: str = ""
    _to_logical: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.namespace and not _NAMESPACE.fullmatch(self.namespace):
            raise ValueError(
                f"topic namespace {self.namespace!r}: 1-64 letters, digits, '_' or '-'"
            )
        object.__setattr__(self, "_to_logical", {self.name(topic): topic for topic in ALL})

    def name(self, topic: str) -> str:
        """The broker's name of the logical `topic`."""
        return f"{self.namespace}.{topic}" if self.namespace else topic

    def names(self, topics: tuple[str, ...]) -> list[str]:
        return [self.name(topic) for topic in topics]

    def logical(self, name: str) -> str:
        """The logical name of the broker's topic `name`; KeyError for a stranger."""
        return self._to_logical[name]
