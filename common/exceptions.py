"""Errors raised by services, independent of HTTP; the API maps them to statuses."""

from __future__ import annotations


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
    status = 400
    code = "validation_error"
