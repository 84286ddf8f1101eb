"""Who did something: every lifecycle action and audit row names an Actor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    USER = "user"
    SYSTEM = "system"
    QUOTER = "quoter"


@dataclass(frozen=True)
class Actor:
    name: str
    kind: ActorKind = ActorKind.USER

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an actor needs a name")

    def __str__(self) -> str:
        return self.name if self.kind is ActorKind.USER else f"{self.kind}:{self.name}"


SYSTEM = Actor("system", ActorKind.SYSTEM)
