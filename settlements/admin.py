"""Settlements in the finance panel: the figures are read-only, the lifecycle
(SPEC Part B.16) runs as actions that finance alone may take."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from common.admin import Lifecycle, ServiceModelAdmin
from common.auth import Role
from settlements import services
from settlements.models import Settlement

SETTLEMENT_LIFECYCLES = (
    Lifecycle(
        name="approve",
        label="Approve",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_approve(settlement=s, actor=actor),
    ),
    Lifecycle(
        name="reject",
        label="Reject",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_reject(
            settlement=s, actor=actor, reason=text
        ),
        text_field="reason",
        text_label="Rejection reason",
    ),
    Lifecycle(
        name="recalculate",
        label="Recalculate (back to PENDING)",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_recalculate(settlement=s, actor=actor),
    ),
    Lifecycle(
        name="mark_settled",
        label="Mark settled",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_mark_settled(
            settlement=s, actor=actor, payout_reference=text
        ),
        text_field="payout_reference",
        text_label="Payout reference of the wallet transfer",
        text_max_length=128,
    ),
    Lifecycle(
        name="mark_failed",
        label="Mark failed",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_mark_failed(
            settlement=s, actor=actor, reason=text
        ),
        text_field="reason",
        text_label="Why the transfer failed",
    ),
)

FIGURES = (
    "realized_pnl_usdt",
    "fees_usdt",
    "funding_usdt",
    "gross_usdt",
    "high_water_mark_usdt",
    "revenue_model",
    "revenue_share_pct",
    "platform_share_usdt",
    "net_usdt",
    "q_score",
)
LIFECYCLE_FIELDS = (
    "state",
    "approved_by",
    "approved_at",
    "rejected_by",
    "rejected_at",
    "rejection_reason",
    "payout_reference",
    "settled_by",
    "settled_at",
    "failure_reason",
    "created_at",
    "updated_at",
)


@admin.register(Settlement)
class SettlementAdmin(ServiceModelAdmin):
    audit_entity_type = "settlement"
    lifecycles = SETTLEMENT_LIFECYCLES
    list_display = (
        "period_start",
        "symbol",
        "participant",
        "state",
        "gross_usdt",
        "platform_share_usdt",
        "net_usdt",
        "revenue_model",
        "q_score",
        "approved_by",
        "payout_reference",
    )
    list_filter = ("state", "period_start", "symbol", "revenue_model")
    search_fields = (
        "symbol",
        "participant__name",
        "participant__short_id",
        "participant__account_id",
        "payout_reference",
        "approved_by",
        "rejected_by",
    )
    list_select_related = ("participant",)
    date_hierarchy = "period_start"
    fieldsets = (
        (None, {"fields": ("id", "participant", "symbol", "period_start", "period_end")}),
        ("Figures (USDT)", {"fields": FIGURES}),
        ("Lifecycle", {"fields": LIFECYCLE_FIELDS}),
        ("History", {"fields": ("audit_history",)}),
    )
    readonly_fields = (
        "id",
        "participant",
        "symbol",
        "period_start",
        "period_end",
        *FIGURES,
        *LIFECYCLE_FIELDS,
        "audit_history",
    )

    # The monthly job creates settlements and the services move them; the
    # figures are never edited by hand, and no settlement is ever deleted.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
