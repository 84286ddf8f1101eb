"""The demo's pools (demo/catalogue.py) as the engine takes them: params and
member specs, with a participant id made up per account."""

from __future__ import annotations

import uuid

from demo.catalogue import MEMBERS, POOLS
from quoting_worker.core.types import MemberSpec, PoolParams


def demo_pool(symbol: str) -> tuple[PoolParams, tuple[MemberSpec, ...]]:
    members = tuple(
        MemberSpec(
            participant_id=str(pid),
            short_id=str(pid)[:8],
            account_id=account_id,
            weight=weight,
            max_position_usdt=max_position,
        )
        for account_id, weight, max_position in MEMBERS[symbol]
        for pid in (uuid.uuid5(uuid.NAMESPACE_URL, f"mms-lab:{account_id}"),)
    )
    return PoolParams.of(POOLS[symbol]), members
