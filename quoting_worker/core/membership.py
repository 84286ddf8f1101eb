"""The pool's members (SPEC Part A "Multi-participant", Part B.3): who quotes
in the pool, with what weight and limit, and what they hold together.

`Membership` owns the members by participant id and the two lookups the
venue's answers need (by the client order id's short id, by account). A
member whose status is not ACTIVE keeps its position and history but quotes
nothing (weight 0); a member removed from the pool is gone from it (its
orders are cancelled by the caller). q, the pool's net position, is the sum
over its current members (SPEC Part B.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from quoting_worker.core.allocation import limit_lots, weight_units
from quoting_worker.core.member import MemberRuntime
from quoting_worker.core.types import Action, Instrument, MemberSpec, MemberStatus

# A difference of one sign at this many position checks in a row is a mismatch
# however it moves (Membership.venue_position).
DRIFT_CHECKS = 3


@dataclass(slots=True)
class Member:
    """A pool member as the engine holds it: its spec, its orders and position
    (`runtime`), and what quoting needs of it."""

    spec: MemberSpec
    runtime: MemberRuntime
    weight: int  # weight_units(spec.weight); 0 when the member may not quote
    limit_mark: Decimal | None = None  # the mark `limit` was computed at
    limit: int = 0  # max_position_usdt in lots at limit_mark
    # Reconciliation with the venue (`Membership.venue_position`): its last word,
    # the differences (venue − MMS) of the last DRIFT_CHECKS checks, oldest
    # first, and the difference that stayed (0 while they agree or a
    # difference was seen only once).
    venue_position: Decimal | None = None
    venue_differences: tuple[Decimal, ...] = ()
    position_mismatch: Decimal = Decimal(0)

    @property
    def venue_difference(self) -> Decimal:
        """The difference at the last check (0 before the first)."""
        return self.venue_differences[-1] if self.venue_differences else Decimal(0)


class Membership:
    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.members: dict[str, Member] = {}
        self.by_short: dict[str, str] = {}  # a client order id's short id → participant
        self.by_account: dict[str, str] = {}  # account id → participant

    def update(
        self, specs: Iterable[MemberSpec], *, cancel: Callable[[Member], list[Action]]
    ) -> list[Action]:
        """Adds, updates and removes members; `cancel(member)` withdraws the orders
        of one removed or no longer allowed to quote."""
        wanted = {spec.participant_id: spec for spec in specs}
        actions: list[Action] = []
        for pid in [p for p in self.members if p not in wanted]:
            gone = self.members.pop(pid)
            actions.extend(cancel(gone))
            self.by_short.pop(gone.spec.short_id, None)
            self.by_account.pop(gone.spec.account_id, None)
        for pid, spec in wanted.items():
            member = self.members.get(pid)
            weight = weight_units(spec.weight) if spec.status is MemberStatus.ACTIVE else 0
            if member is None:
                member = Member(spec, MemberRuntime(pid, self.instrument), weight)
                self.members[pid] = member
            else:
                member.spec, member.weight, member.limit_mark = spec, weight, None
                if weight == 0:
                    actions.extend(cancel(member))
            self.by_short[spec.short_id] = pid
            self.by_account[spec.account_id] = pid
        return actions

    def venue_position(self, account_id: str, size: Decimal) -> Member | None:
        """The venue's position of a member account, compared with the member's
        own (from the fills MMS stored). A fill the venue made but MMS has not
        heard yet makes a difference at one check and is gone at the next, so a
        difference counts (`position_mismatch`) only when it stays:
        - the same difference at two checks in a row (a lost fill, or a trade
          outside MMS, while the account is quiet), or
        - a difference of the same sign at DRIFT_CHECKS checks in a row, never
          back to zero (fills lost while the account trades: the difference
          moves, but it does not go away); the one nearest zero is reported,
          the part that stayed.
        Returns the member, or None for an account not in the pool."""
        pid = self.by_account.get(account_id)
        if pid is None:
            return None
        member = self.members[pid]
        difference = size - self.instrument.size(member.runtime.position_lots)
        recent = (*member.venue_differences, difference)[-DRIFT_CHECKS:]
        if difference != 0 and difference == member.venue_difference:
            member.position_mismatch = difference
        elif len(recent) == DRIFT_CHECKS and (
            all(d > 0 for d in recent) or all(d < 0 for d in recent)
        ):
            member.position_mismatch = min(recent, key=abs)
        else:
            member.position_mismatch = Decimal(0)
        member.venue_differences = recent
        member.venue_position = size
        return member

    def q_lots(self) -> int:
        """The pool's net position in lots."""
        return sum(m.runtime.position_lots for m in self.members.values())

    def total_pnl(self, mark: Decimal) -> Decimal:
        return sum((m.runtime.total_pnl(mark) for m in self.members.values()), Decimal(0))

    def limit_lots(self, member: Member, mark: Decimal) -> int:
        """The member's position limit in lots at this mark (recomputed when the mark moves)."""
        if member.limit_mark != mark:
            member.limit_mark = mark
            member.limit = limit_lots(member.spec.max_position_usdt, mark, self.instrument)
        return member.limit
