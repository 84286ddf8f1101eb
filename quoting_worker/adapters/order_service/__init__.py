"""MMS's side of the Order Service (SPEC Part B.7; RELIABILITY.md): the HTTP
client (client.py: what each answer means), its request budget (budget.py:
token bucket, reserve for cancels, Retry-After) and the engine's action sink
built on them (sink.py: one batch of order traffic at once, holding back only
what depends on a request under way)."""

from quoting_worker.adapters.order_service.budget import (
    RateBudget,
    RequestClass,
    retry_after_seconds,
)
from quoting_worker.adapters.order_service.client import (
    ACCOUNT_TYPE,
    OrderServiceClient,
    OrderServiceUnavailable,
    Reply,
    TransportError,
    TransportTimeout,
    VenueOrder,
    Withdrawn,
    decimal_str,
    operation_of,
    outcome_of,
)
from quoting_worker.adapters.order_service.sink import OrderServiceSink

__all__ = [
    "ACCOUNT_TYPE",
    "OrderServiceClient",
    "OrderServiceSink",
    "OrderServiceUnavailable",
    "RateBudget",
    "Reply",
    "RequestClass",
    "TransportError",
    "TransportTimeout",
    "VenueOrder",
    "Withdrawn",
    "decimal_str",
    "operation_of",
    "outcome_of",
    "retry_after_seconds",
]
