"""Pools and members in the panel: forms and actions go through the services,
every change is audited under the admin user's name, refusals are shown as
messages and change nothing, and only ops may act."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from common.actors import Actor
from common.models import AuditLog, OutboxEvent
from common.redis import redis_client
from messaging.live_status import status_key
from pools import services
from pools.enums import FlattenStatus, PoolState
from pools.models import FlattenRequest, PoolConfig, PoolMember
from tests.admin.helpers import audit_actors, landed_on, messages_of, run_action
from tests.factories import FillFactory, MemberFactory, ParticipantFactory, PoolFactory

pytestmark = pytest.mark.django_db

POOLS = "/pools/poolconfig/"
MEMBERS = "/pools/poolmember/"
KILL = "/pools/poolconfig/emergency/kill/"
SYSTEM_OPS = Actor("someone-else")

POOL_FORM = {
    "symbol": "BTCUSDT-PERP",
    "gamma": "0.1",
    "kappa": "1.5",
    "tau": "1",
    "vol_lookback_seconds": "300",
    "num_levels": "3",
    "level_spacing_bps": "2",
    "min_spread_bps": "2",
    "max_spread_bps": "50",
    "order_size_usdt": "1000",
    "quote_interval_ms": "250",
    "price_threshold_bps": "1",
    "max_pool_position_usdt": "100000",
    "max_pool_loss_usdt": "5000",
    "check_staleness": "on",
    "staleness_threshold_ms": "5000",
    # The add form shows these prefilled with their defaults.
    "target_inventory": "0",
    "unwind_band_bps": "50",
    "unwind_max_loss_usdt": "",
    "unwind_time_limit_s": "3600",
}


def _state(pool: PoolConfig) -> str:
    return str(PoolConfig.objects.get(pk=pool.pk).state)


def _halted(symbol: str = "ETHUSDT-PERP") -> PoolConfig:
    pool = PoolFactory(symbol=symbol)
    return services.pool_halt(pool=pool, actor=SYSTEM_OPS, trigger="LOSS_BREACH", detail="test")


# --- configuration through the forms ----------------------------------------


def test_adding_a_pool_creates_it_paused_and_audits_the_admin(admin_client):
    response = admin_client.post(f"{POOLS}add/", POOL_FORM)
    assert landed_on(response) == POOLS
    pool = PoolConfig.objects.get(symbol="BTCUSDT-PERP")
    assert pool.state == PoolState.PAUSED
    assert pool.gamma == Decimal("0.1")
    audit = AuditLog.objects.get(entity_type="pool", entity_id="BTCUSDT-PERP", action="create")
    assert audit.actor == "ada-admin"
    assert audit.actor_kind == "user"
    assert audit.changes["max_spread_bps"] == [None, "50"]


def test_a_pool_form_with_min_spread_above_max_is_refused(admin_client):
    response = admin_client.post(f"{POOLS}add/", {**POOL_FORM, "min_spread_bps": "60"})
    assert (response.status_code, landed_on(response)) == (200, "")
    assert "min_spread_bps must be ≤ max_spread_bps" in response.content.decode()
    assert not PoolConfig.objects.exists()


def test_editing_a_pool_updates_its_config_through_the_service(admin_client):
    admin_client.post(f"{POOLS}add/", POOL_FORM)
    pool = PoolConfig.objects.get()
    form = {k: v for k, v in POOL_FORM.items() if k != "symbol"}
    response = admin_client.post(f"{POOLS}{pool.pk}/change/", {**form, "gamma": "0.2"})
    assert landed_on(response) == POOLS
    assert PoolConfig.objects.get().gamma == Decimal("0.2")
    audit = AuditLog.objects.get(entity_type="pool", action="update")
    assert audit.actor == "ada-admin"
    assert audit.changes == {"gamma": ["0.1000000000", "0.2"]}


def test_deleting_a_pool_in_the_admin_archives_it(admin_client):
    pool = PoolFactory(enabled=True)
    confirm = admin_client.get(f"{POOLS}{pool.pk}/delete/")
    assert "Archive the pool" in confirm.content.decode()
    response = admin_client.post(f"{POOLS}{pool.pk}/delete/", {"post": "yes"})
    assert landed_on(response) == POOLS
    archived = PoolConfig.objects.get(pk=pool.pk)  # still there
    assert archived.archived_at is not None
    assert archived.enabled is False
    assert audit_actors("pool", pool.symbol, "archive") == ["ada-admin"]
    assert any("archived" in m for m in messages_of(response))
    # An archived pool is read-only until restored.
    assert admin_client.post(f"{POOLS}{pool.pk}/change/", POOL_FORM).status_code == 403


def test_deleting_an_active_pool_is_refused(admin_client):
    pool = services.pool_enable(pool=PoolFactory(), actor=SYSTEM_OPS)
    response = admin_client.post(f"{POOLS}{pool.pk}/delete/", {"post": "yes"})
    assert landed_on(response) == f"{POOLS}{pool.pk}/change/"
    assert messages_of(response) == ["cannot delete pool in state ACTIVE"]
    assert PoolConfig.objects.get(pk=pool.pk).archived_at is None
    assert not AuditLog.objects.filter(action="archive").exists()


def test_archive_and_restore_actions(admin_client):
    pool = PoolFactory()
    run_action(admin_client, POOLS, "archive", [pool])
    assert PoolConfig.objects.get(pk=pool.pk).archived_at is not None
    response = run_action(admin_client, POOLS, "restore", [pool])
    assert PoolConfig.objects.get(pk=pool.pk).archived_at is None
    assert audit_actors("pool", pool.symbol, "restore") == ["ada-admin"]
    assert messages_of(response) == [f"Restore from the archive: done for {pool.symbol}."]


# --- lifecycle actions ----------------------------------------------------------


def test_enable_pause_and_resume_actions_move_the_pools_and_audit_the_admin(admin_client):
    btc, eth = PoolFactory(symbol="BTCUSDT-PERP"), PoolFactory(symbol="ETHUSDT-PERP")

    response = run_action(admin_client, POOLS, "enable", [btc, eth])
    assert landed_on(response) == POOLS
    assert messages_of(response) == ["Enable: done for BTCUSDT-PERP, ETHUSDT-PERP."]
    assert (_state(btc), _state(eth)) == ("ACTIVE", "ACTIVE")
    assert PoolConfig.objects.get(pk=btc.pk).enabled is True

    run_action(admin_client, POOLS, "pause", [btc])
    assert _state(btc) == "PAUSED"
    run_action(admin_client, POOLS, "resume", [btc])  # from PAUSED: no note asked
    assert _state(btc) == "ACTIVE"

    assert audit_actors("pool", "BTCUSDT-PERP", "enable") == ["ada-admin"]
    assert audit_actors("pool", "BTCUSDT-PERP", "pause") == ["ada-admin"]
    assert audit_actors("pool", "BTCUSDT-PERP", "resume") == ["ada-admin"]
    published = OutboxEvent.objects.filter(topic="mm.state.changed.v1", key="BTCUSDT-PERP")
    assert [e.payload["action"] for e in published.order_by("id")] == ["enable", "pause", "resume"]
    assert {e.payload["actor"] for e in published} == {"ada-admin"}


def test_an_illegal_action_shows_an_error_and_changes_nothing(admin_client):
    paused, active = PoolFactory(symbol="BTCUSDT-PERP"), PoolFactory(symbol="ETHUSDT-PERP")
    services.pool_enable(pool=active, actor=SYSTEM_OPS)
    before = AuditLog.objects.count()

    response = run_action(admin_client, POOLS, "pause", [paused, active])

    assert messages_of(response) == [
        "Pause: done for ETHUSDT-PERP.",
        "Pause refused for BTCUSDT-PERP: cannot pause pool in state PAUSED",
    ]
    assert (_state(paused), _state(active)) == ("PAUSED", "PAUSED")
    assert AuditLog.objects.count() == before + 1  # only ETH's pause


def test_resuming_a_halted_pool_asks_for_a_review_note_and_refuses_none(admin_client):
    pool = _halted()

    page = run_action(admin_client, POOLS, "resume", [pool])
    assert (page.status_code, landed_on(page)) == (200, "")
    assert "Review note" in page.content.decode()
    assert _state(pool) == "HALTED"

    refused = run_action(admin_client, POOLS, "resume", [pool], apply="yes", note="   ")
    assert (refused.status_code, landed_on(refused)) == (200, "")
    assert "This field is required." in refused.content.decode()
    assert _state(pool) == "HALTED"
    assert not AuditLog.objects.filter(action="resume").exists()

    done = run_action(
        admin_client, POOLS, "resume", [pool], apply="yes", note="loss reviewed with risk desk"
    )
    assert landed_on(done) == POOLS
    assert _state(pool) == "ACTIVE"
    audit = AuditLog.objects.get(entity_type="pool", action="resume")
    assert (audit.actor, audit.from_state, audit.reason) == (
        "ada-admin",
        "HALTED",
        "loss reviewed with risk desk",
    )


def test_unwinding_a_halted_pool_asks_for_a_note_and_audits_the_admin(admin_client):
    pool = _halted()
    page = run_action(admin_client, POOLS, "unwind", [pool])
    assert (page.status_code, landed_on(page)) == (200, "")
    assert "Note (required" in page.content.decode()
    done = run_action(
        admin_client, POOLS, "unwind", [pool], apply="yes", note="inventory back to flat"
    )
    assert landed_on(done) == POOLS
    assert _state(pool) == "UNWINDING"
    audit = AuditLog.objects.get(entity_type="pool", action="unwind")
    assert (audit.actor, audit.from_state, audit.reason) == (
        "ada-admin",
        "HALTED",
        "inventory back to flat",
    )


def test_change_page_buttons_run_the_lifecycle(admin_client):
    pool = _halted()
    page = admin_client.get(f"{POOLS}{pool.pk}/change/").content.decode()
    resume_url = f"{POOLS}{pool.pk}/lifecycle/resume/"
    assert resume_url in page
    assert f"{POOLS}{pool.pk}/lifecycle/pause/" not in page  # not from HALTED

    assert "Review note" in admin_client.get(resume_url).content.decode()
    assert landed_on(admin_client.post(resume_url, {"note": ""})) == ""
    assert _state(pool) == "HALTED"
    response = admin_client.post(resume_url, {"note": "venue back up"})
    assert landed_on(response) == f"{POOLS}{pool.pk}/change/"
    assert _state(pool) == "ACTIVE"

    pause_url = f"{POOLS}{pool.pk}/lifecycle/pause/"
    admin_client.post(pause_url, {})
    assert _state(pool) == "PAUSED"
    assert audit_actors("pool", pool.symbol, "pause") == ["ada-admin"]
    # A button for a transition the state does not allow is refused, not a 500.
    response = admin_client.post(pause_url, {})
    assert messages_of(response) == [
        f"Pause refused for {pool.symbol}: cannot pause pool in state PAUSED"
    ]


def test_emergency_kill_halts_every_pool_with_the_admin_as_actor(admin_client):
    paused, active = PoolFactory(symbol="BTCUSDT-PERP"), PoolFactory(symbol="ETHUSDT-PERP")
    services.pool_enable(pool=active, actor=SYSTEM_OPS)
    halted = _halted("SOLUSDT-PERP")

    assert KILL in admin_client.get(POOLS).content.decode()
    menu = run_action(admin_client, POOLS, "emergency_kill", [paused])
    assert landed_on(menu) == KILL
    assert "Halt ALL pools" in menu.content.decode()
    assert landed_on(admin_client.post(KILL, {"reason": ""})) == ""  # a reason is required
    assert _state(paused) == "PAUSED"

    response = admin_client.post(KILL, {"reason": "venue incident"})

    assert landed_on(response) == POOLS
    assert {_state(p) for p in (paused, active, halted)} == {"HALTED"}
    assert messages_of(response) == ["Emergency kill: halted 2 pools: BTCUSDT-PERP, ETHUSDT-PERP."]
    for symbol in ("BTCUSDT-PERP", "ETHUSDT-PERP"):
        audit = AuditLog.objects.get(entity_type="pool", entity_id=symbol, action="halt")
        assert (audit.actor, audit.reason) == ("ada-admin", "EMERGENCY_KILL: venue incident")
    risk = OutboxEvent.objects.filter(topic="mm.risk.triggered.v1", payload__actor="ada-admin")
    assert sorted(e.key for e in risk) == ["BTCUSDT-PERP", "ETHUSDT-PERP"]


def test_emergency_flatten_records_a_flatten_request(admin_client):
    pool = PoolFactory()
    response = admin_client.post("/pools/poolconfig/emergency/flatten/", {"reason": "drill"})
    assert landed_on(response) == POOLS
    assert _state(pool) == "HALTED"
    request = FlattenRequest.objects.get()
    assert (request.requested_by, request.status) == ("ada-admin", FlattenStatus.REQUESTED)
    assert audit_actors("flatten", request.pk, "request") == ["ada-admin"]


# --- members ------------------------------------------------------------------------


def test_members_are_added_updated_and_removed_through_the_services(admin_client):
    pool, participant = PoolFactory(), ParticipantFactory()
    form = {
        "pool": pool.pk,
        "participant": participant.pk,
        "weight": "2",
        "max_position_usdt": "5000",
    }

    response = admin_client.post(f"{MEMBERS}add/", form)
    assert landed_on(response) == MEMBERS
    member = PoolMember.objects.get()
    assert audit_actors("member", member.pk, "add") == ["ada-admin"]
    again = admin_client.post(f"{MEMBERS}add/", form)
    assert landed_on(again) == ""
    assert "already a member" in again.content.decode()

    admin_client.post(f"{MEMBERS}{member.pk}/change/", {"weight": "3", "max_position_usdt": "5000"})
    assert PoolMember.objects.get().weight == Decimal("3")
    update = AuditLog.objects.get(entity_type="member", action="update")
    assert (update.actor, update.changes) == ("ada-admin", {"weight": ["2.00000000", "3"]})

    response = admin_client.post(f"{MEMBERS}{member.pk}/delete/", {"post": "yes"})
    assert landed_on(response) == MEMBERS
    assert not PoolMember.objects.exists()
    assert audit_actors("member", member.pk, "remove") == ["ada-admin"]


def test_a_member_holding_a_position_in_an_active_pool_cannot_be_removed(admin_client):
    member = MemberFactory(pool__symbol="BTCUSDT-PERP")
    services.pool_enable(pool=member.pool, actor=SYSTEM_OPS)
    FillFactory(participant=member.participant, symbol="BTCUSDT-PERP", size=Decimal("0.5"))

    response = admin_client.post(f"{MEMBERS}{member.pk}/delete/", {"post": "yes"})
    assert landed_on(response) == f"{MEMBERS}{member.pk}/change/"
    assert "pause the pool or flatten first" in messages_of(response)[0]
    assert PoolMember.objects.filter(pk=member.pk).exists()

    page = run_action(admin_client, MEMBERS, "remove", [member])
    assert landed_on(page) == ""  # removing asks for confirmation first
    response = run_action(admin_client, MEMBERS, "remove", [member], apply="yes")
    assert "pause the pool or flatten first" in messages_of(response)[0]
    assert PoolMember.objects.filter(pk=member.pk).exists()


# --- roles --------------------------------------------------------------------------


def test_an_ops_user_runs_pool_actions_under_their_own_name(ops_client):
    pool = PoolFactory()
    run_action(ops_client, POOLS, "enable", [pool])
    assert _state(pool) == "ACTIVE"
    assert audit_actors("pool", pool.symbol, "enable") == ["olga-ops"]


def test_a_finance_user_cannot_run_pool_actions(finance_client):
    pool = PoolFactory()
    page = finance_client.get(POOLS)
    assert page.status_code == 200
    assert "emergency" not in page.content.decode()

    response = run_action(finance_client, POOLS, "enable", [pool])
    assert messages_of(response) == []  # the action is not even offered
    assert finance_client.post(f"{POOLS}{pool.pk}/lifecycle/enable/", {}).status_code == 403
    assert finance_client.post(KILL, {"reason": "x"}).status_code == 403
    assert finance_client.post(f"{POOLS}{pool.pk}/delete/", {"post": "yes"}).status_code == 403
    assert finance_client.get(f"{POOLS}add/").status_code == 403
    assert (
        f"{POOLS}{pool.pk}/lifecycle/"
        not in finance_client.get(f"{POOLS}{pool.pk}/change/").content.decode()
    )

    pool = PoolConfig.objects.get(pk=pool.pk)
    assert (pool.state, pool.archived_at) == (PoolState.PAUSED, None)
    assert not AuditLog.objects.filter(actor="fred-finance").exists()


def test_the_change_page_shows_each_members_live_position_and_fill_deficit(admin_client):
    pool = PoolFactory(symbol="BTCUSDT-PERP")
    alice = MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"))
    bob = MemberFactory(pool=pool, participant=ParticipantFactory(state="ACTIVE"))
    page = admin_client.get(f"{POOLS}{pool.pk}/change/").content.decode()
    assert "Fill deficit" in page  # no worker: the live columns read "-"
    live = {
        "symbol": "BTCUSDT-PERP",
        "mode": "ACTIVE",
        "members": [
            {
                "participant_id": str(alice.participant_id),
                "position": "0.125",
                "day_maker_size": "3.500",
                "fill_deficit": "-0.042",
            },
            {
                "participant_id": str(bob.participant_id),
                "position": "-0.010",
                "day_maker_size": "1.250",
                "fill_deficit": "0.042",
            },
        ],
    }
    redis_client().set(status_key("BTCUSDT-PERP"), json.dumps(live))
    page = admin_client.get(f"{POOLS}{pool.pk}/change/").content.decode()
    for figure in ("0.125", "3.500", "-0.042", "-0.010", "1.250", "0.042"):
        assert f"<td>{figure}</td>" in page
