"""The panel as a whole: served on the admin port only, every page loads,
read-only models stay read-only, and each entity shows its audit history."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.apps import apps

from common.actors import Actor
from pools import services as pool_services
from tests.admin.helpers import landed_on
from tests.factories import (
    FillFactory,
    MemberFactory,
    OrderFactory,
    PerformanceDailyFactory,
    SettlementFactory,
)

pytestmark = pytest.mark.django_db

PANEL_MODELS = [
    "pools.poolconfig",
    "pools.poolmember",
    "pools.flattenrequest",
    "participants.participant",
    "settlements.settlement",
    "trading.mmorder",
    "trading.mmfill",
    "performance.performancedaily",
    "common.auditlog",
    "common.outboxevent",
]
READ_ONLY_MODELS = [
    "pools.flattenrequest",
    "settlements.settlement",
    "trading.mmorder",
    "trading.mmfill",
    "performance.performancedaily",
    "common.auditlog",
    "common.outboxevent",
]


@pytest.fixture
def one_of_everything() -> None:
    member = MemberFactory(pool__symbol="BTCUSDT-PERP")
    order = OrderFactory(participant=member.participant)
    FillFactory(participant=member.participant, order=order, client_order_id=order.client_order_id)
    SettlementFactory(participant=member.participant)
    PerformanceDailyFactory(participant=member.participant)
    ops = Actor("someone-ops")
    pool_services.pool_enable(pool=member.pool, actor=ops)  # an audit and an outbox row
    pool_services.emergency_flatten(actor=ops, reason="drill")  # a flatten request


def _url(label: str, suffix: str = "") -> str:
    app, model = label.split(".")
    return f"/{app}/{model}/{suffix}"


def test_the_panel_is_served_on_the_admin_port_only(admin_client, settings):
    api_port = str(settings.HTTP_PORT)
    assert admin_client.get("/").status_code == 200
    assert b"Market Maker Service" in admin_client.get("/").content
    assert admin_client.get("/", SERVER_PORT=api_port).status_code == 404
    assert admin_client.get("/pools/poolconfig/", SERVER_PORT=api_port).status_code == 404


def test_anonymous_visitors_are_sent_to_the_login_page(panel_client):
    response = panel_client().get("/pools/poolconfig/")
    assert landed_on(response) == "/login/?next=/pools/poolconfig/"


@pytest.mark.usefixtures("one_of_everything")
@pytest.mark.parametrize("label", PANEL_MODELS)
def test_every_changelist_and_change_page_loads(admin_client, label):
    response = admin_client.get(_url(label))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    assert admin_client.get(_url(label), {"q": "BTC"}).status_code == 200
    obj = apps.get_model(label).objects.first()
    assert admin_client.get(_url(label, f"{obj.pk}/change/")).status_code == 200


@pytest.mark.usefixtures("one_of_everything")
@pytest.mark.parametrize("label", PANEL_MODELS)
def test_a_viewer_sees_every_changelist_but_changes_nothing(viewer_client, label):
    response = viewer_client.get(_url(label))
    assert response.status_code == 200
    assert not response.context["has_add_permission"]
    assert response.context["action_form"] is None  # no action at all for a viewer
    obj = apps.get_model(label).objects.first()
    assert viewer_client.post(_url(label, f"{obj.pk}/change/"), {}).status_code == 403


@pytest.mark.usefixtures("one_of_everything")
@pytest.mark.parametrize("label", READ_ONLY_MODELS)
def test_rows_written_by_the_services_are_read_only_even_for_a_superuser(admin_client, label):
    obj = apps.get_model(label).objects.first()
    assert admin_client.get(_url(label, "add/")).status_code == 403
    assert admin_client.post(_url(label, f"{obj.pk}/change/"), {}).status_code == 403
    assert admin_client.post(_url(label, f"{obj.pk}/delete/"), {"post": "yes"}).status_code == 403
    assert apps.get_model(label).objects.filter(pk=obj.pk).exists()


def test_pepe_prices_show_at_their_tick_in_lists_and_pages(admin_client):
    """A 1e-9 tick is shown as stored (SPEC Part B.14), not at a fixed 8 places."""
    order = OrderFactory(symbol="PEPEUSDT-PERP", price=Decimal("0.000010006"), size=4000)
    fill = FillFactory(
        symbol="PEPEUSDT-PERP",
        order=order,
        price=Decimal("0.000000123"),  # str() of it is 1.23E-7
        size=Decimal(3000),
        fee_usdt=Decimal("-0.00000004"),
    )
    for url in ("/trading/mmorder/", f"/trading/mmorder/{order.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert "0.000010006" in page
        assert "0.00001001<" not in page
    for url in ("/trading/mmfill/", f"/trading/mmfill/{fill.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert "0.000000123" in page
        assert "E-7" not in page


@pytest.mark.usefixtures("one_of_everything")
def test_changelists_filter_and_search(admin_client):
    assert (
        admin_client.get("/pools/poolconfig/", {"state__exact": "HALTED"})
        .context["cl"]
        .result_count
        == 1
    )
    assert (
        admin_client.get("/pools/poolconfig/", {"state__exact": "ACTIVE"})
        .context["cl"]
        .result_count
        == 0
    )
    audit = admin_client.get("/common/auditlog/", {"q": "someone-ops", "action": "enable"})
    assert [row.action for row in audit.context["cl"].result_list] == ["enable"]
    outbox = admin_client.get("/common/outboxevent/", {"published": "no"})
    assert outbox.context["cl"].result_count >= 2
    fills = admin_client.get("/trading/mmfill/", {"liquidity__exact": "TAKER"})
    assert fills.context["cl"].result_count == 0


@pytest.mark.usefixtures("one_of_everything")
def test_the_pool_page_shows_its_audit_history_and_members(admin_client):
    pool = apps.get_model("pools.poolconfig").objects.get(symbol="BTCUSDT-PERP")
    page = admin_client.get(f"/pools/poolconfig/{pool.pk}/change/").content.decode()
    assert "Audit history" in page
    assert "PAUSED → ACTIVE" in page
    assert "ACTIVE → HALTED" in page
    assert "someone-ops" in page
    assert "EMERGENCY_KILL: drill" in page
    member = pool.members.get()
    assert f"/pools/poolmember/{member.pk}/change/" in page
    assert member.weight == Decimal("1")
