"""Errors raised by services, independent of HTTP; the API maps them to statuses.

A request that breaks the published contract (a type, a pattern, a bound, an
unknown field) is refused before any service runs, with a 400. What a service
refuses here is a request that fits the contract but not the data: a 409 for
the state an object is in, a 422 (`Unprocessable`) for the request's meaning.
"""

from __future__ import annotations

# The error code of a refusal that the schema cannot express, because it depends
# on data (an unknown symbol, another person's name) or on several fields
# together (from ≥ to): serializers and filters raise their ValidationError with
# it, and the API answers 422 when every error of the request carries it.
SEMANTIC = "semantic"


class DomainError(Exception):
    status = 400
    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class IllegalTransition(DomainError):
    """A lifecycle action that the entity's current state does not allow."""

    status = 409
    code = "illegal_transition"

    def __init__(
        self,
        *,
        entity: str,
        action: str,
        current_state: str,
        message: str = "",
        **extra: object,
    ) -> None:
        super().__init__(
            message or f"cannot {action} {entity} in state {current_state}",
            current_state=current_state,
        )
        self.extra.update(extra)


class Conflict(DomainError):
    status = 409
    code = "conflict"


class FourEyesViolation(DomainError):
    """Separation of duties: the person who approved something may not also carry
    it out. Refused whatever the caller's roles, so a 403."""

    status = 403
    code = "four_eyes"


class InvalidInput(DomainError):
    """Input that breaks the contract, caught by a service (a guard behind the API's
    own validation, or a path segment the route cannot check)."""

    status = 400
    code = "validation_error"


class Unprocessable(DomainError):
    """Well-formed input refused for what it means given the data: a HALTED pool
    resumed without a review note, a month that has not ended."""

    status = 422
    code = "unprocessable"
