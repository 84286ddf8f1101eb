"""Settlements in the finance panel: the figures are read-only, the lifecycle
(SPEC Part B.16, B.21) runs as actions that finance alone may take: approve,
reject and recalculate move the participant-month as a whole (selecting two
settlements of one participant-month acts on it once), mark settled and mark
failed one settlement, never by its approver (four-eyes). The payout file of
the approved settlements downloads as CSV. Below the figures stands what they
come from (settlements/statements.py): the participant-month's high-water mark
and the share's allocation, the month's fills, funding payments and daily
Q-scores, and whether the figures reconcile, so finance can check a settlement
before approving it."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from common.admin import Lifecycle, ServiceModelAdmin, admin_actor, report
from common.auth import Role
from common.exceptions import DomainError
from settlements import calculation, payouts, services, statements
from settlements.models import Settlement

SETTLEMENT_LIFECYCLES = (
    Lifecycle(
        name="approve",
        label="Approve the participant-month",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_approve(settlement=s, actor=actor),
    ),
    Lifecycle(
        name="reject",
        label="Reject the participant-month",
        role=Role.FINANCE,
        run=lambda s, actor, text: services.settlement_reject(
            settlement=s, actor=actor, reason=text
        ),
        text_field="reason",
        text_label="Rejection reason",
    ),
    Lifecycle(
        name="recalculate",
        label="Recalculate the participant-month (back to PENDING)",
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
# The lifecycles that move every settlement of the participant-month (services.py).
TOGETHER = frozenset({"approve", "reject", "recalculate"})

FIGURES = (
    "realized_pnl_usdt",
    "fees_usdt",
    "funding_usdt",
    "gross_usdt",
    "revenue_model",
    "revenue_share_pct",
    "platform_share_usdt",
    "net_usdt",
    "q_score",
    "participant_month_figures",
)
EVIDENCE = (
    "fills_summary",
    "fills_shown",
    "funding_payments",
    "qscore_days",
    "reconciliation",
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
    actions = ("download_payout_file",)
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
    list_select_related = ("participant", "participant_month")
    date_hierarchy = "period_start"
    fieldsets = (
        (None, {"fields": ("id", "participant", "symbol", "period_start", "period_end")}),
        ("Figures (USDT)", {"fields": FIGURES}),
        ("Behind the figures", {"fields": EVIDENCE}),
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
        *EVIDENCE,
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Settlement]:
        return super().get_queryset(request).select_related("participant", "participant_month")

    # --- the participant-month moves together ----------------------------------

    def apply_lifecycle(
        self, request: HttpRequest, lifecycle: Lifecycle, objects: Iterable[Any], text: str
    ) -> None:
        """Approve, reject and recalculate run once per participant-month selected
        (the service moves all its settlements); the others once per settlement."""
        if lifecycle.name not in TOGETHER:
            super().apply_lifecycle(request, lifecycle, objects, text)
            return
        actor = admin_actor(request)
        months: dict[object, Settlement] = {}
        for obj in objects:
            months.setdefault(obj.participant_month_id, obj)
        done: list[str] = []
        refused: list[tuple[str, str]] = []
        for settlement in months.values():
            name = _month_label(settlement)
            try:
                lifecycle.run(settlement, actor, text)
            except DomainError as exc:
                refused.append((name, exc.message))
            else:
                done.append(name)
        report(request, lifecycle.label, done, refused)

    # --- the payout file ----------------------------------------------------------

    @admin.action(
        description="Download the payout file (CSV) of the selected participant-months",
        permissions=["finance"],
    )
    def download_payout_file(
        self, request: HttpRequest, queryset: QuerySet[Settlement]
    ) -> HttpResponse | None:
        """One line per participant-month of the selected settlements, adding up
        its APPROVED settlements (settlements/payouts.py); the rest are left out."""
        months = set(queryset.values_list("participant_month_id", flat=True))
        lines = payouts.payout_lines(participant_month_ids=months)
        if not lines:
            messages.warning(request, "No APPROVED settlement among the selected: no payout file.")
            return None
        response = HttpResponse(payouts.payout_csv(lines), content_type="text/csv; charset=utf-8")
        firsts = {line.month for line in lines}
        filename = f"payouts-{firsts.pop()}.csv" if len(firsts) == 1 else "payouts.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @admin.display(description="Participant-month (all symbols)")
    def participant_month_figures(self, obj: Settlement) -> SafeString:
        month = obj.participant_month
        return format_html(
            "<table><tbody>"
            "<tr><th>High-water mark scope</th><td>{}</td></tr>"
            "<tr><th>Σ gross, all symbols</th><td>{}</td></tr>"
            "<tr><th>High-water mark before</th><td>{}</td></tr>"
            "<tr><th>Cumulative gross after</th><td>{}</td></tr>"
            "<tr><th>High-water mark after</th><td>{}</td></tr>"
            "<tr><th>Share base</th><td>{}</td></tr>"
            "<tr><th>Platform share, all symbols</th><td>{}</td></tr>"
            "<tr><th>This symbol's part</th><td>{} (weight {} of Σ positive gross {})</td></tr>"
            "</tbody></table>"
            "<p>The share is the participant's: on its month gross above its high-water "
            "mark, allocated to the symbols pro rata to positive gross (each part rounded "
            "down to 1e-8, the quanta left to the largest remainders, ties to the first "
            "symbol alphabetically). Approve, reject and recalculate act on all the "
            "participant's settlements of the month.</p>",
            month.high_water_mark_scope,
            _plain(month.gross_usdt),
            _plain(month.high_water_mark_usdt),
            _plain(month.cumulative_gross_usdt),
            _plain(month.high_water_mark_after_usdt),
            _plain(month.share_base_usdt),
            _plain(month.platform_share_usdt),
            _plain(obj.platform_share_usdt),
            _plain(obj.share_weight_usdt),
            _plain(month.positive_gross_usdt),
        )

    # --- behind the figures (read-only; a fixed number of queries each) ------

    @admin.display(description="Fills of the month")
    def fills_summary(self, obj: Settlement) -> SafeString:
        fills = statements.settlement_fills_summary(settlement=obj)
        matches = (fills.fill_count, fills.fees_usdt, fills.realized_pnl_usdt) == (
            obj.fill_count,
            obj.fees_usdt,
            obj.realized_pnl_usdt,
        )
        return format_html(
            "<table><tbody>"
            "<tr><th>Fills</th><td>{}</td></tr>"
            "<tr><th>Buys</th><td>{} (size {})</td></tr>"
            "<tr><th>Sells</th><td>{} (size {})</td></tr>"
            "<tr><th>Volume USDT</th><td>{}</td></tr>"
            "<tr><th>Σ fee USDT</th><td>{}</td></tr>"
            "<tr><th>Σ realised PnL USDT</th><td>{}</td></tr>"
            "</tbody></table>"
            "<p>{} Count, fees and realised PnL {} the stored figures.</p>"
            '<p><a href="{}">All fills of this participant, symbol and month</a></p>',
            fills.fill_count,
            fills.buy_count,
            _plain(fills.buy_size),
            fills.sell_count,
            _plain(fills.sell_size),
            _plain(fills.volume_usdt),
            _plain(fills.fees_usdt),
            _plain(fills.realized_pnl_usdt),
            _mark(matches),
            "match" if matches else "do not match",
            _fills_changelist_url(obj),
        )

    @admin.display(description=f"First {statements.FILLS_SHOWN} fills")
    def fills_shown(self, obj: Settlement) -> SafeString | str:
        fills = statements.settlement_fills(settlement=obj)
        if not fills:
            return "No fill this month."
        return _table(
            ("Filled at (UTC)", "Side", "Price", "Size", "Fee USDT", "Realised USDT"),
            (
                (
                    fill.filled_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    fill.side,
                    _plain(fill.price),
                    _plain(fill.size),
                    _plain(fill.fee_usdt),
                    _plain(fill.realized_pnl_usdt),
                )
                for fill in fills
            ),
        )

    @admin.display(description="Funding payments")
    def funding_payments(self, obj: Settlement) -> SafeString:
        funding = statements.settlement_funding_summary(settlement=obj)
        payments = statements.settlement_funding(settlement=obj)
        matches = (funding.payment_count, funding.amount_usdt) == (
            obj.funding_count,
            obj.funding_usdt,
        )
        summary = format_html(
            "<p>Payments: {}, Σ {} USDT received{}.</p>"
            "<p>{} Count and sum {} the stored figures.</p>",
            funding.payment_count,
            _plain(funding.amount_usdt),
            f" (the first {len(payments)} below)" if len(payments) < funding.payment_count else "",
            _mark(matches),
            "match" if matches else "do not match",
        )
        if not payments:
            return summary
        return format_html(
            "{}{}",
            summary,
            _table(
                ("Paid at (UTC)", "Amount USDT", "Payment id"),
                (
                    (p.paid_at.strftime("%Y-%m-%d %H:%M:%S"), _plain(p.amount_usdt), p.payment_id)
                    for p in payments
                ),
            ),
        )

    @admin.display(description="Daily Q-scores")
    def qscore_days(self, obj: Settlement) -> SafeString | str:
        days = statements.settlement_days(settlement=obj)
        if not days:
            return "No performance row for this symbol and month."
        return _table(
            ("Day", "Uptime", "Q-score", "Efficiency", "SLA met", "Trades", "Volume USDT"),
            (
                (
                    day.day.isoformat(),
                    _plain(day.uptime),
                    _plain(day.q_score),
                    _plain(day.efficiency),
                    "yes" if day.sla_met else "no",
                    day.trade_count,
                    _plain(day.volume_usdt),
                )
                for day in days
            ),
        )

    @admin.display(description="Reconciles")
    def reconciliation(self, obj: Settlement) -> SafeString:
        check = statements.settlement_reconciliation(settlement=obj)
        if not check.inputs_recorded:
            inputs = format_html(
                "{} no inputs hash was recorded (the participant-month was computed per "
                "symbol, before SPEC Part B.21: reject and recalculate it)",
                _mark(False),
            )
        elif check.inputs_unchanged:
            inputs = format_html("{} the inputs are unchanged since computed", _mark(True))
        else:
            inputs = format_html(
                "{} the inputs moved since computed (stored {}, now {})",
                _mark(False),
                check.stored_sha256,
                check.current_sha256,
            )
        month = obj.participant_month
        return format_html(
            "<ul>"
            "<li>{} realised {} − fees {} + funding {} = {} (gross {})</li>"
            "<li>{} gross {} − share {} = {} (net {})</li>"
            "<li>{} Σ gross of the participant-month's settlements {} (participant-month {})</li>"
            "<li>{} Σ share of the participant-month's settlements {} (participant-month {})</li>"
            "<li>{}</li>"
            "</ul>",
            _mark(check.gross_ok),
            _plain(obj.realized_pnl_usdt),
            _plain(obj.fees_usdt),
            _plain(obj.funding_usdt),
            _plain(check.gross_expected),
            _plain(obj.gross_usdt),
            _mark(check.net_ok),
            _plain(obj.gross_usdt),
            _plain(obj.platform_share_usdt),
            _plain(check.net_expected),
            _plain(obj.net_usdt),
            _mark(check.month_gross_ok),
            _plain(check.month_gross_expected),
            _plain(month.gross_usdt),
            _mark(check.month_share_ok),
            _plain(check.month_share_expected),
            _plain(month.platform_share_usdt),
            inputs,
        )


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _month_label(settlement: Settlement) -> str:
    return f"participant-month {settlement.participant_id} {settlement.period_start:%Y-%m}"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((name,) for name in header))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _fills_changelist_url(settlement: Settlement) -> str:
    """The fills admin, filtered to the settlement's participant, symbol and month."""
    start, end = calculation.bounds(settlement.period_start)
    query = {
        "participant__id__exact": str(settlement.participant_id),
        "symbol": settlement.symbol,
        "filled_at__gte": start.isoformat(),
        "filled_at__lt": end.isoformat(),
    }
    return reverse("admin:trading_mmfill_changelist") + "?" + urlencode(query)
