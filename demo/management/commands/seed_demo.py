"""`manage.py seed_demo`: the demo of `make run`.

Three pools (BTCUSDT-PERP, ETHUSDT-PERP, PEPEUSDT-PERP), enabled so the quoter
hosts them, left PAUSED (a pool starts quoting only when someone resumes it:
`make run` does so through the API once the quoter reports the pool); four
ACTIVE participants of different tiers, capital and revenue models; their
memberships with weights. Idempotent: what exists is left as it is. Everything
goes through the service functions, so it is audited, with actor `demo-seed`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from common.actors import Actor, ActorKind
from demo.catalogue import MEMBERS, PARTICIPANTS, POOLS
from participants import services as participant_services
from participants.enums import ParticipantState
from participants.models import Participant
from pools import services as pool_services
from pools.models import PoolConfig, PoolMember

ACTOR = Actor("demo-seed", ActorKind.SYSTEM)


class Command(BaseCommand):
    help = "Create the demo pools, participants and memberships (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        participants = {data["account_id"]: self._participant(data) for data in PARTICIPANTS}
        for symbol, config in POOLS.items():
            pool = PoolConfig.objects.filter(symbol=symbol).first()
            if pool is None:
                pool, _ = pool_services.pool_create_or_update(
                    symbol=symbol, config=config, actor=ACTOR
                )
                self.stdout.write(f"seed_demo: pool {symbol} (PAUSED, enabled)")
            for account_id, weight, max_position in MEMBERS[symbol]:
                participant = participants[account_id]
                if not PoolMember.objects.filter(pool=pool, participant=participant).exists():
                    pool_services.member_add(
                        pool=pool,
                        participant=participant,
                        weight=weight,
                        max_position_usdt=max_position,
                        actor=ACTOR,
                    )

    def _participant(self, data: dict[str, Any]) -> Participant:
        participant = Participant.objects.filter(account_id=data["account_id"]).first()
        if participant is None:
            participant = participant_services.participant_enroll(data=data, actor=ACTOR)
            self.stdout.write(f"seed_demo: participant {data['name']} ({data['tier']})")
        if participant.state == ParticipantState.PENDING:
            participant = participant_services.participant_activate(
                participant=participant, actor=ACTOR
            )
        return participant
