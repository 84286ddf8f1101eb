"""Every API route × every method × every kind of caller (issue 8, row 13).

Callers: no token, a garbage token, a forged one (signed with another key), an
expired one, one whose claims were altered after signing, one claiming the
`none` algorithm; then real tokens of each role (viewer, finance, ops, an lp of
the participant in the path and an lp of another). Requests carry an empty
JSON body, enough to reach every permission check.

Guarantees checked on every request:
- no server error (the test client raises on one; a 5xx response fails too);
- a bad token is 401 on every route but the public ones (health, schema, docs);
- nothing changes without the right role: after every refused request (4xx)
  the audit trail, the outbox and a digest of the lifecycle tables are as
  before; a viewer or an lp never changes anything at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import jwt
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from common.models import AuditLog, OutboxEvent
from participants.models import Participant
from pools.models import FlattenRequest, PoolConfig, PoolMember
from settlements.models import Settlement
from tests.conftest import TokenFactory
from tests.factories import MemberFactory, ParticipantFactory, PoolFactory, SettlementFactory
from tests.figures import record

pytestmark = pytest.mark.django_db

SECRET = "test-secret-" + "x" * 40  # the Auth Service stand-in's key (tests/conftest.py)
METHODS = ("get", "post", "put", "delete")
PUBLIC = ("healthz", "readyz", "v1/healthz", "v1/readyz", "v1/schema", "v1/docs")


def routes(patterns: list[Any] | None = None, prefix: str = "") -> Iterator[str]:
    """Every route of the API URLconf as its pattern text ("v1/pools/<symbol:symbol>")."""
    for entry in get_resolver("mms.urls_api").url_patterns if patterns is None else patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, text)
        elif isinstance(entry, URLPattern) and not text.startswith("^"):
            yield text


def fill(route: str, values: dict[str, str]) -> str:
    path = route
    for name, value in values.items():
        for converter in ("symbol", "uuid", "int", "str"):
            path = path.replace(f"<{converter}:{name}>", value)
    assert "<" not in path, f"no value for a parameter of {route}"
    return "/" + path


def digest() -> tuple[int, int, int, str]:
    """The state a request could change: audit rows, outbox rows, flatten requests,
    and a hash of the lifecycle tables' rows."""
    rows = [
        list(PoolConfig.objects.order_by("pk").values_list()),
        list(Participant.objects.order_by("pk").values_list()),
        list(PoolMember.objects.order_by("pk").values_list()),
        list(Settlement.objects.order_by("pk").values_list()),
    ]
    text = json.dumps(rows, default=str, sort_keys=True)
    return (
        AuditLog.objects.count(),
        OutboxEvent.objects.count(),
        FlattenRequest.objects.count(),
        hashlib.sha256(text.encode()).hexdigest(),
    )


def bad_tokens(good: str) -> dict[str, str | None]:
    now = int(time.time())
    claims = {"sub": "mallory", "roles": ["ops"], "iat": now, "exp": now + 600}
    header, _payload, signature = good.split(".")
    altered = jwt.utils.base64url_encode(  # type: ignore[attr-defined]
        json.dumps(
            {**jwt.decode(good, options={"verify_signature": False}), "roles": ["ops"]}
        ).encode()
    ).decode()
    return {
        "no token": None,
        "garbage": "not.a.jwt",
        "forged (another key)": jwt.encode(claims, "another-key-" + "y" * 40, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - 60}, SECRET, algorithm="HS256"),
        "claims altered after signing": f"{header}.{altered}.{signature}",
        "alg none": jwt.encode(claims, key=None, algorithm="none"),  # type: ignore[arg-type]
    }


def test_every_route_refuses_bad_tokens_and_changes_nothing_without_the_right_role(
    issue_token: TokenFactory,
) -> None:
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    mine = ParticipantFactory(state="ACTIVE", account_id="acct-mine", user_id="user-mine")
    other = ParticipantFactory(state="ACTIVE", account_id="acct-other", user_id="user-other")
    member = MemberFactory(pool=pool, participant=mine, weight=Decimal(1))
    settlement = SettlementFactory(participant=mine, symbol=pool.symbol)
    values = {
        "symbol": pool.symbol,
        "participant_id": str(mine.pk),
        "settlement_id": str(settlement.pk),
        "member_id": str(member.pk),
        "month": "2026-10",
    }
    paths = [fill(route, values) for route in routes()]
    assert len(paths) > 40, paths

    viewer = issue_token(sub="vera-viewer", roles=("viewer",))
    callers: dict[str, str | None] = {
        **bad_tokens(viewer),
        "viewer": viewer,
        "lp (own)": issue_token(sub="lena-lp", roles=("lp",), participant_id=str(mine.pk)),
        "lp (other)": issue_token(sub="otto-lp", roles=("lp",), participant_id=str(other.pk)),
        "finance": issue_token(sub="fred-finance", roles=("finance",)),
        "ops": issue_token(sub="olga-ops", roles=("ops",)),
    }
    bad = set(bad_tokens(viewer))
    read_only = {"viewer", "lp (own)", "lp (other)"}
    statuses: Counter[tuple[str, int]] = Counter()
    problems: list[str] = []
    for caller, token in callers.items():
        client = APIClient()
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        before = digest()
        for path in paths:
            for method in METHODS:
                response = getattr(client, method)(path, data={}, format="json")
                status = response.status_code
                statuses[(caller, status)] += 1
                where = f"{caller} {method.upper()} {path} → {status}"
                if status >= 500:
                    problems.append(f"server error: {where}")
                public = path.strip("/") in PUBLIC
                if caller in bad and not public and status != 401:
                    problems.append(f"bad token not refused: {where}")
                after = digest()
                if after != before and (status >= 400 or caller in bad or caller in read_only):
                    problems.append(f"state changed: {where}")
                before = after
    record(
        13,
        auth_requests=sum(statuses.values()),
        server_errors=sum(1 for p in problems if p.startswith("server error")),
        bad_tokens_not_refused=sum(1 for p in problems if p.startswith("bad token")),
        unauthorised_state_changes=sum(1 for p in problems if p.startswith("state changed")),
    )
    assert not problems, "\n".join(problems[:40])
    # The matrix ran through every kind of answer, not only refusals.
    assert statuses[("ops", 200)] > 0
    assert statuses[("viewer", 403)] > 0
    assert statuses[("lp (other)", 403)] > 0
    assert statuses[("lp (own)", 200)] > 0  # an lp reads its own participant's data
    refused = sum(n for (caller, status), n in statuses.items() if caller in bad and status == 401)
    assert refused >= len(bad) * len(METHODS) * (len(paths) - len(PUBLIC))
