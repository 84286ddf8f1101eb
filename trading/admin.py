"""MM orders and fills in the panel: written only by the quoting worker,
searchable and filterable here, never edited."""

from __future__ import annotations

from django.contrib import admin

from common.admin import ReadOnlyModelAdmin
from trading.models import MMFill, MMFundingPayment, MMOrder


@admin.register(MMOrder)
class MMOrderAdmin(ReadOnlyModelAdmin):
    list_display = (
        "client_order_id",
        "participant",
        "symbol",
        "side",
        "level",
        "price",
        "size",
        "filled_size",
        "status",
        "created_at",
        "closed_at",
    )
    list_filter = ("status", "side", "symbol", "created_at")
    search_fields = (
        "client_order_id",
        "venue_order_id",
        "symbol",
        "participant__name",
        "participant__short_id",
        "participant__account_id",
    )
    list_select_related = ("participant",)
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(MMFill)
class MMFillAdmin(ReadOnlyModelAdmin):
    list_display = (
        "fill_id",
        "client_order_id",
        "participant",
        "symbol",
        "side",
        "price",
        "size",
        "fee_usdt",
        "liquidity",
        "filled_at",
    )
    list_filter = ("side", "liquidity", "symbol", "filled_at")
    search_fields = (
        "fill_id",
        "client_order_id",
        "symbol",
        "participant__name",
        "participant__short_id",
        "participant__account_id",
    )
    list_select_related = ("participant",)
    date_hierarchy = "filled_at"
    show_full_result_count = False


@admin.register(MMFundingPayment)
class MMFundingPaymentAdmin(ReadOnlyModelAdmin):
    list_display = ("payment_id", "participant", "symbol", "amount_usdt", "paid_at")
    list_filter = ("symbol", "paid_at")
    search_fields = ("payment_id", "symbol", "participant__name", "participant__account_id")
    list_select_related = ("participant",)
    date_hierarchy = "paid_at"
    show_full_result_count = False
